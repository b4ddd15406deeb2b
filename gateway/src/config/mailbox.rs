//! `[mailbox]`: where asynchronous messages live and how they are retried.

use toml::Spanned;

use super::checker::Checker;
use super::defaults;
use super::raw::RawMailbox;
use super::{MailboxBackend, MailboxConfig};

pub(super) fn check(c: &mut Checker, raw: Option<&RawMailbox>) -> MailboxConfig {
    let value = |get: fn(&RawMailbox) -> Option<&Spanned<String>>| raw.and_then(get);
    let count = |get: fn(&RawMailbox) -> Option<&Spanned<u32>>| raw.and_then(get);
    let backoff = qaqpa_routing::retry::Backoff {
        base: c.duration(value(|m| m.retry_base.as_ref()), defaults::RETRY_BASE, "mailbox.retry_base"),
        max: c.duration(value(|m| m.retry_max.as_ref()), defaults::RETRY_MAX, "mailbox.retry_max"),
    };
    if backoff.max < backoff.base {
        let span = value(|m| m.retry_max.as_ref()).map(|v| v.span()).unwrap_or(0..0);
        c.error(span, "mailbox.retry_max", "must be at least retry_base");
    }
    MailboxConfig {
        backend: backend(c, raw),
        visibility_timeout: c.duration(
            value(|m| m.visibility_timeout.as_ref()),
            defaults::VISIBILITY_TIMEOUT,
            "mailbox.visibility_timeout",
        ),
        max_attempts: c.positive(count(|m| m.max_attempts.as_ref()), defaults::MAX_ATTEMPTS, "mailbox.max_attempts"),
        backoff,
        dedupe_window: c.duration(
            value(|m| m.dedupe_window.as_ref()),
            defaults::DEDUPE_WINDOW,
            "mailbox.dedupe_window",
        ),
        max_wait: c.duration(value(|m| m.max_wait.as_ref()), defaults::MAX_WAIT, "mailbox.max_wait"),
        max_message_bytes: c.nonzero(
            raw.and_then(|m| m.max_message_bytes.as_ref()),
            defaults::MAILBOX_MESSAGE_BYTES,
            "mailbox.max_message_bytes",
            "must be positive",
        ),
        max_queue_depth: c.positive(
            count(|m| m.max_queue_depth.as_ref()),
            defaults::MAX_QUEUE_DEPTH,
            "mailbox.max_queue_depth",
        ),
        push_concurrency: c.positive(
            count(|m| m.push_concurrency.as_ref()),
            defaults::PUSH_CONCURRENCY,
            "mailbox.push_concurrency",
        ),
        store_retry: c.duration(value(|m| m.store_retry.as_ref()), defaults::STORE_RETRY, "mailbox.store_retry"),
    }
}

fn backend(c: &mut Checker, raw: Option<&RawMailbox>) -> MailboxBackend {
    let value = |get: fn(&RawMailbox) -> Option<&Spanned<String>>| raw.and_then(get);
    match value(|m| m.backend.as_ref()).map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "embedded")) => MailboxBackend::Embedded,
        Some((_, "nats")) => {
            let url = raw.and_then(|m| m.nats_url.as_ref()).map(|u| (u.span(), u.get_ref().urls()));
            if let Some((span, urls)) = &url {
                check_urls(c, span.clone(), urls);
            }
            let prefix = value(|m| m.nats_prefix.as_ref());
            if let Some(p) = prefix.filter(|p| {
                p.get_ref().is_empty() || !p.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                c.error(p.span(), "mailbox.nats_prefix", "must be letters, digits and _");
            }
            let replicas = match raw.and_then(|m| m.nats_replicas.as_ref()) {
                Some(r) if !(1..=5).contains(r.get_ref()) => {
                    c.error(r.span(), "mailbox.nats_replicas", "must be 1 to 5");
                    defaults::NATS_REPLICAS
                }
                Some(r) => *r.get_ref() as usize,
                None => defaults::NATS_REPLICAS,
            };
            MailboxBackend::Nats {
                url: url.map_or_else(|| defaults::NATS_URL.to_owned(), |(_, urls)| urls.join(",")),
                prefix: prefix.map_or(defaults::NATS_PREFIX, |p| p.get_ref()).to_owned(),
                replicas,
            }
        }
        Some((b, other)) => {
            c.error(b.span(), "mailbox.backend", format!("unknown {other:?}; use \"embedded\" or \"nats\""));
            MailboxBackend::Embedded
        }
    }
}

/// Each URL must be one the NATS client parses (so a list that passes the check
/// also connects), with a nats:// or tls:// scheme and a host.
fn check_urls(c: &mut Checker, span: std::ops::Range<usize>, urls: &[String]) {
    if urls.is_empty() || urls.len() > defaults::MAX_NATS_URLS {
        c.error(span.clone(), "mailbox.nats_url", format!("must name 1 to {} servers", defaults::MAX_NATS_URLS));
    }
    for u in urls {
        let scheme_ok = u.starts_with("nats://") || u.starts_with("tls://");
        if !scheme_ok || !qaqpa_mailbox::is_nats_url(u) || u.contains(char::is_whitespace) {
            c.error(span.clone(), "mailbox.nats_url", format!("{u:?} is not a nats:// or tls:// server URL"));
        }
    }
}
