//! `GetRequest` and `GetResponse`: a taken message rendered as SMEV 3 delivers it —
//! the sender's part and signature as sent, the bus's `MessageMetadata`, `ReplyTo` for
//! a request and `OriginalMessageId` for a response, all under the bus's
//! `SMEVSignature` (docs/smev3.md#mapping-to-mailboxes).

use std::time::Duration;

use base64::Engine;
use qaqpa_adapters::smev3::stored;
use qaqpa_adapters::smev3::writer::{self, Fault, Metadata};
use qaqpa_adapters::smev3::{Call, Operation, Version};
use qaqpa_adapters::ErrorCode;

use super::lifecycle::{participant, ROOT, SMEV_ID};
use super::trust::{self, ReplyTo};
use super::{timestamp, Smev3};
use crate::config::MailboxMode;
use crate::error::GatewayError;
use crate::exchange::Ctx;
use crate::faces::async_mailbox::unless_draining;
use crate::mailbox::{now_ms, Delivery, Queue};
use crate::runtime::{Client, Runtime};

pub(super) async fn take(
    face: &mut Smev3,
    ctx: &mut Ctx,
    call: &Call,
    client: &Client,
) -> Result<String, GatewayError> {
    let runtime = ctx.runtime.clone();
    let shared = ctx.shared.clone();
    let v = call.version;
    let system = client.id.as_str();
    let queues: Vec<Queue> = match call.operation {
        Operation::GetRequest => {
            ctx.record.set_subject("smev3/get-request");
            let wanted = call.selector_namespace.as_deref().filter(|n| !n.is_empty());
            let queues: Vec<Queue> = runtime
                .config
                .services
                .iter()
                .filter(|s| s.mailbox == MailboxMode::Pull && s.id.system().as_str() == system)
                .filter(|s| wanted.is_none_or(|ns| s.smev_kinds.iter().any(|k| k == ns)))
                .map(|s| Queue::Requests(s.id.to_string()))
                .collect();
            if queues.is_empty() {
                let why = match wanted {
                    Some(ns) => format!("{system} provides no kind of information {ns} with a pull mailbox"),
                    None => format!("{system} provides no pull mailbox"),
                };
                return Err(face.refuse(Fault::UnknownMessageType, GatewayError::new(ErrorCode::UnknownService, why)));
            }
            queues
        }
        _ => {
            ctx.record.set_subject("smev3/get-response");
            vec![Queue::Responses(system.to_owned())]
        }
    };
    // SMEV 3 polls: the answer comes at once, with a message or without.
    let taken = unless_draining(&shared, shared.mailboxes.take(&queues, 1, Duration::ZERO)).await?;
    shared.telemetry.metrics.mailbox_events.with_label_values(&["delivered"]).inc_by(taken.len() as u64);
    let kind = match call.operation {
        Operation::GetRequest => crate::mailbox::Kind::Request,
        _ => crate::mailbox::Kind::Response,
    };
    crate::faces::async_mailbox::record_taken(&mut ctx.record, kind, &taken);
    let Some(delivery) = taken.into_iter().next() else {
        return Ok(writer::empty(v, call.operation));
    };
    let operation = call.operation;
    offload(delivery.body.len(), move || render(&runtime, v, operation, &delivery)).await
}

/// Messages larger than this are verified and signed on a blocking thread: a few
/// MiB take milliseconds, which must not stall the other exchanges on the worker.
const OFFLOAD_BYTES: usize = 256 * 1024;

pub(super) async fn offload<T: Send + 'static>(size: usize, work: impl FnOnce() -> T + Send + 'static) -> T {
    if size > OFFLOAD_BYTES {
        match tokio::task::spawn_blocking(work).await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    } else {
        work()
    }
}

fn header<'d>(d: &'d Delivery, name: &str) -> Option<&'d str> {
    d.envelope.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A taken message as `GetRequestResponse` / `GetResponseResponse`, signed.
fn render(runtime: &Runtime, v: Version, operation: Operation, d: &Delivery) -> Result<String, GatewayError> {
    let e = &d.envelope;
    let is_response = operation == Operation::GetResponse;
    let (data, signature, attachments) = match stored::load(&d.body) {
        Some(s) => {
            let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&d.body[r]).into_owned();
            (text(s.data), s.signature.map(text), s.attachments.map(text).unwrap_or_default())
        }
        // Sent through another door (`/a1`, SOAP mailbox operations, a synchronous
        // provider's answer): the bus writes the sender's part around the payload.
        None => {
            let to = is_response.then_some("");
            (writer::sender_data(v, to, &e.mid.to_string(), &payload_xml(d)), None, String::new())
        }
    };
    let presented = header(d, SMEV_ID).map_or_else(|| e.mid.to_string(), str::to_owned);
    let (sent, delivered) = (timestamp(e.created), timestamp(now_ms()));
    let provider = qaqpa_routing::ServiceId::parse(&e.service).map(|s| s.system().to_string()).unwrap_or_default();
    let (sender, recipient) =
        if is_response { (provider.as_str(), e.client.as_str()) } else { (e.client.as_str(), provider.as_str()) };
    let meta = Metadata {
        message_id: &presented,
        message_type: if is_response { "RESPONSE" } else { "REQUEST" },
        sender: participant(sender),
        recipient: Some(participant(recipient)),
        sending_timestamp: &sent,
        destination_name: header(d, ROOT).unwrap_or(""),
        delivery_timestamp: Some(&delivered),
        status: None,
    }
    .xml(v, None);
    let core = if is_response {
        writer::response(v, &e.message_id, &data, &meta, signature.as_deref())
    } else {
        let reply_to =
            ReplyTo { c: e.client.clone(), s: e.service.clone(), m: e.message_id.clone(), r: e.mid }.issue(runtime)?;
        writer::request(v, &data, &meta, &reply_to, signature.as_deref())
    };
    let smev_signature = trust::sign_answer(runtime, &core)?;
    Ok(writer::delivered(v, operation, &core, &attachments, &smev_signature))
}

/// A payload as `MessagePrimaryContent`: XML of one namespaced root as it is, anything
/// else (JSON, text) base64 in a Qaqpa element with its content type.
fn payload_xml(d: &Delivery) -> String {
    if let Some(xml) = std::str::from_utf8(&d.body).ok().and_then(stored::xml_fragment) {
        return xml.to_owned();
    }
    let content_type = header(d, "content-type").unwrap_or("application/octet-stream");
    format!(
        "<q:Payload xmlns:q=\"urn:qaqpa:smev3:payload:1\" contentType=\"{}\">{}</q:Payload>",
        qaqpa_adapters::soap::escape(content_type),
        base64::engine::general_purpose::STANDARD.encode(&d.body)
    )
}
