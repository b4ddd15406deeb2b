//! The SOAP side of the pipeline (DESIGN §4): `POST /soap` (or `POST /` with a SOAP
//! content type). The envelope is read whole (bounded by `xml.max_message_bytes`)
//! because routing needs its X-Road header; then the same stages as REST run —
//! identify (the header's `client` must be the certificate's system), route (the
//! header's `service`), authorize, limit — and the original bytes go to the SOAP
//! provider unchanged: the gateway never re-serializes what it did not change.
//! Every refusal is a SOAP fault carrying the stable code.
//!
//! `GET /soap/{service id}?wsdl` serves the provider's WSDL with its endpoint
//! pointed at the gateway.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use qaqpa_adapters::soap::{self, SoapVersion};
use qaqpa_adapters::ErrorCode;
use tracing::{field, info_span, Instrument};

use crate::config::ServiceKind;
use crate::delivery::body::{collect_bounded, Collect, Source};
use crate::error::{GatewayError, X_ROAD_ERROR};
use crate::exchange::headers::{MAX_MESSAGE_ID_LEN, X_ROAD_ID};
use crate::exchange::limits::stage::{self as limit_stage, Admission};
use crate::exchange::{authorize, full_body, identify_claim, peer_system, respond, GatewayBody, Peer, Reply};
use crate::gateway::Gateway;
use crate::observe::telemetry::Exchange;
use crate::runtime::Runtime;
use crate::server::client_body::ClientBody;

pub const SOAP_PATH: &str = "/soap";
/// Envelopes larger than this are parsed off the async workers.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Whether a request is a SOAP call (as opposed to REST or a WSDL fetch).
pub fn is_soap_call<B>(req: &Request<B>) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let path = req.uri().path();
    let soap_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(SoapVersion::from_content_type)
        .is_some();
    path == SOAP_PATH || (path == "/" && soap_type)
}

pub fn is_wsdl_request<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        && req.uri().path().starts_with("/soap/")
        && req.uri().query().is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("wsdl")))
}

/// A failure of the SOAP pipeline: the code, the message, and the SOAP version to
/// answer in.
struct Failure {
    version: SoapVersion,
    error: GatewayError,
}

fn fault_response(version: SoapVersion, error: GatewayError, message_id: Option<&str>) -> Response<GatewayBody> {
    let body = soap::fault(version, error.code, &error.detail, message_id);
    let mut response = Response::new(full_body(body));
    // SOAP 1.1 answers every fault with 500; SOAP 1.2 tells sender from receiver.
    *response.status_mut() = match (version, error.code.is_client_fault()) {
        (SoapVersion::V12, true) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(version.content_type()));
    headers.insert(X_ROAD_ERROR, HeaderValue::from_static(error.code.as_str()));
    if let Some(id) = message_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(X_ROAD_ID, id);
    }
    for (name, value) in error.headers {
        headers.insert(name, value);
    }
    response
}

pub async fn serve(gateway: Arc<Gateway>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    let started = Instant::now();
    let runtime = gateway.runtime();
    let content_version =
        req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(SoapVersion::from_content_type);
    let fallback = content_version.unwrap_or(SoapVersion::V11);
    let xml = runtime.config.xml;

    // Read the envelope, bounded while reading.
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large =
        || GatewayError::new(ErrorCode::TooLarge, format!("the SOAP message exceeds {} bytes", xml.max_message_bytes));
    if declared.is_some_and(|n| n > xml.max_message_bytes as u64) {
        let mut exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
        return finish_with_fault(&mut exchange, fallback, too_large());
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match collect_bounded(body, xml.max_message_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let mut exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
            let error = match e {
                Collect::TooLarge => too_large(),
                Collect::CutOff => GatewayError::new(ErrorCode::BadRequest, "the request body was cut off"),
            };
            return finish_with_fault(&mut exchange, fallback, error);
        }
    };
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Big envelopes are read on a blocking thread: a 10 MiB one takes tens of ms,
    // which must not stall the other exchanges on this worker.
    let read = if bytes.len() > OFFLOAD_BYTES {
        let (buf, limits) = (bytes.clone(), xml.limits);
        tokio::task::spawn_blocking(move || soap::read_envelope(&buf, content_type.as_deref(), &limits))
            .await
            .unwrap_or(Err(soap::SoapError::NotAnEnvelope))
    } else {
        soap::read_envelope(&bytes, content_type.as_deref(), &xml.limits)
    };
    let envelope = match read {
        Ok(e) => e,
        Err(e) => {
            let mut exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
            return finish_with_fault(&mut exchange, fallback, GatewayError::new(e.code(), e.to_string()));
        }
    };
    let version = envelope.version;
    let message_id = match envelope.header.id.as_deref() {
        None => uuid::Uuid::now_v7().to_string(),
        Some(id)
            if !id.is_empty() && id.len() <= MAX_MESSAGE_ID_LEN && id.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            id.to_owned()
        }
        Some(_) => {
            let mut exchange = Exchange::begin(gateway.clone(), uuid::Uuid::now_v7().to_string(), started);
            let error = GatewayError::new(ErrorCode::BadRequest, "the X-Road id must be 1 to 128 printable characters");
            return finish_with_fault(&mut exchange, version, error);
        }
    };
    let span = info_span!("exchange", id = %message_id, client = field::Empty, service = field::Empty, soap = ?version);
    let mut exchange = Exchange::begin(gateway.clone(), message_id, started);
    let outcome =
        run_stages(&gateway, &runtime, &peer, parts, bytes, &envelope, &mut exchange).instrument(span.clone()).await;
    let response = match outcome {
        Ok((reply, admission)) => respond(reply, admission, exchange),
        Err(Failure { version, error }) => finish_with_fault(&mut exchange, version, error),
    };
    span.in_scope(|| {
        let code = response.headers().get(X_ROAD_ERROR).and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::info!(
            status = response.status().as_u16(),
            code,
            micros = started.elapsed().as_micros() as u64,
            "exchange done"
        )
    });
    response
}

fn finish_with_fault(exchange: &mut Exchange, version: SoapVersion, error: GatewayError) -> Response<GatewayBody> {
    let code = error.code;
    let id = exchange.id().to_owned();
    let response = fault_response(version, error, Some(&id));
    exchange.response_head(response.status().as_u16(), Some(code), Admission::none());
    exchange.take().finish(0);
    response
}

async fn run_stages(
    gateway: &Gateway,
    runtime: &Arc<Runtime>,
    peer: &Peer,
    parts: http::request::Parts,
    bytes: Bytes,
    envelope: &soap::Envelope,
    exchange: &mut Exchange,
) -> Result<(Reply, Admission), Failure> {
    let version = envelope.version;
    let fail = |error: GatewayError| Failure { version, error };
    let claimed = envelope
        .header
        .client
        .as_ref()
        .ok_or_else(|| fail(GatewayError::new(ErrorCode::BadRequest, "the X-Road header client is missing")))?
        .system_id()
        .ok_or_else(|| fail(GatewayError::new(ErrorCode::BadRequest, "the X-Road client must be a subsystem")))?;
    let client = identify_claim(runtime, peer, &claimed).map_err(fail)?;
    tracing::Span::current().record("client", client.id.as_str());
    exchange.set_client(&client);
    if envelope.operation.as_ref().is_some_and(|(ns, _)| ns == crate::faces::async_soap::NS) {
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let call = crate::faces::async_soap::Call { gateway, runtime, peer, client, content_type, bytes, envelope };
        return crate::faces::async_soap::serve(call, exchange).await.map_err(fail);
    }
    let service_id = envelope
        .header
        .service
        .as_ref()
        .ok_or_else(|| fail(GatewayError::new(ErrorCode::BadRequest, "the X-Road header service is missing")))?
        .service_id()
        .ok_or_else(|| fail(GatewayError::new(ErrorCode::BadRequest, "the X-Road service has no serviceCode")))?;
    let route = runtime.routes.get(&service_id).ok_or_else(|| {
        fail(GatewayError::new(ErrorCode::UnknownService, format!("no service {service_id} is registered")))
    })?;
    tracing::Span::current().record("service", route.id.as_str());
    exchange.set_service(route);
    let mediation = match (route.kind, route.mediation.as_deref()) {
        (ServiceKind::Soap, _) => None,
        (ServiceKind::Rest, Some(m)) => Some(m),
        (ServiceKind::Rest, None) => {
            return Err(fail(GatewayError::new(
                ErrorCode::BadRequest,
                format!("{} is a REST service without a SOAP face; call it at /r1/{}", route.id, route.id),
            )))
        }
    };
    authorize(route, &client).map_err(fail)?;
    let admission = limit_stage::admit(gateway, route, &client).await.map_err(fail)?;
    let message_id = exchange.id().to_owned();
    // Signed on behalf, the message grows a Signature; mediation reads the original.
    let (forwarded, signature) =
        crate::exchange::signatures::soap(gateway, runtime, route, &client, &message_id, bytes.clone())
            .await
            .map_err(fail)?;
    if let Some(value) = signature {
        exchange.set_signature(value);
    }
    if let Some(mediation) = mediation {
        // A SOAP client calling a REST provider: adapt.
        let built = crate::delivery::mediate::soap_to_rest(
            runtime, route, mediation, envelope, &bytes, &client, peer, exchange,
        )
        .await
        .map_err(fail)?;
        return Ok((Reply::Built(built), admission));
    }
    let path = crate::delivery::forward::ProviderPath::new("", None);
    let response = crate::delivery::forward::deliver(
        route,
        &path,
        parts,
        Source::Buffered(Some(forwarded)),
        peer,
        exchange,
        &runtime.config.limits,
    )
    .await
    .map_err(fail)?;
    if route.sign_responses {
        let signed = crate::exchange::signatures::sign_response(runtime, route, &client, &message_id, response)
            .await
            .map_err(fail)?;
        return Ok((Reply::Built(signed), admission));
    }
    Ok((Reply::Stream(response), admission))
}

/// `GET /soap/{service id}?wsdl`: the provider's WSDL, endpoint rewritten to this
/// gateway. Over mTLS only a client on the service's access list may read it.
pub async fn serve_wsdl(gateway: Arc<Gateway>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    let runtime = gateway.runtime();
    let problem = |code: ErrorCode, detail: String| GatewayError::new(code, detail).into_response(None);
    let id = req.uri().path().trim_start_matches("/soap/").trim_end_matches('/');
    if id == ASYNC_WSDL_ID {
        let Some(location) = endpoint_location(&req, peer.certificate.is_some()) else {
            return problem(ErrorCode::BadRequest, "a Host header is needed to point the WSDL at this gateway".into());
        };
        return wsdl_response(
            qaqpa_adapters::wsdl::rewrite_endpoint(qaqpa_adapters::wsdl::ASYNC_WSDL, &location).map(|(t, _)| t),
        );
    }
    let Some(route) = runtime.routes.get(id) else {
        return problem(ErrorCode::UnknownService, format!("no service {id} is registered"));
    };
    if let Some(cert) = &peer.certificate {
        match peer_system(&runtime, cert) {
            Some(client) if route.access.allows(client.id.as_str()) => {}
            _ => {
                return problem(ErrorCode::AccessDenied, format!("the certificate's system may not call {}", route.id))
            }
        }
    }
    let service = runtime.config.services.iter().find(|s| s.id == route.id);
    let Some(location) = endpoint_location(&req, peer.certificate.is_some()) else {
        return problem(ErrorCode::BadRequest, "a Host header is needed to point the WSDL at this gateway".into());
    };
    let document = match (service.and_then(|s| s.wsdl.as_ref()), route.kind, route.mediation.as_deref()) {
        (Some(wsdl), _, _) => qaqpa_adapters::wsdl::rewrite_endpoint(wsdl, &location).map(|(text, _)| text),
        (None, ServiceKind::Rest, Some(m)) => Ok(crate::faces::contracts::generated_wsdl(route, m, &location)),
        _ => return problem(ErrorCode::UnknownService, format!("{} has no WSDL", route.id)),
    };
    wsdl_response(document)
}

/// `/soap/a1?wsdl`: the asynchronous operations' WSDL.
const ASYNC_WSDL_ID: &str = "a1";

/// This gateway's SOAP endpoint as the client reached it.
fn endpoint_location<B>(req: &Request<B>, tls: bool) -> Option<String> {
    let scheme = if tls { "https" } else { "http" };
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
    let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))?;
    Some(format!("{scheme}://{host}{SOAP_PATH}"))
}

fn wsdl_response<E: std::fmt::Display>(document: Result<String, E>) -> Response<GatewayBody> {
    match document {
        Ok(text) => {
            let mut r = Response::new(full_body(text));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
            r
        }
        Err(e) => GatewayError::new(ErrorCode::Internal, format!("the WSDL cannot be served: {e}")).into_response(None),
    }
}
