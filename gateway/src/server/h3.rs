//! The HTTP/3 data listener (QUIC on the TCP listener's address, UDP): the same
//! client-certificate identity, connection limits and pipeline as HTTP/1.1 and
//! HTTP/2. Each request's body is read by its own task into a bounded channel (so
//! the provider's pace sets the client's), and the response is streamed back frame
//! by frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::body::client::{ClientBody, ClientBodyError};
use crate::config::Limits;
use crate::peer::Peer;
use crate::revocation::{self, LiveCertificates};
use crate::server::listener::Handler;
use crate::server::listener::{client_slot, Role};
use crate::shared::Shared;

type H3Connection = h3::server::Connection<h3_quinn::Connection, Bytes>;
type RequestResolver = h3::server::RequestResolver<h3_quinn::Connection, Bytes>;

pub struct H3Server {
    shared: Arc<Shared>,
    handler: Handler,
    name: String,
    endpoint: quinn::Endpoint,
    handshake_timeout: Duration,
    body_idle_timeout: Duration,
    max_header_bytes: u64,
    connections: Arc<tokio::sync::Semaphore>,
    /// Shared with the TCP listener on the same address: re-checked on reload.
    live: Arc<LiveCertificates>,
}

impl H3Server {
    // Each is a separate handle the listener owns; a struct for them would only be
    // built here.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        shared: Arc<Shared>,
        handler: Handler,
        name: &str,
        addr: SocketAddr,
        config: quinn::ServerConfig,
        limits: &Limits,
        max_connections: u32,
        live: Arc<LiveCertificates>,
    ) -> std::io::Result<Self> {
        let endpoint = quinn::Endpoint::server(config, addr)?;
        Ok(Self {
            shared,
            handler,
            name: name.to_owned(),
            endpoint,
            handshake_timeout: limits.header_read_timeout,
            body_idle_timeout: limits.body_idle_timeout,
            max_header_bytes: limits.max_header_bytes as u64,
            connections: Arc::new(tokio::sync::Semaphore::new(max_connections as usize)),
            live,
        })
    }

    /// The endpoint, for swapping its configuration on reload.
    pub fn endpoint(&self) -> quinn::Endpoint {
        self.endpoint.clone()
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let this = Arc::new(self);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                incoming = this.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let Ok(permit) = this.connections.clone().try_acquire_owned() else {
                        this.refused("listener_full");
                        incoming.refuse();
                        continue;
                    };
                    let this = this.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        this.connection(incoming, stop).await;
                        drop(permit);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = stop.changed() => break,
            }
        }
        // GOAWAY went out on every connection (they watch `stop`); wait for their
        // requests to finish, then close what is left.
        let drained = tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(listener = %this.name, "HTTP/3 drain timeout: closing remaining connections");
        }
        this.endpoint.close(0u32.into(), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), this.endpoint.wait_idle()).await;
    }

    fn refused(&self, reason: &str) {
        self.shared.telemetry.metrics.connections_refused.with_label_values(&[&self.name, reason]).inc();
    }

    async fn connection(self: Arc<Self>, incoming: quinn::Incoming, mut stop: watch::Receiver<bool>) {
        let metrics = &self.shared.telemetry.metrics;
        let conn = match tokio::time::timeout(self.handshake_timeout, incoming).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                metrics.tls_failures.with_label_values(&[&self.name, "quic_handshake"]).inc();
                tracing::debug!(listener = %self.name, "QUIC handshake failed: {e}");
                return;
            }
            Err(_) => {
                metrics.tls_failures.with_label_values(&[&self.name, "timeout"]).inc();
                return;
            }
        };
        let chain = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|chain| *chain)
            .unwrap_or_default();
        let certificate = chain.first().and_then(|leaf| qaqpa_certs::inspect(leaf).ok());
        let addr = conn.remote_address();
        if certificate.is_none() {
            conn.close(H3_NO_ERROR, b"client certificate required");
            return;
        }
        let (registration, revoked) = self.live.register(chain);
        let peer = Arc::new(Peer::connection(addr, certificate, Some(revoked.clone())));
        let mut revoked = Some(revoked);
        let slot = match client_slot(&self.shared, Role::Data, &peer) {
            Ok(slot) => slot,
            Err(system) => {
                self.refused("client_full");
                tracing::debug!(listener = %self.name, %system, "too many connections");
                conn.close(H3_EXCESSIVE_LOAD, b"too many open connections for this client system");
                return;
            }
        };
        let open = metrics.connections.with_label_values(&[&self.name]);
        open.inc();
        let quic = conn.clone();
        let mut h3: H3Connection = match h3::server::builder()
            .max_field_section_size(self.max_header_bytes)
            .build(h3_quinn::Connection::new(conn))
            .await
        {
            Ok(h3) => h3,
            Err(e) => {
                tracing::debug!(listener = %self.name, "HTTP/3 setup failed: {e}");
                open.dec();
                return;
            }
        };
        let mut requests = JoinSet::new();
        let mut closing = *stop.borrow();
        if closing {
            let _ = h3.shutdown(0).await;
        }
        let mut revoked_now = false;
        loop {
            if revoked_now && requests.is_empty() {
                break;
            }
            tokio::select! {
                accepted = h3.accept() => match accepted {
                    Ok(Some(resolver)) => {
                        let handler = self.handler.clone();
                        let peer = peer.clone();
                        let idle = self.body_idle_timeout;
                        requests.spawn(async move { serve_request(handler, peer, resolver, idle).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(listener = %self.name, "HTTP/3 connection ended: {e}");
                        break;
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                _ = stop.changed(), if !closing => {
                    closing = true;
                    // GOAWAY: no new requests; the ones accepted so far finish.
                    let _ = h3.shutdown(0).await;
                }
                // Revoked since the handshake: GOAWAY, let the requests in flight
                // finish, then close the connection rather than wait for the client.
                _ = revocation::raised(&mut revoked), if !revoked_now => {
                    revoked_now = true;
                    closing = true;
                    self.refused("revoked");
                    let _ = h3.shutdown(0).await;
                }
            }
        }
        while requests.join_next().await.is_some() {}
        if revoked_now {
            quic.close(H3_NO_ERROR, b"client certificate revoked");
        }
        open.dec();
        drop(slot);
        drop(registration);
    }
}

/// HTTP/3 error codes (RFC 9114 §8.1) used when closing a connection.
const H3_NO_ERROR: quinn::VarInt = quinn::VarInt::from_u32(0x100);
const H3_EXCESSIVE_LOAD: quinn::VarInt = quinn::VarInt::from_u32(0x107);

async fn serve_request(handler: Handler, peer: Arc<Peer>, resolver: RequestResolver, idle: Duration) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(resolved) => resolved,
        Err(e) => {
            tracing::debug!("HTTP/3 request refused: {e}");
            return;
        }
    };
    let (mut send, mut recv) = stream.split();
    // A request that raced the GOAWAY of a revoked connection is refused unread.
    if let Some(refused) = revocation::refusal(&peer, req.version()) {
        let (parts, body) = refused.into_parts();
        if send.send_response(http::Response::from_parts(parts, ())).await.is_ok() {
            if let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) {
                let _ = send.send_data(bytes).await;
            }
            let _ = send.finish().await;
        }
        return;
    }
    // Wait (at most the idle body timeout) for the first piece before routing: a
    // request that ended with its headers gets an empty body, so it is forwarded
    // without one (not as an empty chunked body). A client that sends nothing more is
    // routed anyway, and its body's own idle timer cuts it once it is read.
    let first = tokio::time::timeout(idle, recv.recv_data()).await.ok();
    let body = match first {
        Some(Ok(None)) => ClientBody::empty(),
        first => {
            let declared =
                req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let (tx, rx) = mpsc::channel(4);
            let mut next = first.map(|r| r.map(|b| b.map(|mut b| b.copy_to_bytes(b.remaining()))));
            tokio::spawn(async move {
                loop {
                    let read = match next.take() {
                        Some(read) => read,
                        None => recv.recv_data().await.map(|b| b.map(|mut b| b.copy_to_bytes(b.remaining()))),
                    };
                    let item = match read {
                        Ok(Some(bytes)) => Ok(bytes),
                        Ok(None) => return,
                        Err(e) => Err(ClientBodyError::Stream(e.to_string())),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            ClientBody::channel(rx, Some(idle), declared)
        }
    };
    let response = handler(peer, req.map(|()| body)).await;
    let (parts, mut body) = response.into_parts();
    if let Err(e) = send.send_response(http::Response::from_parts(parts, ())).await {
        tracing::debug!("HTTP/3 response head not sent: {e}");
        return;
    }
    while let Some(frame) = body.frame().await {
        let sent = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => send.send_data(data).await,
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => send.send_trailers(trailers).await,
                    Err(_) => Ok(()),
                },
            },
            Err(e) => {
                tracing::debug!("provider's response body failed: {e}");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        };
        if let Err(e) = sent {
            tracing::debug!("HTTP/3 client went away: {e}");
            return;
        }
    }
    let _ = send.finish().await;
}
