//! Stage: deliver, for the ШЭП faces (docs/shep.md#delivery). Three kinds of provider:
//!
//! - one that speaks SyncChannel (`shep_provider = true`): the `SendMessage` goes as
//!   it came, byte for byte, and its answer (a fault too) comes back unchanged;
//! - a REST provider: `requestData/data` becomes the operation of the service's SOAP
//!   face (`[service.soap]`, docs/mapping.md) and goes through the same mediation as
//!   a SOAP client's call; the JSON answer becomes `responseData/data`;
//! - an X-Road SOAP provider: the content of `data` (the operation element) is put
//!   in an X-Road envelope with the client, service and message id; the answer's
//!   Body becomes `responseData/data`.
//!
//! In the last two the gateway fills `responseInfo` (status `SCSS001`).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use qaqpa_adapters::mapping::{json_to_xml, xml_to_json};
use qaqpa_adapters::shep::{self, Message, ResponseInfo};
use qaqpa_adapters::soap::{self, SoapVersion, XRoadHeader, XRoadIdentifier};
use qaqpa_adapters::ErrorCode;
use serde_json::{Map, Value};

use crate::body::Source;
use crate::delivery::mediate::post_soap;
use crate::error::GatewayError;
use crate::observe::record::ExchangeRecord;
use crate::peer::Peer;
use crate::runtime::{Client, Route, Runtime};

fn post_xml(soap_action: bool) -> Result<http::request::Parts, GatewayError> {
    let mut request = Request::builder().method(Method::POST).header(CONTENT_TYPE, SoapVersion::V11.content_type());
    if soap_action {
        request = request.header("soapaction", "\"\"");
    }
    let (parts, ()) = request.body(()).map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?.into_parts();
    Ok(parts)
}

/// A ШЭП provider: the message as it came (signature and all).
pub async fn forward_as_is(
    runtime: &Runtime,
    route: &Route,
    bytes: Bytes,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<Response<Incoming>, GatewayError> {
    let path = crate::delivery::forward::ProviderPath::new("", None);
    let parts = post_xml(true)?;
    crate::delivery::forward::deliver(
        route,
        &path,
        parts,
        Source::Buffered(Some(bytes)),
        peer,
        record,
        &runtime.config.limits,
    )
    .await
}

/// The text of `data`'s content (empty when there is none).
fn data_of<'b>(message: &Message, bytes: &'b [u8]) -> &'b str {
    message.data.clone().and_then(|r| std::str::from_utf8(&bytes[r]).ok()).unwrap_or("")
}

fn bad_request(detail: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::BadRequest, detail)
}

/// A REST provider, through the service's SOAP face: the operation is the one
/// `data`'s `xsi:type` names, or the face's only one.
#[allow(clippy::too_many_arguments)]
pub async fn to_rest(
    runtime: &Runtime,
    route: &Route,
    message: &Message,
    bytes: &[u8],
    client: &Client,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<Map<String, Value>, GatewayError> {
    let mediation = route.mediation.as_deref().ok_or_else(|| {
        bad_request(format!("{} is a REST service without a [service.soap] face to map ШЭП data with", route.id))
    })?;
    let named = message.data_type_local();
    let op = match (
        named.and_then(|n| mediation.operations.iter().find(|o| o.name == n)),
        mediation.operations.as_slice(),
    ) {
        (Some(op), _) => op,
        (None, [only]) => only,
        _ => {
            return Err(bad_request(format!(
                "data's xsi:type {:?} names none of {}'s operations",
                named.unwrap_or(""),
                route.id
            )))
        }
    };
    let text = format!(
        r#"<e:Envelope xmlns:e="{}"><e:Body><{name} xmlns="{ns}">{data}</{name}></e:Body></e:Envelope>"#,
        soap::SOAP11_NS,
        name = op.name,
        ns = soap::escape(&mediation.namespace).replace('"', "&quot;"),
        data = data_of(message, bytes),
    );
    let xml = runtime.config.xml;
    let envelope = soap::read_envelope(text.as_bytes(), None, &xml.limits)
        .map_err(|e| GatewayError::new(ErrorCode::BadXml, format!("requestData/data: {e}")))?;
    let bytes = Bytes::from(text);
    let answer =
        crate::delivery::mediate::soap_to_rest(runtime, route, mediation, &envelope, &bytes, client, peer, record)
            .await?;
    let body = answer.into_body();
    let reply = soap::read_envelope(&body, None, &xml.limits)
        .map_err(|e| GatewayError::new(ErrorCode::Internal, format!("the mapped answer: {e}")))?;
    first_object(&body[reply.body], &mediation.rules, runtime)
}

/// An X-Road SOAP provider: `data`'s content (the operation element) in an X-Road
/// envelope naming the client, the service and the message id.
#[allow(clippy::too_many_arguments)]
pub async fn to_xroad_soap(
    runtime: &Runtime,
    route: &Route,
    message: &Message,
    bytes: &[u8],
    client: &Client,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<Map<String, Value>, GatewayError> {
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id(client.id.as_str())),
        service: Some(XRoadIdentifier::from_id(route.id.as_str())),
        id: Some(record.id().to_owned()),
        user_id: None,
        issue: None,
        protocol_version: Some("4.0".into()),
    };
    let envelope = soap::write_envelope(SoapVersion::V11, &header, data_of(message, bytes));
    let (answer, reply) = post_soap(runtime, route, post_xml(true)?, envelope.into_bytes(), peer, record, true).await?;
    let rules = route.mediation.as_ref().map(|m| m.rules.clone()).unwrap_or_default();
    if reply.operation.as_ref().is_some_and(|(_, local)| local == "Fault") {
        let fault = first_object(&answer[reply.body], &rules, runtime)?;
        let said = fault.get("faultstring").and_then(qaqpa_adapters::mapping::scalar_text).unwrap_or_default();
        return Err(GatewayError::new(
            ErrorCode::UpstreamUnavailable,
            format!("the provider answered with a fault: {said}"),
        ));
    }
    first_object(&answer[reply.body], &rules, runtime)
}

/// The first element of a Body as a JSON object (its content).
fn first_object(
    body: &[u8],
    rules: &qaqpa_adapters::mapping::Rules,
    runtime: &Runtime,
) -> Result<Map<String, Value>, GatewayError> {
    let mapped = xml_to_json(body, rules, &runtime.config.xml.limits)
        .map_err(|e| GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the answer cannot be mapped: {e}")))?;
    Ok(match mapped.into_iter().next().map(|(_, v)| v) {
        Some(Value::Object(m)) => m,
        None => Map::new(),
        Some(other) => Map::from_iter([("value".to_owned(), other)]),
    })
}

/// The `SendMessageResponse` the gateway writes for a mapped provider's answer.
pub fn sync_answer(
    message: &Message,
    message_id: &str,
    data: &Map<String, Value>,
) -> Result<Response<Bytes>, GatewayError> {
    let data = json_to_xml("data", "", data)
        .map_err(|e| GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the answer cannot be mapped: {e}")))?;
    let info = ResponseInfo {
        message_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: Some(message_id.to_owned()),
        response_date: now_rfc3339(),
        status_code: shep::SUCCESS_CODE.into(),
        status_message: shep::SUCCESS_MESSAGE.into(),
        session_id: message.session_id.clone(),
    };
    let mut response = Response::new(Bytes::from(shep::sync_response(&info, Some(&data))));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(SoapVersion::V11.content_type()));
    Ok(response)
}

/// The ШЭП serviceId of a service whose provider speaks SyncChannel.
pub fn provider_service_id<'r>(runtime: &'r Runtime, route: &Route) -> Option<&'r str> {
    let service = runtime.config.services.iter().find(|s| s.id == route.id)?;
    service.shep_provider.then_some(service.shep_service_id.as_deref()).flatten()
}

/// A call to a provider that speaks SyncChannel, for a client that does not: the
/// gateway builds the `SendMessage` (messageId = the exchange's id, serviceId =
/// `shep_service_id`, senderId = the client's `shep_sender`, else its system id;
/// `op_xml` in `requestData/data`, with the namespace `declarations` it needs), posts
/// it, and returns the answer with where its parts lie. A fault, a status other
/// than `SCSS001` or an answer that is not `SendMessageResponse` is the provider's
/// failure, with its status or fault in the detail.
#[allow(clippy::too_many_arguments)]
async fn call_sync(
    runtime: &Runtime,
    route: &Route,
    shep_service_id: &str,
    op_xml: &str,
    declarations: &str,
    client: &Client,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<(Bytes, shep::SyncAnswer), GatewayError> {
    let sender = runtime
        .config
        .systems
        .iter()
        .find(|s| s.id == client.id)
        .and_then(|s| s.shep_sender.clone())
        .unwrap_or_else(|| client.id.to_string());
    let message =
        shep::build_sync_request(record.id(), shep_service_id, &now_rfc3339(), &sender, None, declarations, op_xml);
    let (answer, reply) = post_soap(runtime, route, post_xml(true)?, message.into_bytes(), peer, record, true).await?;
    let failed = |detail: String| GatewayError::new(ErrorCode::UpstreamUnavailable, detail);
    let read = shep::read_sync_answer(&answer, &reply)
        .map_err(|e| failed(format!("the provider's answer is not a SyncChannel answer: {e}")))?;
    if let Some(fault) = &read.fault {
        let code = fault.error_code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
        return Err(failed(format!("the provider answered with a fault ({}{code}): {}", fault.code, fault.string)));
    }
    let code = read.status_code.as_deref().unwrap_or_default();
    if code != shep::SUCCESS_CODE {
        let said = read.status_message.as_deref().unwrap_or_default();
        return Err(failed(format!("the provider answered status {code:?}: {said}")));
    }
    Ok((answer, read))
}

/// A REST client calling a service whose provider speaks SyncChannel, through the
/// service's REST face: the operation element (`op_xml`) goes in `requestData/data`
/// of a `SendMessage` the gateway builds ([`call_sync`]); `responseData/data` of the
/// answer comes back as JSON (a single `…Response` element unwrapped).
#[allow(clippy::too_many_arguments)]
pub async fn rest_to_sync(
    runtime: &Runtime,
    route: &Route,
    mediation: &crate::config::Mediation,
    shep_service_id: &str,
    op_xml: &str,
    client: &Client,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let (answer, read) = call_sync(runtime, route, shep_service_id, op_xml, "", client, peer, record).await?;
    let data = match read.data_element {
        Some(element) => first_object(&answer[element], &mediation.rules, runtime)?,
        None => Map::new(),
    };
    let value = match data.len() {
        1 if data.keys().all(|k| k.ends_with("Response")) => {
            data.into_iter().next().map(|(_, v)| v).unwrap_or_default()
        }
        _ => Value::Object(data),
    };
    let mut out = Response::new(Bytes::from(value.to_string()));
    out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(out)
}

/// An X-Road SOAP client calling a service whose provider speaks SyncChannel: the
/// Body's operation element, with the namespace declarations in scope at the Body
/// (a prefix declared on the Envelope), goes in `requestData/data` ([`call_sync`]).
/// The answer is an X-Road SOAP response in the request's version with the request's
/// X-Road header: `responseData/data`'s content (or, when it is one `…Response`
/// element, that element's content) inside `{operation}Response` in the operation's
/// namespace, carrying the declarations in scope there. The caller adds `requestHash`.
#[allow(clippy::too_many_arguments)]
pub async fn xroad_to_sync(
    runtime: &Runtime,
    route: &Route,
    shep_service_id: &str,
    envelope: &soap::Envelope,
    bytes: &[u8],
    client: &Client,
    peer: &Peer,
    record: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let (op_ns, op_name) = envelope.operation.clone().ok_or_else(|| bad_request("the SOAP Body is empty"))?;
    let op_xml = std::str::from_utf8(&bytes[envelope.body.clone()])
        .map_err(|_| GatewayError::new(ErrorCode::BadXml, "the SOAP Body is not UTF-8"))?
        .trim();
    let in_scope = shep::namespaces_in_scope(bytes, envelope.body.start);
    // Prefixes go on `data`; a default namespace cannot (`data` is unqualified), so
    // it goes on the operation element itself.
    let op_xml = match in_scope.iter().find(|(p, _)| p.is_empty()) {
        Some((_, uri)) => shep::with_default_namespace(op_xml, uri),
        None => op_xml.to_owned(),
    };
    // Only the prefixes the operation may use (named anywhere in it, `xsi:type`
    // values too): the X-Road header's `xrd`, `id` and the Envelope's own stay behind.
    let used: Vec<(String, String)> =
        in_scope.iter().filter(|(p, _)| !p.is_empty() && op_xml.contains(&format!("{p}:"))).cloned().collect();
    let declarations = shep::declarations(&used, false);
    let (answer, read) =
        call_sync(runtime, route, shep_service_id, &op_xml, &declarations, client, peer, record).await?;
    let content = read.data.clone().map(|data| shep::response_content(&answer, data)).unwrap_or(0..0);
    let text = std::str::from_utf8(&answer[content.clone()])
        .map_err(|_| GatewayError::new(ErrorCode::UpstreamUnavailable, "the provider's data is not UTF-8"))?;
    let in_scope = shep::namespaces_in_scope(&answer, content.start);
    // Unprefixed content keeps the default namespace it had; with none it takes the
    // operation's, as an X-Road provider's answer would.
    let default = in_scope.iter().any(|(p, _)| p.is_empty());
    let own =
        if default { String::new() } else { format!(r#" xmlns="{}""#, soap::escape(&op_ns).replace('"', "&quot;")) };
    let body = format!(
        "<{op_name}Response{own}{decls}>{text}</{op_name}Response>",
        decls = shep::declarations(&in_scope, true)
    );
    let xml_text = soap::write_envelope(envelope.version, &envelope.header, &body);
    let mut out = Response::new(Bytes::from(xml_text));
    out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(envelope.version.content_type()));
    Ok(out)
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
