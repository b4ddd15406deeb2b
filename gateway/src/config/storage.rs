//! `[storage]`: the data directory and where rate-limit counters live.

use super::checker::Checker;
use super::defaults;
use super::raw::RawStorage;
use super::{LimitsBackend, RedisReplay, Storage};
use crate::cluster::redis_target::is_redis_url;

pub(super) fn check(c: &mut Checker, raw: Option<&RawStorage>) -> Storage {
    let data_dir = raw.and_then(|s| s.data_dir.as_ref()).map_or(defaults::DATA_DIR, |d| d.get_ref().as_str());
    let limits = match raw.and_then(|s| s.limits_backend.as_ref()).map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "local")) => LimitsBackend::Local,
        Some((b, "redis")) => match raw.and_then(|s| s.redis_url.as_ref()) {
            Some(url) if is_redis_url(url.get_ref()) => {
                let timeout = raw.and_then(|s| s.redis_timeout.as_ref());
                let prefix = raw.and_then(|s| s.redis_prefix.as_ref());
                if let Some(p) = prefix.filter(|p| p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace))
                {
                    c.error(p.span(), "storage.redis_prefix", "must be non-empty without spaces");
                }
                LimitsBackend::Redis {
                    url: url.get_ref().clone(),
                    timeout: c.duration(timeout, defaults::REDIS_TIMEOUT, "storage.redis_timeout"),
                    prefix: prefix.map_or(defaults::REDIS_PREFIX, |p| p.get_ref()).to_owned(),
                }
            }
            Some(url) => {
                let why = match crate::cluster::redis_target::parse_sentinel(url.get_ref()) {
                    Err(e) if url.get_ref().starts_with(crate::cluster::redis_target::SENTINEL_SCHEME) => e,
                    _ => "must start with redis://, rediss:// or redis+sentinel://".to_owned(),
                };
                c.error(url.span(), "storage.redis_url", why);
                LimitsBackend::Local
            }
            None => {
                c.error(b.span(), "storage.redis_url", "missing: the redis backend needs redis_url");
                LimitsBackend::Local
            }
        },
        Some((b, other)) => {
            c.error(b.span(), "storage.limits_backend", format!("unknown {other:?}; use \"local\" or \"redis\""));
            LimitsBackend::Local
        }
    };
    let replay_redis = match raw.and_then(|s| s.replay.as_ref()).map(|r| (r, r.get_ref().as_str())) {
        None | Some((_, "local")) => None,
        Some((r, "redis")) => match raw.and_then(|s| s.redis_url.as_ref()) {
            Some(url) if is_redis_url(url.get_ref()) => Some(RedisReplay {
                url: url.get_ref().clone(),
                timeout: c.duration(
                    raw.and_then(|s| s.redis_timeout.as_ref()),
                    defaults::REDIS_TIMEOUT,
                    "storage.redis_timeout",
                ),
                prefix: raw
                    .and_then(|s| s.redis_prefix.as_ref())
                    .map_or(defaults::REDIS_PREFIX, |p| p.get_ref())
                    .to_owned(),
            }),
            _ => {
                c.error(
                    r.span(),
                    "storage.replay",
                    "\"redis\" needs storage.redis_url (redis://, rediss:// or redis+sentinel://)",
                );
                None
            }
        },
        Some((r, other)) => {
            c.error(r.span(), "storage.replay", format!("unknown {other:?}; use \"local\" or \"redis\""));
            None
        }
    };
    let cluster_nodes = match raw.and_then(|s| s.cluster_nodes.as_ref()) {
        Some(n) if !(1..=1000).contains(n.get_ref()) => {
            c.error(n.span(), "storage.cluster_nodes", "must be 1 to 1000");
            1
        }
        Some(n) => *n.get_ref(),
        None => 1,
    };
    Storage { data_dir: c.path(data_dir), limits, replay_redis, cluster_nodes }
}
