//! The running gateway as its owner sees it: the [`Shared`] handles every exchange
//! uses, plus what only the owner touches (readiness, the listeners' TLS, the
//! configuration as started) and reload. Built by [`crate::server::start`]; the
//! request path never holds it, only [`Shared`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}

/// Which configuration a node runs: the SHA-256 of its file's bytes, when it was
/// loaded and from where. Equal hashes on every node: one configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigVersion {
    pub hash: String,
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
        Self { hash, loaded_at, source }
    }

    /// Sets `qaqpa_config_info{hash}` to this version alone.
    pub fn publish(&self, metrics: &crate::observe::metrics::Metrics) {
        metrics.config_info.reset();
        metrics.config_info.with_label_values(&[self.hash.as_str()]).set(1);
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
            && (self.limiter.is_available() || self.runtime().config.services.iter().all(|s| s.limits_fail_open))
    }

    /// Re-reads the config file and swaps the runtime and every listener's TLS
    /// (certificates, client CA, CRLs). Parsing, validation, reading the files and
    /// building upstream pools run on a blocking thread, never on a request worker;
    /// nothing is swapped unless all of it succeeded. Keys read only at start keep
    /// their running values and are named in [`Reloaded::restart_needed`].
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let result = self.try_reload().await;
        let label = if result.is_ok() { "ok" } else { "refused" };
        self.telemetry.metrics.reloads.with_label_values(&[label]).inc();
        result
    }

    async fn try_reload(&self) -> Result<Reloaded, ReloadError> {
        let path = self.config_path.clone().ok_or(ReloadError::NoFile)?;
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
            let version = ConfigVersion::of(Some(&path));
            let config = config::load(&path)?;
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
