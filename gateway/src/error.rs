//! The gateway's errors and their one mapping to the wire: `application/problem+json`
//! with the stable code of docs/protocol.md#errors and the `X-Road-Error` header.

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
}

impl GatewayError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), headers: Vec::new() }
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

pub fn error_response(code: ErrorCode, detail: &str, message_id: Option<&str>) -> Response<GatewayBody> {
    let body = problem_json(code, detail, message_id);
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(X_ROAD_ERROR, HeaderValue::from_static(code.as_str()));
    if let Some(id) = message_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(crate::headers::X_ROAD_ID, id);
    }
    response
}
