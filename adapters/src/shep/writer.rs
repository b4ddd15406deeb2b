//! What the gateway writes in ШЭП's shapes: SyncChannel answers, AsyncChannel
//! receipts, faults, and a `SendMessage` built for a ШЭП-speaking provider. SOAP 1.1
//! only (ШЭП speaks nothing else); `request`/`response` and their children are
//! unqualified, as in the public messages (docs/shep.md#sources).

use super::{ASYNC_TYPES_NS, SYNC_TYPES_NS};
use crate::soap::{escape, SOAP11_NS};
use crate::ErrorCode;

/// The status a successful SyncChannel answer carries (as ШЭП sends it).
pub const SUCCESS_CODE: &str = "SCSS001";
pub const SUCCESS_MESSAGE: &str = "Message has been processed successfully";

/// `responseInfo` of a SyncChannel answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    pub message_id: String,
    pub correlation_id: Option<String>,
    /// RFC 3339.
    pub response_date: String,
    pub status_code: String,
    pub status_message: String,
    pub session_id: Option<String>,
}

fn opt(tag: &str, value: Option<&str>) -> String {
    value.map(|v| format!("<{tag}>{}</{tag}>", escape(v))).unwrap_or_default()
}

/// A SOAP 1.1 envelope around `body` (serialized XML).
pub fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP11_NS}"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// `SendMessageResponse`; `data` is a whole `<data>` element (or none).
pub fn sync_response(info: &ResponseInfo, data: Option<&str>) -> String {
    let body = format!(
        concat!(
            r#"<ns2:SendMessageResponse xmlns:ns2="{ns}"><response><responseInfo>"#,
            "<messageId>{id}</messageId>{correlation}<responseDate>{date}</responseDate>",
            "<status><code>{code}</code><message>{message}</message></status>{session}",
            "</responseInfo><responseData>{data}</responseData></response></ns2:SendMessageResponse>"
        ),
        ns = SYNC_TYPES_NS,
        id = escape(&info.message_id),
        correlation = opt("correlationId", info.correlation_id.as_deref()),
        date = escape(&info.response_date),
        code = escape(&info.status_code),
        message = escape(&info.status_message),
        session = opt("sessionId", info.session_id.as_deref()),
        data = data.unwrap_or(""),
    );
    envelope(&body)
}

/// AsyncChannel `{operation}Response` with `response` holding `fields` (serialized XML).
pub fn async_ack(operation: &str, fields: &str) -> String {
    envelope(&format!(
        r#"<ns2:{operation}Response xmlns:ns2="{ASYNC_TYPES_NS}"><response>{fields}</response></ns2:{operation}Response>"#
    ))
}

/// A SOAP 1.1 fault in ШЭП's shape: `faultcode` Client or Server, `faultstring`, and
/// a `SendMessageFault` detail with the stable code as `errorCode` (docs/shep.md#errors).
pub fn fault(async_channel: bool, code: ErrorCode, message: &str, date: &str, session_id: Option<&str>) -> String {
    let ns = if async_channel { ASYNC_TYPES_NS } else { SYNC_TYPES_NS };
    let side = if code.is_client_fault() { "Client" } else { "Server" };
    let message = escape(message);
    envelope(&format!(
        concat!(
            "<SOAP-ENV:Fault><faultcode>SOAP-ENV:{side}</faultcode><faultstring>{message}</faultstring>",
            r#"<detail><ns2:SendMessageFault xmlns:ns2="{ns}"><errorCode>{code}</errorCode>"#,
            "<errorMessage>{message}</errorMessage><errorDate>{date}</errorDate>{session}",
            "</ns2:SendMessageFault></detail></SOAP-ENV:Fault>"
        ),
        side = side,
        message = message,
        ns = ns,
        code = code.as_str(),
        date = escape(date),
        session = opt("sessionId", session_id),
    ))
}

/// A SyncChannel `SendMessage` for a ШЭП-speaking provider, built for a client that
/// does not speak ШЭП; `data` is the content of `requestData/data` (serialized XML),
/// `declarations` the namespace declarations it needs (` xmlns:p="…"`, put on `data`).
pub fn build_sync_request(
    message_id: &str,
    service_id: &str,
    message_date: &str,
    sender_id: &str,
    data_type: Option<&str>,
    declarations: &str,
    data: &str,
) -> String {
    let typed = data_type
        .map(|t| format!(r#" xmlns:xsi="{}" xsi:type="{}""#, super::XSI_NS, escape(t).replace('"', "&quot;")))
        .unwrap_or_default();
    let typed = format!("{typed}{declarations}");
    envelope(&format!(
        concat!(
            r#"<ns2:SendMessage xmlns:ns2="{ns}"><request><requestInfo>"#,
            "<messageId>{id}</messageId><serviceId>{service}</serviceId><messageDate>{date}</messageDate>",
            "<sender><senderId>{sender}</senderId></sender></requestInfo>",
            "<requestData><data{typed}>{data}</data></requestData></request></ns2:SendMessage>"
        ),
        ns = SYNC_TYPES_NS,
        id = escape(message_id),
        service = escape(service_id),
        date = escape(message_date),
        sender = escape(sender_id),
        typed = typed,
        data = data,
    ))
}
