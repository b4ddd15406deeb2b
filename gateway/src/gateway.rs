//! The running gateway: live runtime behind arc-swap, listeners bound, readiness,
//! reload and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{self, Config, LimitsBackend};
use crate::exchange::limits::local::LocalBackend;
use crate::exchange::limits::redis::RedisBackend;
use crate::exchange::limits::stage::Overload;
use crate::exchange::limits::{now_ns, Limiter};
use crate::observe::metrics::Metrics;
use crate::observe::monitoring::Monitoring;
use crate::observe::sla::SlaTracker;
use crate::observe::telemetry::Telemetry;
use crate::runtime::Runtime;
use crate::server::connections::ClientConnections;
use crate::server::listener::{self, Role, SwappableTls};
use qaqpa_routing::limit::Aimd;

pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    config_path: Option<PathBuf>,
    ready: AtomicBool,
    pub telemetry: Telemetry,
    pub limiter: Limiter,
    pub overload: Overload,
    pub client_connections: Arc<ClientConnections>,
    /// Message ids seen per client (services with a signature policy). Always open,
    /// so a reload that adds signed services finds it; window and capacity are the
    /// starting config's.
    pub replay: crate::exchange::replay::ReplayGuard,
    /// The tamper-evident log of every exchange (DATA_DIR/log).
    pub message_log: Option<crate::observe::message_log::MessageLog>,
    /// Asynchronous mailboxes (embedded store or JetStream).
    pub mailboxes: crate::mailbox::Mailboxes,
    /// The TLS of each running listener, swapped on reload.
    listener_tls: std::sync::Mutex<Vec<ListenerTls>>,
    /// Turns true when shutdown begins.
    stopping: watch::Receiver<bool>,
    /// The configuration as started: what start-only keys are compared against.
    started: Config,
}

/// Where a running listener's certificates live, so a reload can swap them.
struct ListenerTls {
    name: String,
    tcp: SwappableTls,
    http1: bool,
    http2: bool,
    quic: Option<quinn::Endpoint>,
}

/// TLS built from a new config for one running listener, ready to swap in.
struct NewListenerTls {
    tcp: Arc<rustls::ServerConfig>,
    quic: Option<quinn::ServerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Tls(#[from] crate::server::tls::TlsError),
    #[error("cannot bind {name} listener on {address}: {source}")]
    Bind { name: String, address: SocketAddr, source: std::io::Error },
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("{0}")]
    Limits(#[from] crate::exchange::limits::LimitError),
    #[error("mailbox: {0}")]
    Mailbox(#[from] crate::mailbox::MailboxError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the gateway was started without a config file")]
    NoFile,
    #[error("{0}")]
    Invalid(#[from] config::ConfigErrors),
    #[error("{0}")]
    Tls(#[from] crate::server::tls::TlsError),
    #[error("reload task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Gateway {
    /// The runtime a new request runs on; it keeps it to the end even across a reload.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Resolves once shutdown has begun: work that would wait (long-polls) stops
    /// waiting, so a drain is not held up by it.
    pub async fn draining(&self) {
        let mut stopping = self.stopping.clone();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
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
        let (runtime, tls) = tokio::task::spawn_blocking(move || -> Result<_, ReloadError> {
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
                    true => Some(crate::server::h3::quic_config(files, &config.limits)?),
                    false => None,
                };
                tls.push(Some(NewListenerTls { tcp: crate::server::tls::server_config(files, http1, http2)?, quic }));
            }
            Ok((Runtime::build(config)?, tls))
        })
        .await??;
        let services = runtime.routes.len();
        let restart_needed = config::restart_needed(&self.started, &runtime.config);
        if !restart_needed.is_empty() {
            tracing::warn!(keys = ?restart_needed, "reloaded, but these changed keys take effect only at the next restart");
        }
        self.mailboxes.configure(&runtime.config);
        self.runtime.store(Arc::new(runtime));
        for (listener, new) in self.listener_tls.lock().unwrap_or_else(|e| e.into_inner()).iter().zip(tls) {
            let Some(new) = new else { continue };
            listener.tcp.store(new.tcp);
            if let (Some(endpoint), Some(quic)) = (&listener.quic, new.quic) {
                endpoint.set_server_config(Some(quic));
            }
        }
        tracing::info!(services, "configuration reloaded");
        Ok(Reloaded { services, restart_needed })
    }
}

/// What a reload swapped in.
#[derive(Debug)]
pub struct Reloaded {
    pub services: usize,
    /// Changed keys the running gateway keeps until it restarts (`config::restart_needed`).
    pub restart_needed: Vec<&'static str>,
}

/// A started gateway. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub gateway: Arc<Gateway>,
    pub data_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Binds every listener, then starts serving and reports ready.
pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Running, StartError> {
    let listeners = config.listeners.clone();
    let admin = config.admin.clone();
    let limits = config.limits.clone();
    let data_dir = config.storage.data_dir.clone();
    let dir_error = |source| StartError::DataDir { path: data_dir.display().to_string(), source };
    std::fs::create_dir_all(&data_dir).map_err(dir_error)?;
    let monitoring =
        Monitoring::start(data_dir.join("monitoring"), config.monitoring.ring, config.monitoring.retention)
            .map_err(dir_error)?;
    let limiter = match &config.storage.limits {
        LimitsBackend::Local => {
            let file = data_dir.join("quotas.tsv");
            let backend = LocalBackend::default();
            let n = backend.load(&file, now_ns()).map_err(dir_error)?;
            tracing::info!(counters = n, "quota counters loaded from {}", file.display());
            Limiter::Local { backend, file }
        }
        LimitsBackend::Redis { url, timeout, prefix } => {
            Limiter::Redis(RedisBackend::connect(url, *timeout, prefix).await?)
        }
    };
    let overload = Overload {
        enabled: config.overload.enabled,
        in_flight: Arc::new(AtomicU32::new(0)),
        limit: AtomicU32::new(config.overload.max_in_flight),
    };
    let overload_config = config.overload.clone();
    let (window, capacity) = config
        .signatures
        .as_ref()
        .map_or((crate::config::DEFAULT_REPLAY_WINDOW, crate::config::DEFAULT_REPLAY_CAPACITY), |s| {
            (s.replay_window, s.replay_capacity)
        });
    let replay = crate::exchange::replay::ReplayGuard::open(
        &data_dir.join("replay.log"),
        window.as_secs(),
        capacity,
        crate::exchange::signatures::now_unix().max(0) as u64,
    )
    .map_err(dir_error)?;
    let telemetry =
        Telemetry { metrics: Metrics::new(), monitoring, sla: SlaTracker::default(), node: config.node.clone() };
    // Seals are signed with the gateway's signing key, or its first listener's TLS key.
    let seal_key = config.signatures.as_ref().and_then(|s| s.gateway_key.clone()).or_else(|| {
        config
            .listeners
            .iter()
            .chain(config.admin.iter())
            .find_map(|l| l.tls.as_ref())
            .map(|t| (t.cert.clone(), t.key.clone()))
    });
    let message_log = match seal_key {
        Some((cert, key)) => Some(
            crate::observe::message_log::MessageLog::open(
                &data_dir.join("log"),
                crate::runtime::Signer::load(&cert, &key)?,
                telemetry.metrics.message_log_records.clone(),
                telemetry.metrics.message_log_dropped.clone(),
            )
            .map_err(dir_error)?,
        ),
        None => {
            tracing::warn!("no signing key (signatures.key or a TLS listener): the message log is off");
            None
        }
    };
    let mailboxes = crate::mailbox::Mailboxes::open(&config.mailbox, &data_dir, &config.node).await?;
    mailboxes.configure(&config);
    let (stop, stopped) = watch::channel(false);
    let started = config.clone();
    let gateway = Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(Runtime::build(config)?),
        config_path,
        ready: AtomicBool::new(false),
        telemetry,
        limiter,
        overload,
        client_connections: Arc::default(),
        replay,
        message_log,
        mailboxes,
        listener_tls: std::sync::Mutex::new(Vec::new()),
        stopping: stopped.clone(),
        started,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(housekeeping(gateway.clone(), stopped.clone()));
    tasks.spawn(overload_probe(gateway.clone(), overload_config, stopped.clone()));
    tasks.spawn(crate::delivery::health::run(gateway.clone(), stopped.clone()));
    tasks.spawn(crate::mailbox::push::run(gateway.clone(), stopped.clone()));
    tasks.spawn(crate::mailbox::housekeeping(gateway.clone(), stopped.clone()));
    let mut data_addrs = Vec::new();
    let mut bound = Vec::new();
    for l in listeners.iter().map(|l| (l, Role::Data)).chain(admin.iter().map(|l| (l, Role::Admin))) {
        let (cfg, role) = l;
        let tcp = TcpListener::bind(cfg.address).await.map_err(|source| StartError::Bind {
            name: cfg.name.clone(),
            address: cfg.address,
            source,
        })?;
        let addr = tcp.local_addr().map_err(|source| StartError::Bind {
            name: cfg.name.clone(),
            address: cfg.address,
            source,
        })?;
        let tls: Option<SwappableTls> = match &cfg.tls {
            Some(files) => {
                Some(Arc::new(ArcSwap::new(crate::server::tls::server_config(files, cfg.http1, cfg.http2)?)))
            }
            None => None,
        };
        // HTTP/3 on the same port over UDP (the TCP port the OS chose, if it was 0).
        let h3 = match (&cfg.tls, cfg.http3 && role == Role::Data) {
            (Some(files), true) => {
                let quic = crate::server::h3::quic_config(files, &limits)?;
                let server = crate::server::h3::H3Server::bind(
                    gateway.clone(),
                    &cfg.name,
                    addr,
                    quic,
                    &limits,
                    cfg.max_connections,
                )
                .map_err(|source| StartError::Bind {
                    name: format!("{} (HTTP/3, UDP)", cfg.name),
                    address: addr,
                    source,
                })?;
                Some(server)
            }
            _ => None,
        };
        tracing::info!(listener = %cfg.name, %addr, tls = tls.is_some(), http3 = h3.is_some(), ?role, "listening");
        if role == Role::Data {
            data_addrs.push(addr);
        }
        if let Some(tcp_tls) = &tls {
            gateway.listener_tls.lock().unwrap_or_else(|e| e.into_inner()).push(ListenerTls {
                name: cfg.name.clone(),
                tcp: tcp_tls.clone(),
                http1: cfg.http1,
                http2: cfg.http2,
                quic: h3.as_ref().map(|s| s.endpoint()),
            });
        }
        bound.push((cfg.clone(), role, tcp, tls, addr, h3));
    }
    let mut admin_addr = None;
    for (cfg, role, tcp, tls, addr, h3) in bound {
        if role == Role::Admin {
            admin_addr = Some(addr);
        }
        let h3_port = h3.as_ref().map(|_| addr.port());
        if let Some(h3) = h3 {
            tasks.spawn(h3.run(stopped.clone(), limits.drain_timeout));
        }
        let server = listener::Server::new(gateway.clone(), role, &cfg, &limits, tls, h3_port);
        tasks.spawn(server.run(tcp, stopped.clone(), limits.drain_timeout));
    }
    gateway.ready.store(true, Ordering::Release);
    Ok(Running { gateway, data_addrs, admin_addr, stop, tasks })
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to the drain timeout).
    pub async fn shutdown(mut self) {
        self.gateway.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Every exchange has finished: seal and fsync the last batch.
        let gateway = self.gateway.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(log) = &gateway.message_log {
                log.close();
            }
        })
        .await;
    }

    /// Serves until Ctrl-C or SIGTERM; reloads the config on SIGHUP.
    pub async fn serve_until_signalled(self) {
        let gateway = self.gateway.clone();
        #[cfg(unix)]
        let reloader = tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                if let Err(e) = gateway.reload().await {
                    tracing::error!("reload refused, the running configuration stays: {e}");
                }
            }
        });
        wait_for_stop_signal().await;
        tracing::info!("shutting down: draining connections");
        #[cfg(unix)]
        reloader.abort();
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

/// Persists quota counters every second (and once more on stop); forgets idle
/// limiter state every minute.
async fn housekeeping(gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        n += 1;
        let g = gateway.clone();
        let _ = tokio::task::spawn_blocking(move || {
            g.limiter.save();
            if n.is_multiple_of(60) {
                g.limiter.housekeep();
            }
        })
        .await;
    }
    let _ = tokio::task::spawn_blocking(move || gateway.limiter.save()).await;
}

/// Measures how late a short timer fires (event-loop lag, the gateway's queueing
/// delay) and moves the in-flight limit by AIMD.
async fn overload_probe(gateway: Arc<Gateway>, config: crate::config::Overload, mut stop: watch::Receiver<bool>) {
    let mut aimd = Aimd::new(config.min_in_flight, config.max_in_flight, config.target_delay.as_nanos() as u64);
    let period = Duration::from_millis(10);
    let metrics = &gateway.telemetry.metrics;
    metrics.overload_limit.set(i64::from(aimd.limit()));
    loop {
        let started = std::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => break,
        }
        let lag = started.elapsed().saturating_sub(period);
        let in_flight = gateway.overload.in_flight.load(Ordering::Relaxed);
        let limit = aimd.sample(lag.as_nanos() as u64, in_flight);
        gateway.overload.limit.store(limit, Ordering::Relaxed);
        metrics.overload_limit.set(i64::from(limit));
        metrics.event_loop_lag.set(lag.as_secs_f64());
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
