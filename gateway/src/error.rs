//! The gateway's errors and their one mapping to the wire: `application/problem+json`
//! with the stable code of docs/protocol.md#errors in the `X-Road-Error` and
//! `Qaqpa-Error` headers. The X-Road faces render X-Road's own answer instead
//! (`faces::xroad_rest`, `faces::xroad_soap`): X-Road's code in `X-Road-Error`,
//! Qaqpa's stable code still in `Qaqpa-Error`.

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Response, StatusCode};
use qaqpa_adapters::problem::{problem_json, CONTENT_TYPE};
use qaqpa_adapters::ErrorCode;

use crate::body::{full_body, GatewayBody};

/// Why an exchange was refused or failed. The message is the problem's `detail`:
/// it names ids and limits, never request content or personal data.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct GatewayError {
    pub code: ErrorCode,
    pub detail: String,
    /// Extra response headers (`Retry-After`, `RateLimit`, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// X-Road's code when it is finer than the table's for `code` (the SOAP 4.0
    /// checks: `client.missing_header`, …).
    pub xroad: Option<&'static str>,
}

impl GatewayError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), headers: Vec::new(), xroad: None }
    }

    /// An X-Road check's refusal: X-Road's code, with the Qaqpa code that goes with it.
    pub fn xroad(refusal: qaqpa_adapters::xroad::Refusal) -> Self {
        Self::new(refusal.qaqpa, refusal.message).with_xroad(refusal.xroad)
    }

    pub fn with_xroad(mut self, code: &'static str) -> Self {
        self.xroad = Some(code);
        self
    }

    /// The code an X-Road client reads (docs/protocol.md "Error codes on the X-Road faces").
    pub fn xroad_code(&self) -> &'static str {
        self.xroad.unwrap_or_else(|| qaqpa_adapters::xroad::xroad_code(self.code))
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn into_response(self, message_id: Option<&str>) -> Response<GatewayBody> {
        let mut response = error_response(self.code, &self.detail, message_id);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub const X_ROAD_ERROR: &str = "x-road-error";
/// Qaqpa's stable code on every refusal, whatever face and format (the X-Road faces
/// put X-Road's code in `X-Road-Error`).
pub const QAQPA_ERROR: &str = "qaqpa-error";

pub fn error_response(code: ErrorCode, detail: &str, message_id: Option<&str>) -> Response<GatewayBody> {
    let body = problem_json(code, detail, message_id);
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(X_ROAD_ERROR, HeaderValue::from_static(code.as_str()));
    headers.insert(QAQPA_ERROR, HeaderValue::from_static(code.as_str()));
    if let Some(id) = message_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(crate::headers::X_ROAD_ID, id);
    }
    response
}

/// X-Road's REST error (`ClientRestMessageHandler.sendErrorResponse`): 400 for
/// `client.*`, 500 for `server.*`, X-Road's code in `X-Road-Error`, and
/// `{"type","message","detail"}` (or `<error>` for an XML `media`). `detail` is the
/// exchange's message id, under which the gateway's records find the refusal.
pub fn xroad_rest_response(error: GatewayError, message_id: &str, media: &'static str) -> Response<GatewayBody> {
    use qaqpa_adapters::xroad;
    let code = error.xroad_code();
    let body = xroad::rest_error_body(media, code, &error.detail, message_id);
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(xroad::rest_status(code)).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    let content_type = match media {
        "text/xml" => "text/xml; charset=utf-8",
        "application/xml" => "application/xml; charset=utf-8",
        _ => "application/json; charset=utf-8",
    };
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_ROAD_ERROR, HeaderValue::from_static(code));
    headers.insert(QAQPA_ERROR, HeaderValue::from_static(error.code.as_str()));
    if let Ok(id) = HeaderValue::from_str(message_id) {
        headers.insert(crate::headers::X_ROAD_ID, id);
    }
    for (name, value) in error.headers {
        headers.insert(name, value);
    }
    response
}
