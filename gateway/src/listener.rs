//! Accept loops: TCP, then TLS with a mandatory client certificate (or nothing on an
//! insecure listener), then HTTP/1.1 or HTTP/2 by ALPN or preface, each connection on
//! its own task and watched for graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{Limits, ListenerConfig};
use crate::gateway::Gateway;
use crate::pipeline::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Data,
    Admin,
}

pub struct Server {
    gateway: Arc<Gateway>,
    role: Role,
    name: String,
    http: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Server {
    pub fn new(
        gateway: Arc<Gateway>,
        role: Role,
        cfg: &ListenerConfig,
        limits: &Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers);
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32)
            .max_concurrent_streams(256);
        let http = match (cfg.http1, cfg.http2) {
            (true, false) => http.http1_only(),
            (false, true) => http.http2_only(),
            _ => http,
        };
        Self {
            gateway,
            role,
            name: cfg.name.clone(),
            http,
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: limits.header_read_timeout,
        }
    }

    pub async fn run(self, tcp: TcpListener, mut stop: watch::Receiver<bool>, drain: Duration) {
        let graceful = GracefulShutdown::new();
        let this = Arc::new(self);
        loop {
            tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let watcher = graceful.watcher();
                        let this = this.clone();
                        tokio::spawn(async move { this.connection(stream, addr, watcher).await });
                    }
                    Err(e) => {
                        // Out of descriptors or similar: back off instead of spinning.
                        tracing::warn!(listener = %this.name, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
        drop(tcp);
        if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
            tracing::warn!(listener = %this.name, "drain timeout: closing remaining connections");
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        addr: std::net::SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        match &self.tls {
            None => self.serve(TokioIo::new(stream), Peer { addr, certificate: None }, watcher).await,
            Some(acceptor) => {
                let tls = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        let reason = crate::metrics::tls_failure_reason(&e);
                        self.gateway.telemetry.metrics.tls_failures.with_label_values(&[&self.name, reason]).inc();
                        tracing::debug!(listener = %self.name, %addr, reason, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        self.gateway.telemetry.metrics.tls_failures.with_label_values(&[&self.name, "timeout"]).inc();
                        tracing::debug!(listener = %self.name, %addr, "TLS handshake timed out");
                        return;
                    }
                };
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| qaqpa_certs::inspect(leaf).ok());
                if self.role == Role::Data && certificate.is_none() {
                    tracing::debug!(listener = %self.name, %addr, "client certificate unreadable");
                    return;
                }
                self.serve(TokioIo::new(tls), Peer { addr, certificate }, watcher).await
            }
        }
    }

    async fn serve<I>(&self, io: TokioIo<I>, peer: Peer, watcher: hyper_util::server::graceful::Watcher)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = Arc::new(peer);
        let gateway = self.gateway.clone();
        let role = self.role;
        let service = service_fn(move |req| {
            let gateway = gateway.clone();
            let peer = peer.clone();
            // Boxed: hyper keeps the service future inline in each connection's state,
            // so an unboxed ~2.4 KB pipeline future would cost every idle connection
            // that much. One allocation per request buys it back.
            Box::pin(async move {
                Ok::<_, Infallible>(match role {
                    Role::Data => crate::pipeline::serve(gateway, peer, req).await,
                    Role::Admin => crate::admin::serve(&gateway, req).await,
                })
            })
        });
        let conn = self.http.serve_connection(io, service);
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(listener = %self.name, "connection ended: {e}");
        }
    }
}
