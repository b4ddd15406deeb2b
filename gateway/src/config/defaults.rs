//! Every default of the config file, in one place: the serde defaults of `raw.rs` and
//! the section validators take their values from here, and nowhere else holds one.
//! `deploy/qaqpa.example.toml` documents them beside the keys.

use std::time::Duration;

use super::{LogMode, MailboxMode, SignaturePolicy, UpstreamProtocol};

const SECOND: u64 = 1;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// [gateway]

/// `gateway.node`.
pub const NODE: &str = "node-1";
/// The `gateway.node` value replaced by the host's name.
pub const NODE_FROM_HOSTNAME: &str = "$HOSTNAME";

// [[listener]], [admin]

/// Name of the `i`th data listener without a `name`.
pub fn listener_name(i: usize) -> String {
    format!("data-{i}")
}
/// Name of the admin listener without a `name`.
pub const ADMIN_LISTENER_NAME: &str = "admin";
/// HTTP versions without an `http` key: (HTTP/1.1, HTTP/2, HTTP/3).
pub const HTTP_VERSIONS: (bool, bool, bool) = (true, true, false);
pub const MAX_CONNECTIONS: u32 = 20_000;

// [limits]

pub const MAX_HEADER_BYTES: usize = 64 * KIB;
pub const MAX_HEADERS: usize = 100;
pub const MAX_BODY_BYTES: u64 = 128 * MIB as u64;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10 * SECOND);
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30 * SECOND);
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * SECOND);
pub const MAX_CONNECTIONS_PER_CLIENT: u32 = 2_000;
pub const MAX_CONCURRENT_STREAMS: u32 = 256;
pub const MAX_PENDING_RESETS: u32 = 20;

// [signatures]

pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * MINUTE);
pub const REPLAY_WINDOW: Duration = Duration::from_secs(24 * HOUR);
pub const REPLAY_CAPACITY: usize = 2_000_000;
/// Largest REST body buffered to check its signature.
pub const SIGNED_BODY_BYTES: usize = 10 * MIB;

// [[service]]

pub const UPSTREAM_PROTOCOL: UpstreamProtocol = UpstreamProtocol::Auto;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2 * SECOND);
pub const TIMEOUT: Duration = Duration::from_secs(30 * SECOND);
/// `limits_fail`: admit requests when the shared limiter cannot answer.
pub const LIMITS_FAIL_OPEN: bool = true;
pub const SIGNATURE: SignaturePolicy = SignaturePolicy::None;
pub const MAILBOX_MODE: MailboxMode = MailboxMode::None;
pub const MESSAGE_LOG: LogMode = LogMode::Sync;
/// `[service.breaker]`, absent or in part: the routing crate's breaker (5 failures,
/// 10 s open).
pub fn breaker() -> qaqpa_routing::health::BreakerConfig {
    qaqpa_routing::health::BreakerConfig::default()
}
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5 * SECOND);
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(SECOND);
pub const HEALTH_CHECK_UNHEALTHY: u32 = 2;
pub const HEALTH_CHECK_HEALTHY: u32 = 2;
pub const SLA_WINDOW: Duration = Duration::from_secs(30 * DAY);

// [[limit]]

/// Burst of a rate of `count` per `period_s` seconds without `burst`: one second's
/// worth, at least 1.
pub fn burst(count: u64, period_s: u64) -> u32 {
    (count / period_s).clamp(1, u64::from(u32::MAX)) as u32
}

// [[topic]]

pub const TOPIC_RETENTION: Duration = Duration::from_secs(7 * DAY);
/// A topic keeps at most this many bytes of events (1 GiB).
pub const TOPIC_BYTES: u64 = 1 << 30;

// [overload]

pub const OVERLOAD_ENABLED: bool = true;
pub const MAX_IN_FLIGHT: u32 = 10_000;
/// Never above `max_in_flight`.
pub const MIN_IN_FLIGHT: u32 = 16;
pub const TARGET_DELAY: Duration = Duration::from_millis(50);

// [storage]

/// Relative to the config file's directory.
pub const DATA_DIR: &str = "data";
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
pub const REDIS_PREFIX: &str = "qaqpa";

// [monitoring]

pub const MONITORING_RETENTION: Duration = Duration::from_secs(30 * DAY);
pub const MONITORING_RING: usize = 10_000;

// [xml]

pub const XML_MESSAGE_BYTES: usize = 10 * MIB;
/// Depth, attributes, elements, name and text lengths: the SOAP adapter's limits.
pub fn xml_limits() -> qaqpa_adapters::soap::XmlLimits {
    qaqpa_adapters::soap::XmlLimits::default()
}

// [mailbox]

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const NATS_PREFIX: &str = "QAQPA";
pub const NATS_REPLICAS: usize = 1;
/// Longer than a JetStream leader election (measured at ~4.3 s, issue 22).
pub const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
/// NATS servers one `nats_url` may name.
pub const MAX_NATS_URLS: usize = 16;
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30 * SECOND);
pub const MAX_ATTEMPTS: u32 = 5;
pub const RETRY_BASE: Duration = Duration::from_secs(SECOND);
pub const RETRY_MAX: Duration = Duration::from_secs(5 * MINUTE);
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * HOUR);
pub const MAX_WAIT: Duration = Duration::from_secs(60 * SECOND);
/// Largest asynchronous message body: these are stored, not streamed.
pub const MAILBOX_MESSAGE_BYTES: usize = 4 * MIB;
pub const MAX_QUEUE_DEPTH: u32 = 1_000_000;
pub const PUSH_CONCURRENCY: u32 = 16;
