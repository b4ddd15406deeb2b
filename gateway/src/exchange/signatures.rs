//! Stage: verify (docs/architecture.md, §6). For a service whose policy is `verify` the client
//! must have signed — XMLDSig in the SOAP Header, or a detached JWS in
//! `Qaqpa-Signature` over the REST body and the routed headers — with a certificate
//! that chains to the signature trust anchors, is valid now, is not revoked, and
//! belongs to the client system itself. Under `sign-on-behalf` the gateway signs an
//! unsigned request with the key it holds for a legacy system. Either way the signed
//! time must be within the allowed clock skew and the message id new for the client
//! (replay protection), else `client.replay`.
//!
//! A SOAP message the client signed must carry a signed `xrd:id` (X-Road requires
//! one): without it the gateway would make up a fresh id per request and the replay
//! memory could never recognise the same signed message sent again.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use qaqpa_adapters::ErrorCode;
use qaqpa_certs::jws;
use qaqpa_certs::xmldsig::{self, DigestAlg, SignWith, VerifiedOrSigned, VerifyOrSignError};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use crate::body::client::ClientBody;
use crate::body::{collect_bounded, Collect};
use crate::config::SignaturePolicy;
use crate::error::GatewayError;
use crate::observe::record::ExchangeRecord;
use crate::replay::{GuardError, ReplayGuard};
use crate::runtime::{Client, Route, Runtime, SignatureTrust, Signer};

pub use crate::headers::QAQPA_SIGNATURE;

/// Messages larger than this are signed and verified on a blocking thread.
const OFFLOAD_BYTES: usize = 256 * 1024;

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn bad_signature(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::BadSignature, why.to_string())
}

async fn offload<T: Send + 'static>(size: usize, work: impl FnOnce() -> T + Send + 'static) -> T {
    if size > OFFLOAD_BYTES {
        match tokio::task::spawn_blocking(work).await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    } else {
        work()
    }
}

/// What a verified signature said, for the checks common to SOAP and REST.
struct Signed {
    chain: Vec<Vec<u8>>,
    /// Signed time, Unix seconds.
    at: i64,
    /// The signature value.
    value: Vec<u8>,
}

fn trust_of(runtime: &Runtime) -> Result<&SignatureTrust, GatewayError> {
    runtime
        .signatures
        .as_deref()
        .ok_or_else(|| GatewayError::new(ErrorCode::Internal, "signature policy without [signatures] trust"))
}

/// Trust, signer binding, freshness, replay.
async fn accept(
    replay: &ReplayGuard,
    runtime: &Runtime,
    client: &Client,
    message_id: &str,
    signed: &Signed,
    by_gateway: bool,
) -> Result<(), GatewayError> {
    let trust = trust_of(runtime)?;
    let now = now_unix();
    if !by_gateway {
        let chain: Vec<CertificateDer<'_>> = signed.chain.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        trust.store.verify(&chain, now.max(0) as u64).map_err(bad_signature)?;
        let identity = qaqpa_certs::inspect(&signed.chain[0]).map_err(bad_signature)?;
        let signer = crate::exchange::peer_system(runtime, &identity);
        if signer.map(|s| s.id.as_str()) != Some(client.id.as_str()) {
            return Err(bad_signature(format!("the signer's certificate does not belong to {}", client.id)));
        }
    }
    let skew = trust.max_clock_skew.as_secs() as i64;
    if (signed.at - now).abs() > skew {
        return Err(GatewayError::new(
            ErrorCode::Replay,
            format!("the signed time is {} s from the gateway's clock (allowed ±{skew} s)", signed.at - now),
        ));
    }
    replay.check_id(client.id.as_str(), message_id, now.max(0) as u64).await.map_err(|e| match e {
        GuardError::Replayed => GatewayError::new(
            ErrorCode::Replay,
            format!("message id {message_id} was already received from {}", client.id),
        ),
        GuardError::Unavailable => {
            GatewayError::new(ErrorCode::LogUnavailable, "the replay guard cannot record the message id")
        }
    })
}

/// SOAP: verifies the client's signature, or signs for it; returns the bytes to
/// forward and the signature value (for the message log).
pub async fn soap(
    replay: &ReplayGuard,
    runtime: &Runtime,
    route: &Route,
    client: &Arc<Client>,
    message_id: &str,
    bytes: Bytes,
    envelope: &qaqpa_adapters::soap::Envelope,
) -> Result<(Bytes, Option<Vec<u8>>), GatewayError> {
    if route.signature == SignaturePolicy::None {
        return Ok((bytes, None));
    }
    let may_sign = route.signature == SignaturePolicy::SignOnBehalf && client.signer.is_some();
    let size = bytes.len();
    let held = client.clone();
    let (bytes, signed, by_client) = offload(size, move || {
        let at = now_unix();
        // One parse of the message for the verify and, when it finds no signature
        // on a sign-on-behalf route, the signing.
        let signer = held.signer.as_ref().filter(|_| may_sign);
        let sign = signer.map(|signer| SignWith {
            key: &signer.key,
            chain: &signer.chain,
            digest: DigestAlg::Sha256,
            now_unix: at,
        });
        match xmldsig::verify_or_sign_soap(&bytes, sign) {
            Ok(VerifiedOrSigned::Verified(v)) => {
                let signed = Signed { chain: v.chain, at: v.created, value: v.signature_value };
                Ok((bytes, signed, Some((v.structure, v.message_id))))
            }
            // The gateway's own signature needs no verifying: its value, chain and
            // time are what it just used (an answer it signs is not verified either).
            Ok(VerifiedOrSigned::Signed { doc, value }) => {
                let chain = signer.expect("signed only with a signer").chain.clone();
                Ok((Bytes::from(doc), Signed { chain, at, value }, None))
            }
            Err(VerifyOrSignError::Sign(e)) => {
                Err(GatewayError::new(ErrorCode::BadRequest, format!("cannot sign on behalf: {e}")))
            }
            Err(VerifyOrSignError::Verify(e)) => Err(bad_signature(e)),
        }
    })
    .await?;
    if let Some((structure, signed_id)) = &by_client {
        require_same_structure(structure, &envelope.body, envelope.header_element.as_ref())?;
        require_signed_id(signed_id.as_deref(), message_id)?;
    }
    accept(replay, runtime, client, message_id, &signed, by_client.is_none()).await?;
    Ok((bytes, Some(signed.value)))
}

/// The verifier reads the message with its own tokenizer, the gateway routes on the
/// hardened envelope reader's view: both must find the same Header and the same Body
/// content, or a message built to be read two ways (signature wrapping through a
/// parser differential) would have one part signed and another routed and forwarded.
/// The ШЭП faces read with their own envelope reader and check the same way.
pub fn require_same_structure(
    signed: &xmldsig::Structure,
    read_body: &std::ops::Range<usize>,
    read_header: Option<&std::ops::Range<usize>>,
) -> Result<(), GatewayError> {
    if signed.body_content != *read_body || read_header != Some(&signed.header) {
        return Err(bad_signature("the signed Header or Body is not the one the gateway read"));
    }
    Ok(())
}

/// A client-signed SOAP message names its id in a signed `xrd:id`, and it is the id
/// the exchange runs under (the one the replay memory keys on).
fn require_signed_id(signed: Option<&str>, message_id: &str) -> Result<(), GatewayError> {
    match signed {
        None => Err(GatewayError::new(
            ErrorCode::BadRequest,
            "a signed message must carry xrd:id in its X-Road header (X-Road requires it; replay protection rests on it)",
        )),
        Some(id) if id != message_id => Err(bad_signature("the signed xrd:id is not the message id the gateway read")),
        Some(_) => Ok(()),
    }
}

/// The JWS claims that bind a REST request's routing to its signature.
fn expected_claims(
    parts: &http::request::Parts,
    client: &Client,
    route: &Route,
    message_id: &str,
) -> Vec<(&'static str, String)> {
    let mut claims = vec![
        ("x-road-client", client.id.to_string()),
        ("x-road-service", route.id.to_string()),
        ("x-road-id", message_id.to_owned()),
        ("htm", parts.method.to_string()),
        ("htu", parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()),
    ];
    for header in [crate::headers::X_ROAD_USER_ID, crate::headers::X_ROAD_ISSUE] {
        if let Some(v) = parts.headers.get(header).and_then(|v| v.to_str().ok()) {
            claims.push((header, v.to_owned()));
        }
    }
    claims
}

/// REST: verifies `Qaqpa-Signature` over `body` and the routed headers, or adds one
/// made with the key held for the client; returns the signature value.
pub async fn rest(
    replay: &ReplayGuard,
    runtime: &Runtime,
    route: &Route,
    client: &Arc<Client>,
    message_id: &str,
    parts: &mut http::request::Parts,
    body: &Bytes,
) -> Result<Option<Vec<u8>>, GatewayError> {
    if route.signature == SignaturePolicy::None {
        return Ok(None);
    }
    let expected = expected_claims(parts, client, route, message_id);
    let token = parts.headers.get(QAQPA_SIGNATURE).map(|v| v.to_str().map(str::to_owned));
    let (signed, by_gateway) = match token {
        Some(Ok(token)) => {
            let payload = body.clone();
            let verified =
                offload(body.len(), move || jws::verify_detached(&token, &payload)).await.map_err(bad_signature)?;
            for (name, value) in &expected {
                if verified.header.get(*name).and_then(Value::as_str) != Some(value.as_str()) {
                    return Err(bad_signature(format!("the signature's {name} does not match the request")));
                }
            }
            for optional in [crate::headers::X_ROAD_USER_ID, crate::headers::X_ROAD_ISSUE] {
                if verified.header.contains_key(optional) && !expected.iter().any(|(n, _)| *n == optional) {
                    return Err(bad_signature(format!("{optional} is signed but not sent")));
                }
            }
            let at = verified.header.get("iat").and_then(Value::as_i64).ok_or_else(|| bad_signature("no iat"))?;
            (Signed { chain: verified.chain, at, value: verified.signature }, false)
        }
        Some(Err(_)) => return Err(bad_signature("Qaqpa-Signature is not ASCII")),
        None => match (&client.signer, route.signature) {
            (Some(signer), SignaturePolicy::SignOnBehalf) => {
                let at = now_unix();
                let token = sign_rest(signer, &expected, at, body)?;
                parts.headers.insert(
                    QAQPA_SIGNATURE,
                    HeaderValue::from_str(&token).map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?,
                );
                let value = token
                    .rsplit('.')
                    .next()
                    .and_then(|s| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).ok());
                (Signed { chain: signer.chain.clone(), at, value: value.unwrap_or_default() }, true)
            }
            _ => return Err(bad_signature("the service requires a Qaqpa-Signature (detached JWS)")),
        },
    };
    accept(replay, runtime, client, message_id, &signed, by_gateway).await?;
    Ok(Some(signed.value))
}

/// A detached JWS over `body` carrying `claims` and the time.
pub fn sign_rest(signer: &Signer, claims: &[(&str, String)], at: i64, body: &[u8]) -> Result<String, GatewayError> {
    let mut map = serde_json::Map::new();
    map.insert("iat".into(), at.into());
    for (name, value) in claims {
        map.insert((*name).to_owned(), value.clone().into());
    }
    jws::sign_detached(&signer.key, &signer.chain, map, body)
        .map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))
}

/// The provider's response signed by the gateway (services with `sign_responses`):
/// SOAP with XMLDSig in its Header, REST with `Qaqpa-Signature` over the body, the
/// message id, the parties and the status. Read whole (bounded) to sign it.
pub async fn sign_response(
    runtime: &Runtime,
    route: &Route,
    client: &Client,
    message_id: &str,
    response: http::Response<hyper::body::Incoming>,
) -> Result<http::Response<Bytes>, GatewayError> {
    let trust = trust_of(runtime)?;
    let (parts, body) = response.into_parts();
    let limit = trust.max_body_bytes;
    let bytes = crate::body::collect_bounded(body, limit).await.map_err(|e| {
        let why = match e {
            crate::body::Collect::TooLarge => {
                format!("the provider's answer exceeds {limit} bytes and cannot be signed")
            }
            crate::body::Collect::CutOff => "the provider's answer was cut off".to_owned(),
        };
        GatewayError::new(ErrorCode::UpstreamUnavailable, why)
    })?;
    sign_response_bytes(runtime, route, client, message_id, parts, bytes)
}

/// [`sign_response`] for an answer the gateway already holds whole (a SOAP answer
/// with X-Road's `requestHash` inserted: it is signed as the client receives it).
pub fn sign_response_bytes(
    runtime: &Runtime,
    route: &Route,
    client: &Client,
    message_id: &str,
    mut parts: http::response::Parts,
    bytes: Bytes,
) -> Result<http::Response<Bytes>, GatewayError> {
    let trust = trust_of(runtime)?;
    let signer = trust
        .gateway
        .as_ref()
        .ok_or_else(|| GatewayError::new(ErrorCode::Internal, "sign_responses without the gateway's signing key"))?;
    let now = now_unix();
    let signed = match route.kind {
        crate::config::ServiceKind::Soap => {
            let signed =
                xmldsig::sign_soap(&bytes, &signer.key, &signer.chain, DigestAlg::Sha256, now).map_err(|e| {
                    GatewayError::new(
                        ErrorCode::UpstreamUnavailable,
                        format!("the provider's answer cannot be signed: {e}"),
                    )
                })?;
            Bytes::from(signed)
        }
        crate::config::ServiceKind::Rest => {
            let claims = [
                ("x-road-client", client.id.to_string()),
                ("x-road-service", route.id.to_string()),
                ("x-road-id", message_id.to_owned()),
                ("status", parts.status.as_u16().to_string()),
            ];
            let token = sign_rest(signer, &claims, now, &bytes)?;
            let value =
                HeaderValue::from_str(&token).map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?;
            parts.headers.insert(QAQPA_SIGNATURE, value);
            bytes
        }
    };
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(signed.len()));
    Ok(http::Response::from_parts(parts, signed))
}

/// Stage: a REST request's JWS (`Qaqpa-Signature`). The body is read whole, bounded
/// by `signatures.max_body_bytes`, checked, and handed on as the bytes verified.
pub async fn verify_rest(
    replay: &ReplayGuard,
    runtime: &Runtime,
    route: &Route,
    client: &Arc<Client>,
    req: http::Request<ClientBody>,
    record: &mut ExchangeRecord,
) -> Result<http::Request<ClientBody>, GatewayError> {
    let limit = runtime.signatures.as_ref().map_or(0, |s| s.max_body_bytes);
    let (mut parts, body) = req.into_parts();
    let bytes = collect_bounded(body, limit).await.map_err(|e| match e {
        Collect::TooLarge => {
            GatewayError::new(ErrorCode::TooLarge, format!("a signed request body is limited to {limit} bytes"))
        }
        Collect::CutOff => GatewayError::new(ErrorCode::BadRequest, "the request body was cut off"),
    })?;
    let message_id = record.id().to_owned();
    if let Some(value) = rest(replay, runtime, route, client, &message_id, &mut parts, &bytes).await? {
        record.set_signature(value);
    }
    Ok(http::Request::from_parts(parts, ClientBody::full(bytes)))
}

/// The checks after a signature verified, for faces that verify their own kind of
/// signature (ШЭП WS-Security): trust, signer = client, freshness of `at`, replay.
pub async fn accept_signature(
    replay: &ReplayGuard,
    runtime: &Runtime,
    client: &Client,
    message_id: &str,
    chain: Vec<Vec<u8>>,
    at: i64,
    value: Vec<u8>,
) -> Result<Vec<u8>, GatewayError> {
    let signed = Signed { chain, at, value };
    accept(replay, runtime, client, message_id, &signed, false).await?;
    Ok(signed.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qaqpa_adapters::soap::{read_envelope, XmlLimits};
    use qaqpa_certs::keys::SigningKey;
    use qaqpa_certs::pki::DevCa;
    use qaqpa_routing::SystemId;

    const MESSAGE: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"><soap:Header><xrd:id>m-1</xrd:id></soap:Header><soap:Body><a:Op xmlns:a="urn:a"><a:x>1</a:x></a:Op></soap:Body></soap:Envelope>"#;

    fn signed() -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let ca = DevCa::generate("CA", now).unwrap();
        let pair = ca.issue_client(&SystemId::parse("KZ/GOV/1/a").unwrap(), now).unwrap();
        let key = SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap();
        xmldsig::sign_soap(MESSAGE.as_bytes(), &key, &[pair.cert_der().unwrap().to_vec()], DigestAlg::Sha256, NOW)
            .unwrap()
    }

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn the_verifier_and_the_envelope_reader_agree_on_a_signed_message_and_a_disagreement_is_refused() {
        let doc = signed();
        let verified = xmldsig::verify_soap(&doc).unwrap();
        let mut envelope = read_envelope(&doc, None, &XmlLimits::default()).unwrap();
        require_same_structure(&verified.structure, &envelope.body, envelope.header_element.as_ref()).unwrap();
        // Either view shifted by one byte is a message read two ways.
        envelope.body.start += 1;
        let refused =
            require_same_structure(&verified.structure, &envelope.body, envelope.header_element.as_ref()).unwrap_err();
        assert_eq!(refused.code, ErrorCode::BadSignature);
        envelope.body.start -= 1;
        envelope.header_element = None;
        assert_eq!(
            require_same_structure(&verified.structure, &envelope.body, envelope.header_element.as_ref())
                .unwrap_err()
                .code,
            ErrorCode::BadSignature
        );
    }
}
