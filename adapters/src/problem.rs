//! RFC 9457 `application/problem+json` bodies carrying a stable error code.

use serde::Serialize;

use crate::ErrorCode;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Namespace of the `type` URIs; one per code, stable like the codes themselves.
pub const TYPE_PREFIX: &str = "urn:qaqpa:error:";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", rename = "messageId")]
    message_id: Option<&'a str>,
}

/// Serializes the problem document for `code`. `detail` must not carry personal data:
/// it goes back to the client and may be logged by intermediaries.
pub fn problem_json(code: ErrorCode, detail: &str, message_id: Option<&str>) -> Vec<u8> {
    let problem = Problem {
        kind: format!("{TYPE_PREFIX}{}", code.as_str()),
        title: code.title(),
        status: code.http_status(),
        code: code.as_str(),
        detail,
        message_id,
    };
    serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_fields() {
        let body = problem_json(ErrorCode::AccessDenied, "not \"allowed\"", Some("id-1"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "urn:qaqpa:error:client.access_denied");
        assert_eq!(v["status"], 403);
        assert_eq!(v["code"], "client.access_denied");
        assert_eq!(v["detail"], "not \"allowed\"");
        assert_eq!(v["messageId"], "id-1");
        let v: serde_json::Value = serde_json::from_slice(&problem_json(ErrorCode::Internal, "x", None)).unwrap();
        assert!(v.get("messageId").is_none());
    }
}
