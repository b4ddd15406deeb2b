//! The SMEV 3 face (docs/smev3.md): `POST /smev3/` speaks the SMEV 3
//! message-exchange interface (types 1.1 and 1.2) so systems built for СМЭВ 3
//! exchange through Qaqpa unchanged; `GET /smev3/?wsdl` and the schemas beside it
//! describe it ([`contract`]).
//!
//! Every call is one exchange: the envelope is read by the hardened reader of
//! `qaqpa_adapters::smev3`, the caller is its certificate's system (or, on the
//! insecure demo listener, its signing certificate's), its
//! `CallerInformationSystemSignature` must cover the part the face acts on
//! ([`trust`]), and the operation runs on the mailboxes ([`lifecycle`]). Refusals are
//! SOAP 1.1 faults whose detail is the faults schema's element with the stable code.

pub mod contract;
mod deliver;
mod lifecycle;
mod mediate;
pub mod trust;

pub use lifecycle::smev_mid;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use qaqpa_adapters::smev3::writer::{self, Fault};
use qaqpa_adapters::smev3::{self, Operation, Smev3Error, Version};
use qaqpa_adapters::ErrorCode;

use crate::body::client::ClientBody;
use crate::body::{full_body, GatewayBody};
use crate::error::{GatewayError, X_ROAD_ERROR};
use crate::exchange::{Ctx, Face, Outcome};
use crate::headers::X_ROAD_ID;

/// The face's path; `/smev3` without the slash is the same door.
pub const PATH: &str = "/smev3/";
/// Calls larger than this are read off the async workers.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Whether a request comes through this door: `POST /smev3[/]` (calls) or
/// `GET /smev3/…` (the WSDL and schemas).
pub fn is_smev3(req: &Request<impl Sized>) -> bool {
    let path = req.uri().path();
    let ours = path == "/smev3" || path.starts_with(PATH);
    ours && (req.method() == Method::POST || req.method() == Method::GET)
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 with milliseconds, as `SendingTimestamp` is written.
pub fn timestamp(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The face; it answers faults in the call's schema version once known.
pub struct Smev3 {
    version: Version,
    /// A fault finer than the one the error code maps to (set where decided).
    fault: Option<Fault>,
}

impl Smev3 {
    pub fn new() -> Self {
        Self { version: Version::V11, fault: None }
    }

    /// Remembers the fault to answer with, and passes the error on.
    fn refuse(&mut self, fault: Fault, error: GatewayError) -> GatewayError {
        self.fault = Some(fault);
        error
    }
}

impl Default for Smev3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Face for Smev3 {
    const NAME: &'static str = "smev3";

    async fn exchange(&mut self, ctx: &mut Ctx, req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        let runtime = ctx.runtime.clone();
        let xml = runtime.config.xml;
        let (parts, body) = req.into_parts();
        let bytes = read_bounded(&parts.headers, body, xml.max_message_bytes).await?;
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let read = if bytes.len() > OFFLOAD_BYTES {
            let (buf, limits) = (bytes.clone(), xml.limits);
            tokio::task::spawn_blocking(move || smev3::read(&buf, content_type.as_deref(), &limits))
                .await
                .unwrap_or(Err(Smev3Error::NotSmev3))
        } else {
            smev3::read(&bytes, content_type.as_deref(), &xml.limits)
        };
        let call = read.map_err(|e| {
            let fault = match e {
                Smev3Error::AttachmentTooLarge(_) => Fault::AttachmentSizeLimitExceeded,
                Smev3Error::UnknownOperation(_) => Fault::InvalidContent,
                _ => Fault::InvalidContent,
            };
            self.refuse(fault, GatewayError::new(e.code(), e.to_string()))
        })?;
        self.version = call.version;
        ctx.set_message_id(message_id(&call));
        lifecycle::serve(self, ctx, &bytes, &call).await
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        let fault = self.fault.unwrap_or_else(|| Fault::of(error.code));
        let body = writer::fault(self.version, fault, error.code, &error.detail);
        let mut response = Response::new(full_body(Bytes::from(body)));
        // SOAP 1.1 answers every fault with 500.
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
        headers.insert(X_ROAD_ERROR, HeaderValue::from_static(error.code.as_str()));
        if let Ok(id) = HeaderValue::from_str(message_id) {
            headers.insert(X_ROAD_ID, id);
        }
        for (name, value) in error.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// The exchange's id: the caller's `MessageID` when it is a printable token, else
/// a fresh one (the record still names the operation).
fn message_id(call: &smev3::Call) -> String {
    let given = match call.operation {
        Operation::Ack => call.ack_target.as_deref(),
        _ => call.message_id.as_deref(),
    };
    match given {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..0x7f).contains(&b)) => id.to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// The envelope's bytes, refused past `limit` (by the declared length at once).
async fn read_bounded(headers: &http::HeaderMap, body: ClientBody, limit: usize) -> Result<Bytes, GatewayError> {
    let too_large = || GatewayError::new(ErrorCode::TooLarge, format!("a SMEV 3 message is limited to {limit} bytes"));
    super::read_envelope_bytes(headers, body, limit, too_large).await
}

/// An answer envelope around `body`.
fn answer(body: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(writer::envelope(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}
