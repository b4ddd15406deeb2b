//! JWS (RFC 7515) with a detached, unencoded payload (RFC 7797, `b64: false`): the
//! `Qaqpa-Signature` of REST messages. The protected header carries the signer's
//! chain (`x5c`), the time (`iat`) and the routed X-Road headers, so the signature
//! covers them beside the body (the payload, byte for byte as sent).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{Map, Value};

use crate::keys::{self, KeyError, SignatureAlg, SigningKey};

/// Largest protected header accepted (a chain of a few certificates fits well).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a detached JWS (header..signature)")]
    Form,
    #[error("the protected header is not base64url JSON")]
    Header,
    #[error("the protected header is larger than {MAX_HEADER_BYTES} bytes")]
    TooLarge,
    #[error("unsupported algorithm {0:?} (ES256, RS256 or EdDSA)")]
    Algorithm(String),
    #[error("the payload must be detached and unencoded: b64 false, named in crit")]
    NotUnencoded,
    #[error("unknown critical header parameter {0:?}")]
    Critical(String),
    #[error("x5c must hold the signer's certificate chain")]
    NoCertificate,
    #[error("the signature does not verify ({0})")]
    Signature(KeyError),
}

#[derive(Debug, Clone)]
pub struct JwsVerified {
    pub alg: SignatureAlg,
    /// From `x5c`, leaf first (trust is the caller's check).
    pub chain: Vec<Vec<u8>>,
    pub header: Map<String, Value>,
    pub signature: Vec<u8>,
}

/// `protected..signature` over `payload`, with `claims` added to the header.
pub fn sign_detached(
    key: &SigningKey,
    chain: &[Vec<u8>],
    claims: Map<String, Value>,
    payload: &[u8],
) -> Result<String, JwsError> {
    let mut header = Map::new();
    header.insert("alg".into(), key.alg().jws_name().into());
    header.insert("b64".into(), false.into());
    header.insert("crit".into(), vec![Value::from("b64")].into());
    header.insert("x5c".into(), chain.iter().map(|c| Value::from(STANDARD.encode(c))).collect());
    header.extend(claims);
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|_| JwsError::Header)?);
    let mut input = Vec::with_capacity(protected.len() + 1 + payload.len());
    input.extend_from_slice(protected.as_bytes());
    input.push(b'.');
    input.extend_from_slice(payload);
    let signature = key.sign(&input).map_err(JwsError::Signature)?;
    Ok(format!("{protected}..{}", URL_SAFE_NO_PAD.encode(signature)))
}

pub fn verify_detached(token: &str, payload: &[u8]) -> Result<JwsVerified, JwsError> {
    let mut parts = token.trim().split('.');
    let (Some(protected), Some(""), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Form);
    };
    if protected.len() > MAX_HEADER_BYTES * 4 / 3 + 4 {
        return Err(JwsError::TooLarge);
    }
    let json = URL_SAFE_NO_PAD.decode(protected).map_err(|_| JwsError::Header)?;
    let header: Map<String, Value> = serde_json::from_slice(&json).map_err(|_| JwsError::Header)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = SignatureAlg::from_jws_name(alg_name).ok_or_else(|| JwsError::Algorithm(alg_name.to_owned()))?;
    if header.get("b64") != Some(&Value::Bool(false)) {
        return Err(JwsError::NotUnencoded);
    }
    let crit = header.get("crit").and_then(Value::as_array).ok_or(JwsError::NotUnencoded)?;
    if !crit.iter().any(|c| c == "b64") {
        return Err(JwsError::NotUnencoded);
    }
    if let Some(other) = crit.iter().find(|c| *c != "b64") {
        return Err(JwsError::Critical(other.to_string()));
    }
    let chain = header
        .get("x5c")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= 8)
        .ok_or(JwsError::NoCertificate)?
        .iter()
        .map(|c| c.as_str().and_then(|s| STANDARD.decode(s).ok()).ok_or(JwsError::NoCertificate))
        .collect::<Result<Vec<_>, _>>()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwsError::Form)?;
    let mut input = Vec::with_capacity(protected.len() + 1 + payload.len());
    input.extend_from_slice(protected.as_bytes());
    input.push(b'.');
    input.extend_from_slice(payload);
    keys::verify(alg, &chain[0], &input, &signature).map_err(JwsError::Signature)?;
    Ok(JwsVerified { alg, chain, header, signature })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;

    fn signer() -> (SigningKey, Vec<Vec<u8>>) {
        let now = time::OffsetDateTime::now_utc();
        let ca = DevCa::generate("CA", now).unwrap();
        let pair = ca.issue_client(&qaqpa_routing::SystemId::parse("KZ/GOV/1/a").unwrap(), now).unwrap();
        (SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap(), vec![pair.cert_der().unwrap().to_vec()])
    }

    #[test]
    fn detached_unencoded_tokens_round_trip_and_bind_the_payload() {
        let (key, chain) = signer();
        let mut claims = Map::new();
        claims.insert("iat".into(), 1_795_000_000.into());
        claims.insert("x-road-id".into(), "m-1".into());
        let token = sign_detached(&key, &chain, claims, b"{\"a\":1}").unwrap();
        assert_eq!(token.split('.').nth(1), Some(""), "detached");
        let v = verify_detached(&token, b"{\"a\":1}").unwrap();
        assert_eq!(v.alg, SignatureAlg::EcdsaP256Sha256);
        assert_eq!(v.chain, chain);
        assert_eq!(v.header["x-road-id"], "m-1");
        assert!(matches!(verify_detached(&token, b"{\"a\":2}"), Err(JwsError::Signature(KeyError::BadSignature))));
    }

    #[test]
    fn every_malformed_or_weakened_token_is_refused() {
        let (key, chain) = signer();
        let token = sign_detached(&key, &chain, Map::new(), b"x").unwrap();
        let (protected, signature) = token.split_once("..").unwrap();
        let header: Map<String, Value> = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
        let reheader = |edit: &dyn Fn(&mut Map<String, Value>)| {
            let mut h = header.clone();
            edit(&mut h);
            format!("{}..{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()))
        };
        let cases: Vec<(String, JwsError)> = vec![
            ("a.b.c".into(), JwsError::Form),
            (format!("{protected}.eA.{signature}"), JwsError::Form),
            ("!!..sig".into(), JwsError::Header),
            (reheader(&|h| drop(h.insert("alg".into(), "HS256".into()))), JwsError::Algorithm("HS256".into())),
            (reheader(&|h| drop(h.insert("alg".into(), "none".into()))), JwsError::Algorithm("none".into())),
            (reheader(&|h| drop(h.remove("b64"))), JwsError::NotUnencoded),
            (reheader(&|h| drop(h.insert("crit".into(), Value::Array(vec![])))), JwsError::NotUnencoded),
            (
                reheader(&|h| drop(h.insert("crit".into(), vec![Value::from("b64"), Value::from("exp")].into()))),
                JwsError::Critical("\"exp\"".into()),
            ),
            (reheader(&|h| drop(h.remove("x5c"))), JwsError::NoCertificate),
            (
                reheader(&|h| drop(h.insert("alg".into(), "RS256".into()))),
                JwsError::Signature(KeyError::AlgorithmMismatch(SignatureAlg::RsaSha256)),
            ),
            (reheader(&|h| drop(h.insert("extra".into(), 1.into()))), JwsError::Signature(KeyError::BadSignature)),
        ];
        for (token, expected) in cases {
            assert_eq!(verify_detached(&token, b"x").map(|_| ()), Err(expected), "{token}");
        }
    }
}
