//! The running gateway as its owner sees it: the [`Shared`] handles every exchange
//! uses, plus what only the owner touches (readiness, the listeners' TLS, the
//! configuration as started) and reload. Built by [`crate::server::start`]; the
//! request path never holds it, only [`Shared`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cluster::Published;
use crate::config::{self, Config};
use crate::revocation::LiveCertificates;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::tls::SwappableTls;
use rustls::server::danger::ClientCertVerifier;

pub struct Gateway {
    pub shared: Arc<Shared>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) ready: AtomicBool,
    /// The TLS of each running listener, swapped on reload.
    pub(crate) listener_tls: std::sync::Mutex<Vec<ListenerTls>>,
    /// The configuration as started: what start-only keys are compared against.
    pub(crate) started: Config,
    /// The version of the configuration running now (`GET /admin/v1/config`).
    pub(crate) version: std::sync::Mutex<ConfigVersion>,
    /// The published configuration in force (`[cluster] config_source = "nats"`).
    pub(crate) published: std::sync::Mutex<Option<Arc<Published>>>,
    /// The bucket has been read once (or the source is the file): until then a node
    /// of a published cluster would serve its file's registry, so it is not ready.
    pub(crate) cluster_synced: AtomicBool,
    /// One reload at a time: a file reload and a published version never interleave.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
}

/// Which configuration a node runs: the SHA-256 of its file's bytes, when it was
/// loaded and from where. Equal hashes on every node: one configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigVersion {
    pub hash: String,
    /// The published version (`qaqpa config publish`); `None` for a file.
    pub version: Option<u64>,
    /// RFC 3339, UTC.
    pub loaded_at: String,
    pub source: String,
}

impl ConfigVersion {
    /// The version of the file at `path` now (`None`: a configuration built in memory).
    pub fn of(path: Option<&std::path::Path>) -> Self {
        use sha2::Digest;
        let hash = match path.map(std::fs::read) {
            Some(Ok(bytes)) => sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            Some(Err(_)) | None => String::new(),
        };
        let loaded_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let source = path.map_or_else(|| "memory".to_owned(), |p| format!("file:{}", p.display()));
        Self { hash, version: None, loaded_at, source }
    }

    /// The version of a published configuration taken from `bucket`.
    pub fn of_published(doc: &Published, bucket: &str) -> Self {
        let loaded_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        Self { hash: doc.hash.clone(), version: Some(doc.version), loaded_at, source: format!("nats:{bucket}") }
    }

    /// Sets `qaqpa_config_info{hash,version,source}` to this version alone (source:
    /// "file", "nats" or "memory").
    pub fn publish(&self, metrics: &crate::observe::metrics::Metrics) {
        metrics.config_info.reset();
        let version = self.version.map(|v| v.to_string()).unwrap_or_default();
        let source = self.source.split(':').next().unwrap_or("");
        metrics.config_info.with_label_values(&[self.hash.as_str(), version.as_str(), source]).set(1);
    }
}

/// The owner reaches the shared handles directly (`gateway.telemetry`, …).
impl std::ops::Deref for Gateway {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// Where a running listener's certificates live, so a reload can swap them.
pub(crate) struct ListenerTls {
    pub(crate) name: String,
    pub(crate) tcp: SwappableTls,
    /// Certificates of the listener's open connections (TCP and QUIC).
    pub(crate) live: Arc<LiveCertificates>,
    pub(crate) http1: bool,
    pub(crate) http2: bool,
    pub(crate) quic: Option<quinn::Endpoint>,
}

/// TLS built from a new config for one running listener, ready to swap in.
struct NewListenerTls {
    tcp: Arc<rustls::ServerConfig>,
    quic: Option<quinn::ServerConfig>,
    /// The new handshake check, run over the certificates of open connections.
    verifier: Arc<dyn ClientCertVerifier>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the gateway was started without a config file")]
    NoFile,
    #[error("{0}")]
    Invalid(#[from] config::ConfigErrors),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Published(#[from] crate::cluster::ClusterError),
    #[error("reload task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Gateway {
    /// Listening and not draining, and the message log and the replay guard can
    /// write (while they cannot, exchanges are refused: a balancer should send
    /// traffic elsewhere).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.telemetry.message_log.as_ref().is_none_or(|log| log.is_available())
            && !self.replay.is_failing()
            && self.mailboxes.is_available()
            && self.cluster_synced.load(Ordering::Acquire)
            && (self.limiter.is_available() || self.runtime().config.services.iter().all(|s| s.limits_fail_open))
    }

    /// Re-reads the config file and swaps the runtime and every listener's TLS
    /// (certificates, client CA, CRLs). Parsing, validation, reading the files and
    /// building upstream pools run on a blocking thread, never on a request worker;
    /// nothing is swapped unless all of it succeeded. Keys read only at start keep
    /// their running values and are named in [`Reloaded::restart_needed`].
    /// With a published configuration in force, the file's node-local sections are
    /// re-read and the published registry kept.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one = self.reload_lock.lock().await;
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = self.try_reload(published).await;
        let label = if result.is_ok() { "ok" } else { "refused" };
        self.telemetry.metrics.reloads.with_label_values(&[label]).inc();
        result
    }

    /// A document read from the cluster's bucket: applied if it is new, logged and
    /// counted (`qaqpa_config_published_total{result}`) either way.
    pub async fn offer_published(&self, bytes: &[u8]) {
        let doc = match Published::from_bytes(bytes) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!("published configuration refused, the running configuration stays: {e}");
                self.telemetry.metrics.config_published.with_label_values(&["refused"]).inc();
                return;
            }
        };
        let running = self.version.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if running.version == Some(doc.version) && running.hash == doc.hash {
            return; // seen again after a reconnect
        }
        let (version, signer) = (doc.version, doc.signer());
        match self.apply_published(doc).await {
            Ok(r) => {
                tracing::info!(version, %signer, services = r.services, "published configuration applied");
                self.telemetry.metrics.config_published.with_label_values(&["applied"]).inc();
            }
            Err(e) => {
                tracing::error!(version, %signer, "published configuration refused, the running configuration stays: {e}");
                self.telemetry.metrics.config_published.with_label_values(&["refused"]).inc();
            }
        }
    }

    /// Verifies `doc` against `[cluster] config_signers`, merges its registry with
    /// this node's file, validates and swaps it in as a reload does. Refused (the
    /// running configuration stays) if any step fails or `doc` is not newer.
    pub async fn apply_published(&self, doc: Published) -> Result<Reloaded, ReloadError> {
        let _one = self.reload_lock.lock().await;
        let running = self.published.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|p| p.version);
        if let Some(running) = running.filter(|&r| doc.version <= r) {
            return Err(crate::cluster::ClusterError::Stale { offered: doc.version, running }.into());
        }
        let doc = Arc::new(doc);
        let result = self.try_reload(Some(doc.clone())).await;
        if result.is_ok() {
            *self.published.lock().unwrap_or_else(|e| e.into_inner()) = Some(doc);
        }
        result
    }

    async fn try_reload(&self, published: Option<Arc<Published>>) -> Result<Reloaded, ReloadError> {
        let path = self.config_path.clone().ok_or(ReloadError::NoFile)?;
        let cluster = self.runtime().config.cluster.clone();
        let running: Vec<(String, bool, bool, bool)> = self
            .listener_tls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| (l.name.clone(), l.http1, l.http2, l.quic.is_some()))
            .collect();
        let (runtime, tls, version) = tokio::task::spawn_blocking(move || -> Result<_, ReloadError> {
            // Hashed before it is parsed: a file changed in between shows as drift
            // (and is reloaded again), never as a version it is not.
            let (config, version) = match published {
                None => {
                    let version = ConfigVersion::of(Some(&path));
                    (config::load(&path)?, version)
                }
                Some(doc) => crate::cluster::load_published(&path, &doc, &cluster)?,
            };
            let mut tls = Vec::new();
            for (name, http1, http2, quic) in running {
                let listener = config.listeners.iter().chain(config.admin.iter()).find(|l| l.name == name);
                let Some(files) = listener.and_then(|l| l.tls.as_ref()) else {
                    tracing::warn!(listener = %name, "listener gone or without tls in the new config: keeps its TLS");
                    tls.push(None);
                    continue;
                };
                let quic = match quic {
                    true => Some(crate::tls::quic_config(files, &config.limits)?),
                    false => None,
                };
                let tcp = crate::tls::server_config(files, http1, http2)?;
                tls.push(Some(NewListenerTls { tcp, quic, verifier: crate::tls::client_verifier(files)? }));
            }
            Ok((Runtime::build(config)?, tls, version))
        })
        .await??;
        let services = runtime.routes.len();
        let restart_needed = config::restart_needed(&self.started, &runtime.config);
        if !restart_needed.is_empty() {
            tracing::warn!(keys = ?restart_needed, "reloaded, but these changed keys take effect only at the next restart");
        }
        self.mailboxes.configure(&runtime.config);
        self.shared.swap_runtime(runtime);
        version.publish(&self.telemetry.metrics);
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = version;
        let mut closed = 0;
        for (listener, new) in self.listener_tls.lock().unwrap_or_else(|e| e.into_inner()).iter().zip(tls) {
            let Some(new) = new else { continue };
            listener.tcp.store(new.tcp);
            if let (Some(endpoint), Some(quic)) = (&listener.quic, new.quic) {
                endpoint.set_server_config(Some(quic));
            }
            // After the swap, so a client told to go reconnects into the new trust.
            let revoked = listener.live.recheck(new.verifier.as_ref());
            if revoked > 0 {
                tracing::warn!(listener = %listener.name, revoked, "closing connections whose certificate the new trust refuses");
            }
            closed += revoked;
        }
        tracing::info!(services, "configuration reloaded");
        Ok(Reloaded { services, restart_needed, connections_revoked: closed })
    }
}

/// What a reload swapped in.
#[derive(Debug)]
pub struct Reloaded {
    pub services: usize,
    /// Changed keys the running gateway keeps until it restarts (`config::restart_needed`).
    pub restart_needed: Vec<&'static str>,
    /// Open connections closed because the new trust refuses their certificate.
    pub connections_revoked: usize,
}
