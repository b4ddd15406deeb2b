//! The mailbox operations as SOAP (docs/asynchronous.md), for legacy systems: a Body whose
//! element is in the namespace [`NS`] is one of
//!
//! | operation | who | Body fields | answer |
//! |---|---|---|---|
//! | `SendRequest` | a client (X-Road `service` names the target) | anything | `MessageId`, `Duplicate` |
//! | `GetRequest` | a provider | `Wait` (seconds) | a `Message`, or none |
//! | `SendResponse` | the provider | `MessageId` | `MessageId` |
//! | `GetResponse` | the client | `Wait` | a `Message`, or none |
//! | `Ack` | the owner | `MessageId` | `MessageId` |
//!
//! What `SendRequest` and `SendResponse` store is the whole envelope as received
//! (signed on behalf where the service asks for it): a signature stays verifiable by
//! whoever takes the message. `Message/Content` carries it base64-encoded, with
//! `ContentType`, so a REST-sent message reaches a SOAP taker too, and back.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use qaqpa_adapters::soap::{self, escape};
use qaqpa_adapters::ErrorCode;

use crate::error::GatewayError;
use crate::exchange::{authorize, Ctx, Outcome, Reply};
use crate::mailbox::{Delivery, Kind, MessageMeta};
use crate::observe::record::Step;
use crate::runtime::Client;

pub const NS: &str = "urn:qaqpa:async:1";

/// One asynchronous SOAP call, after the client has been identified.
pub struct Call<'a> {
    pub client: Arc<Client>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
    pub envelope: &'a soap::Envelope,
}

pub async fn serve(call: Call<'_>, ctx: &mut Ctx) -> Result<Outcome, GatewayError> {
    let shared = ctx.shared.clone();
    let runtime = ctx.runtime.clone();
    let operation = call.envelope.operation.as_ref().map_or("", |(_, name)| name.as_str());
    let fields = fields(&call, &runtime.config.xml.limits)?;
    let field = |name: &str| fields.get(name).and_then(qaqpa_adapters::mapping::scalar_text);
    let mid = || -> Result<uuid::Uuid, GatewayError> {
        let text =
            field("MessageId").ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "MessageId is required"))?;
        uuid::Uuid::parse_str(text.trim())
            .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "MessageId must be a UUID"))
    };
    let wait = || -> Duration {
        let seconds = field("Wait").and_then(|w| w.trim().parse::<u64>().ok()).unwrap_or(0);
        Duration::from_secs(seconds).min(runtime.config.mailbox.max_wait)
    };
    let mailboxes = &shared.mailboxes;
    let metrics = &shared.telemetry.metrics;
    let system = call.client.id.to_string();
    let body = match operation {
        "SendRequest" => return send_request(&call, ctx).await,
        "GetRequest" | "GetResponse" => {
            let (kind, subject) = match operation {
                "GetRequest" => (Kind::Request, "a1/inbox"),
                _ => (Kind::Response, "a1/outbox"),
            };
            ctx.record.set_subject(subject);
            let queues = super::async_mailbox::queues(&runtime, &system, kind);
            if queues.is_empty() {
                return Err(GatewayError::new(ErrorCode::BadRequest, format!("{system} provides no pull mailbox")));
            }
            let taken = super::async_mailbox::unless_draining(&shared, mailboxes.take(&queues, 1, wait())).await?;
            metrics.mailbox_events.with_label_values(&["delivered"]).inc_by(taken.len() as u64);
            super::async_mailbox::record_taken(&mut ctx.record, kind, &taken);
            let message = taken.first().map(message_xml).unwrap_or_default();
            format!("<q:{operation}Response xmlns:q=\"{NS}\">{message}</q:{operation}Response>")
        }
        "SendResponse" => {
            ctx.record.set_subject("a1/reply");
            let mid = mid()?;
            ctx.record.set_step(Step::new("reply", mid));
            ctx.record.set_request_body(&call.bytes);
            let headers = content_type_header(&call);
            mailboxes.reply(mid, &system, 200, headers, call.bytes.clone()).await?;
            metrics.mailbox_events.with_label_values(&["replied"]).inc();
            format!(
                "<q:SendResponseResponse xmlns:q=\"{NS}\"><q:MessageId>{mid}</q:MessageId></q:SendResponseResponse>"
            )
        }
        "Ack" => {
            ctx.record.set_subject("a1/ack");
            let mid = mid()?;
            ctx.record.set_step(Step::new("ack", mid));
            mailboxes.ack(mid, &system).await?;
            metrics.mailbox_events.with_label_values(&["acked"]).inc();
            format!("<q:AckResponse xmlns:q=\"{NS}\"><q:MessageId>{mid}</q:MessageId></q:AckResponse>")
        }
        other => {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!(
                "{other:?} is not an asynchronous operation (SendRequest, GetRequest, SendResponse, GetResponse, Ack)"
            ),
            ))
        }
    };
    Ok(Outcome::built(answer(&call, &body)))
}

/// The operation element's children as a JSON object.
fn fields(
    call: &Call<'_>,
    limits: &qaqpa_adapters::soap::XmlLimits,
) -> Result<serde_json::Map<String, serde_json::Value>, GatewayError> {
    let rules = qaqpa_adapters::mapping::Rules::default();
    let body = &call.bytes[call.envelope.body.clone()];
    let mapped = qaqpa_adapters::mapping::xml_to_json(body, &rules, limits)
        .map_err(|e| GatewayError::new(ErrorCode::BadXml, e.to_string()))?;
    Ok(mapped.into_iter().next().and_then(|(_, v)| v.as_object().cloned()).unwrap_or_default())
}

fn content_type_header(call: &Call<'_>) -> Vec<(String, String)> {
    let content_type = call.content_type.clone().unwrap_or_else(|| call.envelope.version.content_type().to_owned());
    vec![("content-type".to_owned(), content_type)]
}

async fn send_request(call: &Call<'_>, ctx: &mut Ctx) -> Result<Outcome, GatewayError> {
    let shared = ctx.shared.clone();
    let runtime = ctx.runtime.clone();
    let service_id = call
        .envelope
        .header
        .service
        .as_ref()
        .and_then(|s| s.service_id())
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "SendRequest needs the X-Road header service"))?;
    let route = runtime.routes.get(&service_id).ok_or_else(|| {
        GatewayError::new(ErrorCode::UnknownService, format!("no service {service_id} is registered"))
    })?;
    ctx.routed(route);
    authorize(route, &call.client)?;
    super::async_mailbox::mailbox_service(route)?;
    let admission = crate::exchange::limit::admit(&*shared, route, &call.client).await?;
    let message_id = ctx.message_id().to_owned();
    let (stored, signature) = crate::exchange::signatures::soap(
        &shared.replay,
        &runtime,
        route,
        &call.client,
        &message_id,
        call.bytes.clone(),
        call.envelope,
    )
    .await?;
    if let Some(value) = signature {
        ctx.record.set_signature(value);
    }
    ctx.record.set_request_body(&stored);
    let headers = content_type_header(call);
    let envelope = MessageMeta::request(
        call.client.id.as_str(),
        route.id.as_str(),
        &message_id,
        String::new(),
        headers,
        route.ordered,
    );
    let sent = shared.mailboxes.send(envelope, stored).await?;
    ctx.record.set_step(Step::new("send", sent.mid()));
    let duplicate = super::async_mailbox::count_sent(&shared, sent);
    let body = format!(
        "<q:SendRequestResponse xmlns:q=\"{NS}\"><q:MessageId>{}</q:MessageId><q:Duplicate>{duplicate}</q:Duplicate></q:SendRequestResponse>",
        sent.mid()
    );
    Ok(Outcome::new(Reply::Built(answer(call, &body)), admission))
}

fn message_xml(d: &Delivery) -> String {
    let e = &d.envelope;
    let content_type = e.headers.iter().find(|(n, _)| n == "content-type").map_or("", |(_, v)| v.as_str());
    let status = e.status.map(|s| format!("<q:Status>{s}</q:Status>")).unwrap_or_default();
    format!(
        concat!(
            "<q:Message><q:MessageId>{}</q:MessageId><q:Client>{}</q:Client><q:Service>{}</q:Service>",
            "<q:ClientMessageId>{}</q:ClientMessageId><q:Attempt>{}</q:Attempt>{}",
            "<q:ContentType>{}</q:ContentType><q:Content>{}</q:Content></q:Message>"
        ),
        e.mid,
        escape(&e.client),
        escape(&e.service),
        escape(&e.message_id),
        e.attempts,
        status,
        escape(content_type),
        base64::engine::general_purpose::STANDARD.encode(&d.body),
    )
}

/// The answer envelope: the caller's X-Road header echoed, `body` in the Body.
fn answer(call: &Call<'_>, body: &str) -> Response<Bytes> {
    let version = call.envelope.version;
    let text = soap::write_envelope(version, &call.envelope.header, body);
    let mut response = Response::new(Bytes::from(text));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(version.content_type()));
    response
}
