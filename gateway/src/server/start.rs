//! Start-up: opens the data directory's stores, builds the [`Shared`] handles and
//! the [`Gateway`] that owns them, binds every listener, starts the background
//! tasks (each with the narrow handles it needs), and later drains and stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, Limits, LimitsBackend, ListenerConfig};
use crate::gateway::{Gateway, ListenerTls};
use crate::limits::local::LocalBackend;
use crate::limits::overload::Overload;
use crate::limits::redis::RedisBackend;
use crate::limits::{now_ns, Limiter};
use crate::observe::metrics::Metrics;
use crate::observe::monitoring::Monitoring;
use crate::observe::sla::SlaTracker;
use crate::observe::Telemetry;
use crate::revocation::LiveCertificates;
use crate::runtime::Runtime;
use crate::server::listener::{self, Role, SwappableTls};
use crate::shared::Shared;
use qaqpa_routing::limit::Aimd;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot bind {name} listener on {address}: {source}")]
    Bind { name: String, address: SocketAddr, source: std::io::Error },
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("{0}")]
    Limits(#[from] crate::limits::LimitError),
    #[error("mailbox: {0}")]
    Mailbox(#[from] crate::mailbox::MailboxError),
    #[error("replay guard: {0}")]
    Replay(String),
}

/// A started gateway. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub gateway: Arc<Gateway>,
    pub data_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Opens the stores, binds every listener, then starts serving and reports ready.
pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Running, StartError> {
    for warning in crate::config::warnings(&config) {
        tracing::warn!("config: {warning}");
    }
    let data_dir = config.storage.data_dir.clone();
    let dir_error = |source| StartError::DataDir { path: data_dir.display().to_string(), source };
    std::fs::create_dir_all(&data_dir).map_err(dir_error)?;
    let metrics = Metrics::new();
    let (window, capacity) = config
        .signatures
        .as_ref()
        .map_or((crate::config::DEFAULT_REPLAY_WINDOW, crate::config::DEFAULT_REPLAY_CAPACITY), |s| {
            (s.replay_window, s.replay_capacity)
        });
    let now = crate::exchange::signatures::now_unix().max(0) as u64;
    let replay = crate::replay::ReplayGuard::open(&data_dir.join("replay.log"), window.as_secs(), capacity, now)
        .map_err(dir_error)?
        .with_failure_counter(metrics.replay_write_failures.clone());
    let replay = match &config.storage.replay_redis {
        Some(shared) => replay.with_redis(shared).map_err(StartError::Replay)?,
        None => replay,
    };
    // The message log syncs the replay guard's file with each of its groups.
    let telemetry = open_telemetry(&config, metrics, replay.syncer().map_err(dir_error)?)?;
    let limiter = open_limiter(&config).await?;
    let overload = Overload {
        enabled: config.overload.enabled,
        in_flight: Arc::new(AtomicU32::new(0)),
        limit: AtomicU32::new(config.overload.max_in_flight),
    };
    let mailboxes = crate::mailbox::Mailboxes::open(
        &config.mailbox,
        &data_dir,
        &config.node,
        crate::mailbox::dead_letters_to_log(&telemetry),
    )
    .await?;
    mailboxes.configure(&config);
    let (stop, stopped) = watch::channel(false);
    let (started, overload_config, limits) = (config.clone(), config.overload.clone(), config.limits.clone());
    let shared = Arc::new(Shared::new(
        Runtime::build(config)?,
        telemetry,
        limiter,
        overload,
        replay,
        mailboxes,
        stopped.clone(),
    ));
    let version = crate::gateway::ConfigVersion::of(config_path.as_deref());
    version.publish(&shared.telemetry.metrics);
    let gateway = Arc::new(Gateway {
        version: std::sync::Mutex::new(version),
        shared: shared.clone(),
        config_path,
        ready: AtomicBool::new(false),
        listener_tls: std::sync::Mutex::new(Vec::new()),
        published: std::sync::Mutex::new(None),
        cluster_synced: AtomicBool::new(crate::cluster::nats::bucket_of(&started).is_none()),
        reload_lock: tokio::sync::Mutex::new(()),
        started,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(housekeeping(shared.clone(), stopped.clone()));
    tasks.spawn(overload_probe(shared.clone(), overload_config, stopped.clone()));
    tasks.spawn(crate::delivery::health_checks::run(shared.clone(), stopped.clone()));
    tasks.spawn(crate::delivery::push::run(shared.clone(), stopped.clone()));
    let topics = {
        let shared = shared.clone();
        move || shared.runtime().config.topics.iter().map(crate::mailbox::rules).collect()
    };
    tasks.spawn(crate::mailbox::housekeeping(shared.mailboxes.clone(), topics, stopped.clone()));
    tasks.spawn(crate::cluster::nats::run(gateway.clone(), stopped.clone()));
    // Bind all before serving any: a port that cannot be had fails the start whole.
    let config = &gateway.started;
    let roles = config.listeners.iter().map(|l| (l, Role::Data)).chain(config.admin.iter().map(|l| (l, Role::Admin)));
    let mut bound = Vec::new();
    for (cfg, role) in roles {
        let listener = bind(cfg, role, &shared, &limits).await?;
        if let Some((tls, live)) = &listener.tls {
            gateway.listener_tls.lock().unwrap_or_else(|e| e.into_inner()).push(ListenerTls {
                name: cfg.name.clone(),
                tcp: tls.clone(),
                live: live.clone(),
                http1: cfg.http1,
                http2: cfg.http2,
                quic: listener.h3.as_ref().map(|s| s.endpoint()),
            });
        }
        bound.push((cfg.clone(), role, listener));
    }
    let (mut data_addrs, mut admin_addr) = (Vec::new(), None);
    for (cfg, role, Bound { tcp, tls, addr, h3 }) in bound {
        match role {
            Role::Data => data_addrs.push(addr),
            Role::Admin => admin_addr = Some(addr),
        }
        let h3_port = h3.as_ref().map(|_| addr.port());
        if let Some(h3) = h3 {
            tasks.spawn(h3.run(stopped.clone(), limits.drain_timeout));
        }
        let handler = match role {
            Role::Data => data_handler(&shared),
            Role::Admin => admin_handler(&gateway),
        };
        let server = listener::Server::new(shared.clone(), handler, role, &cfg, &limits, tls, h3_port);
        tasks.spawn(server.run(tcp, stopped.clone(), limits.drain_timeout));
    }
    gateway.ready.store(true, Ordering::Release);
    Ok(Running { gateway, data_addrs, admin_addr, stop, tasks })
}

/// Metrics, monitoring records and the message log, which outlive every reload.
fn open_telemetry(
    config: &Config,
    metrics: Metrics,
    companion: crate::observe::message_log::Companion,
) -> Result<Arc<Telemetry>, StartError> {
    let data_dir = &config.storage.data_dir;
    let dir_error = |source| StartError::DataDir { path: data_dir.display().to_string(), source };
    let monitoring =
        Monitoring::start(data_dir.join("monitoring"), config.monitoring.ring, config.monitoring.retention)
            .map_err(dir_error)?;
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
                metrics.message_log.clone(),
                Some(companion),
            )
            .map_err(dir_error)?,
        ),
        None => {
            tracing::warn!("no signing key (signatures.key or a TLS listener): the message log is off");
            None
        }
    };
    let node = config.node.clone();
    Ok(Arc::new(Telemetry { metrics, monitoring, sla: SlaTracker::default(), message_log, node }))
}

/// Quota and rate state: in memory (quota counters persisted to the data
/// directory) or in Redis for a cluster.
async fn open_limiter(config: &Config) -> Result<Limiter, StartError> {
    Ok(match &config.storage.limits {
        LimitsBackend::Local => {
            let file = config.storage.data_dir.join("quotas.tsv");
            let backend = LocalBackend::default();
            let n = backend
                .load(&file, now_ns())
                .map_err(|source| StartError::DataDir { path: file.display().to_string(), source })?;
            tracing::info!(counters = n, "quota counters loaded from {}", file.display());
            Limiter::Local { backend, file }
        }
        LimitsBackend::Redis { url, timeout, prefix } => Limiter::Redis {
            redis: Box::new(RedisBackend::connect(url, *timeout, prefix).await?),
            fallback: LocalBackend::default(),
            nodes: config.storage.cluster_nodes,
        },
    })
}

/// One listener bound: its TCP socket, its TLS (with the registry of open
/// connections' certificates, shared by TCP and QUIC), and HTTP/3 on the same port.
struct Bound {
    tcp: TcpListener,
    tls: Option<(SwappableTls, Arc<LiveCertificates>)>,
    addr: SocketAddr,
    h3: Option<crate::server::h3::H3Server>,
}

async fn bind(cfg: &ListenerConfig, role: Role, shared: &Arc<Shared>, limits: &Limits) -> Result<Bound, StartError> {
    let bind_error = |source| StartError::Bind { name: cfg.name.clone(), address: cfg.address, source };
    let tcp = TcpListener::bind(cfg.address).await.map_err(bind_error)?;
    let addr = tcp.local_addr().map_err(bind_error)?;
    let tls: Option<(SwappableTls, Arc<LiveCertificates>)> = match &cfg.tls {
        Some(files) => {
            Some((Arc::new(ArcSwap::new(crate::tls::server_config(files, cfg.http1, cfg.http2)?)), Arc::default()))
        }
        None => None,
    };
    // HTTP/3 on the same port over UDP (the TCP port the OS chose, if it was 0).
    let h3 = match (&cfg.tls, &tls, cfg.http3 && role == Role::Data) {
        (Some(files), Some((_, live)), true) => {
            let quic = crate::tls::quic_config(files, limits)?;
            let server = crate::server::h3::H3Server::bind(
                shared.clone(),
                data_handler(shared),
                &cfg.name,
                addr,
                quic,
                limits,
                cfg.max_connections,
                live.clone(),
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
    Ok(Bound { tcp, tls, addr, h3 })
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
            if let Some(log) = &gateway.telemetry.message_log {
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
/// limiter state every minute; probes a failing replay guard file.
async fn housekeeping(gateway: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        n += 1;
        gateway.replay.probe_shared().await;
        gateway.limiter.probe().await;
        let g = gateway.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // A replay guard that failed to write tries again without traffic,
            // so readiness comes back by itself.
            g.replay.probe();
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
async fn overload_probe(gateway: Arc<Shared>, config: crate::config::Overload, mut stop: watch::Receiver<bool>) {
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

/// The data listeners' handler: the dispatcher over the shared handles.
fn data_handler(shared: &Arc<Shared>) -> listener::Handler {
    let shared = shared.clone();
    Arc::new(move |peer, req| crate::dispatch::serve_boxed(shared.clone(), peer, req))
}

/// The admin listener's handler: the admin API, which owns the gateway (reload).
fn admin_handler(gateway: &Arc<Gateway>) -> listener::Handler {
    let gateway = gateway.clone();
    Arc::new(move |peer, req| {
        let gateway = gateway.clone();
        Box::pin(async move { crate::admin::serve(&gateway, &peer, req).await })
    })
}
