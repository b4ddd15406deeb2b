//! The ШЭП SyncChannel face (docs/shep.md): `POST /bip-sync/` takes a SOAP 1.1
//! `SendMessage` exactly as Kazakhstan's e-government gateway does, `GET
//! /bip-sync/?wsdl` serves its WSDL. Then the one exchange runs: identify (the
//! `senderId` is a system's `shep_sender`, its `password` matches the stored Argon2
//! hash, and the system is the client certificate's), route (`serviceId` is a
//! service's `shep_service_id`), authorize, limit, verify, deliver
//! ([`crate::delivery::shep`]: forwarded as is to a ШЭП provider, mapped for a REST
//! or X-Road SOAP one). Refusals are SOAP faults with a `SendMessageFault` detail
//! carrying the stable code.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use qaqpa_adapters::shep::{self, Channel, Message};
use qaqpa_adapters::ErrorCode;

use crate::body::client::ClientBody;
use crate::body::{full_body, GatewayBody};
use crate::config::{ServiceConfig, ServiceKind, SystemConfig};
use crate::delivery::shep as shep_delivery;
pub use crate::delivery::shep::now_rfc3339;
use crate::error::{GatewayError, X_ROAD_ERROR};
use crate::exchange::limit as limit_stage;
use crate::exchange::{authorize, identify_claim, Ctx, Face, Outcome, Peer, Reply};
use crate::headers::{MAX_MESSAGE_ID_LEN, X_ROAD_ID};
use crate::runtime::{Client, Route, Runtime};

pub const SYNC_PATH: &str = "/bip-sync/";
/// Envelopes larger than this are parsed off the async workers.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Whether a request is for a ШЭП door at `path` (with or without the final slash).
pub fn is_door<B>(req: &Request<B>, path: &str) -> bool {
    let p = req.uri().path();
    p == path || Some(p) == path.strip_suffix('/')
}

/// Whether a request asks for the door's WSDL (`GET …?wsdl`).
pub fn is_wsdl<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET && req.uri().query().is_some_and(|q| q.eq_ignore_ascii_case("wsdl"))
}

/// The WSDL at `path` with its address pointed at this gateway as the client reached it.
pub fn serve_wsdl<B>(req: &Request<B>, peer: &Peer, path: &str, wsdl: fn(&str) -> String) -> Response<GatewayBody> {
    let scheme = if peer.certificate.is_some() { "https" } else { "http" };
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))) else {
        let error = GatewayError::new(ErrorCode::BadRequest, "a Host header is needed to point the WSDL here");
        return error.into_response(None);
    };
    let mut r = Response::new(full_body(wsdl(&format!("{scheme}://{host}{path}"))));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

/// The face. It remembers the request's `sessionId` to echo it in a fault.
#[derive(Default)]
pub struct ShepSync {
    session_id: Option<String>,
}

impl Face for ShepSync {
    const NAME: &'static str = "shep-sync";

    async fn exchange(&mut self, ctx: &mut Ctx, req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        let runtime = ctx.runtime.clone();
        if req.method() != Method::POST {
            return Err(GatewayError::new(ErrorCode::BadRequest, "SyncChannel takes POST (or GET ?wsdl)"));
        }
        let (parts, body) = req.into_parts();
        let (bytes, message) = read_message(&runtime, &parts.headers, body).await?;
        self.session_id = message.session_id.clone();
        if message.channel != Channel::Sync {
            return Err(GatewayError::new(ErrorCode::BadRequest, "an AsyncChannel message belongs at /bip-async/"));
        }
        ctx.set_message_id(message_id(message.message_id.as_deref())?);
        let client = identify(ctx, &runtime, &message).await?;
        let (route, service) = route(&runtime, &message)?;
        ctx.routed(route);
        authorize(route, &client)?;
        let admission = limit_stage::admit(&*ctx.shared, route, &client).await?;
        let signature = super::shep_verify::verify(ctx, route, &client, &message, &bytes).await?;
        if let Some(value) = signature {
            ctx.record.set_signature(value);
        }
        ctx.record.set_request_body(&bytes);
        let reply = if service.shep_provider {
            Reply::Stream(shep_delivery::forward_as_is(&runtime, route, bytes, &ctx.peer, &mut ctx.record).await?)
        } else {
            let (peer, record) = (&ctx.peer, &mut ctx.record);
            let data = match route.kind {
                ServiceKind::Rest => {
                    shep_delivery::to_rest(&runtime, route, &message, &bytes, &client, peer, record).await?
                }
                ServiceKind::Soap => {
                    shep_delivery::to_xroad_soap(&runtime, route, &message, &bytes, &client, peer, record).await?
                }
            };
            Reply::Built(shep_delivery::sync_answer(&message, ctx.message_id(), &data)?)
        };
        Ok(Outcome::new(reply, admission))
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        fault_response(false, error, message_id, self.session_id.as_deref())
    }
}

/// Reads the body (bounded by `xml.max_message_bytes`) and the ШЭП message in it.
pub async fn read_message(
    runtime: &Runtime,
    headers: &http::HeaderMap,
    body: ClientBody,
) -> Result<(Bytes, Message), GatewayError> {
    let xml = runtime.config.xml;
    let limit = xml.max_message_bytes;
    let too_large = || GatewayError::new(ErrorCode::TooLarge, format!("the SOAP message exceeds {limit} bytes"));
    let bytes = super::read_envelope_bytes(headers, body, limit, too_large).await?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let read = if bytes.len() > OFFLOAD_BYTES {
        let (buf, limits) = (bytes.clone(), xml.limits);
        tokio::task::spawn_blocking(move || shep::read(&buf, content_type.as_deref(), &limits))
            .await
            .unwrap_or(Err(shep::ShepError::Malformed("the reader stopped".into())))
    } else {
        shep::read(&bytes, content_type.as_deref(), &xml.limits)
    };
    let message = read.map_err(|e| GatewayError::new(e.code(), e.to_string()))?;
    Ok((bytes, message))
}

/// The `messageId`: required, 1 to 128 printable characters (ШЭП's are UUIDs).
pub fn message_id(id: Option<&str>) -> Result<String, GatewayError> {
    match id {
        None | Some("") => Err(GatewayError::new(ErrorCode::BadRequest, "requestInfo/messageId is required")),
        Some(id) if id.len() <= MAX_MESSAGE_ID_LEN && id.bytes().all(|b| (0x21..0x7f).contains(&b)) => {
            Ok(id.to_owned())
        }
        Some(_) => Err(GatewayError::new(ErrorCode::BadRequest, "messageId must be 1 to 128 printable characters")),
    }
}

/// Stage identify for ШЭП: `senderId` → the registered system; its password, when
/// one is configured, checked against the Argon2 hash (on a blocking thread: a
/// verification costs tens of milliseconds); then the certificate check every face
/// shares. The password is never put in an error, a span or a log.
pub async fn identify(ctx: &mut Ctx, runtime: &Runtime, message: &Message) -> Result<Arc<Client>, GatewayError> {
    let sender = message
        .sender_id()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "sender/senderId is required"))?;
    let system = sender_system(runtime, sender).ok_or_else(|| {
        GatewayError::new(ErrorCode::IdentityMismatch, format!("senderId {sender:?} is not a registered ШЭП sender"))
    })?;
    // The certificate first: only the system that holds it may try its password,
    // so nobody else can make the gateway run Argon2 or guess at it.
    let client = identify_claim(runtime, &ctx.peer, system.id.as_str())?;
    if let Some(hash) = system.shep_password_hash.clone() {
        let given = message.sender.as_ref().and_then(|s| s.password.clone());
        let ok = match given {
            None => false,
            Some(password) if verified_before(&hash, password.expose()) => true,
            Some(password) => {
                // Argon2 runs are costly by design: at most a few at once, so a
                // stream of wrong passwords cannot take the blocking pool.
                let Ok(_permit) = ARGON2_RUNS.acquire().await else { return Err(unavailable()) };
                tokio::task::spawn_blocking(move || {
                    let ok = check_password(&hash, password.expose());
                    if ok {
                        remember(&hash, password.expose());
                    }
                    ok
                })
                .await
                .unwrap_or(false)
            }
        };
        if !ok {
            return Err(GatewayError::new(
                ErrorCode::IdentityMismatch,
                format!("the password of senderId {sender:?} is missing or wrong"),
            ));
        }
    }
    ctx.identified(&client);
    Ok(client)
}

/// Password checks (Argon2) running at once at most.
static ARGON2_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

fn unavailable() -> GatewayError {
    GatewayError::new(ErrorCode::Overloaded, "the password check is unavailable")
}

/// Argon2 verification; the crate compares the hashes in constant time.
pub fn check_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// ШЭП clients send their password with every message: one Argon2 run each (tens of
/// milliseconds of CPU by design) would make the password check the bus's
/// bottleneck. A successful check is remembered per hash as a SHA-256 of the
/// password under a random key made at start (never stored, never logged), and a
/// later message with the same password is compared against it in constant time.
/// One entry per configured hash: the memory is bounded by the systems.
static VERIFIED: std::sync::LazyLock<dashmap::DashMap<String, [u8; 32]>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);
static VERIFIED_KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
});

fn password_digest(phc: &str, password: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(*VERIFIED_KEY);
    h.update((phc.len() as u64).to_be_bytes());
    h.update(phc.as_bytes());
    h.update(password.as_bytes());
    h.finalize().into()
}

fn verified_before(phc: &str, password: &str) -> bool {
    let Some(known) = VERIFIED.get(phc).map(|v| *v) else {
        return false;
    };
    let given = password_digest(phc, password);
    // Constant time: every byte is compared whatever the first difference.
    known.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn remember(phc: &str, password: &str) {
    VERIFIED.insert(phc.to_owned(), password_digest(phc, password));
}

/// The system whose `shep_sender` is `sender`.
pub fn sender_system<'r>(runtime: &'r Runtime, sender: &str) -> Option<&'r SystemConfig> {
    runtime.config.systems.iter().find(|s| s.shep_sender.as_deref() == Some(sender))
}

/// Stage route for ШЭП: `serviceId` → the service whose `shep_service_id` it is.
pub fn route<'r>(runtime: &'r Runtime, message: &Message) -> Result<(&'r Route, &'r ServiceConfig), GatewayError> {
    let id = message
        .service_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "serviceId is required"))?;
    let unknown = || GatewayError::new(ErrorCode::UnknownService, format!("no service has ШЭП serviceId {id:?}"));
    let service =
        runtime.config.services.iter().find(|s| s.shep_service_id.as_deref() == Some(id)).ok_or_else(unknown)?;
    let route = runtime.routes.get(service.id.as_str()).ok_or_else(unknown)?;
    Ok((route, service))
}

/// A refusal as ШЭП gives it: HTTP 500 with a SOAP 1.1 fault (`SendMessageFault`).
pub fn fault_response(
    async_channel: bool,
    error: GatewayError,
    message_id: &str,
    session_id: Option<&str>,
) -> Response<GatewayBody> {
    let body = shep::fault(async_channel, error.code, &error.detail, &now_rfc3339(), session_id);
    let mut response = Response::new(full_body(body));
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
