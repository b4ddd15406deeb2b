//! The TOML schema as written by operators. Every table refuses unknown keys; values
//! that need checks beyond their TOML type are kept `Spanned` so errors can name
//! their line. Defaults are in `defaults.rs`.

use serde::Deserialize;
use toml::Spanned;

use super::defaults;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<RawListener>,
    pub admin: Option<RawListener>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default, rename = "system")]
    pub systems: Vec<RawSystem>,
    #[serde(default, rename = "service")]
    pub services: Vec<RawService>,
    #[serde(default)]
    pub access: Vec<RawAccess>,
    #[serde(default, rename = "limit")]
    pub limits_rules: Vec<RawLimitRule>,
    pub overload: Option<RawOverload>,
    pub storage: Option<RawStorage>,
    pub xml: Option<RawXml>,
    pub monitoring: Option<RawMonitoring>,
    pub signatures: Option<RawSignatures>,
    pub mailbox: Option<RawMailbox>,
    #[serde(default, rename = "topic")]
    pub topics: Vec<RawTopic>,
    #[serde(default, rename = "operator")]
    pub operators: Vec<RawOperator>,
    pub cluster: Option<super::cluster::RawCluster>,
}

/// An operator of the admin API, identified by the client certificate presented
/// to the admin listener.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperator {
    /// Matches the certificate's SAN URI `urn:qaqpa:operator:{name}` when no
    /// fingerprint is given; named in the logs of what the operator did.
    pub name: Spanned<String>,
    /// SHA-256 of the operator's certificate (64 hex digits): pins this one certificate.
    pub fingerprint: Option<Spanned<String>>,
    /// "read" (GET only) or "admin" (also reload and dead-letter replay/drop).
    pub role: Option<Spanned<String>>,
}

/// An event topic (docs/protocol.md): owned by the system its id begins with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    /// `SYSTEM/TOPIC[/VERSION]`, e.g. `KZ/GOV/…/population-register/person-changed/v1`.
    pub id: Spanned<String>,
    /// The owner's access list: systems that may subscribe.
    #[serde(default)]
    pub subscribers: Vec<Spanned<String>>,
    /// Events older than this are deleted.
    pub retention: Option<Spanned<String>>,
    /// Past this many bytes of events the oldest are deleted.
    pub max_bytes: Option<Spanned<u64>>,
    /// Subscribers that get events pushed to one of their registered services.
    #[serde(default)]
    pub push: Vec<RawPush>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    pub subscriber: Spanned<String>,
    pub service: Spanned<String>,
}

/// `nats_url`: a string (possibly comma-separated) or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum NatsUrls {
    One(String),
    Many(Vec<String>),
}

impl NatsUrls {
    /// Each URL, trimmed; empty entries are kept so the checker can name them.
    pub fn urls(&self) -> Vec<String> {
        match self {
            Self::One(s) => s.split(',').map(|u| u.trim().to_owned()).collect(),
            Self::Many(list) => list.iter().map(|u| u.trim().to_owned()).collect(),
        }
    }
}

/// Asynchronous delivery (docs/protocol.md): where mailboxes live and how they retry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    /// "embedded" (default: DATA_DIR/mailbox.redb) or "nats" (JetStream).
    pub backend: Option<Spanned<String>>,
    /// One URL, several separated by commas, or a list: the servers of one NATS
    /// cluster, all handed to the client so it connects to whichever answers.
    pub nats_url: Option<Spanned<NatsUrls>>,
    /// How long a store call is retried across a NATS outage or a JetStream leader
    /// election before the face answers `503 server.store_unavailable`.
    pub store_retry: Option<Spanned<String>>,
    /// Prefix of the JetStream streams and buckets, so several buses share a server.
    pub nats_prefix: Option<Spanned<String>>,
    /// Copies JetStream keeps of each stream: 3 in a three-node NATS cluster.
    pub nats_replicas: Option<Spanned<u32>>,
    /// How long a taken message stays invisible before it is delivered again.
    pub visibility_timeout: Option<Spanned<String>>,
    /// Deliveries before a message goes to the dead letters.
    pub max_attempts: Option<Spanned<u32>>,
    /// First retry delay of push delivery; doubles per failure, with jitter.
    pub retry_base: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    /// How long a (client, message id) is remembered after its message is done.
    pub dedupe_window: Option<Spanned<String>>,
    /// Longest long-poll a client may ask for.
    pub max_wait: Option<Spanned<String>>,
    pub max_message_bytes: Option<Spanned<usize>>,
    /// Messages one queue (a service's requests, a client's responses) holds at most.
    pub max_queue_depth: Option<Spanned<u32>>,
    /// Push deliveries in flight per service.
    pub push_concurrency: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatures {
    /// CA certificates that message signers' chains must reach.
    pub trust_anchors: Spanned<String>,
    #[serde(default)]
    pub crls: Vec<Spanned<String>>,
    pub max_clock_skew: Option<Spanned<String>>,
    pub replay_window: Option<Spanned<String>>,
    pub replay_capacity: Option<Spanned<u32>>,
    /// Largest REST body buffered to check its signature.
    pub max_body_bytes: Option<Spanned<usize>>,
    /// The gateway's own signing certificate and key (signed responses).
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitRule {
    pub client: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    pub rate: Option<Spanned<String>>,
    pub burst: Option<Spanned<u32>>,
    pub quota_day: Option<Spanned<u64>>,
    pub quota_month: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverload {
    pub enabled: Option<bool>,
    pub max_in_flight: Option<Spanned<u32>>,
    pub min_in_flight: Option<Spanned<u32>>,
    pub target_delay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub data_dir: Option<Spanned<String>>,
    pub limits_backend: Option<Spanned<String>>,
    pub redis_url: Option<Spanned<String>>,
    pub redis_timeout: Option<Spanned<String>>,
    pub redis_prefix: Option<Spanned<String>>,
    /// Where the replay guard remembers message ids: "local" (default: a file in the
    /// data directory, per node) or "redis" (`redis_url`, shared by a cluster).
    pub replay: Option<Spanned<String>>,
    /// Gateway nodes sharing the Redis limits: while Redis is down, a service with
    /// `limits_fail = "open"` gets 1/cluster_nodes of its limits on each node.
    pub cluster_nodes: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    pub retention: Option<Spanned<String>>,
    pub ring: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    /// Percent of requests that must not fail with a server error, e.g. 99.9.
    pub availability: Spanned<f64>,
    /// Latency threshold, e.g. "500ms".
    pub latency: Spanned<String>,
    /// Percent of requests that must finish under `latency`, e.g. 99.0.
    pub latency_target: Spanned<f64>,
    /// Window the objectives are computed over, e.g. "30d".
    pub window: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub node: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub insecure: bool,
    /// An insecure listener may bind a non-loopback address only with this set:
    /// anyone who reaches it can claim any registered system (or run the admin API).
    pub allow_insecure_non_loopback: Option<Spanned<bool>>,
    pub tls: Option<Spanned<RawTls>>,
    pub http: Option<Spanned<Vec<Spanned<String>>>>,
    /// Open connections this listener holds at most; more are closed at accept.
    pub max_connections: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    pub client_ca: Spanned<String>,
    /// CRL files (PEM) consulted for every client certificate; reloaded with the config.
    #[serde(default)]
    pub crls: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Request line plus headers, bytes (HTTP/1.1 read buffer; HTTP/2 header list).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: Spanned<usize>,
    #[serde(default = "default_max_headers")]
    pub max_headers: Spanned<usize>,
    #[serde(default)]
    pub header_read_timeout: Option<Spanned<String>>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: Spanned<u64>,
    #[serde(default)]
    pub drain_timeout: Option<Spanned<String>>,
    /// Longest pause between two pieces of a request body.
    #[serde(default)]
    pub body_idle_timeout: Option<Spanned<String>>,
    /// Open connections one client system may hold across the data listeners.
    #[serde(default)]
    pub max_connections_per_client: Option<Spanned<u32>>,
    /// HTTP/2 (and HTTP/3) streams one connection may have open at once.
    #[serde(default)]
    pub max_concurrent_streams: Option<Spanned<u32>>,
    /// HTTP/2 streams the client may reset before the gateway accepted them; past
    /// it the connection is closed with ENHANCE_YOUR_CALM (rapid-reset defence).
    #[serde(default)]
    pub max_pending_resets: Option<Spanned<u32>>,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            header_read_timeout: None,
            max_body_bytes: default_max_body_bytes(),
            drain_timeout: None,
            body_idle_timeout: None,
            max_connections_per_client: None,
            max_concurrent_streams: None,
            max_pending_resets: None,
        }
    }
}

// Defaults that exist before validation (a key left out still has a value to check).
fn default_max_header_bytes() -> Spanned<usize> {
    Spanned::new(0..0, defaults::MAX_HEADER_BYTES)
}
fn default_max_headers() -> Spanned<usize> {
    Spanned::new(0..0, defaults::MAX_HEADERS)
}
fn default_max_body_bytes() -> Spanned<u64> {
    Spanned::new(0..0, defaults::MAX_BODY_BYTES)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    pub id: Spanned<String>,
    pub cert_sha256: Option<Spanned<String>>,
    /// A legacy system's signing certificate and key, held by the gateway to sign
    /// on its behalf (services with signature = "sign-on-behalf").
    pub signing_cert: Option<Spanned<String>>,
    pub signing_key: Option<Spanned<String>>,
    /// The system's ШЭП `senderId` (docs/shep.md): SyncChannel and AsyncChannel
    /// messages naming it are this system's, and must come with its certificate.
    pub shep_sender: Option<Spanned<String>>,
    /// Argon2 PHC string of the ШЭП `password` (`qaqpa shep-password` makes one).
    pub shep_password_hash: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub id: Spanned<String>,
    pub kind: Spanned<String>,
    pub upstream: Spanned<Vec<Spanned<String>>>,
    pub upstream_ca: Option<Spanned<String>>,
    pub upstream_client_cert: Option<Spanned<String>>,
    pub upstream_client_key: Option<Spanned<String>>,
    pub upstream_protocol: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub max_concurrency: Option<Spanned<u32>>,
    pub breaker: Option<RawBreaker>,
    pub health_check: Option<RawHealthCheck>,
    #[serde(default)]
    pub idempotent: bool,
    pub wsdl: Option<Spanned<String>>,
    pub openapi: Option<Spanned<String>>,
    /// Expose this REST service to SOAP clients.
    pub soap: Option<RawMediation>,
    /// Expose this SOAP service to REST clients.
    pub rest: Option<RawMediation>,
    pub limits_fail: Option<Spanned<String>>,
    pub sla: Option<RawSla>,
    /// "none" (default), "verify" or "sign-on-behalf".
    pub signature: Option<Spanned<String>>,
    /// The gateway signs the provider's responses with its own key.
    #[serde(default)]
    pub sign_responses: bool,
    /// Asynchronous requests: "none" (default), "pull" (the provider long-polls its
    /// inbox) or "push" (the gateway posts each request to the upstream).
    pub mailbox: Option<Spanned<String>>,
    /// Deliver one (client, service)'s messages strictly in the order sent.
    #[serde(default)]
    pub ordered: bool,
    /// "sync" (default: records on disk before forwarding and before answering) or
    /// "async" (unsigned bulk traffic: records written behind the answer).
    pub message_log: Option<Spanned<String>>,
    /// The ШЭП `serviceId` that routes SyncChannel and AsyncChannel messages here.
    pub shep_service_id: Option<Spanned<String>>,
    /// The provider speaks SyncChannel (kind = "soap"): ШЭП messages are forwarded
    /// as they are, and REST or X-Road clients get a `SendMessage` built for them.
    #[serde(default)]
    pub shep_provider: bool,
    /// SMEV 3 kinds of information (вид сведений): root namespaces of
    /// `MessagePrimaryContent` that route a SMEV 3 `SendRequest` here (docs/smev3.md).
    #[serde(default)]
    pub smev_kinds: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub service: Spanned<String>,
    pub clients: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXml {
    pub max_message_bytes: Option<Spanned<usize>>,
    pub max_depth: Option<Spanned<usize>>,
    pub max_attributes: Option<Spanned<usize>>,
    pub max_elements: Option<Spanned<usize>>,
    pub max_name_len: Option<Spanned<usize>>,
    pub max_text_len: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMediation {
    pub namespace: Spanned<String>,
    #[serde(default)]
    pub arrays: Vec<String>,
    #[serde(default)]
    pub types: std::collections::BTreeMap<String, Spanned<String>>,
    /// How attributes and text appear in JSON: "plain" (`@name`, `#text`; the
    /// default) or "named" (docs/mapping.md#json-styles).
    pub json_style: Option<Spanned<String>>,
    /// The named style's key for an element's text (default "value").
    pub text_field: Option<Spanned<String>>,
    /// The named style's prefix of attribute keys (default none).
    pub attribute_prefix: Option<Spanned<String>>,
    /// Attribute names JSON → XML writes as attributes in the named style.
    #[serde(default)]
    pub attributes: Vec<Spanned<String>>,
    #[serde(default, rename = "operation")]
    pub operations: Vec<RawOperation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// The SOAP operation (the Body's element).
    pub name: Spanned<String>,
    pub method: Spanned<String>,
    /// REST path template after the service id, e.g. "/{iin}".
    pub path: Spanned<String>,
    pub soap_action: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive failures (refused, reset, timed out) that open an endpoint's breaker.
    pub failures: Option<Spanned<u32>>,
    /// How long an open breaker keeps the endpoint out before one probe.
    pub open_for: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path under each endpoint's base URL that answers 2xx while it is healthy.
    pub path: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Consecutive failed checks that eject an endpoint.
    pub unhealthy: Option<Spanned<u32>>,
    /// Consecutive passed checks that bring it back.
    pub healthy: Option<Spanned<u32>>,
}
