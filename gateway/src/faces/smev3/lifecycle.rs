//! The SMEV 3 life cycle on the mailboxes (docs/smev3.md#mailboxes):
//!
//! | operation | mailbox |
//! |---|---|
//! | `SendRequest` | `send` to the kind's service queue; mailbox id from `MessageID` alone |
//! | `GetRequest` | `take` from the caller's pull services (of the selector's kind) |
//! | `SendResponse` | `send` a response to the requester's outbox (`To` = the signed `ReplyTo`); the request is done |
//! | `GetResponse` | `take` from the caller's outbox |
//! | `Ack` | `ack` by the message id the taker saw |
//! | `GetStatus` | nothing is queued: the bus refuses synchronously |
//!
//! A service without a mailbox (`mailbox = "none"`) is reached synchronously: the
//! gateway calls its provider (REST, or X-Road SOAP) and queues the answer as the
//! response ([`mediate`]).

use std::sync::Arc;

use bytes::Bytes;
use qaqpa_adapters::smev3::stored::{self, STORED_CONTENT_TYPE};
use qaqpa_adapters::smev3::writer::{self, Fault, Metadata, Participant};
use qaqpa_adapters::smev3::{Call, Operation, Version};
use qaqpa_adapters::ErrorCode;

use super::trust::{self, ReplyTo};
use super::{answer, timestamp, Smev3};
use crate::config::MailboxMode;
use crate::error::GatewayError;
use crate::exchange::{authorize, limit, Ctx, Outcome, Reply};
use crate::faces::async_mailbox::count_sent;
use crate::mailbox::{mailbox_id, now_ms, Kind, MailboxError, MessageMeta, Sent};
use crate::observe::record::Step;
use crate::runtime::{Client, Route, Runtime};

/// Headers kept with a SMEV 3 message: its kind's root element, and the message id
/// its taker sees (the sender's `MessageID`).
pub(super) const ROOT: &str = "qaqpa-smev3-root";
pub(super) const SMEV_ID: &str = "qaqpa-smev3-message-id";

/// A SMEV 3 message's mailbox id: from its `MessageID` alone, which SMEV 3 makes
/// unique across the bus, so an `Ack` naming it finds it.
pub fn smev_mid(message_id: &str) -> uuid::Uuid {
    mailbox_id("smev3", message_id)
}

pub(super) async fn serve(
    face: &mut Smev3,
    ctx: &mut Ctx,
    bytes: &Bytes,
    call: &Call,
) -> Result<Outcome, GatewayError> {
    let client = caller(ctx, bytes, call).await?;
    ctx.identified(&client);
    let v = call.version;
    let body = match call.operation {
        Operation::SendRequest => return send_request(face, ctx, bytes, call, client).await,
        Operation::SendResponse => send_response(face, ctx, bytes, call, &client).await?,
        Operation::GetRequest | Operation::GetResponse => super::deliver::take(face, ctx, call, &client).await?,
        Operation::Ack => {
            ack(face, ctx, call, &client).await?;
            writer::empty(v, Operation::Ack)
        }
        Operation::GetStatus => {
            ctx.record.set_subject("smev3/status");
            writer::empty(v, Operation::GetStatus)
        }
    };
    Ok(Outcome::built(answer(&body)))
}

/// The system speaking: its certificate's, which must also be the signer's. On the
/// insecure demo listener, the signer's.
async fn caller(ctx: &Ctx, bytes: &Bytes, call: &Call) -> Result<Arc<Client>, GatewayError> {
    let runtime = &ctx.runtime;
    let signer = {
        let (runtime, bytes, call) = (runtime.clone(), bytes.clone(), call.clone());
        super::deliver::offload(bytes.len(), move || trust::verify_caller(&runtime, &bytes, &call).cloned()).await?
    };
    let Some(cert) = &ctx.peer.certificate else {
        return Ok(signer.clone());
    };
    let bound = crate::exchange::peer_system(runtime, cert).ok_or_else(|| {
        GatewayError::new(ErrorCode::IdentityMismatch, "the client certificate is bound to no registered system")
    })?;
    if bound.id != signer.id {
        return Err(GatewayError::new(
            ErrorCode::BadSignature,
            format!("the message is signed by {}, the connection is {}", signer.id, bound.id),
        ));
    }
    Ok(bound.clone())
}

fn invalid(why: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::BadRequest, why)
}

/// A `MessageID`: SMEV 3 wants a UUID (time-based by convention).
fn message_id(face: &mut Smev3, call: &Call) -> Result<String, GatewayError> {
    let id = call.message_id.as_deref().ok_or_else(|| invalid("MessageID is required"))?;
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| face.refuse(Fault::InvalidMessageIdFormat, invalid(format!("MessageID {id:?} is not a UUID"))))
}

/// The service whose `smev_kinds` names `namespace`.
fn route_of_kind<'r>(runtime: &'r Runtime, namespace: &str) -> Option<&'r Arc<Route>> {
    let service = runtime.config.services.iter().find(|s| s.smev_kinds.iter().any(|k| k == namespace))?;
    runtime.routes.get(&service.id.to_string())
}

pub(super) fn participant(system: &str) -> Participant<'_> {
    Participant { mnemonic: system, name: system }
}

/// The message's parts as stored: as sent, each with its namespaces.
fn stored_parts(bytes: &[u8], call: &Call) -> Result<Vec<u8>, GatewayError> {
    let data = call.signed.as_ref().ok_or_else(|| invalid("nothing to send"))?.detached(bytes);
    let signature = call.signature.as_ref().map(|p| p.detached(bytes));
    let attachments = call.attachments.as_ref().map(|p| p.detached(bytes));
    Ok(stored::store(call.version, &data, signature.as_deref(), attachments.as_deref()))
}

fn check_size(runtime: &Runtime, stored: &[u8]) -> Result<(), GatewayError> {
    let limit = runtime.config.mailbox.max_message_bytes;
    if stored.len() > limit {
        return Err(GatewayError::new(
            ErrorCode::TooLarge,
            format!("an asynchronous message is limited to {limit} bytes"),
        ));
    }
    Ok(())
}

fn already_sent(face: &mut Smev3, id: &str) -> GatewayError {
    face.refuse(
        Fault::MessageIsAlreadySent,
        GatewayError::new(ErrorCode::Replay, format!("a message with MessageID {id} was already sent")),
    )
}

/// `MessageMetadata` signed as `SIGNED_BY_SMEV`, in `SendRequestResponse` or
/// `SendResponseResponse`.
fn sent_answer(
    runtime: &Runtime,
    v: Version,
    operation: Operation,
    meta: &Metadata<'_>,
) -> Result<String, GatewayError> {
    let signed = meta.xml(v, Some(qaqpa_adapters::smev3::SIGNED_BY_SMEV));
    let signature = trust::sign_answer(runtime, &signed)?;
    Ok(writer::sent(v, operation, &signed, &signature))
}

async fn send_request(
    face: &mut Smev3,
    ctx: &mut Ctx,
    bytes: &Bytes,
    call: &Call,
    client: Arc<Client>,
) -> Result<Outcome, GatewayError> {
    let runtime = ctx.runtime.clone();
    let shared = ctx.shared.clone();
    ctx.record.set_subject("smev3/send");
    let (namespace, root) = call
        .kind
        .clone()
        .ok_or_else(|| invalid("SendRequest needs MessagePrimaryContent (the kind of information)"))?;
    let id = message_id(face, call)?;
    let route = route_of_kind(&runtime, &namespace).ok_or_else(|| {
        GatewayError::new(ErrorCode::UnknownService, format!("no service takes the kind of information {namespace}"))
    })?;
    ctx.routed(route);
    authorize(route, &client)?;
    let admission = limit::admit(&*shared, route, &client).await?;
    let provider = route.id.system().to_string();
    if route.mailbox == MailboxMode::None {
        super::mediate::call_provider(ctx, bytes, call, &client, route, &id).await?;
    } else {
        let stored = stored_parts(bytes, call)?;
        check_size(&runtime, &stored)?;
        ctx.record.set_request_body(&stored);
        let headers = vec![
            ("content-type".to_owned(), STORED_CONTENT_TYPE.to_owned()),
            (ROOT.to_owned(), root.clone()),
            (SMEV_ID.to_owned(), id.clone()),
        ];
        let mut meta =
            MessageMeta::request(client.id.as_str(), route.id.as_str(), &id, String::new(), headers, route.ordered);
        meta.mid = smev_mid(&id);
        let sent = shared.mailboxes.send(meta, Bytes::from(stored)).await?;
        count_sent(&shared, sent);
        if let Sent::Duplicate(_) = sent {
            return Err(already_sent(face, &id));
        }
        ctx.record.set_step(Step::new("send", sent.mid()));
    }
    let now = timestamp(now_ms());
    let meta = Metadata {
        message_id: &id,
        message_type: "REQUEST",
        sender: participant(client.id.as_str()),
        recipient: Some(participant(&provider)),
        sending_timestamp: &now,
        destination_name: &root,
        delivery_timestamp: None,
        status: Some("requestIsQueued"),
    };
    let body = sent_answer(&runtime, call.version, Operation::SendRequest, &meta)?;
    Ok(Outcome::new(Reply::Built(answer(&body)), admission))
}

async fn send_response(
    face: &mut Smev3,
    ctx: &mut Ctx,
    bytes: &Bytes,
    call: &Call,
    client: &Arc<Client>,
) -> Result<String, GatewayError> {
    let runtime = ctx.runtime.clone();
    let shared = ctx.shared.clone();
    ctx.record.set_subject("smev3/send-response");
    let id = message_id(face, call)?;
    let to = call.to.as_deref().ok_or_else(|| invalid("SendResponse needs To (the request's ReplyTo)"))?;
    let reply = ReplyTo::check(&runtime, to)?;
    let route = runtime
        .routes
        .get(&reply.s)
        .ok_or_else(|| GatewayError::new(ErrorCode::UnknownService, format!("no service {} is registered", reply.s)))?;
    ctx.routed(route);
    if route.id.system() != client.id {
        return Err(GatewayError::new(
            ErrorCode::AccessDenied,
            format!("only the provider of {} answers its requests", route.id),
        ));
    }
    let stored = stored_parts(bytes, call)?;
    check_size(&runtime, &stored)?;
    ctx.record.set_request_body(&stored);
    let meta = response_meta(
        &id,
        &reply,
        vec![("content-type".to_owned(), STORED_CONTENT_TYPE.to_owned()), (SMEV_ID.to_owned(), id.clone())],
        200,
    );
    let sent = shared.mailboxes.send(meta, Bytes::from(stored)).await?;
    count_sent(&shared, sent);
    if let Sent::Duplicate(_) = sent {
        return Err(already_sent(face, &id));
    }
    shared.telemetry.metrics.mailbox_events.with_label_values(&["replied"]).inc();
    // The request's life ends in this answer; the answer's begins (its own bus id).
    ctx.record.set_step(Step::new("reply", reply.r));
    ctx.record.add_step(Step::new("send", sent.mid()));
    // The request is answered: it is not handed out again (it may be acked already).
    match shared.mailboxes.ack(reply.r, client.id.as_str()).await {
        Ok(()) | Err(MailboxError::Unknown(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let now = timestamp(now_ms());
    let meta = Metadata {
        message_id: &id,
        message_type: "RESPONSE",
        sender: participant(client.id.as_str()),
        recipient: Some(participant(&reply.c)),
        sending_timestamp: &now,
        destination_name: "",
        delivery_timestamp: None,
        status: Some("responseIsQueued"),
    };
    sent_answer(&runtime, call.version, Operation::SendResponse, &meta)
}

/// A response in the requester's outbox, under its own mailbox id.
pub(super) fn response_meta(id: &str, reply: &ReplyTo, headers: Vec<(String, String)>, status: u16) -> MessageMeta {
    let mut meta = MessageMeta::request(&reply.c, &reply.s, &reply.m, String::new(), headers, false);
    meta.kind = Kind::Response;
    meta.mid = smev_mid(id);
    meta.status = Some(status);
    meta
}

async fn ack(face: &mut Smev3, ctx: &mut Ctx, call: &Call, client: &Client) -> Result<(), GatewayError> {
    let shared = ctx.shared.clone();
    ctx.record.set_subject("smev3/ack");
    let target =
        call.ack_target.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| invalid("AckTargetMessage is empty"))?;
    if !call.accepted {
        // Not accepted: the message stays leased and comes back after the
        // visibility timeout, as any unacknowledged one.
        return Ok(());
    }
    let system = client.id.as_str();
    // The id the taker saw: a SMEV 3 MessageID, or the mailbox id the bus presented
    // for a message sent through another door.
    let mid = smev_mid(target);
    let mut result = shared.mailboxes.ack(mid, system).await.map(|()| mid);
    if let (Err(MailboxError::Unknown(_)), Ok(mid)) = (&result, uuid::Uuid::parse_str(target)) {
        result = shared.mailboxes.ack(mid, system).await.map(|()| mid);
    }
    match result {
        Ok(mid) => {
            ctx.record.set_step(Step::new("ack", mid));
            shared.telemetry.metrics.mailbox_events.with_label_values(&["acked"]).inc();
            Ok(())
        }
        Err(MailboxError::Unknown(_)) => Err(face.refuse(
            Fault::TargetMessageIsNotFound,
            GatewayError::new(ErrorCode::UnknownMessage, format!("no message {target} is waiting for {system}'s Ack")),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qaqpa_adapters::smev3::stored::xml_fragment;

    #[test]
    fn payloads_embed_only_a_single_namespaced_element() {
        assert_eq!(
            xml_fragment("<?xml version=\"1.0\"?>\n<a:x xmlns:a=\"u\">1</a:x>\n"),
            Some("<a:x xmlns:a=\"u\">1</a:x>")
        );
        assert_eq!(xml_fragment("<x>1</x>"), None, "no namespace");
        assert_eq!(xml_fragment("<a:x xmlns:a=\"u\"/><a:y xmlns:a=\"u\"/>"), None, "two roots");
        assert_eq!(xml_fragment("{\"json\":1}"), None);
        assert_eq!(xml_fragment("<!DOCTYPE a><a:x xmlns:a=\"u\"/>"), None);
    }

    #[test]
    fn a_message_id_names_one_mailbox_entry_whoever_sends_it() {
        assert_eq!(smev_mid("a"), smev_mid("a"));
        assert_ne!(smev_mid("a"), smev_mid("b"));
        assert_ne!(smev_mid("a"), mailbox_id("KZ/GOV/1/x", "a"));
    }
}
