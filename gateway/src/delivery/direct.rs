//! Upstream HTTP/1.1 connections driven by the downstream connection that uses
//! them, instead of the service's shared pool.
//!
//! A downstream connection keeps one `client::conn::http1` sender per provider
//! endpoint, opened on first use and reused by its next requests: no pool
//! checkout, no task spawned per request to hand the connection back (the pool's
//! share of an exchange's cost, docs/PERFORMANCE.md "#20 cost budget"). Where this
//! does not fit, the request goes through the pool as before: endpoints whose
//! protocol ALPN or h2c decides, the gateway's own deliveries (no downstream
//! connection), and a sender another stream of the same HTTP/2 or HTTP/3
//! connection is using.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service;

use crate::body::ForwardBody;
use crate::peer::Peer;
use crate::runtime::{Route, Upstream};

/// Endpoints one downstream connection keeps a connection to. A client calling
/// more services than this over one connection has the least recently used one
/// closed; past it, with every kept connection busy, requests use the pool.
const MAX_ENDPOINTS: usize = 4;

/// Connections downstream connections keep to one endpoint, at most; past it new
/// ones go through the pool. Each downstream connection may keep one, and a
/// provider's connection count must not grow with every client's idle ones.
const MAX_PER_ENDPOINT: usize = 256;

/// The upstream connections of one downstream connection, by endpoint.
#[derive(Default)]
pub struct DirectConns {
    /// Least recently returned first. `None`: the endpoint's connection is in use
    /// (or being opened) by a request of this connection.
    slots: Mutex<Vec<(u64, Option<SendRequest<ForwardBody>>)>>,
}

enum Checkout {
    Reuse(SendRequest<ForwardBody>),
    Open,
    /// Held by another request of this connection, or no slot free: the pool's.
    Busy,
}

impl DirectConns {
    /// `may_open`: whether the endpoint has room for another connection.
    fn checkout(&self, endpoint: u64, may_open: bool) -> Checkout {
        let mut slots = self.slots.lock().expect("direct connection slots");
        if let Some(i) = slots.iter().position(|(id, _)| *id == endpoint) {
            let slot = &mut slots[i].1;
            let Some(sender) = slot else { return Checkout::Busy };
            if sender.is_closed() {
                if !may_open {
                    slots.remove(i);
                    return Checkout::Busy;
                }
                *slot = None;
                return Checkout::Open;
            }
            // A connection still finishing the previous response's body (an HTTP/2
            // stream of this connection is reading it) is not waited for.
            if !sender.is_ready() {
                return Checkout::Busy;
            }
            return Checkout::Reuse(slot.take().expect("checked above"));
        }
        if !may_open {
            return Checkout::Busy;
        }
        if slots.len() >= MAX_ENDPOINTS {
            let Some(idle) = slots.iter().position(|(_, s)| s.is_some()) else { return Checkout::Busy };
            slots.remove(idle);
        }
        slots.push((endpoint, None));
        Checkout::Open
    }

    fn checkin(&self, endpoint: u64, sender: SendRequest<ForwardBody>) {
        let mut slots = self.slots.lock().expect("direct connection slots");
        if let Some(i) = slots.iter().position(|(id, _)| *id == endpoint) {
            slots.remove(i);
        }
        slots.push((endpoint, Some(sender)));
    }

    fn release(&self, endpoint: u64) {
        let mut slots = self.slots.lock().expect("direct connection slots");
        slots.retain(|(id, s)| *id != endpoint || s.is_some());
    }
}

/// A slot taken for one request: given back with its sender once the response
/// head is in, or freed if the request fails or is dropped (timeout).
struct Lease<'a> {
    conns: &'a DirectConns,
    endpoint: u64,
    returned: bool,
}

impl Lease<'_> {
    fn give_back(mut self, sender: SendRequest<ForwardBody>) {
        self.returned = true;
        self.conns.checkin(self.endpoint, sender);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.returned {
            self.conns.release(self.endpoint);
        }
    }
}

/// Why a request got no response head from the provider.
#[derive(Debug)]
pub enum SendError {
    Pool(hyper_util::client::legacy::Error),
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Request(hyper::Error),
}

impl SendError {
    /// The provider was never reached: the request can go to another endpoint.
    pub fn is_connect(&self) -> bool {
        match self {
            SendError::Pool(e) => e.is_connect(),
            SendError::Connect(_) => true,
            SendError::Request(_) => false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Pool(e) => write!(f, "{e}"),
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Request(e) => write!(f, "{e}"),
        }
    }
}

/// Sends `req` (absolute URI of `route.upstreams[endpoint]`) and waits for the
/// response head: over the downstream connection's own upstream connection when
/// it has one to spare, else through the service's pool.
pub async fn send(
    route: &Route,
    endpoint: usize,
    peer: &Peer,
    mut req: Request<ForwardBody>,
) -> Result<Response<Incoming>, SendError> {
    let upstream = &route.upstreams[endpoint];
    let conns = match &peer.upstreams {
        Some(conns) if upstream.direct && req.method() != http::Method::CONNECT => conns,
        _ => return route.pool.request(req).await.map_err(SendError::Pool),
    };
    let may_open = upstream.direct_open.load(Ordering::Relaxed) < MAX_PER_ENDPOINT;
    let checkout = conns.checkout(upstream.id, may_open);
    if let Checkout::Busy = checkout {
        return route.pool.request(req).await.map_err(SendError::Pool);
    }
    let lease = Lease { conns, endpoint: upstream.id, returned: false };
    to_origin_form(upstream, &mut req);
    if let Checkout::Reuse(mut sender) = checkout {
        match sender.try_send_request(req).await {
            Ok(response) => {
                lease.give_back(sender);
                return Ok(response);
            }
            // The connection closed before the request was written (the provider
            // ended an idle keep-alive): the request goes on a fresh one, as the
            // pool retries such a request.
            Err(mut e) => match e.take_message() {
                Some(unsent) => req = unsent,
                None => return Err(SendError::Request(e.into_error())),
            },
        }
    }
    // Boxed: opening is once per connection, and inline its future would make every
    // exchange's future (moved into its box per request) kilobytes larger.
    let mut sender = Box::pin(open(route, upstream)).await?;
    let response = sender.send_request(req).await.map_err(SendError::Request)?;
    lease.give_back(sender);
    Ok(response)
}

/// What the pool does to a request for an HTTP/1.1 connection of its own: the
/// path and query alone on the request line, the endpoint's host in `Host`.
fn to_origin_form(upstream: &Upstream, req: &mut Request<ForwardBody>) {
    let uri = std::mem::take(req.uri_mut()).into_parts();
    let mut origin = http::uri::Parts::default();
    origin.path_and_query = uri.path_and_query;
    *req.uri_mut() = Uri::from_parts(origin).unwrap_or_default();
    req.headers_mut().insert(http::header::HOST, upstream.host.clone());
}

/// A new connection to `upstream` with the pool's connector (its connect timeout,
/// TCP options and TLS), its driver spawned for as long as a sender holds it.
async fn open(route: &Route, upstream: &Upstream) -> Result<SendRequest<ForwardBody>, SendError> {
    let mut connector = route.connector.clone();
    std::future::poll_fn(|cx| connector.poll_ready(cx)).await.map_err(SendError::Connect)?;
    let io = connector.call(upstream.origin.clone()).await.map_err(SendError::Connect)?;
    let (sender, connection) =
        http1::Builder::new().handshake(io).await.map_err(|e| SendError::Connect(Box::new(e)))?;
    let open = upstream.direct_open.clone();
    open.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
        open.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(sender)
}
