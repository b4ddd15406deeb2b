//! The running gateway: live runtime behind arc-swap, listeners bound, readiness,
//! reload and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{self, Config};
use crate::listener::{self, Role};
use crate::runtime::Runtime;

pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    config_path: Option<PathBuf>,
    ready: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot bind {name} listener on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
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
    /// The runtime a new request runs on; it keeps it to the end even across a reload.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Re-reads the config file and swaps the runtime. Parsing, validation and
    /// building upstream pools run on a blocking thread, never on a request worker.
    /// Listener addresses and certificates stay as they were started.
    pub async fn reload(&self) -> Result<usize, ReloadError> {
        let path = self.config_path.clone().ok_or(ReloadError::NoFile)?;
        let runtime = tokio::task::spawn_blocking(move || -> Result<Runtime, ReloadError> {
            Ok(Runtime::build(config::load(&path)?)?)
        })
        .await??;
        let services = runtime.routes.len();
        self.runtime.store(Arc::new(runtime));
        tracing::info!(services, "configuration reloaded");
        Ok(services)
    }
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
    let gateway = Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(Runtime::build(config)?),
        config_path,
        ready: AtomicBool::new(false),
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut data_addrs = Vec::new();
    let mut bound = Vec::new();
    for l in listeners
        .iter()
        .map(|l| (l, Role::Data))
        .chain(admin.iter().map(|l| (l, Role::Admin)))
    {
        let (cfg, role) = l;
        let tcp = TcpListener::bind(cfg.address)
            .await
            .map_err(|source| StartError::Bind {
                name: cfg.name.clone(),
                address: cfg.address,
                source,
            })?;
        let addr = tcp.local_addr().map_err(|source| StartError::Bind {
            name: cfg.name.clone(),
            address: cfg.address,
            source,
        })?;
        let tls = match &cfg.tls {
            Some(files) => Some(crate::tls::server_config(files, cfg.http1, cfg.http2)?),
            None => None,
        };
        tracing::info!(listener = %cfg.name, %addr, tls = tls.is_some(), ?role, "listening");
        if role == Role::Data {
            data_addrs.push(addr);
        }
        bound.push((cfg.clone(), role, tcp, tls, addr));
    }
    let mut admin_addr = None;
    for (cfg, role, tcp, tls, addr) in bound {
        if role == Role::Admin {
            admin_addr = Some(addr);
        }
        let server = listener::Server::new(gateway.clone(), role, &cfg, &limits, tls);
        tasks.spawn(server.run(tcp, stopped.clone(), limits.drain_timeout));
    }
    gateway.ready.store(true, Ordering::Release);
    Ok(Running {
        gateway,
        data_addrs,
        admin_addr,
        stop,
        tasks,
    })
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to the drain timeout).
    pub async fn shutdown(mut self) {
        self.gateway.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
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
