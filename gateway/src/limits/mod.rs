//! Stage: limit. Rates (GCRA) and quotas per (consumer, service) and per consumer,
//! checked against a backend: in memory (default, quotas persisted to the data
//! directory) or Redis (cluster-wide, one atomic round trip per check).
//!
//! A refused request consumes neither rate nor quota (docs/operations.md).

pub mod connections;
pub mod local;
pub mod overload;
pub mod redis;

use std::time::Duration;

use qaqpa_routing::limit::{QuotaPeriod, Rate};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A stable 64-bit key for an id (SHA-256 prefix): the same across restarts and
/// nodes, so persisted quotas and Redis keys keep meaning. Computed when the config
/// is built, never per request.
pub fn stable_key(id: &str) -> u64 {
    let d = Sha256::digest(id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Key of a (consumer, service) pair from the two ids' keys.
pub fn pair_key(client: u64, service: u64) -> u64 {
    client.rotate_left(21) ^ service.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Everything one request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub pair_key: u64,
    pub pair_rate: Option<Rate>,
    pub consumer_key: u64,
    pub consumer_rate: Option<Rate>,
    pub quota_day: Option<u64>,
    pub quota_month: Option<u64>,
    /// Wall-clock nanoseconds since the Unix epoch (shared by all nodes).
    pub now_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow {
        /// Requests left right now under the tightest rate, if any rate applies.
        remaining: Option<u32>,
        reset_ns: u64,
        /// Requests left today / this month after this one, if quotas apply.
        quota_left: Option<(QuotaPeriod, u64)>,
    },
    RateLimited {
        retry_after_ns: u64,
    },
    QuotaExhausted {
        period: QuotaPeriod,
        retry_after_ns: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("limits backend unavailable: {0}")]
    Unavailable(String),
}

/// The calendar period a time falls in (UTC): day number, or year*12+month.
pub fn period_id(period: QuotaPeriod, now_ns: u64) -> u32 {
    let secs = (now_ns / 1_000_000_000) as i64;
    match period {
        QuotaPeriod::Day => (secs / 86_400) as u32,
        QuotaPeriod::Month => {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            (t.year() * 12 + i32::from(u8::from(t.month())) - 1) as u32
        }
    }
}

/// Nanoseconds until the period that contains `now_ns` ends.
pub fn period_end_ns(period: QuotaPeriod, now_ns: u64) -> u64 {
    let secs = (now_ns / 1_000_000_000) as i64;
    let end_secs = match period {
        QuotaPeriod::Day => (secs / 86_400 + 1) * 86_400,
        QuotaPeriod::Month => {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let (y, m) = if t.month() == time::Month::December {
                (t.year() + 1, 1)
            } else {
                (t.year(), u8::from(t.month()) + 1)
            };
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap_or(time::Month::January), 1)
                .map(|d| d.midnight().assume_utc().unix_timestamp())
                .unwrap_or(secs + 86_400)
        }
    };
    (end_secs as u64 * 1_000_000_000).saturating_sub(now_ns)
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Whole seconds to wait, rounded up, at least 1: the `Retry-After` value.
pub fn retry_after_secs(ns: u64) -> u64 {
    Duration::from_nanos(ns).as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests;

/// The configured backend.
pub enum Limiter {
    Local {
        backend: local::LocalBackend,
        file: std::path::PathBuf,
    },
    /// Cluster-wide limits in Redis; `fallback` (in memory, this node's share:
    /// the limits divided by `nodes`) while Redis is unavailable, for services
    /// with `limits_fail = "open"`.
    Redis {
        redis: Box<redis::RedisBackend>,
        fallback: local::LocalBackend,
        nodes: u32,
    },
}

impl Limiter {
    pub async fn check(&self, c: &Check) -> Result<Decision, LimitError> {
        match self {
            Limiter::Local { backend, .. } => Ok(backend.check(c)),
            Limiter::Redis { redis, .. } => redis.check(c).await,
        }
    }

    /// The per-node check while the shared backend is unavailable: each rate's
    /// interval times the node count (burst and quotas divided by it, at least 1),
    /// so the cluster as a whole stays near the configured limit.
    pub fn check_fallback(&self, c: &Check) -> Decision {
        match self {
            Limiter::Local { backend, .. } => backend.check(c),
            Limiter::Redis { fallback, nodes, .. } => fallback.check(&per_node(c, *nodes)),
        }
    }

    /// Whether the shared backend answers (the local one always does).
    pub fn is_available(&self) -> bool {
        match self {
            Limiter::Local { .. } => true,
            Limiter::Redis { redis, .. } => redis.is_available(),
        }
    }

    /// Tries an unavailable shared backend again (every second, from housekeeping).
    pub async fn probe(&self) {
        if let Limiter::Redis { redis, .. } = self {
            redis.probe().await;
        }
    }

    /// Persists local quota counters (no-op for Redis, which keeps them itself;
    /// the fallback's counters are this node's share of an outage only).
    pub fn save(&self) {
        if let Limiter::Local { backend, file } = self {
            if let Err(e) = backend.save(file) {
                tracing::error!("saving quota counters to {}: {e}", file.display());
            }
        }
    }

    pub fn housekeep(&self) {
        match self {
            Limiter::Local { backend, .. } => backend.housekeep(now_ns()),
            Limiter::Redis { fallback, .. } => fallback.housekeep(now_ns()),
        }
    }
}

/// One node's share of `c`'s limits in a cluster of `nodes`.
pub fn per_node(c: &Check, nodes: u32) -> Check {
    let nodes = nodes.max(1);
    let rate = |r: Option<Rate>| {
        r.map(|r| Rate {
            interval_ns: r.interval_ns.saturating_mul(u64::from(nodes)),
            burst: r.burst.div_ceil(nodes).max(1),
        })
    };
    let quota = |q: Option<u64>| q.map(|q| q.div_ceil(u64::from(nodes)).max(1));
    Check {
        pair_rate: rate(c.pair_rate),
        consumer_rate: rate(c.consumer_rate),
        quota_day: quota(c.quota_day),
        quota_month: quota(c.quota_month),
        ..*c
    }
}
