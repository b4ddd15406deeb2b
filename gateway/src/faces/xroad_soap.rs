//! The X-Road SOAP face (docs/protocol.md): `POST /soap` (or `POST /` with a SOAP
//! content type). The envelope is read whole (bounded by `xml.max_message_bytes`)
//! because routing needs its X-Road header; then the one exchange runs — identify
//! (the header's `client` must be the certificate's system), route (the header's
//! `service`), authorize, limit, verify — and the original bytes go to the SOAP
//! provider unchanged: the gateway never re-serializes what it did not change.
//!
//! X-Road's rules hold here (docs/protocol.md "X-Road conformance"): the SOAP 4.0
//! checks X-Road's client proxy makes (`qaqpa_adapters::xroad::check_request`),
//! its content-type and SOAPAction rules, its fault (SOAP 1.1: `faultcode` = the
//! X-Road code, `detail/faultDetail` = the message id, HTTP 200 as X-Road's
//! `HandlerBase` sends it), and on the way back its provider-side check that the
//! response answers the request, with `requestHash` spliced into the response
//! header (before any signature on the answer). SOAP 1.2 is Qaqpa's extra and keeps
//! Qaqpa's fault. A Body in the asynchronous namespace is one of the mailbox
//! operations ([`super::async_soap`]), Qaqpa's own and not held to X-Road's checks.

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use qaqpa_adapters::soap::{self, SoapVersion};
use qaqpa_adapters::{xroad, ErrorCode};
use sha2::{Digest, Sha512};

use crate::body::client::ClientBody;
use crate::body::{collect_bounded, full_body, Collect, GatewayBody, Source};
use crate::config::ServiceKind;
use crate::delivery::{forward, mediate};
use crate::error::{GatewayError, QAQPA_ERROR, X_ROAD_ERROR};
use crate::exchange::limit as limit_stage;
use crate::exchange::{authorize, identify_claim, signatures, Ctx, Face, Outcome, Reply};
use crate::headers::{MAX_MESSAGE_ID_LEN, X_ROAD_ID};
use crate::runtime::{Client, Route, Runtime};

pub const SOAP_PATH: &str = "/soap";
/// Envelopes larger than this are parsed off the async workers.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Whether a request is a SOAP call: `POST /soap`, or `POST /` with a SOAP content type.
pub fn is_soap_call<B>(req: &Request<B>) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let path = req.uri().path();
    path == SOAP_PATH || (path == "/" && content_version(req).is_some())
}

fn content_version<B>(req: &Request<B>) -> Option<SoapVersion> {
    req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(SoapVersion::from_content_type)
}

/// The face; it answers in the request's SOAP version once the envelope is read
/// (before that, the one its content type names, else 1.1).
pub struct XRoadSoap {
    version: SoapVersion,
}

impl XRoadSoap {
    pub fn new<B>(req: &Request<B>) -> Self {
        Self { version: content_version(req).unwrap_or(SoapVersion::V11) }
    }
}

impl Face for XRoadSoap {
    const NAME: &'static str = "soap";

    async fn exchange(&mut self, ctx: &mut Ctx, req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        let runtime = ctx.runtime.clone();
        let xml = runtime.config.xml;
        let (parts, body) = req.into_parts();
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // X-Road checks the content type and SOAPAction before it reads a byte.
        xroad::check_content_type(content_type.as_deref()).map_err(GatewayError::xroad)?;
        let action = parts.headers.get("soapaction").map(|v| v.to_str().unwrap_or("\u{0}"));
        xroad::check_soap_action(action).map_err(GatewayError::xroad)?;
        let bytes = read_bounded(&parts.headers, body, xml.max_message_bytes).await?;
        // Big envelopes are read on a blocking thread: a 10 MiB one takes tens of ms,
        // which must not stall the other exchanges on this worker.
        let read = if bytes.len() > OFFLOAD_BYTES {
            let (buf, limits, content_type) = (bytes.clone(), xml.limits, content_type.clone());
            tokio::task::spawn_blocking(move || soap::read_envelope(&buf, content_type.as_deref(), &limits))
                .await
                .unwrap_or(Err(soap::SoapError::NotAnEnvelope))
        } else {
            soap::read_envelope(&bytes, content_type.as_deref(), &xml.limits)
        };
        let envelope =
            read.map_err(|e| GatewayError::new(e.code(), e.to_string()).with_xroad(xroad::reader_code(&e)))?;
        self.version = envelope.version;
        let asynchronous = envelope.operation.as_ref().is_some_and(|(ns, _)| ns == super::async_soap::NS);
        if !asynchronous {
            xroad::check_request(&envelope).map_err(GatewayError::xroad)?;
        }
        ctx.set_message_id(message_id(envelope.header.id.as_deref())?);

        let claimed = envelope
            .header
            .client
            .as_ref()
            .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "the X-Road header client is missing"))?
            .system_id()
            .ok_or_else(|| {
                // A member-level client: the registry holds subsystems only, so to
                // X-Road this is a client it does not know.
                GatewayError::new(ErrorCode::BadRequest, "the X-Road client must be a registered subsystem")
                    .with_xroad("server.clientproxy.unknown_member")
            })?;
        let client = identify_claim(&runtime, &ctx.peer, &claimed)?;
        ctx.identified(&client);
        if asynchronous {
            let call = super::async_soap::Call { client, content_type, bytes, envelope: &envelope };
            return super::async_soap::serve(call, ctx).await;
        }
        let service_id = envelope
            .header
            .service
            .as_ref()
            .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "the X-Road header service is missing"))?
            .service_id()
            .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "the X-Road service has no serviceCode"))?;
        let route = runtime.routes.get(&service_id).ok_or_else(|| {
            GatewayError::new(ErrorCode::UnknownService, format!("no service {service_id} is registered"))
        })?;
        ctx.routed(route);
        let mediation = match (route.kind, route.mediation.as_deref()) {
            (ServiceKind::Soap, _) => None,
            (ServiceKind::Rest, Some(m)) => Some(m),
            (ServiceKind::Rest, None) => {
                return Err(GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("{} is a REST service without a SOAP face; call it at /r1/{}", route.id, route.id),
                ))
            }
        };
        authorize(route, &client)?;
        let admission = limit_stage::admit(&*ctx.shared, route, &client).await?;
        let message_id = ctx.message_id().to_owned();
        // Signed on behalf, the message grows a Signature; mediation reads the original.
        let (forwarded, signature) =
            signatures::soap(&ctx.shared.replay, &runtime, route, &client, &message_id, bytes.clone(), &envelope)
                .await?;
        if let Some(value) = signature {
            ctx.record.set_signature(value);
        }
        if let Some(mediation) = mediation {
            // A SOAP client calling a REST provider: adapt.
            let built = mediate::soap_to_rest(
                &runtime,
                route,
                mediation,
                &envelope,
                &bytes,
                &client,
                &ctx.peer,
                &mut ctx.record,
            )
            .await?;
            let built = with_request_hash(built, &bytes, &xml.limits);
            return Ok(Outcome::new(Reply::Built(built), admission));
        }
        if let Some(shep_id) = crate::delivery::shep::provider_service_id(&runtime, route) {
            // The provider speaks only ШЭП SyncChannel (docs/shep.md#delivery).
            let (peer, record) = (&ctx.peer, &mut ctx.record);
            let built = crate::delivery::shep::xroad_to_sync(
                &runtime, route, shep_id, &envelope, &bytes, &client, peer, record,
            )
            .await?;
            let built = with_request_hash(built, &bytes, &xml.limits);
            return Ok(Outcome::new(Reply::Built(built), admission));
        }
        let path = forward::ProviderPath::new("", None);
        // Sent as received (not signed on behalf): the body's digest, taken on its
        // way out for the message log, is the `requestHash` too.
        let as_received = forwarded.as_ptr() == bytes.as_ptr() && forwarded.len() == bytes.len();
        let response = forward::deliver(
            route,
            &path,
            parts,
            Source::Buffered(Some(forwarded)),
            &ctx.peer,
            &mut ctx.record,
            &runtime.config.limits,
        )
        .await?;
        let request_digest = ctx.record.request_body_digest().filter(|_| as_received);
        let answer = Answer { runtime: &runtime, route, client: &client, message_id: &message_id };
        let built = answer.finish(&envelope, &bytes, request_digest, response).await?;
        Ok(Outcome::new(Reply::Built(built), admission))
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        fault_response(self.version, error, message_id)
    }
}

/// The provider's answer on its way back, as X-Road's provider side handles it.
struct Answer<'a> {
    runtime: &'a Runtime,
    route: &'a Route,
    client: &'a Client,
    message_id: &'a str,
}

impl Answer<'_> {
    /// Reads the answer whole (bounded like a request), checks that it answers the
    /// request (client, service, id), splices `requestHash` = base64(SHA-512(the
    /// request as the client sent it)) into its header, then signs it when the
    /// service signs answers. A SOAP fault passes as the provider sent it.
    /// `request_digest` is that SHA-512 when it is known already.
    async fn finish(
        &self,
        request: &soap::Envelope,
        request_bytes: &[u8],
        request_digest: Option<[u8; 64]>,
        response: Response<hyper::body::Incoming>,
    ) -> Result<http::Response<Bytes>, GatewayError> {
        let xml = self.runtime.config.xml;
        let (parts, body) = response.into_parts();
        let limit = xml.max_message_bytes;
        let bytes = collect_bounded(body, limit).await.map_err(|e| {
            let why = match e {
                Collect::TooLarge => format!("the provider's answer exceeds {limit} bytes"),
                Collect::CutOff => "the provider's answer was cut off".to_owned(),
            };
            GatewayError::new(ErrorCode::UpstreamUnavailable, why)
        })?;
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let status = parts.status;
        let invalid = |why: String| {
            // An HTTP error without a SOAP fault is X-Road's http_error; a 2xx that is
            // not an X-Road answer its invalid_soap.
            let code = match status.is_success() {
                true => xroad::code::SERVICE_INVALID_SOAP,
                false => xroad::code::SERVICE_HTTP_ERROR,
            };
            GatewayError::new(
                ErrorCode::UpstreamUnavailable,
                format!("the provider's answer ({status}) is not SOAP: {why}"),
            )
            .with_xroad(code)
        };
        // A big answer is read off the async workers, as a big request is.
        let read = if bytes.len() > OFFLOAD_BYTES {
            let (buf, limits, content_type) = (bytes.clone(), xml.limits, content_type.map(str::to_owned));
            tokio::task::spawn_blocking(move || soap::read_envelope(&buf, content_type.as_deref(), &limits))
                .await
                .unwrap_or(Err(soap::SoapError::NotAnEnvelope))
        } else {
            soap::read_envelope(&bytes, content_type, &xml.limits)
        };
        let envelope = read.map_err(|e| invalid(e.to_string()))?;
        let bytes = if xroad::is_fault(&envelope) {
            bytes
        } else {
            xroad::check_response(request, &envelope).map_err(GatewayError::xroad)?;
            let digest = request_digest.unwrap_or_else(|| Sha512::digest(request_bytes).into());
            let hash = base64::engine::general_purpose::STANDARD.encode(digest);
            let spliced = xroad::insert_request_hash(&bytes, &envelope, &hash).map_err(GatewayError::xroad)?;
            Bytes::from(spliced)
        };
        if self.route.sign_responses {
            return signatures::sign_response_bytes(
                self.runtime,
                self.route,
                self.client,
                self.message_id,
                parts,
                bytes,
            );
        }
        let mut parts = parts;
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        Ok(http::Response::from_parts(parts, bytes))
    }
}

/// A mediated answer (built by the gateway with the request's header) gets X-Road's
/// `requestHash` too; a fault, or an answer the reader refuses, stays as built.
fn with_request_hash(
    built: http::Response<Bytes>,
    request_bytes: &[u8],
    limits: &soap::XmlLimits,
) -> http::Response<Bytes> {
    let (mut parts, body) = built.into_parts();
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let spliced = soap::read_envelope(&body, content_type, limits).ok().filter(|e| !xroad::is_fault(e)).and_then(|e| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(request_bytes));
        xroad::insert_request_hash(&body, &e, &hash).ok()
    });
    match spliced {
        Some(bytes) => {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            http::Response::from_parts(parts, Bytes::from(bytes))
        }
        None => http::Response::from_parts(parts, body),
    }
}

/// The envelope's bytes, refused past `limit` (by the declared length at once).
async fn read_bounded(headers: &http::HeaderMap, body: ClientBody, limit: usize) -> Result<Bytes, GatewayError> {
    let too_large = || GatewayError::new(ErrorCode::TooLarge, format!("the SOAP message exceeds {limit} bytes"));
    super::read_envelope_bytes(headers, body, limit, too_large).await
}

/// The X-Road `id`, or a generated one when the envelope has none.
fn message_id(id: Option<&str>) -> Result<String, GatewayError> {
    match id {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(id)
            if !id.is_empty() && id.len() <= MAX_MESSAGE_ID_LEN && id.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(id.to_owned())
        }
        Some(_) => Err(GatewayError::new(ErrorCode::BadRequest, "the X-Road id must be 1 to 128 printable characters")),
    }
}

/// A SOAP fault. SOAP 1.1 is X-Road's fault (`SoapFault.createFaultXml`):
/// `faultcode` = X-Road's code, `detail/faultDetail` = the message id, HTTP 200
/// with `text/xml; charset=utf-8` as X-Road's `HandlerBase.sendErrorResponse` sends
/// it. SOAP 1.2 (Qaqpa's extra) keeps Qaqpa's fault: the stable code under
/// `Sender`/`Receiver`, 400 or 500. Both carry X-Road's code in `X-Road-Error` and
/// the stable code in `Qaqpa-Error`.
fn fault_response(version: SoapVersion, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
    let xroad_code = error.xroad_code();
    let (body, status) = match version {
        SoapVersion::V11 => (xroad::soap11_fault(xroad_code, &error.detail, message_id), StatusCode::OK),
        SoapVersion::V12 => {
            let status =
                if error.code.is_client_fault() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
            (soap::fault(version, error.code, &error.detail, Some(message_id)), status)
        }
    };
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(version.content_type()));
    headers.insert(X_ROAD_ERROR, HeaderValue::from_static(xroad_code));
    headers.insert(QAQPA_ERROR, HeaderValue::from_static(error.code.as_str()));
    if version == SoapVersion::V11 {
        headers.insert(HeaderName::from_static("soapaction"), HeaderValue::from_static("\"\""));
    }
    if let Ok(id) = HeaderValue::from_str(message_id) {
        headers.insert(X_ROAD_ID, id);
    }
    for (name, value) in error.headers {
        headers.insert(name, value);
    }
    response
}
