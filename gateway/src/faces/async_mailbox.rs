//! The `/a1/` operations of DESIGN §4 over HTTP:
//!
//! | call | who | answer |
//! |---|---|---|
//! | `POST /a1/{service id}[/{path}]` | a client with access | `202 {"id"}`; a resend: the same id |
//! | `GET /a1/inbox/{system}?wait=30s[&max=N]` | the provider system | the next request, or `204` |
//! | `POST /a1/reply/{id}` | the provider | `202`; the answer waits in the client's outbox |
//! | `GET /a1/outbox/{system}?wait=30s[&max=N]` | the client system | the next answer, or `204` |
//! | `POST /a1/ack/{id}` | the message's owner | `200` |
//!
//! One message comes back as itself: its body, its content type and `Qaqpa-Message-Id`,
//! `X-Road-Client`, `X-Road-Service`, `X-Road-Id`, `Qaqpa-Attempt` (and for answers
//! `Qaqpa-Status`). `max=N` (N > 1) returns a JSON list with base64 bodies instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use qaqpa_adapters::ErrorCode;
use tracing::Instrument;

use crate::config::MailboxMode;
use crate::error::GatewayError;
use crate::exchange::headers::{self, X_ROAD_CLIENT, X_ROAD_ID};
use crate::exchange::limits::stage::Admission;
use crate::exchange::{self, GatewayBody, Peer, Reply};
use crate::gateway::Gateway;
use crate::mailbox::{Delivery, Envelope, Kind, MailboxError, Queue, Sent};
use crate::observe::telemetry::Exchange;
use crate::runtime::{Client, Runtime};
use crate::server::client_body::ClientBody;

pub const PREFIX: &str = "/a1/";
pub const MESSAGE_ID: &str = "qaqpa-message-id";
pub const ATTEMPT: &str = "qaqpa-attempt";
pub const STATUS: &str = "qaqpa-status";
/// Headers kept with an async message and given back on delivery.
const CARRIED: [&str; 4] = ["content-type", "x-road-userid", "x-road-issue", "soapaction"];
/// Messages one take returns at most.
const MAX_TAKE: usize = 100;

impl From<MailboxError> for GatewayError {
    fn from(e: MailboxError) -> Self {
        match e {
            MailboxError::Unknown(_) | MailboxError::NotDelivered(_) => {
                GatewayError::new(ErrorCode::UnknownMessage, e.to_string())
            }
            MailboxError::Full(_) => GatewayError::new(ErrorCode::Overloaded, e.to_string()),
            MailboxError::Store(detail) => {
                tracing::error!("mailbox store failed: {detail}");
                GatewayError::new(ErrorCode::Internal, "the mailbox store failed")
            }
        }
    }
}

pub async fn serve(gateway: Arc<Gateway>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    serve_as(Api::Mailboxes, gateway, peer, req).await
}

/// Which asynchronous API a request is for.
#[derive(Clone, Copy)]
pub(super) enum Api {
    Mailboxes,
    Events,
}

/// An `/a1` or `/e1` call as one exchange: its message id, span, monitoring record
/// and log record, and its one mapping of errors to problem+json.
pub(super) async fn serve_as(
    api: Api,
    gateway: Arc<Gateway>,
    peer: Arc<Peer>,
    req: Request<ClientBody>,
) -> Response<GatewayBody> {
    let started = Instant::now();
    let message_id = match headers::message_id(req.headers()) {
        Ok(id) => id,
        Err(why) => {
            let exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
            return exchange::refuse(exchange, GatewayError::new(ErrorCode::BadRequest, why));
        }
    };
    let span = tracing::info_span!("async", id = %message_id);
    let mut exchange = Exchange::begin(gateway.clone(), message_id, started);
    let runtime = gateway.runtime();
    let outcome = match api {
        Api::Mailboxes => dispatch(&gateway, &runtime, &peer, req, &mut exchange).instrument(span).await,
        Api::Events => {
            super::async_events::dispatch(&gateway, &runtime, &peer, req, &mut exchange).instrument(span).await
        }
    };
    match outcome {
        Ok(built) => exchange::respond(Reply::Built(built), Admission::none(), exchange),
        Err(e) => exchange::refuse(exchange, e),
    }
}

async fn dispatch(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: Request<ClientBody>,
    exchange: &mut Exchange,
) -> Result<Response<Bytes>, GatewayError> {
    let path = req.uri().path().strip_prefix(PREFIX).unwrap_or("").to_owned();
    let params = crate::admin::parse_query(req.uri().query().unwrap_or(""));
    let (operation, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
    match (req.method(), operation) {
        (&Method::GET, "inbox") => take(gateway, runtime, peer, &req, Kind::Request, rest, &params, exchange).await,
        (&Method::GET, "outbox") => take(gateway, runtime, peer, &req, Kind::Response, rest, &params, exchange).await,
        (&Method::POST, "reply") => reply(gateway, runtime, peer, req, &mid_of(rest)?, exchange).await,
        (&Method::POST, "ack") => {
            let mid = mid_of(rest)?;
            let client = caller(runtime, peer, req.headers(), None)?;
            exchange.set_client(&client);
            exchange.set_subject("a1/ack");
            gateway.mailboxes.ack(mid, client.id.as_str()).await?;
            gateway.telemetry.metrics.mailbox_events.with_label_values(&["acked"]).inc();
            Ok(json(StatusCode::OK, serde_json::json!({ "id": mid, "acked": true })))
        }
        (&Method::POST, _) => send(gateway, runtime, peer, req, exchange).await,
        _ => Err(GatewayError::new(ErrorCode::BadRequest, "no such asynchronous operation")),
    }
}

/// A long-poll answers "nothing yet" (`204`) as soon as the gateway starts draining,
/// so shutdown does not wait out `?wait=`. A message leased in that very instant is
/// not lost: it comes back after its visibility timeout (at once on a restart).
pub(super) async fn unless_draining<T: Default>(
    gateway: &Gateway,
    poll: impl std::future::Future<Output = Result<T, MailboxError>>,
) -> Result<T, MailboxError> {
    tokio::select! {
        biased;
        polled = poll => polled,
        () = gateway.draining() => Ok(T::default()),
    }
}

/// `wait` (a duration, capped at `mailbox.max_wait`; default 0) and `max` (1..=100; default 1).
pub(super) fn wait_and_max(
    runtime: &Runtime,
    params: &std::collections::HashMap<String, String>,
) -> Result<(Duration, usize), GatewayError> {
    let wait = match params.get("wait") {
        None => Duration::ZERO,
        Some(w) => humantime::parse_duration(w)
            .or_else(|_| w.parse::<u64>().map(Duration::from_secs))
            .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "wait must be a duration like 30s"))?
            .min(runtime.config.mailbox.max_wait),
    };
    let max = match params.get("max").map(|m| m.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=MAX_TAKE).contains(&n) => n,
        Some(_) => return Err(GatewayError::new(ErrorCode::BadRequest, format!("max must be 1..={MAX_TAKE}"))),
    };
    Ok((wait, max))
}

/// The service's config, if it takes asynchronous requests.
pub(super) fn mailbox_service(route: &crate::runtime::Route) -> Result<(), GatewayError> {
    match route.mailbox {
        MailboxMode::None => Err(GatewayError::new(
            ErrorCode::BadRequest,
            format!("{} takes no asynchronous requests (mailbox = \"none\")", route.id),
        )),
        MailboxMode::Pull | MailboxMode::Push => Ok(()),
    }
}

/// The queues a system takes from: its services' pull mailboxes, or its outbox.
pub(super) fn queues(runtime: &Runtime, system: &str, kind: Kind) -> Vec<Queue> {
    match kind {
        Kind::Request => runtime
            .config
            .services
            .iter()
            .filter(|s| s.mailbox == MailboxMode::Pull && s.id.system().as_str() == system)
            .map(|s| Queue::Requests(s.id.to_string()))
            .collect(),
        Kind::Response => vec![Queue::Responses(system.to_owned())],
    }
}

/// Puts a stored message's carried headers on its delivery.
pub(crate) fn put_carried(h: &mut HeaderMap, carried: &[(String, String)]) {
    for (name, value) in carried {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            h.insert(name, value);
        }
    }
}

fn mid_of(text: &str) -> Result<uuid::Uuid, GatewayError> {
    uuid::Uuid::parse_str(text).map_err(|_| GatewayError::new(ErrorCode::BadRequest, "the message id must be a UUID"))
}

/// The system speaking: its certificate's (checked against `X-Road-Client` and, for
/// inbox and outbox, against the system the path names).
fn caller(
    runtime: &Runtime,
    peer: &Peer,
    headers: &HeaderMap,
    named: Option<&str>,
) -> Result<Arc<Client>, GatewayError> {
    let header = headers.get(X_ROAD_CLIENT).and_then(|v| v.to_str().ok());
    let claimed = match (header, named) {
        (Some(h), Some(n)) if h != n => {
            return Err(GatewayError::new(
                ErrorCode::IdentityMismatch,
                format!("X-Road-Client {h} may not read the mailbox of {n}"),
            ))
        }
        (Some(h), _) => h,
        (None, Some(n)) => n,
        (None, None) => return Err(GatewayError::new(ErrorCode::BadRequest, "X-Road-Client header is required")),
    };
    exchange::identify_claim(runtime, peer, claimed)
}

pub(super) async fn read_body(runtime: &Runtime, body: ClientBody) -> Result<Bytes, GatewayError> {
    let limit = runtime.config.mailbox.max_message_bytes;
    crate::delivery::body::collect_bounded(body, limit).await.map_err(|e| match e {
        crate::delivery::body::Collect::TooLarge => {
            GatewayError::new(ErrorCode::TooLarge, format!("an asynchronous message is limited to {limit} bytes"))
        }
        crate::delivery::body::Collect::CutOff => {
            GatewayError::new(ErrorCode::BadRequest, "the request body was cut off")
        }
    })
}

pub(super) fn carried(headers: &HeaderMap) -> Vec<(String, String)> {
    pick(headers, &CARRIED)
}

/// The named headers that are present and text, to store with a message.
pub(crate) fn pick(headers: &HeaderMap, names: &[&str]) -> Vec<(String, String)> {
    names.iter().filter_map(|name| Some(((*name).to_owned(), headers.get(*name)?.to_str().ok()?.to_owned()))).collect()
}

async fn send(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    mut req: Request<ClientBody>,
    exchange: &mut Exchange,
) -> Result<Response<Bytes>, GatewayError> {
    let client = exchange::identify(runtime, peer, req.headers())?;
    exchange.set_client(&client);
    let target = exchange::route_under(runtime, req.uri(), PREFIX)?;
    let route = target.route;
    exchange.set_service(route);
    exchange::authorize(route, &client)?;
    mailbox_service(route)?;
    let admission = crate::exchange::limits::stage::admit(gateway, route, &client).await?;
    if route.signature != crate::config::SignaturePolicy::None {
        req = exchange::verify(gateway, runtime, route, &client, req, exchange).await?;
    }
    let (parts, body) = req.into_parts();
    let body = read_body(runtime, body).await?;
    exchange.set_request_body(&body);
    let envelope = Envelope::request(
        client.id.as_str(),
        route.id.as_str(),
        exchange.id(),
        target.rest_and_query(),
        carried(&parts.headers),
        route.ordered,
    );
    let sent = gateway.mailboxes.send(envelope, body).await?;
    drop(admission);
    let duplicate = count_sent(gateway, sent);
    let mut response = json(
        StatusCode::ACCEPTED,
        serde_json::json!({ "id": sent.mid(), "message_id": exchange.id(), "duplicate": duplicate }),
    );
    response.headers_mut().insert(MESSAGE_ID, header(&sent.mid().to_string()));
    Ok(response)
}

/// Counts a send by its outcome; true for a duplicate (nothing new was stored).
pub(super) fn count_sent(gateway: &Gateway, sent: Sent) -> bool {
    let (event, duplicate) = match sent {
        Sent::New(_) => ("sent", false),
        Sent::Duplicate(_) => ("duplicate", true),
    };
    gateway.telemetry.metrics.mailbox_events.with_label_values(&[event]).inc();
    duplicate
}

#[allow(clippy::too_many_arguments)]
async fn take(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: &Request<ClientBody>,
    kind: Kind,
    system: &str,
    params: &std::collections::HashMap<String, String>,
    exchange: &mut Exchange,
) -> Result<Response<Bytes>, GatewayError> {
    let client = caller(runtime, peer, req.headers(), Some(system))?;
    exchange.set_client(&client);
    let (wait, max) = wait_and_max(runtime, params)?;
    exchange.set_subject(match kind {
        Kind::Request => "a1/inbox",
        Kind::Response => "a1/outbox",
    });
    let queues = queues(runtime, client.id.as_str(), kind);
    if queues.is_empty() {
        return Err(GatewayError::new(ErrorCode::BadRequest, format!("{} provides no pull mailbox", client.id)));
    }
    let deliveries = unless_draining(gateway, gateway.mailboxes.take(&queues, max, wait)).await?;
    gateway.telemetry.metrics.mailbox_events.with_label_values(&["delivered"]).inc_by(deliveries.len() as u64);
    if max == 1 {
        return Ok(match deliveries.into_iter().next() {
            Some(d) => raw(d),
            None => empty(StatusCode::NO_CONTENT),
        });
    }
    let list: Vec<serde_json::Value> = deliveries.iter().map(listed).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(list)))
}

async fn reply(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: Request<ClientBody>,
    mid: &uuid::Uuid,
    exchange: &mut Exchange,
) -> Result<Response<Bytes>, GatewayError> {
    let provider = caller(runtime, peer, req.headers(), None)?;
    exchange.set_client(&provider);
    exchange.set_subject("a1/reply");
    let status = match req.headers().get(STATUS).map(|v| v.to_str().ok().and_then(|s| s.parse::<u16>().ok())) {
        None => 200,
        Some(Some(s)) if (200..=599).contains(&s) => s,
        Some(_) => return Err(GatewayError::new(ErrorCode::BadRequest, "Qaqpa-Status must be an HTTP status")),
    };
    let (parts, body) = req.into_parts();
    let body = read_body(runtime, body).await?;
    exchange.set_request_body(&body);
    gateway.mailboxes.reply(*mid, provider.id.as_str(), status, carried(&parts.headers), body).await?;
    gateway.telemetry.metrics.mailbox_events.with_label_values(&["replied"]).inc();
    Ok(json(StatusCode::ACCEPTED, serde_json::json!({ "id": mid })))
}

pub(super) fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// One delivered message as an HTTP response of its own.
fn raw(d: Delivery) -> Response<Bytes> {
    let e = &d.envelope;
    let mut response = Response::new(d.body.clone());
    let h = response.headers_mut();
    put_carried(h, &e.headers);
    h.insert(MESSAGE_ID, header(&e.mid.to_string()));
    h.insert(X_ROAD_CLIENT, header(&e.client));
    h.insert("x-road-service", header(&e.service));
    h.insert(ATTEMPT, HeaderValue::from(e.attempts));
    if !e.path.is_empty() {
        h.insert("qaqpa-path", header(&e.path));
    }
    if let Some(status) = e.status {
        h.insert(STATUS, HeaderValue::from(status));
    }
    // The client's own id (the pipeline keeps an X-Road-Id already set).
    h.insert(X_ROAD_ID, header(&e.message_id));
    response
}

fn listed(d: &Delivery) -> serde_json::Value {
    let e = &d.envelope;
    serde_json::json!({
        "id": e.mid,
        "client": e.client,
        "service": e.service,
        "message_id": e.message_id,
        "path": e.path,
        "attempt": e.attempts,
        "status": e.status,
        "headers": e.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "body": base64::engine::general_purpose::STANDARD.encode(&d.body),
    })
}

pub(super) fn json(status: StatusCode, value: serde_json::Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn empty(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}
