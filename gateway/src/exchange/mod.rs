//! The request pipeline of DESIGN §2, as explicit stages in the order they run:
//!
//! ```text
//! message id → identify → route → authorize → limit → deliver → measure
//! ```
//!
//! Each stage takes what the previous one produced and either returns its output or a
//! [`GatewayError`]; the one mapping of errors to problem+json happens at the end.
//! `measure` runs when the response body has been sent (or on error at once): it
//! counts metrics, the SLA sample and the monitoring record.
//! Later stages (verify, adapt, sign/log) slot in here.

pub mod headers;
pub mod limits;
pub mod replay;
pub mod signatures;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use qaqpa_adapters::ErrorCode;
use qaqpa_certs::CertIdentity;
use qaqpa_routing::split_rest_path;
use tracing::{field, info_span, Instrument};

use crate::delivery::body::Tracked;
use crate::delivery::forward::ProviderPath;
use crate::error::GatewayError;
use crate::exchange::limits::stage::{self as limit_stage, Admission};
use crate::gateway::Gateway;
use crate::observe::telemetry::Exchange;
use crate::runtime::{Client, Route, Runtime};
use crate::server::client_body::ClientBody;
use headers::X_ROAD_CLIENT;

/// Response bodies: the provider's stream passed through (and measured), or a small one of ours.
pub type GatewayBody = Either<Tracked, Full<Bytes>>;

pub fn full_body(bytes: impl Into<Bytes>) -> GatewayBody {
    Either::Right(Full::new(bytes.into()))
}

/// Who is on the other end of a connection, fixed at accept time.
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's identity; `None` on an insecure listener.
    pub certificate: Option<CertIdentity>,
}

/// What the stages produced: the provider's stream passed through, or an answer the
/// gateway built (mediated, or a contract document).
pub enum Reply {
    Stream(Response<Incoming>),
    Built(Response<Bytes>),
}

/// The client's response for a successful reply; measures the exchange when its
/// body has been sent (streams) or at once (built answers).
pub fn respond(reply: Reply, admission: Admission, mut exchange: Exchange) -> Response<GatewayBody> {
    match reply {
        Reply::Stream(response) => {
            let (mut parts, body) = response.into_parts();
            admission.add_headers(&mut parts.headers);
            exchange.response_head(parts.status.as_u16(), None, admission);
            Response::from_parts(parts, Either::Left(Tracked::new(body, exchange)))
        }
        Reply::Built(response) => {
            let (mut parts, body) = response.into_parts();
            admission.add_headers(&mut parts.headers);
            if !parts.headers.contains_key(crate::exchange::headers::X_ROAD_ID) {
                if let Ok(id) = HeaderValue::from_str(exchange.id()) {
                    parts.headers.insert(crate::exchange::headers::X_ROAD_ID, id);
                }
            }
            exchange.response_head(parts.status.as_u16(), None, admission);
            exchange.finish(body.len() as u64);
            Response::from_parts(parts, full_body(body))
        }
    }
}

/// The client's response for a refused or failed exchange, measured at once.
pub fn refuse(mut exchange: Exchange, error: GatewayError) -> Response<GatewayBody> {
    let code = error.code;
    let response = error.into_response(Some(exchange.id()));
    exchange.response_head(response.status().as_u16(), Some(code), Admission::none());
    exchange.finish(0);
    response
}

/// REST path prefix (DESIGN §4).
pub const REST_PREFIX: &str = "/r1/";

pub async fn serve(gateway: Arc<Gateway>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    if crate::faces::xroad_soap::is_soap_call(&req) {
        return crate::faces::xroad_soap::serve(gateway, peer, req).await;
    }
    if crate::faces::xroad_soap::is_wsdl_request(&req) {
        return crate::faces::xroad_soap::serve_wsdl(gateway, peer, req).await;
    }
    if req.uri().path().starts_with(crate::faces::async_mailbox::PREFIX) {
        return crate::faces::async_mailbox::serve(gateway, peer, req).await;
    }
    if req.uri().path().starts_with(crate::faces::async_events::PREFIX) {
        return crate::faces::async_events::serve(gateway, peer, req).await;
    }
    let started = Instant::now();
    let message_id = match headers::message_id(req.headers()) {
        Ok(id) => id,
        Err(why) => {
            // Still an exchange: counted and recorded under a generated id.
            let exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
            return refuse(exchange, GatewayError::new(ErrorCode::BadRequest, why));
        }
    };
    let span = info_span!("exchange", id = %message_id, client = field::Empty, service = field::Empty);
    let runtime = gateway.runtime();
    let mut exchange = Exchange::begin(gateway.clone(), message_id, started);
    let outcome = run_stages(&gateway, &runtime, &peer, req, &mut exchange).instrument(span.clone()).await;
    let response = match outcome {
        Ok((reply, admission)) => respond(reply, admission, exchange),
        Err(e) => refuse(exchange, e),
    };
    span.in_scope(|| {
        let code = response.headers().get(crate::error::X_ROAD_ERROR).and_then(|v| v.to_str().ok());
        tracing::info!(
            status = response.status().as_u16(),
            code = code.unwrap_or(""),
            micros = started.elapsed().as_micros() as u64,
            "exchange done"
        )
    });
    response
}

async fn run_stages(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    mut req: Request<ClientBody>,
    exchange: &mut Exchange,
) -> Result<(Reply, Admission), GatewayError> {
    let client = identify(runtime, peer, req.headers())?;
    tracing::Span::current().record("client", client.id.as_str());
    exchange.set_client(&client);
    let target = route(runtime, req.uri())?;
    let route = target.route;
    tracing::Span::current().record("service", route.id.as_str());
    exchange.set_service(route);
    authorize(route, &client)?;
    if target.rest.as_deref() == Some(OPENAPI_PATH) && req.method() == http::Method::GET {
        if let Some(doc) = crate::faces::contracts::openapi(runtime, route, &req, peer.certificate.is_some()) {
            return Ok((Reply::Built(doc), Admission::none()));
        }
    }
    let admission = limit_stage::admit(gateway, route, &client).await?;
    if route.signature != crate::config::SignaturePolicy::None {
        req = verify(gateway, runtime, route, &client, req, exchange).await?;
    }
    if let (crate::config::ServiceKind::Soap, Some(mediation)) = (route.kind, route.mediation.as_deref()) {
        // A REST client calling a SOAP provider: adapt.
        let rest = target.rest.as_deref().unwrap_or("");
        let (op, params) =
            crate::delivery::mediate::find_operation(mediation, req.method(), rest).ok_or_else(|| {
                GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("{} has no REST operation {} {rest}", route.id, req.method()),
                )
            })?;
        let built =
            crate::delivery::mediate::rest_to_soap(runtime, route, mediation, op, params, req, &client, peer, exchange)
                .await?;
        return Ok((Reply::Built(built), admission));
    }
    let (parts, body) = req.into_parts();
    let body = crate::delivery::body::Source::Stream(body);
    let response =
        crate::delivery::forward::deliver(route, &target.path, parts, body, peer, exchange, &runtime.config.limits)
            .await?;
    if route.sign_responses {
        let id = exchange.id().to_owned();
        let signed = crate::exchange::signatures::sign_response(runtime, route, &client, &id, response).await?;
        return Ok((Reply::Built(signed), admission));
    }
    Ok((Reply::Stream(response), admission))
}

/// Stage: the request's signature (the body is read whole to check it).
pub async fn verify(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    route: &Route,
    client: &Arc<Client>,
    req: Request<ClientBody>,
    exchange: &mut Exchange,
) -> Result<Request<ClientBody>, GatewayError> {
    let message_id = exchange.id().to_owned();
    let limit = runtime.signatures.as_ref().map_or(0, |s| s.max_body_bytes);
    let (mut parts, body) = req.into_parts();
    let bytes = crate::delivery::body::collect_bounded(body, limit).await.map_err(|e| match e {
        crate::delivery::body::Collect::TooLarge => {
            GatewayError::new(ErrorCode::TooLarge, format!("a signed request body is limited to {limit} bytes"))
        }
        crate::delivery::body::Collect::CutOff => {
            GatewayError::new(ErrorCode::BadRequest, "the request body was cut off")
        }
    })?;
    if let Some(value) =
        crate::exchange::signatures::rest(gateway, runtime, route, client, &message_id, &mut parts, &bytes).await?
    {
        exchange.set_signature(value);
    }
    Ok(Request::from_parts(parts, ClientBody::full(bytes)))
}

/// Where a REST request goes.
pub struct Target<'r> {
    pub route: &'r Route,
    pub path: ProviderPath,
    /// The path after the service id, kept only where a stage needs it (mediation,
    /// the OpenAPI document).
    pub rest: Option<String>,
}

impl Target<'_> {
    /// The path after the service id, with the query.
    pub fn rest_and_query(&self) -> String {
        self.path.as_str().to_owned()
    }
}

pub const OPENAPI_PATH: &str = "/openapi.json";

/// Stage: the system that speaks, from its certificate, checked against the
/// `X-Road-Client` it claims.
pub fn identify(runtime: &Runtime, peer: &Peer, headers: &http::HeaderMap) -> Result<Arc<Client>, GatewayError> {
    let claimed = headers
        .get(X_ROAD_CLIENT)
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "X-Road-Client header is required"))?
        .to_str()
        .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "X-Road-Client is not ASCII"))?;
    identify_claim(runtime, peer, claimed)
}

/// The identity check shared by REST (header) and SOAP (X-Road `client` element).
pub fn identify_claim(runtime: &Runtime, peer: &Peer, claimed: &str) -> Result<Arc<Client>, GatewayError> {
    qaqpa_routing::SystemId::parse(claimed)
        .map_err(|e| GatewayError::new(ErrorCode::BadRequest, format!("the client is not a system id: {e}")))?;
    let Some(cert) = &peer.certificate else {
        // Insecure (demo) listener: no certificate, so the claim is taken as is, but
        // only for a registered system.
        return runtime.systems.get(claimed).cloned().ok_or_else(|| {
            GatewayError::new(ErrorCode::IdentityMismatch, format!("{claimed} is not a registered system"))
        });
    };
    let bound = peer_system(runtime, cert).ok_or_else(|| {
        GatewayError::new(ErrorCode::IdentityMismatch, "the client certificate is bound to no registered system")
    })?;
    if bound.id.as_str() != claimed {
        return Err(GatewayError::new(
            ErrorCode::IdentityMismatch,
            format!("the claimed client {claimed} is not the certificate's system {}", bound.id),
        ));
    }
    Ok(bound.clone())
}

/// The registered system a client certificate is bound to (fingerprint first).
pub fn peer_system<'r>(runtime: &'r Runtime, cert: &CertIdentity) -> Option<&'r Arc<Client>> {
    runtime
        .fingerprints
        .get(&cert.sha256)
        .or_else(|| cert.san_system.as_ref().and_then(|s| runtime.systems.get(s.as_str())))
}

/// Stage: the service the path names, and the provider URI the request goes to.
pub fn route<'r>(runtime: &'r Runtime, uri: &Uri) -> Result<Target<'r>, GatewayError> {
    route_under(runtime, uri, REST_PREFIX)
}

/// [`route`] for a path under `prefix` (`/r1/` for REST, `/a1/` for mailboxes).
pub fn route_under<'r>(runtime: &'r Runtime, uri: &Uri, prefix: &str) -> Result<Target<'r>, GatewayError> {
    let path = uri.path().strip_prefix(prefix).ok_or_else(|| {
        GatewayError::new(ErrorCode::BadRequest, format!("path must start with {prefix}{{service id}}"))
    })?;
    let target = split_rest_path(path).map_err(|e| GatewayError::new(ErrorCode::BadRequest, e.to_string()))?;
    let (route, rest) = runtime.routes.resolve(target).ok_or_else(|| {
        GatewayError::new(ErrorCode::UnknownService, format!("no service {} is registered", target.key))
    })?;
    let keep = route.mediation.is_some() || rest == OPENAPI_PATH;
    Ok(Target { route, path: ProviderPath::new(rest, uri.query()), rest: keep.then(|| rest.to_owned()) })
}

/// Stage: the data owner's access list.
pub fn authorize(route: &Route, client: &Client) -> Result<(), GatewayError> {
    if route.access.allows(client.id.as_str()) {
        Ok(())
    } else {
        Err(GatewayError::new(ErrorCode::AccessDenied, format!("{} may not call {}", client.id, route.id)))
    }
}
