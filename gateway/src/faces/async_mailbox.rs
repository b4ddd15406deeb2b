//! The `/a1/` operations of docs/asynchronous.md over HTTP:
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
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use qaqpa_adapters::ErrorCode;

use crate::body::client::ClientBody;
use crate::body::GatewayBody;
use crate::config::MailboxMode;
use crate::error::GatewayError;
use crate::exchange::{self, Ctx, Face, Outcome, Peer};
use crate::headers::{self, X_ROAD_CLIENT, X_ROAD_ID};
use crate::mailbox::wire::{carried, put_carried, ATTEMPT, MESSAGE_ID, STATUS};
use crate::mailbox::{Delivery, Kind, MailboxError, MessageMeta, Queue, Sent};
use crate::observe::record::{ExchangeRecord, Step};
use crate::runtime::{Client, Runtime};
use crate::shared::Shared;

pub const PREFIX: &str = "/a1/";
/// Messages one take returns at most.
const MAX_TAKE: usize = 100;

impl From<MailboxError> for GatewayError {
    fn from(e: MailboxError) -> Self {
        match e {
            MailboxError::Unknown(_) | MailboxError::NotDelivered(_) => {
                GatewayError::new(ErrorCode::UnknownMessage, e.to_string())
            }
            MailboxError::Full(_) => GatewayError::new(ErrorCode::Overloaded, e.to_string()),
            MailboxError::Unavailable(detail) => {
                tracing::warn!("mailbox store unavailable: {detail}");
                // Nothing was stored: the client resends (the same id is deduplicated).
                GatewayError::new(ErrorCode::StoreUnavailable, "the mailbox store is unavailable; retry")
                    .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("2"))
            }
            MailboxError::Store(detail) => {
                tracing::error!("mailbox store failed: {detail}");
                GatewayError::new(ErrorCode::Internal, "the mailbox store failed")
            }
        }
    }
}

/// Qaqpa's asynchronous face: mailboxes (`/a1/`) and events (`/e1/`). Every call is
/// one exchange whose answer the gateway builds; errors are problem+json.
pub struct QaqpaAsync;

impl Face for QaqpaAsync {
    const NAME: &'static str = "async";

    async fn exchange(&mut self, ctx: &mut Ctx, req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        let id = headers::message_id(req.headers()).map_err(|why| GatewayError::new(ErrorCode::BadRequest, why))?;
        ctx.set_message_id(id);
        let (shared, runtime, peer) = (ctx.shared.clone(), ctx.runtime.clone(), ctx.peer.clone());
        let answer = if req.uri().path().starts_with(super::async_events::PREFIX) {
            super::async_events::dispatch(&shared, &runtime, &peer, req, &mut ctx.record).await
        } else {
            dispatch(&shared, &runtime, &peer, req, &mut ctx.record).await
        };
        answer.map(Outcome::built)
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        error.into_response(Some(message_id))
    }
}

async fn dispatch(
    gateway: &Shared,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: Request<ClientBody>,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let path = req.uri().path().strip_prefix(PREFIX).unwrap_or("").to_owned();
    let params = super::query_params(req.uri().query().unwrap_or(""));
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
            exchange.set_step(Step::new("ack", mid));
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
    gateway: &Shared,
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
    crate::body::collect_bounded(body, limit).await.map_err(|e| match e {
        crate::body::Collect::TooLarge => {
            GatewayError::new(ErrorCode::TooLarge, format!("an asynchronous message is limited to {limit} bytes"))
        }
        crate::body::Collect::CutOff => GatewayError::new(ErrorCode::BadRequest, "the request body was cut off"),
    })
}

async fn send(
    gateway: &Shared,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    mut req: Request<ClientBody>,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let client = exchange::identify(runtime, peer, req.headers())?;
    exchange.set_client(&client);
    let target = exchange::route_under(runtime, req.uri(), PREFIX)?;
    let route = target.route;
    exchange.set_service(route);
    exchange::authorize(route, &client)?;
    mailbox_service(route)?;
    let admission = crate::exchange::limit::admit(gateway, route, &client).await?;
    if route.signature != crate::config::SignaturePolicy::None {
        req = crate::exchange::signatures::verify_rest(&gateway.replay, runtime, route, &client, req, exchange).await?;
    }
    let (parts, body) = req.into_parts();
    let body = read_body(runtime, body).await?;
    exchange.set_request_body(&body);
    let envelope = MessageMeta::request(
        client.id.as_str(),
        route.id.as_str(),
        exchange.id(),
        target.rest_and_query(),
        carried(&parts.headers),
        route.ordered,
    );
    let sent = gateway.mailboxes.send(envelope, body).await?;
    exchange.set_step(Step::new("send", sent.mid()));
    drop(admission);
    let duplicate = count_sent(gateway, sent);
    let mut buffer = uuid::Uuid::encode_buffer();
    let mid = sent.mid().hyphenated().encode_lower(&mut buffer);
    // Serialized from borrowed fields: no JSON tree, no owned copy of the ids.
    let accepted = Accepted { id: mid, message_id: exchange.id(), duplicate };
    let mut response = Response::new(Bytes::from(serde_json::to_vec(&accepted).unwrap_or_default()));
    *response.status_mut() = StatusCode::ACCEPTED;
    let h = response.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(MESSAGE_ID, header(mid));
    Ok(response)
}

/// The answer to a send: `{"id", "message_id", "duplicate"}`.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    id: &'a str,
    message_id: &'a str,
    duplicate: bool,
}

/// Counts a send by its outcome; true for a duplicate (nothing new was stored).
pub(super) fn count_sent(gateway: &Shared, sent: Sent) -> bool {
    let (event, duplicate) = match sent {
        Sent::New(_) => ("sent", false),
        Sent::Duplicate(_) => ("duplicate", true),
    };
    gateway.telemetry.metrics.mailbox_events.with_label_values(&[event]).inc();
    duplicate
}

#[allow(clippy::too_many_arguments)]
async fn take(
    gateway: &Shared,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: &Request<ClientBody>,
    kind: Kind,
    system: &str,
    params: &std::collections::HashMap<String, String>,
    exchange: &mut ExchangeRecord,
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
    record_taken(exchange, kind, &deliveries);
    if max == 1 {
        return Ok(match deliveries.into_iter().next() {
            Some(d) => raw(d),
            None => empty(StatusCode::NO_CONTENT),
        });
    }
    // Nothing to hand out is `204` whatever `max` asked for (docs/asynchronous.md).
    if deliveries.is_empty() {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let list: Vec<serde_json::Value> = deliveries.iter().map(listed).collect();
    Ok(json(StatusCode::OK, serde_json::Value::Array(list)))
}

/// Each message a take hands out is a step of its life, recorded with the take
/// (and on disk before the answer that carries it goes out).
pub(super) fn record_taken(exchange: &mut ExchangeRecord, kind: Kind, deliveries: &[Delivery]) {
    let event = match kind {
        Kind::Request => "take",
        Kind::Response => "collect",
    };
    for d in deliveries {
        exchange.add_step(Step::of(event, &d.envelope));
    }
}

async fn reply(
    gateway: &Shared,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: Request<ClientBody>,
    mid: &uuid::Uuid,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let provider = caller(runtime, peer, req.headers(), None)?;
    exchange.set_client(&provider);
    exchange.set_subject("a1/reply");
    exchange.set_step(Step::new("reply", *mid));
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
