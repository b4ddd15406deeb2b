//! Accept loops: TCP (within the listener's connection limit), then TLS with a
//! mandatory client certificate (or nothing on an insecure listener), the client
//! system's connection limit, then HTTP/1.1 or HTTP/2 by ALPN or preface, each
//! connection on its own task and closed gracefully on shutdown or when a reload
//! finds its certificate revoked ([`crate::revocation`]). HTTP/3 is in
//! [`crate::server::h3`]; both hand requests to the same pipeline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use qaqpa_adapters::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::body::client::ClientBody;
use crate::body::GatewayBody;
use crate::config::{Limits, ListenerConfig};
use crate::limits::connections::ClientSlot;
use crate::peer::Peer;
use crate::revocation::{self, LiveCertificates};
use crate::shared::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Data,
    Admin,
}

pub use crate::tls::SwappableTls;

/// What a listener hands each request to: the dispatcher on data listeners, the
/// admin API on the admin listener. Listeners know nothing else of the gateway.
pub type Handler = Arc<dyn Fn(Arc<Peer>, http::Request<ClientBody>) -> HandlerFuture + Send + Sync>;

/// A handler's answer to come; boxed (see `Server::serve`).
pub type HandlerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = http::Response<GatewayBody>> + Send>>;

pub struct Server {
    /// Connection metrics and the per-client connection count.
    shared: Arc<Shared>,
    handler: Handler,
    role: Role,
    name: String,
    http: auto::Builder<TokioExecutor>,
    tls: Option<SwappableTls>,
    /// Certificates of open connections, re-checked on reload (TLS listeners).
    live: Option<Arc<LiveCertificates>>,
    handshake_timeout: Duration,
    body_idle_timeout: Duration,
    connections: Arc<Semaphore>,
    /// `Alt-Svc` advertising this listener's HTTP/3 endpoint.
    alt_svc: Option<HeaderValue>,
}

/// The HTTP/1.1 and HTTP/2 settings every TCP listener shares.
fn http_builder(cfg: &ListenerConfig, limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(limits.max_concurrent_streams)
        // Rapid reset (CVE-2023-44487): streams a client opens and cancels before
        // they are served cost the gateway work; past this many the connection is
        // closed with GOAWAY(ENHANCE_YOUR_CALM).
        .max_pending_accept_reset_streams(limits.max_pending_resets as usize)
        // Streams the gateway itself had to reset for protocol errors.
        .max_local_error_reset_streams(1024)
        // A client that stops reading responses is dropped rather than buffered for.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    match (cfg.http1, cfg.http2) {
        (true, false) => http.http1_only(),
        (false, true) => http.http2_only(),
        _ => http,
    }
}

impl Server {
    pub fn new(
        shared: Arc<Shared>,
        handler: Handler,
        role: Role,
        cfg: &ListenerConfig,
        limits: &Limits,
        tls: Option<(SwappableTls, Arc<LiveCertificates>)>,
        h3_port: Option<u16>,
    ) -> Self {
        let (tls, live) = tls.map_or((None, None), |(tls, live)| (Some(tls), Some(live)));
        Self {
            shared,
            handler,
            role,
            name: cfg.name.clone(),
            http: http_builder(cfg, limits),
            tls,
            live,
            handshake_timeout: limits.header_read_timeout,
            body_idle_timeout: limits.body_idle_timeout,
            connections: Arc::new(Semaphore::new(cfg.max_connections as usize)),
            alt_svc: h3_port.and_then(|p| HeaderValue::from_str(&format!("h3=\":{p}\"; ma=86400")).ok()),
        }
    }

    pub async fn run(self, tcp: TcpListener, mut stop: watch::Receiver<bool>, drain: Duration) {
        // Each connection holds a receiver: on stop they close gracefully, and the
        // drain ends when the last one has dropped its receiver.
        let (draining, drain_signal) = watch::channel(false);
        let this = Arc::new(self);
        let open = this.shared.telemetry.metrics.connections.with_label_values(&[&this.name]);
        loop {
            tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let Ok(permit) = this.connections.clone().try_acquire_owned() else {
                            // Full: close at once. Cheaper than a TLS handshake to say so,
                            // and the client's retry lands on another node.
                            this.refused("listener_full");
                            drop(stream);
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let drain_signal = drain_signal.clone();
                        let this = this.clone();
                        let open = open.clone();
                        tokio::spawn(async move {
                            open.inc();
                            this.connection(stream, addr, drain_signal).await;
                            open.dec();
                            drop(permit);
                        });
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
        draining.send_replace(true);
        drop(drain_signal);
        if tokio::time::timeout(drain, draining.closed()).await.is_err() {
            tracing::warn!(listener = %this.name, "drain timeout: closing remaining connections");
        }
    }

    fn refused(&self, reason: &str) {
        self.shared.telemetry.metrics.connections_refused.with_label_values(&[&self.name, reason]).inc();
    }

    async fn connection(&self, stream: TcpStream, addr: SocketAddr, drain: watch::Receiver<bool>) {
        match &self.tls {
            None => self.serve(TokioIo::new(stream), Peer::connection(addr, None, None), drain, None).await,
            // Boxed: a connection's task is as large as its largest state, and the TLS
            // states (rustls' connection inline in the handshake and in hyper's) would
            // make every plaintext connection's task that large too, idle or not.
            Some(tls) => Box::pin(self.tls_connection(tls, stream, addr, drain)).await,
        }
    }

    async fn tls_connection(
        &self,
        tls: &SwappableTls,
        stream: TcpStream,
        addr: SocketAddr,
        drain: watch::Receiver<bool>,
    ) {
        let acceptor = TlsAcceptor::from(tls.load_full());
        let tls = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let reason = crate::observe::metrics::tls_failure_reason(&e);
                self.shared.telemetry.metrics.tls_failures.with_label_values(&[&self.name, reason]).inc();
                tracing::debug!(listener = %self.name, %addr, reason, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                self.shared.telemetry.metrics.tls_failures.with_label_values(&[&self.name, "timeout"]).inc();
                tracing::debug!(listener = %self.name, %addr, "TLS handshake timed out");
                return;
            }
        };
        let chain: Vec<_> = tls.get_ref().1.peer_certificates().unwrap_or_default().to_vec();
        let certificate = chain.first().and_then(|leaf| qaqpa_certs::inspect(leaf).ok());
        // Either role: on the admin listener a certificate read as none would be
        // taken for the insecure listener's anonymous caller.
        if certificate.is_none() {
            tracing::debug!(listener = %self.name, %addr, "client certificate unreadable");
            return;
        }
        let (registration, revoked) = match &self.live {
            Some(live) => {
                let (registration, revoked) = live.register(chain);
                (Some(registration), Some(revoked))
            }
            None => (None, None),
        };
        let peer = Peer::connection(addr, certificate, revoked);
        match self.client_slot(&peer) {
            Ok(slot) => self.serve(TokioIo::new(tls), peer, drain, slot).await,
            Err(system) => self.refuse_connection(TokioIo::new(tls), &system).await,
        }
        drop(registration);
    }

    /// The client system's place among its open connections (data listeners only).
    /// `Err` names the system that holds too many.
    pub fn client_slot(&self, peer: &Peer) -> Result<Option<ClientSlot>, String> {
        client_slot(&self.shared, self.role, peer).inspect_err(|_| self.refused("client_full"))
    }

    /// Answers every request of a connection over the client's limit with 503
    /// `server.overloaded` and closes it: a clear error instead of a silent reset.
    async fn refuse_connection<I>(&self, io: TokioIo<I>, system: &str)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let detail = format!("{system} holds too many open connections; reuse one or retry later");
        let service = service_fn(move |_req| {
            let mut response = crate::error::error_response(ErrorCode::Overloaded, &detail, None);
            response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            std::future::ready(Ok::<_, Infallible>(response))
        });
        // HTTP/2 ignores `Connection: close`; the timeout ends such a connection.
        let conn = self.http.serve_connection(io, service);
        let _ = tokio::time::timeout(self.handshake_timeout, conn).await;
    }

    async fn serve<I>(&self, io: TokioIo<I>, peer: Peer, drain: watch::Receiver<bool>, slot: Option<ClientSlot>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut revoked = peer.revoked.clone();
        let peer = Arc::new(peer);
        let handler = self.handler.clone();
        let idle = Some(self.body_idle_timeout);
        let alt_svc = self.alt_svc.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            // A request that raced the close of a revoked connection (an h2 stream
            // opened before the GOAWAY arrived) is refused, never forwarded.
            let refused = revocation::refusal(&peer, req.version());
            // The handler's future is boxed: hyper keeps the service future inline in
            // each connection's state, so an unboxed ~2.4 KB exchange future would cost
            // every idle connection that much. One allocation per request buys it back.
            let response: HandlerFuture = match refused {
                Some(refused) => Box::pin(std::future::ready(refused)),
                None => handler(peer.clone(), req.map(|b| ClientBody::hyper(b, idle))),
            };
            let alt_svc = alt_svc.clone();
            async move {
                let mut response = response.await;
                if let Some(v) = alt_svc {
                    response.headers_mut().insert(http::header::ALT_SVC, v);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let conn = self.http.serve_connection(io, service).into_owned();
        let mut conn = std::pin::pin!(conn);
        let mut drain = Some(drain);
        let mut closing = false;
        let ended = loop {
            tokio::select! {
                ended = conn.as_mut() => break ended,
                // HTTP/2: GOAWAY, streams in flight finish; HTTP/1.1: closed at once
                // if idle, else after the response in flight.
                _ = revocation::raised(&mut drain), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = revocation::raised(&mut revoked), if !closing => {
                    closing = true;
                    self.refused("revoked");
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(listener = %self.name, "connection ended: {e}");
        }
        drop(slot);
    }
}

/// The per-client connection check, shared by the TCP and QUIC listeners.
pub fn client_slot(shared: &Shared, role: Role, peer: &Peer) -> Result<Option<ClientSlot>, String> {
    let (Role::Data, Some(cert)) = (role, &peer.certificate) else { return Ok(None) };
    let runtime = shared.runtime();
    // A certificate bound to no system gets no place to count; the pipeline refuses
    // its requests with `client.identity_mismatch`.
    let Some(client) = crate::exchange::peer_system(&runtime, cert) else { return Ok(None) };
    let max = runtime.config.limits.max_connections_per_client;
    shared.client_connections.try_enter(client.id.as_str(), max).map(Some).ok_or_else(|| client.id.to_string())
}
