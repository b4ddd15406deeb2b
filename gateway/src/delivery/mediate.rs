//! Stage: adapt. SOAP⇄REST mediation (docs/mapping.md): a SOAP client calling a REST
//! provider, and a REST client calling a SOAP provider. The operation and its path
//! template come from the service's mediation face; bodies are mapped by
//! `qaqpa_adapters::mapping`; the provider is reached through the same delivery as
//! pass-through traffic, so limits, timeouts and measurements apply unchanged.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qaqpa_adapters::mapping::{json_to_xml_with, scalar_text as text, to_map, xml_to_tree, Json, Rules};
use qaqpa_adapters::problem::CONTENT_TYPE as PROBLEM_JSON;
use qaqpa_adapters::soap::{self, SoapVersion, XRoadHeader, XRoadIdentifier};
use qaqpa_adapters::ErrorCode;
use serde_json::{Map, Value};

use crate::body::client::ClientBody;
use crate::body::{collect_bounded, Collect, Source};
use crate::config::{MediatedOperation, Mediation};
use crate::error::GatewayError;
use crate::headers::X_ROAD_CLIENT;
use crate::observe::record::ExchangeRecord;
use crate::peer::Peer;
use crate::runtime::{Client, Route, Runtime};

/// Characters left as they are in a path segment filled from a SOAP field.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn bad_request(detail: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::BadRequest, detail)
}

async fn read_all(response: Response<Incoming>, limit: usize) -> Result<(http::response::Parts, Bytes), GatewayError> {
    let (parts, body) = response.into_parts();
    let bytes = collect_bounded(body, limit).await.map_err(|e| match e {
        Collect::TooLarge => {
            GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider's answer exceeds {limit} bytes"))
        }
        Collect::CutOff => GatewayError::new(ErrorCode::UpstreamUnavailable, "the provider's answer was cut off"),
    })?;
    Ok((parts, bytes))
}

/// Posts a SOAP envelope the gateway built to the route's (SOAP) provider and reads
/// the whole answer, bounded by `xml.max_message_bytes`, as a SOAP envelope: its
/// bytes and where its parts lie. `client_error_fails`: a 4xx answer is refused
/// before it is read as SOAP (providers that never answer faults with 4xx).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn post_soap(
    runtime: &Runtime,
    route: &Route,
    parts: http::request::Parts,
    envelope: Vec<u8>,
    peer: &Peer,
    exchange: &mut ExchangeRecord,
    client_error_fails: bool,
) -> Result<(Bytes, soap::Envelope), GatewayError> {
    let xml = runtime.config.xml;
    let path = crate::delivery::forward::ProviderPath::new("", None);
    let response = crate::delivery::forward::deliver(
        route,
        &path,
        parts,
        Source::Buffered(Some(Bytes::from(envelope))),
        peer,
        exchange,
        &runtime.config.limits,
    )
    .await?;
    let (head, answer) = read_all(response, xml.max_message_bytes).await?;
    let status = head.status;
    if client_error_fails && !status.is_success() && !status.is_server_error() {
        return Err(GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider answered {status}")));
    }
    let reply = soap::read_envelope(&answer, None, &xml.limits).map_err(|e| {
        GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider's answer is not SOAP: {e}"))
    })?;
    Ok((answer, reply))
}

/// A SOAP client calls a REST provider: Body → method, path and JSON; JSON answer →
/// `{operation}Response` in a SOAP envelope of the request's version.
#[allow(clippy::too_many_arguments)]
pub async fn soap_to_rest(
    runtime: &Runtime,
    route: &Route,
    mediation: &Mediation,
    envelope: &soap::Envelope,
    bytes: &Bytes,
    client: &Client,
    peer: &Peer,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let xml = runtime.config.xml;
    let (_, op_name) = envelope.operation.as_ref().ok_or_else(|| bad_request("the SOAP Body is empty"))?;
    let op = mediation
        .operations
        .iter()
        .find(|o| &o.name == op_name)
        .ok_or_else(|| bad_request(format!("{} has no SOAP operation {op_name}", route.id)))?;
    // A tree, not a serde_json::Value: numbers go on with the digits they were written with.
    let mut body = xml_to_tree(&bytes[envelope.body.clone()], &mediation.rules, &xml.limits)
        .map_err(|e| GatewayError::new(ErrorCode::BadXml, e.to_string()))?;
    let mut fields = match body.iter().position(|(k, _)| k == op_name).map(|i| body.remove(i).1) {
        Some(object @ Json::Object(_)) => object,
        Some(Json::String(s)) if s.is_empty() => Json::Object(Vec::new()),
        _ => return Err(bad_request(format!("{op_name} must hold its fields as elements"))),
    };
    let mut path = String::new();
    for part in &op.path {
        path.push('/');
        match part {
            crate::config::PathPart::Literal(l) => path.push_str(l),
            crate::config::PathPart::Param(p) => {
                let value = fields.remove(p).as_ref().and_then(Json::scalar_text).ok_or_else(|| {
                    bad_request(format!("{op_name} needs the element {p} (it fills the provider's path)"))
                })?;
                path.push_str(&utf8_percent_encode(&value, SEGMENT).to_string());
            }
        }
    }
    let with_body = !matches!(op.method, Method::GET | Method::DELETE);
    let payload = if with_body { Bytes::from(fields.to_json_string()) } else { Bytes::new() };
    let path = crate::delivery::forward::ProviderPath::new(&path, None);
    let mut request = Request::builder()
        .method(op.method.clone())
        .header(ACCEPT, "application/json")
        .header(X_ROAD_CLIENT, client.id.as_str());
    if with_body {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    for (name, value) in [("x-road-userid", &envelope.header.user_id), ("x-road-issue", &envelope.header.issue)] {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            request = request.header(HeaderName::from_static(name), v);
        }
    }
    let (parts, ()) = request.body(()).map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?.into_parts();
    let response = crate::delivery::forward::deliver(
        route,
        &path,
        parts,
        Source::Buffered(Some(payload)),
        peer,
        exchange,
        &runtime.config.limits,
    )
    .await?;
    let (head, answer) = read_all(response, xml.max_message_bytes).await?;
    if !head.status.is_success() {
        return Err(rest_failure(head.status, &head.headers, &answer));
    }
    let value: Value = if answer.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&answer)
            .map_err(|_| GatewayError::new(ErrorCode::UpstreamUnavailable, "the provider's answer is not JSON"))?
    };
    let mut object = match value {
        Value::Object(m) => m,
        Value::Array(items) => Map::from_iter([("item".to_owned(), Value::Array(items))]),
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    // A typed WSDL promises its sequence: the answer is written in the schema's order.
    if let Some(fields) = op.shape.as_ref().and_then(|s| s.response_fields()) {
        object = qaqpa_adapters::schema::order(&object, &fields);
    }
    let body_xml = json_to_xml_with(&format!("{op_name}Response"), &mediation.namespace, &object, &mediation.rules)
        .map_err(|e| {
            GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider's answer cannot be mapped: {e}"))
        })?;
    let xml_text = soap::write_envelope(envelope.version, &envelope.header, &body_xml);
    let mut out = Response::new(Bytes::from(xml_text));
    out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(envelope.version.content_type()));
    Ok(out)
}

/// The provider's non-2xx answer as an error: its problem+json code when it uses
/// ours, else by status.
fn rest_failure(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
    let is_problem =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with(PROBLEM_JSON));
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if is_problem {
        if let Some(code) = parsed.as_ref().and_then(|p| p["code"].as_str()).and_then(ErrorCode::parse) {
            let detail = parsed.as_ref().and_then(|p| p["detail"].as_str()).unwrap_or(code.title());
            return GatewayError::new(code, detail.to_owned());
        }
    }
    let said = parsed
        .as_ref()
        .and_then(|p| p.get("detail").or(p.get("error")).or(p.get("message")).and_then(Value::as_str))
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let code = if status.is_client_error() { ErrorCode::BadRequest } else { ErrorCode::UpstreamUnavailable };
    GatewayError::new(code, format!("the provider answered {}{said}", status.as_u16()))
}

/// Finds the REST face's operation for a request path (after the service id).
pub fn find_operation<'m>(
    mediation: &'m Mediation,
    method: &Method,
    path: &str,
) -> Option<(&'m MediatedOperation, Vec<(String, String)>)> {
    mediation.operations.iter().find_map(|op| op.matches(method, path).map(|params| (op, params)))
}

/// A REST client calls a SOAP provider: path parameters and JSON body → the
/// operation's Body in a SOAP 1.1 envelope with the X-Road header; the answer's
/// Body → JSON, a fault → problem+json.
#[allow(clippy::too_many_arguments)]
pub async fn rest_to_soap(
    runtime: &Runtime,
    route: &Route,
    mediation: &Mediation,
    op: &MediatedOperation,
    params: Vec<(String, String)>,
    req: Request<ClientBody>,
    client: &Client,
    peer: &Peer,
    exchange: &mut ExchangeRecord,
) -> Result<Response<Bytes>, GatewayError> {
    let xml = runtime.config.xml;
    let (client_parts, body) = req.into_parts();
    let body = collect_bounded(body, xml.max_message_bytes).await.map_err(|e| match e {
        Collect::TooLarge => {
            GatewayError::new(ErrorCode::TooLarge, format!("the request exceeds {} bytes", xml.max_message_bytes))
        }
        Collect::CutOff => bad_request("the request body was cut off"),
    })?;
    let mut fields = Map::new();
    for (name, value) in params {
        fields.insert(name, Value::String(value));
    }
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => {
                for (k, v) in m {
                    fields.entry(k).or_insert(v);
                }
            }
            _ => return Err(bad_request("the request body must be a JSON object")),
        }
    }
    let body_xml = json_to_xml_with(&op.name, &mediation.namespace, &fields, &mediation.rules)
        .map_err(|e| bad_request(e.to_string()))?;
    if let Some(shep_id) = crate::delivery::shep::provider_service_id(runtime, route) {
        // The provider speaks ШЭП SyncChannel (docs/shep.md#delivery).
        return crate::delivery::shep::rest_to_sync(
            runtime, route, mediation, shep_id, &body_xml, client, peer, exchange,
        )
        .await;
    }
    let header_text = |name: &str| client_parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id(client.id.as_str())),
        service: Some(XRoadIdentifier::from_id(route.id.as_str())),
        id: Some(exchange.id().to_owned()),
        user_id: header_text("x-road-userid"),
        issue: header_text("x-road-issue"),
        protocol_version: Some("4.0".into()),
    };
    let envelope = soap::write_envelope(SoapVersion::V11, &header, &body_xml);
    let mut request = Request::builder().method(Method::POST).header(CONTENT_TYPE, SoapVersion::V11.content_type());
    let action = op.soap_action.clone().unwrap_or_default();
    request = request.header("soapaction", format!("\"{action}\""));
    let (parts, ()) = request.body(()).map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?.into_parts();
    let (answer, reply) = post_soap(runtime, route, parts, envelope.into_bytes(), peer, exchange, false).await?;
    // A fault is read in the plain style whatever the service's style (its fields are SOAP's).
    let is_fault = reply.operation.as_ref().is_some_and(|(_, local)| local == "Fault");
    let rules = if is_fault { &Rules::default() } else { &mediation.rules };
    let mapped = xml_to_tree(&answer[reply.body.clone()], rules, &xml.limits).map_err(|e| {
        GatewayError::new(ErrorCode::UpstreamUnavailable, format!("the provider's answer cannot be mapped: {e}"))
    })?;
    if let Some((_, Json::Object(fault))) = mapped.iter().find(|(k, _)| k == "Fault") {
        return Err(soap_failure(&to_map(fault)));
    }
    let value = mapped.into_iter().next().map(|(_, v)| v).unwrap_or(Json::Object(Vec::new()));
    let mut out = Response::new(Bytes::from(value.to_json_string()));
    out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(out)
}

/// A provider's SOAP fault as an error: our stable code when it carries one, else
/// client faults as 400 and server faults as 502, with the provider's message.
fn soap_failure(fault: &Map<String, Value>) -> GatewayError {
    // SOAP 1.1: faultcode/faultstring; SOAP 1.2: Code/Value (+Subcode) and Reason/Text.
    let code_text = fault.get("faultcode").and_then(text).or_else(|| {
        let code = fault.get("Code")?;
        code.get("Subcode").and_then(|s| s.get("Value")).or(code.get("Value")).and_then(text)
    });
    let message = fault
        .get("faultstring")
        .and_then(text)
        .or_else(|| {
            fault
                .get("Reason")
                .and_then(|r| r.get("Text"))
                .and_then(|t| text(t).or_else(|| t.get("#text").and_then(text)))
        })
        .unwrap_or_else(|| "the provider answered with a fault".into());
    let local = code_text.as_deref().map(|c| c.rsplit(':').next().unwrap_or(c).to_owned()).unwrap_or_default();
    if let Some(code) = ErrorCode::parse(&local) {
        return GatewayError::new(code, message);
    }
    let client_side = local.starts_with("Client") || local.starts_with("Sender");
    let code = if client_side { ErrorCode::BadRequest } else { ErrorCode::UpstreamUnavailable };
    GatewayError::new(
        code,
        format!("the provider answered with a fault ({}): {message}", code_text.unwrap_or_default()),
    )
}
