//! The ШЭП AsyncChannel face (docs/shep.md#asyncchannel): `POST /bip-async/`,
//! WSDL at `GET /bip-async/?wsdl`, over the mailboxes of docs/asynchronous.md.
//!
//! - A client's `sendMessage` (`messageType` REQUEST or none) is identified and
//!   routed like a SyncChannel call, then stored durably as a mailbox request (the
//!   whole envelope, as received): the answer names it `ON_DELIVERY`. The same
//!   `messageId` from the same system again is recognised (mailbox ids derive from
//!   the pair) and answered the same way, with `duplicate` in the status message —
//!   on a service without signature checks. Where the service verifies signatures
//!   the replay guard sees the resent `messageId` first and refuses it
//!   (`client.replay`), as for any signed message; a signed message whose store
//!   write failed must therefore be sent again under a new `messageId`.
//! - The provider takes it by push (`mailbox = "push"`: the gateway POSTs the
//!   envelope to the provider's AsyncChannel endpoint, whose answer becomes the
//!   reply) or by pull (`/a1/inbox/…`, or `GetRequest` over SOAP).
//! - The provider's reply is a `sendMessage` with `messageType` RESPONSE and
//!   `correlationId` = the request's `messageId`, to the same `serviceId`: it lands in
//!   the requesting client's outbox (correlated by the pair (client, messageId)).
//! - A provider that took a request by pull says what became of it with
//!   `sendDeliveryNotification` ([`notify`]): accepted (the request is delivered and
//!   finished), or not accepted (delivered again later, or stopped: a dead letter).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response};
use qaqpa_adapters::shep::{self, Channel, DeliveryState, Message};
use qaqpa_adapters::soap::escape;
use qaqpa_adapters::ErrorCode;

use super::shep_sync::{self, fault_response};
use crate::body::client::ClientBody;
use crate::body::GatewayBody;
use crate::error::GatewayError;
use crate::exchange::{authorize, Ctx, Face, Outcome, Reply};
use crate::mailbox::MessageMeta;
use crate::observe::record::Step;
use crate::runtime::{Client, Route};

pub const ASYNC_PATH: &str = "/bip-async/";

#[derive(Default)]
pub struct ShepAsync {
    session_id: Option<String>,
}

impl Face for ShepAsync {
    const NAME: &'static str = "shep-async";

    async fn exchange(&mut self, ctx: &mut Ctx, req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        let runtime = ctx.runtime.clone();
        if req.method() != Method::POST {
            return Err(GatewayError::new(ErrorCode::BadRequest, "AsyncChannel takes POST (or GET ?wsdl)"));
        }
        let (parts, body) = req.into_parts();
        let (bytes, message) = shep_sync::read_message(&runtime, &parts.headers, body).await?;
        self.session_id = message.session_id.clone();
        if message.channel != Channel::Async {
            return Err(GatewayError::new(ErrorCode::BadRequest, "a SyncChannel message belongs at /bip-sync/"));
        }
        match message.operation.as_str() {
            "sendMessage" => {}
            "getMessageStatus" => return status(ctx, &message).await,
            "sendDeliveryNotification" => return notify(ctx, &message, bytes).await,
            other => {
                return Err(GatewayError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "AsyncChannel operation {other} is not supported \
                         (sendMessage, getMessageStatus, sendDeliveryNotification are)"
                    ),
                ))
            }
        }
        ctx.set_message_id(shep_sync::message_id(message.message_id.as_deref())?);
        let client = shep_sync::identify(ctx, &runtime, &message).await?;
        let (route, _) = shep_sync::route(&runtime, &message)?;
        ctx.routed(route);
        let response = message.message_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("RESPONSE"));
        if response {
            return reply(ctx, route, &client, &message, bytes).await;
        }
        authorize(route, &client)?;
        super::async_mailbox::mailbox_service(route)?;
        let admission = crate::exchange::limit::admit(&*ctx.shared, route, &client).await?;
        let signature = super::shep_verify::verify(ctx, route, &client, &message, &bytes).await?;
        if let Some(value) = signature {
            ctx.record.set_signature(value);
        }
        ctx.record.set_request_body(&bytes);
        let headers = vec![
            ("content-type".to_owned(), "text/xml; charset=utf-8".to_owned()),
            ("soapaction".to_owned(), "\"\"".to_owned()),
        ];
        let meta = MessageMeta::request(
            client.id.as_str(),
            route.id.as_str(),
            ctx.message_id(),
            String::new(),
            headers,
            route.ordered,
        );
        let sent = ctx.shared.mailboxes.send(meta, bytes).await?;
        let duplicate = super::async_mailbox::count_sent(&ctx.shared, sent);
        let said = if duplicate { "duplicate messageId: accepted before" } else { "accepted" };
        let answer = ack(&message, ctx.message_id(), DeliveryState::OnDelivery, said);
        Ok(Outcome::new(Reply::Built(answer), admission))
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        fault_response(true, error, message_id, self.session_id.as_deref())
    }
}

/// `getMessageStatus`: the state of one of the sender's own messages, as ШЭП names
/// it, from either mailbox store (`Store::state`).
async fn status(ctx: &mut Ctx, message: &Message) -> Result<Outcome, GatewayError> {
    use qaqpa_mailbox::MessageState;
    let runtime = ctx.runtime.clone();
    ctx.record.set_subject("bip-async/status");
    let asked = message
        .message_id
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "getMessageStatus needs request/messageId"))?;
    let client = shep_sync::identify(ctx, &runtime, message).await?;
    let mid = qaqpa_mailbox::mailbox_id(client.id.as_str(), asked);
    let unknown = || GatewayError::new(ErrorCode::UnknownMessage, format!("no message {asked:?} from {}", client.id));
    let (state, said) = match ctx.shared.mailboxes.state(mid).await?.ok_or_else(unknown)? {
        MessageState::Waiting => (DeliveryState::OnDelivery, "waiting for the provider"),
        MessageState::Retrying => (DeliveryState::NotDelivered, "the provider did not take it; it will be retried"),
        MessageState::Answered => (DeliveryState::Delivered, "the provider answered; the answer waits"),
        MessageState::Done => (DeliveryState::Delivered, "delivered and finished"),
        MessageState::Dead => (DeliveryState::DeliveryStopped, "out of attempts: with the operators' dead letters"),
    };
    let fields = format!(
        "<messageId>{}</messageId><status><code>{}</code><message>{}</message></status>",
        escape(asked),
        state.as_str(),
        escape(said)
    );
    let mut response = Response::new(Bytes::from(shep::async_ack("getMessageStatus", &fields)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    Ok(Outcome::built(response))
}

/// `sendDeliveryNotification`: the provider of the notification's `serviceId` says
/// whether it accepted the request `messageId` it took (pull): MESSAGE_ACCEPTED
/// finishes it (`getMessageStatus` then says DELIVERED); not accepted (ШЭП spells it
/// MESSAGE_NOT_ACCTEPTED; the plain spelling is taken too) hands it back for another
/// delivery after the backoff (NOT_DELIVERED), or with `resendMessage` NOT_RESEND
/// stops it: a dead letter for an operator (DELIVERY_STOPPED). Only the provider
/// holding the request may say so. The notification is a step of that message in
/// the message log: its record carries the request's `messageId`.
async fn notify(ctx: &mut Ctx, message: &Message, bytes: Bytes) -> Result<Outcome, GatewayError> {
    let runtime = ctx.runtime.clone();
    let bad = |why: String| GatewayError::new(ErrorCode::BadRequest, why);
    let notice =
        message.notice.clone().ok_or_else(|| bad("sendDeliveryNotification needs request/notification".into()))?;
    let asked = message.message_id.as_deref().filter(|m| !m.is_empty());
    let asked = asked.ok_or_else(|| bad("notification/messageId is required".into()))?;
    ctx.set_message_id(shep_sync::message_id(Some(asked))?);
    ctx.record.set_request_body(&bytes);
    let provider = shep_sync::identify(ctx, &runtime, message).await?;
    let (route, _) = shep_sync::route(&runtime, message)?;
    ctx.routed(route);
    ctx.record.set_subject("bip-async/notification");
    if route.id.system() != provider.id {
        return Err(GatewayError::new(
            ErrorCode::AccessDenied,
            format!("{} may not notify for {}, which it does not provide", provider.id, route.id),
        ));
    }
    let accepted = match notice.receive_status.as_deref() {
        Some("MESSAGE_ACCEPTED") => true,
        Some("MESSAGE_NOT_ACCTEPTED" | "MESSAGE_NOT_ACCEPTED") => false,
        other => {
            return Err(bad(format!(
                "receiveStatus must be MESSAGE_ACCEPTED or MESSAGE_NOT_ACCTEPTED, not {:?}",
                other.unwrap_or("")
            )))
        }
    };
    let resend = !notice.resend_message.as_deref().is_some_and(|r| r.eq_ignore_ascii_case("NOT_RESEND"));
    let why = match (notice.error_code.as_deref(), notice.error_message.as_deref()) {
        (Some(code), Some(said)) => format!("{code}: {said}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => "not accepted".to_owned(),
    };
    // The request's mailbox id names its client: one of the service's clients.
    for system in runtime.config.systems.iter().filter(|s| route.access.allows(s.id.as_str())) {
        let mid = qaqpa_mailbox::mailbox_id(system.id.as_str(), asked);
        let mailboxes = &ctx.shared.mailboxes;
        let done = match accepted {
            true => mailboxes.ack(mid, provider.id.as_str()).await,
            false => mailboxes.refuse(mid, provider.id.as_str(), why.clone(), resend).await,
        };
        match done {
            Ok(()) => {
                let event = if accepted { "ack" } else { "refuse" };
                let step = Step {
                    message: Some(asked.to_owned()),
                    service: Some(route.id.to_string()),
                    ..Step::new(event, mid)
                };
                ctx.record.set_step(step);
                // The metric's closed set of events: a refusal is a failed delivery,
                // a stop a dead letter.
                let counted = match (accepted, resend) {
                    (true, _) => "acked",
                    (false, true) => "failed",
                    (false, false) => "dead",
                };
                ctx.shared.telemetry.metrics.mailbox_events.with_label_values(&[counted]).inc();
                let fields = format!(
                    "<notificationId>{}</notificationId><responseDate>{}</responseDate>",
                    uuid::Uuid::new_v4(),
                    shep_sync::now_rfc3339()
                );
                let mut response = Response::new(Bytes::from(shep::async_ack("sendDeliveryNotification", &fields)));
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
                return Ok(Outcome::built(response));
            }
            Err(qaqpa_mailbox::MailboxError::Unknown(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(GatewayError::new(
        ErrorCode::UnknownMessage,
        format!("no request with messageId {asked:?} is held by {}", provider.id),
    ))
}

/// `sendMessageResponse`: the message id, the correlation id, and a delivery state.
fn ack(message: &Message, message_id: &str, state: DeliveryState, said: &str) -> Response<Bytes> {
    let correlation = message.correlation_id.as_deref().filter(|c| !c.is_empty()).unwrap_or(message_id);
    let fields = format!(
        "<messageId>{}</messageId><correlationId>{}</correlationId><status><code>{}</code><message>{}</message></status>",
        escape(message_id),
        escape(correlation),
        state.as_str(),
        escape(said)
    );
    let mut response = Response::new(Bytes::from(shep::async_ack("sendMessage", &fields)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

/// The provider's RESPONSE: stored as the reply to the request whose `messageId`
/// its `correlationId` names, sent by a client on the service's access list.
async fn reply(
    ctx: &mut Ctx,
    route: &Route,
    provider: &Arc<Client>,
    message: &Message,
    bytes: Bytes,
) -> Result<Outcome, GatewayError> {
    if route.id.system() != provider.id {
        return Err(GatewayError::new(
            ErrorCode::AccessDenied,
            format!("{} may not answer for {}, which it does not provide", provider.id, route.id),
        ));
    }
    let correlation = message.correlation_id.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
        GatewayError::new(ErrorCode::BadRequest, "a RESPONSE needs the request's messageId as correlationId")
    })?;
    ctx.record.set_subject("bip-async/reply");
    ctx.record.set_request_body(&bytes);
    let runtime = ctx.runtime.clone();
    let headers = vec![("content-type".to_owned(), "text/xml; charset=utf-8".to_owned())];
    for system in runtime.config.systems.iter().filter(|s| route.access.allows(s.id.as_str())) {
        let mid = qaqpa_mailbox::mailbox_id(system.id.as_str(), correlation);
        match ctx.shared.mailboxes.reply(mid, provider.id.as_str(), 200, headers.clone(), bytes.clone()).await {
            Ok(()) => {
                ctx.shared.telemetry.metrics.mailbox_events.with_label_values(&["replied"]).inc();
                let answer = ack(message, ctx.message_id(), DeliveryState::Delivered, "the reply waits for the client");
                return Ok(Outcome::built(answer));
            }
            Err(qaqpa_mailbox::MailboxError::Unknown(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(GatewayError::new(
        ErrorCode::UnknownMessage,
        format!("no request with messageId {correlation:?} waits for an answer from {}", provider.id),
    ))
}
