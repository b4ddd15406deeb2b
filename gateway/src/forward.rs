//! Stage: deliver a request to the provider over the service's pooled client and
//! bring its response back, bodies streamed both ways.

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{Request, Response, Uri};

use hyper::body::Incoming;
use qaqpa_adapters::ErrorCode;

use crate::body::{ForwardBody, Outcome, Source};
use crate::config::Limits;
use crate::error::GatewayError;
use crate::headers::{self, X_ROAD_ID, X_ROAD_REQUEST_HASH};
use crate::pipeline::Peer;
use crate::runtime::Route;
use crate::telemetry::Exchange;

/// The provider URI: an upstream's base, the rest of the client's path, its query.
pub fn upstream_uri(route: &Route, rest: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
    let index = route.balance.pick(route.upstreams.len()).unwrap_or(0);
    let upstream =
        route.upstreams.get(index).ok_or_else(|| GatewayError::new(ErrorCode::Internal, "service has no upstream"))?;
    let mut path_and_query = String::with_capacity(upstream.base_path.len() + rest.len() + 64);
    path_and_query.push_str(&upstream.base_path);
    path_and_query.push_str(rest);
    if path_and_query.is_empty() {
        path_and_query.push('/');
    }
    if let Some(q) = query {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "path or query cannot be forwarded"))
}

pub async fn deliver(
    route: &Route,
    upstream_uri: Uri,
    mut parts: http::request::Parts,
    body: Source,
    peer: &Peer,
    exchange: &mut Exchange,
    limits: &Limits,
) -> Result<Response<Incoming>, GatewayError> {
    let message_id = exchange.id().to_owned();
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large(limits.max_body_bytes));
    }
    let head_digest = headers::request_head_digest(&parts);
    let (body, outcome) = ForwardBody::new(body, limits.max_body_bytes);

    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(http::header::HOST);
    headers::add_forwarded(&mut parts.headers, peer.addr, peer.certificate.is_some());
    let id_value = HeaderValue::from_str(&message_id).expect("message ids are validated header values");
    parts.headers.insert(X_ROAD_ID, id_value.clone());
    parts.uri = upstream_uri;
    // The client's HTTP version is its own business; the pool picks the provider's.
    parts.version = http::Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, body);

    let sent = exchange.request_out(outcome.clone());
    let response = match tokio::time::timeout(route.timeout, route.client.request(upstream_req)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            return Err(match outcome.get() {
                Outcome::TooLarge => too_large(limits.max_body_bytes),
                Outcome::ClientAborted => GatewayError::new(ErrorCode::BadRequest, "the request body was cut off"),
                _ => unavailable(route, &e),
            })
        }
        Err(_) => {
            return Err(GatewayError::new(
                ErrorCode::UpstreamTimeout,
                format!("{} did not answer within {}", route.id, humantime::format_duration(route.timeout)),
            ))
        }
    };

    exchange.response_in(sent);
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(X_ROAD_ID, id_value);
    // A provider that answers before reading the whole request gets no hash: the
    // request as received is not known yet.
    if let Outcome::Complete(body_digest) = outcome.get() {
        parts.headers.insert(X_ROAD_REQUEST_HASH, headers::request_hash(&head_digest, &body_digest));
    }
    Ok(Response::from_parts(parts, body))
}

fn too_large(limit: u64) -> GatewayError {
    GatewayError::new(ErrorCode::TooLarge, format!("request body exceeds the limit of {limit} bytes"))
}

fn unavailable(route: &Route, e: &hyper_util::client::legacy::Error) -> GatewayError {
    let what = if e.is_connect() { "refused the connection" } else { "closed or reset the connection" };
    tracing::debug!(error = %e, "upstream failed");
    GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider of {} {what}", route.id))
}
