//! A SMEV 3 requester reaching a synchronous service (docs/smev3.md#mediation): a
//! kind of information whose service has no mailbox is answered by calling its
//! provider at once — a REST provider gets the `MessagePrimaryContent` root as
//! `application/xml`, an X-Road SOAP provider gets it in an envelope with the
//! X-Road header — and the provider's answer is queued in the requester's outbox
//! as the response its `GetResponse` collects.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use qaqpa_adapters::smev3::Call;
use qaqpa_adapters::soap::{self, SoapVersion, XRoadHeader, XRoadIdentifier};
use qaqpa_adapters::ErrorCode;

use super::lifecycle::{response_meta, smev_mid};
use super::trust::ReplyTo;
use crate::body::{collect_bounded, Source};
use crate::config::ServiceKind;
use crate::delivery::forward::{self, ProviderPath};
use crate::error::GatewayError;
use crate::exchange::Ctx;
use crate::headers::X_ROAD_CLIENT;
use crate::runtime::{Client, Route};

/// Calls the provider with the request's content and queues its answer.
pub(super) async fn call_provider(
    ctx: &mut Ctx,
    bytes: &[u8],
    call: &Call,
    client: &Arc<Client>,
    route: &Route,
    request_id: &str,
) -> Result<(), GatewayError> {
    let runtime = ctx.runtime.clone();
    let shared = ctx.shared.clone();
    let content = call
        .content
        .as_ref()
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "SendRequest needs MessagePrimaryContent"))?
        .detached(bytes);
    let (body, content_type) = match route.kind {
        ServiceKind::Rest => (content, "application/xml; charset=utf-8"),
        ServiceKind::Soap => {
            let header = XRoadHeader {
                client: Some(XRoadIdentifier::from_id(client.id.as_str())),
                service: Some(XRoadIdentifier::from_id(route.id.as_str())),
                id: Some(ctx.message_id().to_owned()),
                protocol_version: Some("4.0".to_owned()),
                ..XRoadHeader::default()
            };
            let text = soap::write_envelope(SoapVersion::V11, &header, &String::from_utf8_lossy(&content));
            (text.into_bytes(), SoapVersion::V11.content_type())
        }
    };
    let request = http::Request::post("/")
        .header(CONTENT_TYPE, content_type)
        .header(X_ROAD_CLIENT, client.id.as_str())
        .body(())
        .map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?;
    let (parts, ()) = request.into_parts();
    ctx.record.set_request_body(&body);
    let response = forward::deliver(
        route,
        &ProviderPath::new("", None),
        parts,
        Source::Buffered(Some(Bytes::from(body))),
        &ctx.peer,
        &mut ctx.record,
        &runtime.config.limits,
    )
    .await?;
    let status = response.status().as_u16();
    let mut answer_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let limit = runtime.config.mailbox.max_message_bytes;
    let mut answer = collect_bounded(response.into_body(), limit).await.map_err(|_| {
        GatewayError::new(
            ErrorCode::UpstreamUnavailable,
            format!("the provider's answer was cut off or over {limit} bytes"),
        )
    })?;
    if route.kind == ServiceKind::Soap {
        // The Body's content is the answer; the envelope was X-Road's.
        if let Ok(envelope) = soap::read_envelope(&answer, None, &runtime.config.xml.limits) {
            let inner = String::from_utf8_lossy(&answer[envelope.body]).trim().to_owned();
            answer = Bytes::from(inner);
            answer_type = "application/xml".to_owned();
        }
    }
    // One answer per request id: a resent request finds its answer already queued.
    let response_id = crate::mailbox::mailbox_id("smev3 synchronous answer", request_id).to_string();
    let reply = ReplyTo {
        c: client.id.to_string(),
        s: route.id.to_string(),
        m: request_id.to_owned(),
        r: smev_mid(request_id),
    };
    let headers = vec![("content-type".to_owned(), answer_type)];
    let meta = response_meta(&response_id, &reply, headers, status);
    let sent = shared.mailboxes.send(meta, answer).await?;
    crate::faces::async_mailbox::count_sent(&shared, sent);
    // The answer's life begins here: the gateway sent it for the provider.
    ctx.record.set_step(crate::observe::record::Step::new("reply", sent.mid()));
    Ok(())
}
