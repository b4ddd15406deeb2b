//! `[limits]`: what a client may send, per request and per connection.

use super::checker::Checker;
use super::defaults;
use super::raw::RawLimits;
use super::Limits;

pub(super) fn check(c: &mut Checker, raw: &RawLimits) -> Limits {
    let limits = Limits {
        max_header_bytes: *raw.max_header_bytes.get_ref(),
        max_headers: *raw.max_headers.get_ref(),
        header_read_timeout: c.duration(
            raw.header_read_timeout.as_ref(),
            defaults::HEADER_READ_TIMEOUT,
            "limits.header_read_timeout",
        ),
        max_body_bytes: *raw.max_body_bytes.get_ref(),
        drain_timeout: c.duration(raw.drain_timeout.as_ref(), defaults::DRAIN_TIMEOUT, "limits.drain_timeout"),
        body_idle_timeout: c.duration(
            raw.body_idle_timeout.as_ref(),
            defaults::BODY_IDLE_TIMEOUT,
            "limits.body_idle_timeout",
        ),
        max_connections_per_client: c.positive(
            raw.max_connections_per_client.as_ref(),
            defaults::MAX_CONNECTIONS_PER_CLIENT,
            "limits.max_connections_per_client",
        ),
        max_concurrent_streams: c.positive(
            raw.max_concurrent_streams.as_ref(),
            defaults::MAX_CONCURRENT_STREAMS,
            "limits.max_concurrent_streams",
        ),
        max_pending_resets: c.positive(
            raw.max_pending_resets.as_ref(),
            defaults::MAX_PENDING_RESETS,
            "limits.max_pending_resets",
        ),
    };
    if !(8192..=16 * 1024 * 1024).contains(&limits.max_header_bytes) {
        c.error(raw.max_header_bytes.span(), "limits.max_header_bytes", "must be between 8192 and 16 MiB");
    }
    if !(8..=10_000).contains(&limits.max_headers) {
        c.error(raw.max_headers.span(), "limits.max_headers", "must be between 8 and 10000");
    }
    if limits.max_body_bytes == 0 {
        c.error(raw.max_body_bytes.span(), "limits.max_body_bytes", "must be positive");
    }
    limits
}
