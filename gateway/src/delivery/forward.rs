//! Stage: deliver a request to the provider (over the downstream connection's own
//! upstream connection, or the service's pool: `delivery::direct`) and bring its
//! response back, bodies streamed both ways.

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{Request, Response, Uri};

use hyper::body::Incoming;
use qaqpa_adapters::ErrorCode;

use super::direct::SendError;
use crate::body::{ForwardBody, Source};
use crate::config::Limits;
use crate::error::GatewayError;
use crate::headers::{self, X_ROAD_ID, X_ROAD_REQUEST_HASH, X_ROAD_REQUEST_ID};
use crate::observe::body_outcome::Outcome;
use crate::observe::record::ExchangeRecord;
use crate::peer::Peer;
use crate::runtime::{Route, Upstream};

/// The part of the provider URI that comes from the client: the rest of its path
/// after the service id, and its query. Each endpoint puts its own base in front.
#[derive(Debug, Clone)]
pub struct ProviderPath {
    path: String,
    /// The answer carries X-Road's REST `X-Road-Request-Hash`: only the REST face's
    /// client reads it, so only its exchanges pay the head's SHA-512 for it.
    request_hash: bool,
}

impl ProviderPath {
    pub fn new(rest: &str, query: Option<&str>) -> Self {
        let mut path = String::with_capacity(rest.len() + query.map_or(0, |q| q.len() + 1));
        path.push_str(rest);
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
        Self { path, request_hash: false }
    }

    /// The same path, answered with `X-Road-Request-Hash` (the REST face).
    pub fn with_request_hash(mut self) -> Self {
        self.request_hash = true;
        self
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }
}

fn endpoint_uri(upstream: &Upstream, path: &ProviderPath) -> Result<Uri, GatewayError> {
    let mut path_and_query = String::with_capacity(upstream.base_path.len() + path.path.len() + 1);
    path_and_query.push_str(&upstream.base_path);
    if !path.path.starts_with('/') {
        // An empty rest, or only a query: the base path itself (or "/").
        if upstream.base_path.is_empty() {
            path_and_query.push('/');
        }
    }
    path_and_query.push_str(&path.path);
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "path or query cannot be forwarded"))
}

/// Methods a retry cannot turn into a second effect.
fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::PUT | http::Method::DELETE
    )
}

pub async fn deliver(
    route: &Route,
    path: &ProviderPath,
    mut parts: http::request::Parts,
    body: Source,
    peer: &Peer,
    exchange: &mut ExchangeRecord,
    limits: &Limits,
) -> Result<Response<Incoming>, GatewayError> {
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large(limits.max_body_bytes));
    }
    // X-Road's consumer side names each exchange with a fresh UUID; the provider
    // gets it, the client gets it back, and the request hash covers it.
    // Encoded on the stack: the header value is the one allocation it needs.
    let mut request_id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let request_id = &*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut request_id);
    let message_id = exchange.id();
    let head_digest = path.request_hash.then(|| headers::request_head_digest(&parts, request_id, message_id));
    let id_value = HeaderValue::from_str(message_id).expect("message ids are validated header values");
    // A body the gateway holds whole (possibly changed: signed on behalf) goes with
    // its own length, whatever the client declared.
    if let Source::Buffered(buffered) = &body {
        let len = buffered.as_ref().map_or(0, |b| b.len());
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    route.retry_budget.deposit();
    let mut endpoint = route.pick(None).ok_or_else(|| all_open(route))?;
    // A request without a body whose method (or service) is idempotent may be sent
    // again to another endpoint when the first refused the connection (only worth
    // keeping its head when there is another endpoint).
    let retryable =
        route.upstreams.len() > 1 && body.is_end_stream() && (idempotent(&parts.method) || route.idempotent);
    let (body, mut outcome) = ForwardBody::new(body, limits.max_body_bytes);

    headers::strip_hop_by_hop(&mut parts.headers);
    // Room for the five fields added below at once, not a map rebuilt on the way.
    parts.headers.reserve(5);
    parts.headers.remove(http::header::HOST);
    // X-Road forwards neither the client's User-Agent nor a request id or hash of
    // the client's making (`RestRequest`, `RestMessage.SKIPPED_HEADERS`).
    parts.headers.remove(http::header::USER_AGENT);
    parts.headers.remove(X_ROAD_REQUEST_HASH);
    let request_id_value = HeaderValue::from_str(request_id).expect("a UUID is a valid header value");
    parts.headers.insert(X_ROAD_REQUEST_ID, request_id_value.clone());
    headers::add_forwarded(&mut parts.headers, peer.addr, peer.certificate.is_some());
    parts.headers.insert(X_ROAD_ID, id_value.clone());
    parts.uri = endpoint_uri(&route.upstreams[endpoint], path)?;
    // The client's HTTP version is its own business; the upstream connection has its own.
    parts.version = http::Version::HTTP_11;
    let retry_head = retryable.then(|| (parts.method.clone(), parts.headers.clone()));
    let mut upstream_req = Request::from_parts(parts, body);

    if exchange.forwarding().await.is_err() {
        return Err(GatewayError::new(ErrorCode::LogUnavailable, "the message log cannot record the forwarding"));
    }
    let sent = exchange.request_out(outcome.clone());
    let mut retried = false;
    let response = loop {
        let health = &route.upstreams[endpoint].health;
        let in_flight = health.enter();
        let result =
            tokio::time::timeout(route.timeout, super::direct::send(route, endpoint, peer, upstream_req)).await;
        drop(in_flight);
        match result {
            Ok(Ok(response)) => {
                health.on_success();
                break response;
            }
            Ok(Err(e)) => {
                // A body the client cut off or made too large is the client's failure:
                // it must not count against the endpoint (or one client could open
                // the breaker for everyone).
                match outcome.get() {
                    Outcome::TooLarge => return Err(too_large(limits.max_body_bytes)),
                    Outcome::ClientAborted => {
                        return Err(GatewayError::new(ErrorCode::BadRequest, "the request body was cut off"))
                    }
                    Outcome::ClientIdle => {
                        return Err(GatewayError::new(
                            ErrorCode::BadRequest,
                            "the client stopped sending the request body (idle body timeout)",
                        ))
                    }
                    _ => health.on_failure(&route.breaker, crate::limits::now_ns()),
                }
                let next = match (&retry_head, e.is_connect() && !retried) {
                    (Some(_), true) if route.retry_budget.try_withdraw() => route.pick(Some(endpoint)),
                    _ => None,
                };
                if let (Some(next), Some((method, headers))) = (next, &retry_head) {
                    tracing::debug!(error = %e, "provider endpoint refused; retrying on another");
                    retried = true;
                    endpoint = next;
                    let (body, fresh) = ForwardBody::new(Source::Buffered(None), limits.max_body_bytes);
                    outcome = fresh;
                    let mut req = Request::new(body);
                    *req.method_mut() = method.clone();
                    *req.headers_mut() = headers.clone();
                    *req.uri_mut() = endpoint_uri(&route.upstreams[endpoint], path)?;
                    upstream_req = req;
                    continue;
                }
                return Err(unavailable(route, &e));
            }
            Err(_) => {
                health.on_failure(&route.breaker, crate::limits::now_ns());
                return Err(GatewayError::new(
                    ErrorCode::UpstreamTimeout,
                    format!("{} did not answer within {}", route.id, humantime::format_duration(route.timeout)),
                ));
            }
        }
    };

    exchange.response_in(sent);
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(X_ROAD_ID, id_value);
    parts.headers.insert(X_ROAD_REQUEST_ID, request_id_value);
    // A provider that answers before reading the whole request gets no hash: the
    // request as received is not known yet.
    match (head_digest, outcome.get()) {
        (Some(head), Outcome::Complete(body_digest)) => {
            parts.headers.insert(X_ROAD_REQUEST_HASH, headers::xroad_request_hash(&head, &body_digest));
        }
        _ => {
            parts.headers.remove(X_ROAD_REQUEST_HASH);
        }
    }
    Ok(Response::from_parts(parts, body))
}

fn all_open(route: &Route) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamUnavailable,
        format!("every provider endpoint of {} is failing (circuit open); retry later", route.id),
    )
}

fn too_large(limit: u64) -> GatewayError {
    GatewayError::new(ErrorCode::TooLarge, format!("request body exceeds the limit of {limit} bytes"))
}

fn unavailable(route: &Route, e: &SendError) -> GatewayError {
    let what = if e.is_connect() { "refused the connection" } else { "closed or reset the connection" };
    tracing::debug!(error = %e, "upstream failed");
    GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider of {} {what}", route.id))
}
