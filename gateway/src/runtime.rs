//! The live state built from one validated [`Config`]: the route table with each
//! service's pooled upstream client, and the registry of systems. Built off the
//! request path, swapped in whole (arc-swap); requests in flight keep the one they
//! started with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use qaqpa_routing::health::{self, BreakerConfig, Endpoint, RetryBudget};
use qaqpa_routing::limit::Rate;
use qaqpa_routing::{AccessList, RouteTable, ServiceId, SystemId};
use tokio::sync::Semaphore;

use crate::body::ForwardBody;
use crate::config::{
    Config, HealthCheck, LimitRule, ServiceConfig, ServiceKind, SignaturePolicy, SlaObjective, UpstreamProtocol,
};
use crate::limits::{pair_key, stable_key};
use crate::tls::{self, TlsError};

/// How the gateway connects to a service's providers (TCP options, connect
/// timeout, TLS).
pub type UpstreamConnector = HttpsConnector<HttpConnector>;

/// A service's pooled keep-alive connections to its providers.
pub type UpstreamPool = HttpClient<UpstreamConnector, ForwardBody>;

/// Tells endpoints apart across reloads: a downstream connection's upstream
/// connections are kept by it (`delivery::direct`).
static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(0);

pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable<Route>,
    /// Registered systems, for checking a claimed or SAN-bound identity.
    pub systems: HashMap<Box<str>, Arc<Client>>,
    /// Certificate fingerprints bound to systems in the registry.
    pub fingerprints: HashMap<[u8; 32], Arc<Client>>,
    /// Trust for message signatures, if configured (rebuilt on reload: CRLs too).
    pub signatures: Option<Arc<SignatureTrust>>,
}

/// A key the gateway signs with, and its certificate chain (leaf first).
pub struct Signer {
    pub key: qaqpa_certs::keys::SigningKey,
    pub chain: Vec<Vec<u8>>,
}

impl Signer {
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let pem = std::fs::read(key).map_err(|source| TlsError::Read { path: key.display().to_string(), source })?;
        let key = qaqpa_certs::keys::SigningKey::from_pem(&pem)
            .map_err(|e| TlsError::Signing(format!("{}: {e}", key.display())))?;
        let chain = tls::load_certs(cert)?.into_iter().map(|c| c.to_vec()).collect();
        Ok(Self { key, chain })
    }
}

pub struct SignatureTrust {
    pub store: qaqpa_certs::trust::TrustStore,
    pub max_clock_skew: Duration,
    pub max_body_bytes: usize,
    /// The gateway's own signer (signed responses).
    pub gateway: Option<Signer>,
}

/// A registered system as a client: its id, its limiter key, its consumer-wide rate.
pub struct Client {
    pub id: SystemId,
    pub key: u64,
    pub rate: Option<Rate>,
    /// The key the gateway holds to sign on this (legacy) system's behalf.
    pub signer: Option<Signer>,
}

/// Limits of one (client, service) pair.
#[derive(Clone, Default)]
pub struct PairLimits {
    pub rate: Option<Rate>,
    /// `RateLimit-Policy` value, built once from the configured (requests, window).
    pub policy: Option<http::HeaderValue>,
    pub quota_day: Option<u64>,
    pub quota_month: Option<u64>,
}

impl PairLimits {
    fn from_rule(rule: &LimitRule) -> Self {
        let policy =
            rule.rate_window.and_then(|(q, w)| http::HeaderValue::from_str(&format!("\"pair\";q={q};w={w}")).ok());
        Self { rate: rule.rate, policy, quota_day: rule.quota_day, quota_month: rule.quota_month }
    }

    pub fn is_empty(&self) -> bool {
        self.rate.is_none() && self.quota_day.is_none() && self.quota_month.is_none()
    }
}

pub struct Route {
    pub id: ServiceId,
    pub kind: ServiceKind,
    pub upstreams: Vec<Upstream>,
    /// Seed sequence for power-of-two-choices picks.
    picks: AtomicU64,
    pub breaker: BreakerConfig,
    pub health_check: Option<HealthCheck>,
    pub retry_budget: RetryBudget,
    /// Declared idempotent: bodyless requests of any method may be retried.
    pub idempotent: bool,
    pub pool: UpstreamPool,
    /// The pool's connector, for the connections downstream connections open
    /// themselves.
    pub connector: UpstreamConnector,
    pub timeout: Duration,
    pub access: AccessList,
    pub key: u64,
    /// Limits for clients without a rule of their own.
    pub limits: PairLimits,
    pub client_limits: HashMap<Box<str>, PairLimits>,
    pub concurrency: Option<Arc<Semaphore>>,
    pub limits_fail_open: bool,
    pub sla: Option<SlaObjective>,
    pub signature: SignaturePolicy,
    pub sign_responses: bool,
    /// Asynchronous delivery (`mailbox`), and whether it keeps acceptance order.
    pub mailbox: crate::config::MailboxMode,
    pub ordered: bool,
    /// When its message-log records must be on disk.
    pub message_log: crate::config::LogMode,
    pub mediation: Option<Arc<crate::config::Mediation>>,
    /// `qaqpa_quota_remaining` handles by (pair key, period).
    pub quota_gauges: dashmap::DashMap<(u64, qaqpa_routing::limit::QuotaPeriod), prometheus::IntGauge>,
    /// Its name and metric series for the measure stage (resolved once per route).
    pub observed: Arc<crate::observe::metrics::ServiceObs>,
}

impl Route {
    /// An endpoint for the next request (power of two choices among those whose
    /// breaker admits traffic), other than `exclude`.
    pub fn pick(&self, exclude: Option<usize>) -> Option<usize> {
        // splitmix64 over a counter: cheap, well spread, no shared RNG state.
        let mut z = self.picks.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        health::pick_by(&self.upstreams, |u| &u.health, &self.breaker, crate::limits::now_ns(), z, exclude)
    }

    pub fn limits_for(&self, client: &Client) -> (&PairLimits, u64) {
        (self.client_limits.get(client.id.as_str()).unwrap_or(&self.limits), pair_key(client.key, self.key))
    }
}

/// An upstream base URL split into the parts a forwarded URI is built from.
pub struct Upstream {
    /// Breaker and load of this endpoint.
    pub health: Endpoint,
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Base path without a trailing '/', possibly empty.
    pub base_path: String,
    /// Unique to this endpoint of this route (a reload makes new ones).
    pub id: u64,
    /// Spoken over HTTP/1.1 whatever ALPN says, so a downstream connection may
    /// drive its own connection to it (`delivery::direct`); else only the pool.
    pub direct: bool,
    /// `Host` of the requests sent to it: host, and port unless the scheme's own.
    pub host: http::HeaderValue,
    /// Scheme and authority, what the connector dials.
    pub origin: http::Uri,
    /// Connections to it that downstream connections hold open (bounded there).
    pub direct_open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Self, TlsError> {
        let mut routes = RouteTable::builder();
        for service in &config.services {
            let (pool, connector) = upstream_client(service)?;
            let access = config.access.get(&service.id).cloned().unwrap_or_default();
            let rules = config.limit_rules.iter().filter(|r| r.service.as_ref() == Some(&service.id));
            let mut limits = PairLimits::default();
            let mut client_limits = HashMap::new();
            for rule in rules {
                match &rule.client {
                    None => limits = PairLimits::from_rule(rule),
                    Some(c) => {
                        client_limits.insert(c.as_str().into(), PairLimits::from_rule(rule));
                    }
                }
            }
            let route = Route {
                key: stable_key(service.id.as_str()),
                limits,
                client_limits,
                concurrency: service.max_concurrency.map(|n| Arc::new(Semaphore::new(n as usize))),
                limits_fail_open: service.limits_fail_open,
                sla: service.sla.clone(),
                signature: service.signature,
                sign_responses: service.sign_responses,
                mailbox: service.mailbox,
                ordered: service.ordered,
                message_log: service.message_log,
                mediation: service.mediation.clone(),
                quota_gauges: dashmap::DashMap::new(),
                observed: Arc::new(crate::observe::metrics::ServiceObs::new(service.id.as_str())),
                id: service.id.clone(),
                kind: service.kind,
                upstreams: service.upstreams.iter().map(|uri| Upstream::from_uri(uri, service.protocol)).collect(),
                picks: AtomicU64::new(0),
                breaker: service.breaker,
                health_check: service.health_check.clone(),
                retry_budget: RetryBudget::new(20, 10),
                idempotent: service.idempotent,
                pool,
                connector,
                timeout: service.timeout,
                access,
            };
            // Duplicates were refused by validation; a second one here cannot happen.
            let _ = routes.insert(&service.id, route);
        }
        let mut systems = HashMap::new();
        let mut fingerprints = HashMap::new();
        for s in &config.systems {
            let rate = config.limit_rules.iter().find(|r| r.service.is_none() && r.client.as_ref() == Some(&s.id));
            let signer = s.signing.as_ref().map(|(cert, key)| Signer::load(cert, key)).transpose()?;
            let client = Arc::new(Client {
                id: s.id.clone(),
                key: stable_key(s.id.as_str()),
                rate: rate.and_then(|r| r.rate),
                signer,
            });
            if let Some(fp) = s.cert_sha256 {
                fingerprints.insert(fp, client.clone());
            }
            systems.insert(s.id.as_str().into(), client);
        }
        let signatures = match &config.signatures {
            None => None,
            Some(sig) => {
                let anchors = tls::load_certs(&sig.trust_anchors)?;
                let crls = tls::load_crls(&sig.crls)?;
                let store = qaqpa_certs::trust::TrustStore::new(&anchors, &crls)
                    .map_err(|e| TlsError::Signing(e.to_string()))?;
                let gateway = sig.gateway_key.as_ref().map(|(cert, key)| Signer::load(cert, key)).transpose()?;
                Some(Arc::new(SignatureTrust {
                    store,
                    max_clock_skew: sig.max_clock_skew,
                    max_body_bytes: sig.max_body_bytes,
                    gateway,
                }))
            }
        };
        Ok(Self { routes: routes.build(), systems, fingerprints, signatures, config })
    }
}

impl Upstream {
    fn from_uri(uri: &http::Uri, protocol: UpstreamProtocol) -> Self {
        let scheme = uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP);
        let authority = uri.authority().cloned().expect("validated upstream has a host");
        let secure = scheme == http::uri::Scheme::HTTPS;
        // With `auto`, TLS may negotiate HTTP/2 (ALPN); `h2` over plain HTTP is h2c.
        let direct = match protocol {
            UpstreamProtocol::Http1 => true,
            UpstreamProtocol::Auto => !secure,
            UpstreamProtocol::Http2 => false,
        };
        // As the pool writes it: the port only when it is not the scheme's own.
        let default_port = if secure { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => http::HeaderValue::from_str(&format!("{}:{port}", authority.host())),
            _ => http::HeaderValue::from_str(authority.host()),
        }
        .expect("a URI's host is a valid header value");
        let origin = http::Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and authority of a valid URI");
        Self {
            health: Endpoint::default(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            id: NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed),
            direct,
            host,
            origin,
            direct_open: Arc::default(),
            scheme,
            authority,
        }
    }
}

fn upstream_client(service: &ServiceConfig) -> Result<(UpstreamPool, UpstreamConnector), TlsError> {
    let tls = match &service.upstream_ca {
        Some(ca) => {
            let client_cert = service.upstream_client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            tls::upstream_config(ca, client_cert)?
        }
        // Plain-HTTP upstreams only: validation demands a CA for every https URL, so
        // this empty trust store is never asked to verify anything.
        None => rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(service.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    let connector = match service.protocol {
        UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
    };
    let mut client = HttpClient::builder(TokioExecutor::new());
    client
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_only(service.protocol == UpstreamProtocol::Http2);
    Ok((client.build(connector.clone()), connector))
}
