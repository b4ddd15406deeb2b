//! The one TOML configuration file: its schema (`raw`), its validation into a
//! [`Config`] whose every value is checked, and the error report that names each bad
//! key with its line.
//!
//! Validation is two passes. The text pass ([`parse`]) checks the TOML section by
//! section (one module each) and reads nothing: the host's name, for
//! `node = "$HOSTNAME"`, comes in an [`Environment`]. The files pass
//! ([`check_files`]) reads what the config names (certificates, keys, CA bundles,
//! CRLs, WSDL and OpenAPI documents), so that a config that passes
//! `qaqpa check-config` also starts. [`load`] does both, reporting every error of both
//! at once. Every default is in [`defaults`].

mod access;
mod checker;
mod cluster;
pub mod defaults;
mod files;
mod limit_rules;
mod limits;
mod listeners;
mod mailbox;
mod mediation;
mod monitoring;
mod operators;
mod overload;
mod parse;
mod raw;
mod restart;
mod services;
mod signatures;
mod storage;
mod systems;
mod topics;
mod warnings;
mod xml;

pub use defaults::{REPLAY_CAPACITY as DEFAULT_REPLAY_CAPACITY, REPLAY_WINDOW as DEFAULT_REPLAY_WINDOW};
pub use files::check_files;
pub use restart::restart_needed;
pub use warnings::warnings;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qaqpa_routing::{AccessList, ServiceId, SystemId};

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found in one file, reported together so an operator fixes them in
/// one pass.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(f, "{}: {n} error{}", self.file.display(), if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            let file = self.file.display();
            match e.line {
                Some(line) => writeln!(f, "  {file}:{line}: {}: {}", e.key, e.message)?,
                None => writeln!(f, "  {file}: {}: {}", e.key, e.message)?,
            }
        }
        Ok(())
    }
}

/// What validation needs to know of the machine it runs on, found by the caller so
/// that [`parse`] reads nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The host's name, taken by `gateway.node = "$HOSTNAME"`; empty when unknown.
    pub hostname: String,
}

impl Environment {
    /// This process's: `$HOSTNAME`, else `/etc/hostname`.
    pub fn of_process() -> Self {
        let hostname = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
        });
        Environment { hostname }
    }
}

/// Reads and validates a config file: the text pass and the files pass, with the
/// process's [`Environment`]. What `run`, a reload and `check-config` use.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: path.to_owned(),
        errors: vec![ConfigError { line: None, key: "(file)".into(), message: e.to_string() }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&source, base, &Environment::of_process()).map_err(|errors| ConfigErrors { file: path.to_owned(), errors })
}

/// The text pass alone: validates `source`, whose relative paths are taken from
/// `base`, reading no file and no environment. The files it names are not yet
/// checked, and services' `wsdl` and `openapi` are not yet read: [`check_files`]
/// does both. Errors are sorted by line.
pub fn parse(source: &str, base: &Path, env: &Environment) -> Result<Config, Vec<ConfigError>> {
    let pass = parse::text_pass(source, base, env);
    match pass.config {
        Some(mut config) => {
            config.files = pass.files;
            Ok(config)
        }
        None => Err(sorted(pass.errors)),
    }
}

/// Both passes over `source`, every error of both reported together, sorted by line
/// (what [`load`] does once it has read the file).
pub fn validate(source: &str, base: &Path, env: &Environment) -> Result<Config, Vec<ConfigError>> {
    let pass = parse::text_pass(source, base, env);
    let (file_errors, contents) = files::check(&pass.files);
    match pass.config {
        Some(mut config) if file_errors.is_empty() => {
            config.files = pass.files;
            files::fill(&mut config, contents);
            Ok(config)
        }
        _ => Err(sorted(pass.errors.into_iter().chain(file_errors).collect())),
    }
}

/// Operators read errors top to bottom.
fn sorted(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by_key(|e| e.line.unwrap_or(0));
    errors
}

/// A validated configuration. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub listeners: Vec<ListenerConfig>,
    pub admin: Option<ListenerConfig>,
    pub limits: Limits,
    pub systems: Vec<SystemConfig>,
    pub services: Vec<ServiceConfig>,
    pub access: HashMap<ServiceId, AccessList>,
    pub limit_rules: Vec<LimitRule>,
    pub overload: Overload,
    pub storage: Storage,
    pub monitoring: Monitoring,
    pub xml: Xml,
    pub signatures: Option<Signatures>,
    pub mailbox: MailboxConfig,
    pub topics: Vec<TopicConfig>,
    /// Who may use the admin API over TLS (empty: read-only endpoints for any
    /// certificate the admin listener admits, no changes).
    pub operators: Vec<OperatorConfig>,
    /// `[cluster]`: where the registry comes from, peers of the cluster views.
    pub cluster: ClusterConfig,
    /// Every file the config names, with its key and line, for [`check_files`].
    files: Vec<files::NamedFile>,
}

/// `[cluster]` (docs/operations.md#cluster).
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub source: ConfigSource,
    /// CA bundle a published configuration's signer must chain to.
    pub signers: Option<PathBuf>,
    /// Admin URLs of the other nodes, without a trailing slash.
    pub peers: Vec<String>,
    /// (certificate, key) shown to the peers' admin listeners.
    pub peer_identity: Option<(PathBuf, PathBuf)>,
    /// CA bundle of the peers' admin server certificates.
    pub peer_ca: Option<PathBuf>,
}

/// Where a node's registry (systems, services, access, limits, topics, signatures)
/// comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConfigSource {
    /// The config file itself.
    #[default]
    File,
    /// The configuration published to this JetStream key-value bucket (on the
    /// servers of `[mailbox] nats_url`); the file's registry until one is published.
    Nats { url: String, bucket: String },
}

/// An operator of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    pub name: String,
    /// When set, only the certificate with this SHA-256 is this operator; otherwise
    /// any certificate the admin listener admits whose SAN URI names `name`.
    pub fingerprint: Option<[u8; 32]>,
    pub role: OperatorRole,
}

/// What an operator may do on the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRole {
    /// GET and HEAD: health, metrics, registry views, monitoring, evidence.
    Read,
    /// Also the calls that change the running gateway: reload, dead-letter replay and drop.
    Admin,
}

/// An event topic and who may read it.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// Same shape as a service id: the owner system, then the topic's name.
    pub id: ServiceId,
    pub subscribers: AccessList,
    pub retention: Duration,
    pub max_bytes: u64,
    /// (subscriber, the subscriber's service events are posted to).
    pub push: Vec<(SystemId, ServiceId)>,
}

/// Where asynchronous messages live and how they are retried (docs/protocol.md).
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub backend: MailboxBackend,
    pub visibility_timeout: Duration,
    pub max_attempts: u32,
    pub backoff: qaqpa_routing::retry::Backoff,
    pub dedupe_window: Duration,
    pub max_wait: Duration,
    pub max_message_bytes: usize,
    pub max_queue_depth: u32,
    pub push_concurrency: u32,
    /// How long a call to the NATS store is retried before it is refused (503).
    pub store_retry: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxBackend {
    /// One redb file in the data directory.
    Embedded,
    /// NATS JetStream, for a cluster of gateways; `url` is one URL or several
    /// separated by commas (the servers of one cluster).
    Nats { url: String, prefix: String, replicas: usize },
}

/// How a service takes asynchronous requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxMode {
    /// Synchronous only.
    None,
    /// The provider takes work from `GET /a1/inbox/{system}`.
    Pull,
    /// The gateway posts each request to the service's upstream.
    Push,
}

/// Message signatures (docs/signatures.md): whom to trust, how fresh, replay memory.
#[derive(Debug, Clone)]
pub struct Signatures {
    pub trust_anchors: PathBuf,
    pub crls: Vec<PathBuf>,
    pub max_clock_skew: Duration,
    pub replay_window: Duration,
    pub replay_capacity: usize,
    pub max_body_bytes: usize,
    /// The gateway's own signing certificate and key.
    pub gateway_key: Option<(PathBuf, PathBuf)>,
}

/// What a service demands of its requests' signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePolicy {
    None,
    /// The client must sign (XMLDSig / JWS), with a trusted certificate of its own system.
    Verify,
    /// As `Verify`, but the gateway signs unsigned requests of systems whose key it holds.
    SignOnBehalf,
}

/// Limits on SOAP/XML messages.
#[derive(Debug, Clone, Copy)]
pub struct Xml {
    /// Whole SOAP message, bytes; over it, `client.too_large` (checked while reading).
    pub max_message_bytes: usize,
    pub limits: qaqpa_adapters::soap::XmlLimits,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub address: SocketAddr,
    /// `None` only for a listener marked `insecure = true`.
    pub tls: Option<TlsFiles>,
    pub http1: bool,
    pub http2: bool,
    /// HTTP/3 over QUIC on the same address (UDP); advertised by `Alt-Svc` on TCP.
    pub http3: bool,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to.
    pub client_ca: PathBuf,
    /// Certificate revocation lists checked for every client certificate.
    pub crls: Vec<PathBuf>,
}

/// Limits on what a client may send. Defaults are in [`defaults`].
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub max_body_bytes: u64,
    pub drain_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections_per_client: u32,
    pub max_concurrent_streams: u32,
    pub max_pending_resets: u32,
}

#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub id: SystemId,
    pub cert_sha256: Option<[u8; 32]>,
    /// Certificate and key the gateway signs with on this system's behalf.
    pub signing: Option<(PathBuf, PathBuf)>,
    /// ШЭП `senderId` and the Argon2 PHC hash of its password (docs/shep.md).
    pub shep_sender: Option<String>,
    pub shep_password_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Rest,
    Soap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1; over TLS, HTTP/2 too when the provider offers it by ALPN.
    Auto,
    Http1,
    /// HTTP/2 only: ALPN over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub id: ServiceId,
    pub kind: ServiceKind,
    pub upstreams: Vec<http::Uri>,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_client_cert: Option<(PathBuf, PathBuf)>,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// The provider's WSDL (SOAP services), served with the endpoint rewritten.
    pub wsdl: Option<String>,
    /// The provider's OpenAPI document (REST services), served with `servers` rewritten.
    pub openapi: Option<serde_json::Value>,
    /// SOAP⇄REST mediation: for a REST service, its SOAP face; for a SOAP service,
    /// its REST face (docs/mapping.md).
    pub mediation: Option<std::sync::Arc<Mediation>>,
    pub breaker: qaqpa_routing::health::BreakerConfig,
    pub health_check: Option<HealthCheck>,
    /// Bodyless requests of any method may be retried (otherwise only idempotent methods).
    pub idempotent: bool,
    /// Requests in flight to this service's upstreams at most; over it, 503.
    pub max_concurrency: Option<u32>,
    /// When the shared limiter (Redis) cannot answer: admit (`true`) or refuse.
    pub limits_fail_open: bool,
    pub sla: Option<SlaObjective>,
    pub signature: SignaturePolicy,
    pub sign_responses: bool,
    pub mailbox: MailboxMode,
    /// Asynchronous messages of one client to this service are delivered in order.
    pub ordered: bool,
    /// SMEV 3 kinds of information routed here (unique across services; docs/smev3.md).
    pub smev_kinds: Vec<String>,
    pub message_log: LogMode,
    /// ШЭП `serviceId` routed here, and whether the provider speaks SyncChannel.
    pub shep_service_id: Option<String>,
    pub shep_provider: bool,
}

/// When an exchange's message-log records must be on disk (docs/operations.md#message-log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// Before the request goes to the provider (a record of the forwarding) and
    /// before the answer goes to the client (the record of the exchange).
    Sync,
    /// Written behind the answer, never waited for: unsigned bulk traffic only
    /// (a crash may lose the last records; a signed service cannot choose it).
    Async,
}

/// Active health checking of a service's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path under each endpoint's base path, e.g. `/healthz`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub thresholds: qaqpa_routing::health::ProbeThresholds,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mediation {
    pub namespace: String,
    pub rules: qaqpa_adapters::mapping::Rules,
    pub operations: Vec<MediatedOperation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediatedOperation {
    pub name: String,
    pub method: http::Method,
    pub path: Vec<PathPart>,
    pub soap_action: Option<String>,
    /// What the provider's OpenAPI document says the operation takes and answers
    /// (a REST service's SOAP face with `openapi = "file"`): the generated WSDL's
    /// types and the order of the answer (docs/mapping.md#typed-contracts).
    pub shape: Option<qaqpa_adapters::schema::OperationShape>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    Literal(String),
    Param(String),
}

impl MediatedOperation {
    /// The template as written, e.g. `/{iin}/debts`.
    pub fn template(&self) -> String {
        let mut t = String::new();
        for part in &self.path {
            t.push('/');
            match part {
                PathPart::Literal(l) => t.push_str(l),
                PathPart::Param(p) => t.push_str(&format!("{{{p}}}")),
            }
        }
        if t.is_empty() {
            t.push('/');
        }
        t
    }

    /// Matches a request path (after the service id) and returns the parameters.
    pub fn matches(&self, method: &http::Method, path: &str) -> Option<Vec<(String, String)>> {
        if *method != self.method {
            return None;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        if segments.len() != self.path.len() {
            return None;
        }
        let mut params = Vec::new();
        for (part, segment) in self.path.iter().zip(segments) {
            match part {
                PathPart::Literal(l) if l == segment => {}
                PathPart::Literal(_) => return None,
                PathPart::Param(name) => {
                    let value = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?.into_owned();
                    params.push((name.clone(), value));
                }
            }
        }
        Some(params)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlaObjective {
    /// Share of requests that must not end in a server error (0..1).
    pub availability: f64,
    pub latency: Duration,
    /// Share of requests that must finish under `latency` (0..1).
    pub latency_target: f64,
    pub window: Duration,
}

/// One `[[limit]]`: a rate and/or quotas for a (client, service) pair, for every
/// client of a service (`client` omitted), or for a client across all services
/// (`service` omitted).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRule {
    pub client: Option<SystemId>,
    pub service: Option<ServiceId>,
    pub rate: Option<qaqpa_routing::limit::Rate>,
    /// The rate as written: (requests, window in seconds), for `RateLimit-Policy`.
    pub rate_window: Option<(u64, u64)>,
    pub quota_day: Option<u64>,
    pub quota_month: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overload {
    pub enabled: bool,
    pub max_in_flight: u32,
    pub min_in_flight: u32,
    pub target_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsBackend {
    Local,
    Redis { url: String, timeout: Duration, prefix: String },
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub limits: LimitsBackend,
    /// `replay = "redis"`: the replay guard shared by a cluster (`None`: the local file).
    pub replay_redis: Option<RedisReplay>,
    /// Nodes of the cluster (default 1): scales the per-node limits fallback.
    pub cluster_nodes: u32,
}

/// Where the shared replay guard keeps its ids (`[storage] redis_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisReplay {
    pub url: String,
    pub timeout: Duration,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitoring {
    pub retention: Duration,
    pub ring: usize,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_admin;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_passes;
#[cfg(test)]
mod tests_shep;
#[cfg(test)]
mod tests_smev;
