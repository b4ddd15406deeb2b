//! X-Road's own answers on the X-Road faces (`/r1`, `/soap`), pure: the table from
//! Qaqpa's stable codes to X-Road's error codes, X-Road's REST error bodies
//! (`ClientRestMessageHandler.sendErrorResponse`), its SOAP 1.1 fault
//! (`SoapFault.createFaultXml`), the SOAP 4.0 message checks X-Road makes on a
//! request (`SaxSoapParserImpl`, `SoapUtils`, `ProtocolVersion`,
//! `MessageProcessorBase.validateSoapActionHeader`) and the `requestHash` X-Road's
//! provider side puts into a SOAP response header. docs/protocol.md's conformance
//! table names the X-Road source file of each rule.
//!
//! X-Road's codes are spelled as in 7.8 and later (`client.*`,
//! `server.clientproxy.*`, `server.serverproxy.*`; before 7.8: `Client.*`,
//! `Server.ServerProxy.*`, which X-Road clients of that age compare
//! case-insensitively by prefix).

use crate::soap::{escape, Envelope, SoapError, XRoadIdentifier, SOAP11_NS, XROAD_NS};
use crate::ErrorCode;

/// X-Road codes for the SOAP 4.0 checks (`ErrorCodes.java`, with the prefix the
/// client proxy adds to a fault caused by the client's message).
pub mod code {
    pub const MISSING_HEADER: &str = "client.missing_header";
    pub const MISSING_HEADER_FIELD: &str = "client.missing_header_field";
    pub const DUPLICATE_HEADER_FIELD: &str = "client.duplicate_header_field";
    pub const MISSING_BODY: &str = "client.missing_body";
    pub const INVALID_BODY: &str = "client.invalid_body";
    pub const INCONSISTENT_HEADERS: &str = "client.inconsistent_headers";
    pub const INVALID_PROTOCOL_VERSION: &str = "client.invalid_protocol_version";
    pub const INVALID_XML: &str = "client.invalid_xml";
    pub const INVALID_SOAP: &str = "client.invalid_soap";
    pub const INVALID_CONTENT_TYPE: &str = "client.invalid_content_type";
    pub const INVALID_SOAP_ACTION: &str = "client.invalid_soap_action";
    pub const INVALID_HTTP_METHOD: &str = "client.invalid_http_method";
    pub const INVALID_CLIENT_IDENTIFIER: &str = "client.invalid_client_identifier";
    /// The provider's SOAP response does not answer the request (`SoapUtils.checkConsistency`).
    pub const SERVICE_INCONSISTENT_RESPONSE: &str = "server.serverproxy.service_failed.inconsistent_response";
    /// The provider's answer is not a SOAP 4.0 message.
    pub const SERVICE_INVALID_SOAP: &str = "server.serverproxy.service_failed.invalid_soap";
    /// The provider answered an HTTP error without a SOAP fault (`ServiceHttpError`).
    pub const SERVICE_HTTP_ERROR: &str = "server.serverproxy.service_failed.http_error";
}

/// The one table from Qaqpa's stable codes to X-Road's codes (docs/protocol.md
/// "Error codes on the X-Road faces"). Where X-Road has the same check, its code;
/// where it has none (rate limits, quotas, replay, overload), Qaqpa's reason under
/// the prefix of the side X-Road would blame, so an X-Road client still reads
/// `client.*` as "fix the request" and `server.*` as "try later".
pub fn xroad_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "client.bad_request",
        ErrorCode::UnknownService => "server.serverproxy.unknown_service",
        ErrorCode::UnknownMessage => "client.not_found",
        ErrorCode::AccessDenied => "server.serverproxy.access_denied",
        ErrorCode::IdentityMismatch => "server.clientproxy.ssl_authentication_failed",
        ErrorCode::BadSignature => "server.serverproxy.signature_verification",
        ErrorCode::Replay => "client.invalid_message",
        ErrorCode::TooLarge => "client.invalid_message",
        ErrorCode::BadXml => "client.invalid_soap",
        ErrorCode::RateLimited => "client.rate_limited",
        ErrorCode::QuotaExhausted => "client.quota_exhausted",
        ErrorCode::UpstreamUnavailable => "server.serverproxy.service_failed.network_error",
        ErrorCode::UpstreamTimeout => "server.serverproxy.service_failed.io_error",
        ErrorCode::Overloaded => "server.clientproxy.overloaded",
        ErrorCode::Internal => "server.clientproxy.internal_error",
        ErrorCode::LogUnavailable => "server.clientproxy.logging_failed",
        ErrorCode::StoreUnavailable => "server.clientproxy.store_unavailable",
        ErrorCode::LimiterUnavailable => "server.clientproxy.limiter_unavailable",
    }
}

/// The HTTP status of a REST error: 500 for `server.*`, else 400
/// (`ClientRestMessageHandler.sendErrorResponse`).
pub fn rest_status(xroad_code: &str) -> u16 {
    if xroad_code.starts_with("server.") {
        500
    } else {
        400
    }
}

/// The content type X-Road answers a REST error in: the first XML type the
/// `Accept` values name (`text/xml`, `application/xml`, `text/*` → `text/xml`),
/// else `application/json`.
pub fn rest_error_media<'a>(accept: impl IntoIterator<Item = &'a str>) -> &'static str {
    for value in accept {
        for item in value.split(',') {
            let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match media.as_str() {
                "text/xml" | "text/*" => return "text/xml",
                "application/xml" => return "application/xml",
                _ => {}
            }
        }
    }
    "application/json"
}

/// Whether the client asked for Qaqpa's problem+json by name (only then does the
/// X-Road REST face answer in it).
pub fn wants_problem_json<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    accept
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|item| item.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(crate::problem::CONTENT_TYPE))
}

/// X-Road's REST error body: `{"type","message","detail"}` in JSON, or
/// `<error><type/><message/><detail/></error>` for an XML media type.
pub fn rest_error_body(media: &str, xroad_code: &str, message: &str, detail: &str) -> Vec<u8> {
    if media == "application/json" {
        let body = serde_json::json!({ "type": xroad_code, "message": message, "detail": detail });
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><error><type>{}</type><message>{}</message><detail>{}</detail></error>",
            escape(xroad_code),
            escape(message),
            escape(detail)
        )
        .into_bytes()
    }
}

/// X-Road's SOAP 1.1 fault, byte for byte the shape of `SoapFault.createFaultXml`:
/// `faultcode` is the X-Road code, `faultstring` the message, `faultactor` empty and
/// `detail/faultDetail` the error's id.
pub fn soap11_fault(xroad_code: &str, message: &str, detail: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="{ns}">"#,
            r#"<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring>"#,
            r#"<faultactor></faultactor><detail><faultDetail xmlns="">{detail}</faultDetail></detail>"#,
            r#"</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        ),
        ns = SOAP11_NS,
        code = escape(xroad_code),
        message = escape(message),
        detail = escape(detail)
    )
}

/// A request X-Road refuses: its code, the Qaqpa code that goes with it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub xroad: &'static str,
    pub qaqpa: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(xroad: &'static str, qaqpa: ErrorCode, message: impl Into<String>) -> Self {
        Self { xroad, qaqpa, message: message.into() }
    }
}

/// The X-Road code of an envelope the hardened reader refused.
pub fn reader_code(error: &SoapError) -> &'static str {
    match error {
        SoapError::MissingBody => code::MISSING_BODY,
        SoapError::DuplicateXRoadField(_) => code::DUPLICATE_HEADER_FIELD,
        SoapError::TwoHeaders => code::DUPLICATE_HEADER_FIELD,
        SoapError::VersionMismatch => code::INVALID_CONTENT_TYPE,
        SoapError::BadXRoadIdentifier(_) => code::INVALID_XML,
        _ => code::INVALID_SOAP,
    }
}

/// `Content-Type` of a SOAP request: X-Road takes `text/xml` (SOAP 1.1; Qaqpa also
/// `application/soap+xml`, SOAP 1.2) and reads the charset from it. Qaqpa reads
/// UTF-8 only (a charset other than UTF-8 is refused rather than transcoded: the
/// message log and signatures keep the bytes as received).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Refusal> {
    let Some(ct) = content_type else { return Ok(()) };
    let mut params = ct.split(';');
    let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(media.as_str(), "text/xml" | "application/soap+xml") {
        return Err(Refusal::new(
            code::INVALID_CONTENT_TYPE,
            ErrorCode::BadRequest,
            format!("Invalid content type: {media}"),
        ));
    }
    for param in params {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"').to_ascii_lowercase();
                if charset != "utf-8" && charset != "utf8" {
                    return Err(Refusal::new(
                        code::INVALID_CONTENT_TYPE,
                        ErrorCode::BadRequest,
                        format!("charset {charset} is not supported; send UTF-8"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `SOAPAction`: missing, empty or `""` is accepted; otherwise it must be a quoted
/// URI (`MessageProcessorBase.validateSoapActionHeader`).
pub fn check_soap_action(action: Option<&str>) -> Result<(), Refusal> {
    let Some(action) = action else { return Ok(()) };
    if action.is_empty() || action == "\"\"" {
        return Ok(());
    }
    let quoted = action.len() > 2 && action.starts_with('"') && action.ends_with('"');
    if quoted && action[1..action.len() - 1].bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        return Ok(());
    }
    Err(Refusal::new(code::INVALID_SOAP_ACTION, ErrorCode::BadRequest, "Malformed SOAPAction header"))
}

/// X-Road's checks of a SOAP 4.0 request, in X-Road's order: identifier object
/// types and the protocol version as they are read, then the Header and its
/// required fields, then the Body (exactly one child whose local name starts with
/// the service code).
pub fn check_request(envelope: &Envelope) -> Result<(), Refusal> {
    let header = &envelope.header;
    let bad_xml = |m: String| Refusal::new(code::INVALID_XML, ErrorCode::BadRequest, m);
    if let Some(client) = &header.client {
        check_object_type(client, &["MEMBER", "SUBSYSTEM"]).map_err(bad_xml)?;
    }
    if let Some(service) = &header.service {
        check_object_type(service, &["SERVICE"]).map_err(bad_xml)?;
    }
    if let Some(version) = &header.protocol_version {
        if !version.starts_with("4.") {
            return Err(Refusal::new(
                code::INVALID_PROTOCOL_VERSION,
                ErrorCode::BadRequest,
                format!("Invalid protocol version (supported: 4.x, provided: {version})"),
            ));
        }
    }
    if envelope.header_element.is_none() {
        return Err(Refusal::new(
            code::MISSING_HEADER,
            ErrorCode::BadRequest,
            "Malformed SOAP message: header missing",
        ));
    }
    // Any X-Road header field given twice, not only those the reader models
    // (`SaxSoapParserImpl.validateDuplicateHeader`). A set: the count of fields is
    // bounded only by `max_elements`.
    let mut seen = std::collections::HashSet::new();
    if let Some(field) = envelope.xroad_fields.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(Refusal::new(
            code::DUPLICATE_HEADER_FIELD,
            ErrorCode::BadRequest,
            format!("SOAP header contains duplicate field '{field}'"),
        ));
    }
    let missing = |field: &str| {
        Refusal::new(code::MISSING_HEADER_FIELD, ErrorCode::BadRequest, format!("Required field '{field}' is missing"))
    };
    if header.protocol_version.is_none() {
        return Err(missing("protocolVersion"));
    }
    if header.client.is_none() {
        return Err(missing("client"));
    }
    if header.id.is_none() {
        return Err(missing("id"));
    }
    let Some(service) = &header.service else {
        return Err(Refusal::new(
            code::MISSING_HEADER_FIELD,
            ErrorCode::BadRequest,
            "Message header must contain service id",
        ));
    };
    if envelope.body_children != 1 {
        return Err(Refusal::new(
            code::INVALID_BODY,
            ErrorCode::BadRequest,
            "Malformed SOAP message: body must have exactly one child element",
        ));
    }
    let service_code = service.service_code.as_deref().unwrap_or("");
    let name = envelope.operation.as_ref().map_or("", |(_, local)| local.as_str());
    if !name.starts_with(service_code) {
        return Err(Refusal::new(
            code::INCONSISTENT_HEADERS,
            ErrorCode::BadRequest,
            "Malformed SOAP message: service code does not match in header and body",
        ));
    }
    Ok(())
}

fn check_object_type(id: &XRoadIdentifier, expected: &[&str]) -> Result<(), String> {
    match id.object_type.as_str() {
        "" => Err("Missing objectType attribute".into()),
        t if expected.contains(&t) => Ok(()),
        t if ["MEMBER", "SUBSYSTEM", "SERVICE", "SERVER", "GLOBALGROUP", "LOCALGROUP", "CENTRALSERVICE"]
            .contains(&t) =>
        {
            Err(format!("Unexpected objectType: {t}"))
        }
        t => Err(format!("Unknown objectType: {t}")),
    }
}

/// The algorithm X-Road names in `requestHash` (SHA-512).
pub const SHA512_ALGORITHM: &str = "http://www.w3.org/2001/04/xmlenc#sha512";

/// Whether a provider's envelope is a SOAP fault (passed through as X-Road does:
/// a fault needs no X-Road header).
pub fn is_fault(envelope: &Envelope) -> bool {
    envelope.operation.as_ref().is_some_and(|(ns, local)| local == "Fault" && ns == envelope.version.namespace())
}

/// X-Road's check that a provider's response answers the request
/// (`SoapUtils.checkConsistency`): the same client, service and id.
pub fn check_response(request: &Envelope, response: &Envelope) -> Result<(), Refusal> {
    let inconsistent = |field: &str| {
        Refusal::new(
            code::SERVICE_INCONSISTENT_RESPONSE,
            ErrorCode::UpstreamUnavailable,
            format!("Field '{field}' does not match in request and response"),
        )
    };
    if response.header_element.is_none() {
        return Err(Refusal::new(
            code::SERVICE_INVALID_SOAP,
            ErrorCode::UpstreamUnavailable,
            "Malformed SOAP message: header missing",
        ));
    }
    let same_id = |a: &Option<XRoadIdentifier>, b: &Option<XRoadIdentifier>| match (a, b) {
        (Some(a), Some(b)) => {
            (&a.instance, &a.member_class, &a.member_code, &a.subsystem_code, &a.service_code, &a.service_version)
                == (
                    &b.instance,
                    &b.member_class,
                    &b.member_code,
                    &b.subsystem_code,
                    &b.service_code,
                    &b.service_version,
                )
        }
        (None, None) => true,
        _ => false,
    };
    if !same_id(&request.header.client, &response.header.client) {
        return Err(inconsistent("client"));
    }
    if !same_id(&request.header.service, &response.header.service) {
        return Err(inconsistent("service"));
    }
    if request.header.id != response.header.id {
        return Err(inconsistent("queryId"));
    }
    Ok(())
}

/// Inserts `<requestHash>` as the last child of the response's Header, leaving every
/// other byte as the provider sent it. `hash_b64` is base64(SHA-512(request bytes)).
/// A `requestHash` the provider wrote itself is kept when it is the request's hash
/// and refused as an inconsistent response when it is not: the client would
/// otherwise hold an answer that names another request (X-Road's client side
/// refuses the same, `ClientMessageProcessor.checkRequestHash`).
pub fn insert_request_hash(response: &[u8], envelope: &Envelope, hash_b64: &str) -> Result<Vec<u8>, Refusal> {
    let unusable = || {
        Refusal::new(
            code::SERVICE_INVALID_SOAP,
            ErrorCode::UpstreamUnavailable,
            "Malformed SOAP message: its header cannot take the request hash",
        )
    };
    if envelope.xroad_fields.iter().any(|f| f == "requestHash") {
        return match provider_request_hash(response) {
            Some(theirs) if theirs.trim() == hash_b64 => Ok(response.to_vec()),
            _ => Err(Refusal::new(
                code::SERVICE_INCONSISTENT_RESPONSE,
                ErrorCode::UpstreamUnavailable,
                "Field 'requestHash' does not match in request and response",
            )),
        };
    }
    splice_request_hash(response, envelope, hash_b64).ok_or_else(unusable)
}

/// The text of the Header's `xrd:requestHash`, read from an answer the hardened
/// reader has already accepted (so its size and depth are bounded).
fn provider_request_hash(response: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_reader(response);
    let mut depth = 0usize;
    let mut inside = false;
    let mut text = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        let ours = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == XROAD_NS.as_bytes());
        match event {
            Event::Start(e) => {
                depth += 1;
                inside = depth == 3 && ours && e.local_name().as_ref() == b"requestHash";
            }
            Event::Empty(e) if depth == 2 && ours && e.local_name().as_ref() == b"requestHash" => {
                return Some(String::new());
            }
            Event::Text(t) if inside => text.push_str(&t.decode().ok()?),
            Event::End(_) => {
                if inside {
                    return Some(text);
                }
                depth = depth.checked_sub(1)?;
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn splice_request_hash(response: &[u8], envelope: &Envelope, hash_b64: &str) -> Option<Vec<u8>> {
    let range = envelope.header_element.clone()?;
    let element = response.get(range.clone())?;
    let element_text = std::str::from_utf8(element).ok()?;
    let hash = format!(
        r#"<xrd:requestHash xmlns:xrd="{XROAD_NS}" algorithmId="{SHA512_ALGORITHM}">{}</xrd:requestHash>"#,
        escape(hash_b64)
    );
    let mut out = Vec::with_capacity(response.len() + hash.len() + 64);
    if element_text.trim_end().ends_with("/>") {
        // `<SOAP-ENV:Header/>`: open it, insert, close it with the same name.
        let open_end = range.start + element_text.trim_end().len() - 2;
        let name = element_text.trim_start_matches('<').split(|c: char| c.is_whitespace() || c == '/').next()?;
        out.extend_from_slice(&response[..open_end]);
        out.extend_from_slice(format!(">{hash}</{name}>").as_bytes());
        out.extend_from_slice(&response[range.end..]);
    } else {
        let close = range.start + element_text.rfind("</")?;
        out.extend_from_slice(&response[..close]);
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(&response[close..]);
    }
    Some(out)
}

/// Everything the X-Road faces do with untrusted SOAP bytes, in one call for the
/// fuzz target (`fuzz/fuzz_targets/xroad_soap.rs`) and its stable twin in the tests:
/// read as a request and check, read as an answer, check it against the request and
/// splice the hash. It must return, never panic; a spliced answer must read again
/// with its `requestHash`.
pub fn exercise(request: &[u8], response: &[u8]) {
    let limits = crate::soap::XmlLimits::default();
    let _ = check_content_type(std::str::from_utf8(request.get(..request.len().min(64)).unwrap_or(&[])).ok());
    let _ = check_soap_action(std::str::from_utf8(response.get(..response.len().min(64)).unwrap_or(&[])).ok());
    let Ok(req) = crate::soap::read_envelope(request, None, &limits) else { return };
    let _ = check_request(&req);
    let Ok(resp) = crate::soap::read_envelope(response, None, &limits) else { return };
    let _ = is_fault(&resp);
    let _ = check_response(&req, &resp);
    if let Ok(spliced) = insert_request_hash(response, &resp, "aGFzaA==") {
        let again = crate::soap::read_envelope(&spliced, None, &limits);
        assert!(again.is_ok_and(|e| e.xroad_fields.iter().any(|f| f == "requestHash")), "splice broke the answer");
    }
}

#[cfg(test)]
mod tests;
