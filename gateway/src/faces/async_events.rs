//! The `/e1/` operations of docs/asynchronous.md: a register owner publishes, subscribers on the
//! owner's list read in order and acknowledge.
//!
//! | call | who | answer |
//! |---|---|---|
//! | `POST /e1/{topic id}` | the owner system | `202 {"seq", "id"}`; a resend: the same seq |
//! | `GET /e1/{topic id}?wait=30s[&max=N]` | a subscriber | the next event, or `204` |
//! | `POST /e1/ack/{topic id}?seq=N` | a subscriber | `200`: everything through N is done |
//!
//! One event comes back as itself: its body and content type with `Qaqpa-Topic`,
//! `Qaqpa-Event-Seq`, `Qaqpa-Message-Id`, `X-Road-Client` (the publisher) and
//! `X-Road-Id` (the publisher's id); `max=N` (N > 1) gives a JSON list instead.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use qaqpa_adapters::ErrorCode;

use super::async_mailbox::{empty, header, json, read_body, unless_draining, wait_and_max};
use crate::body::client::ClientBody;
use crate::error::GatewayError;
use crate::exchange::{self, Peer};
use crate::headers::{X_ROAD_CLIENT, X_ROAD_ID};
use crate::mailbox::wire::{carried, put_carried, MESSAGE_ID, SEQ, TOPIC};
use crate::mailbox::{EventDelivery, EventMeta, Published};
use crate::observe::record::ExchangeRecord;
use crate::runtime::Runtime;
use crate::shared::Shared;

pub const PREFIX: &str = "/e1/";
const ACK: &str = "ack/";

/// The `/e1/` operations, for [`super::async_mailbox::QaqpaAsync`].
pub(super) async fn dispatch(
    gateway: &Shared,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    req: Request<ClientBody>,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let path = req.uri().path().strip_prefix(PREFIX).unwrap_or("").to_owned();
    let (acking, id) = match path.strip_prefix(ACK) {
        Some(id) => (true, id),
        None => (false, path.as_str()),
    };
    let topic = runtime
        .config
        .topics
        .iter()
        .find(|t| t.id.as_str() == id)
        .ok_or_else(|| GatewayError::new(ErrorCode::UnknownService, format!("no topic {id} is registered")))?;
    let client = exchange::identify(runtime, peer, req.headers())?;
    exchange.set_client(&client);
    exchange.set_subject(topic.id.as_str());
    let params = super::query_params(req.uri().query().unwrap_or(""));
    let rules = crate::mailbox::rules(topic);
    let metrics = &gateway.telemetry.metrics;
    match (req.method(), acking) {
        (&Method::POST, false) => {
            if topic.id.system() != client.id {
                return Err(GatewayError::new(
                    ErrorCode::AccessDenied,
                    format!("only {} publishes to {}", topic.id.system(), topic.id),
                ));
            }
            let (parts, body) = req.into_parts();
            let body = read_body(runtime, body).await?;
            exchange.set_request_body(&body);
            let meta = EventMeta {
                mid: crate::mailbox::mailbox_id(client.id.as_str(), exchange.id()),
                message_id: exchange.id().to_owned(),
                publisher: client.id.to_string(),
                published: crate::mailbox::now_ms(),
                headers: carried(&parts.headers),
            };
            let mid = meta.mid;
            let published = gateway.mailboxes.publish(&rules, meta, body).await?;
            let (seq, duplicate) = match published {
                Published::New(seq) => (seq, false),
                Published::Duplicate(seq) => (seq, true),
            };
            metrics.mailbox_events.with_label_values(&[if duplicate { "event_duplicate" } else { "published" }]).inc();
            let answer =
                serde_json::json!({ "topic": topic.id.as_str(), "seq": seq, "id": mid, "duplicate": duplicate });
            Ok(json(StatusCode::ACCEPTED, answer))
        }
        (method, acking) => {
            if !topic.subscribers.allows(client.id.as_str()) {
                return Err(GatewayError::new(
                    ErrorCode::AccessDenied,
                    format!("{} is not a subscriber of {}", client.id, topic.id),
                ));
            }
            match (method, acking) {
                (&Method::GET, false) => {
                    let (wait, max) = wait_and_max(runtime, &params)?;
                    let pulled = gateway.mailboxes.pull(&rules, client.id.as_str(), max, wait);
                    let events = unless_draining(gateway, pulled).await?;
                    metrics.mailbox_events.with_label_values(&["event_delivered"]).inc_by(events.len() as u64);
                    if max == 1 {
                        return Ok(events.into_iter().next().map_or_else(|| empty(StatusCode::NO_CONTENT), raw));
                    }
                    Ok(json(StatusCode::OK, serde_json::Value::Array(events.iter().map(listed).collect())))
                }
                (&Method::POST, true) => {
                    let seq = params
                        .get("seq")
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "ack needs ?seq=N"))?;
                    gateway.mailboxes.ack_events(&rules, client.id.as_str(), seq).await?;
                    metrics.mailbox_events.with_label_values(&["event_acked"]).inc();
                    Ok(json(StatusCode::OK, serde_json::json!({ "topic": topic.id.as_str(), "acked": seq })))
                }
                _ => Err(GatewayError::new(ErrorCode::BadRequest, "no such event operation")),
            }
        }
    }
}

/// One event as an HTTP response of its own.
pub(super) fn raw(e: EventDelivery) -> Response<Bytes> {
    let mut response = Response::new(e.body.clone());
    let h = response.headers_mut();
    put_carried(h, &e.meta.headers);
    h.insert(TOPIC, header(&e.topic));
    h.insert(SEQ, HeaderValue::from(e.seq));
    h.insert(MESSAGE_ID, header(&e.meta.mid.to_string()));
    h.insert(X_ROAD_CLIENT, header(&e.meta.publisher));
    h.insert(X_ROAD_ID, header(&e.meta.message_id));
    response
}

fn listed(e: &EventDelivery) -> serde_json::Value {
    serde_json::json!({
        "topic": e.topic,
        "seq": e.seq,
        "id": e.meta.mid,
        "message_id": e.meta.message_id,
        "publisher": e.meta.publisher,
        "published": e.meta.published,
        "headers": e.meta.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "body": base64::engine::general_purpose::STANDARD.encode(&e.body),
    })
}
