//! The SMEV 3 face's signatures (docs/smev3.md#signatures): the caller's
//! `CallerInformationSystemSignature` must cover exactly the part the face acts on
//! and be made with a certificate of the caller's own system that chains to the
//! signature trust anchors; the bus signs what it answers (`SIGNED_BY_SMEV`) with
//! the gateway's key; and `ReplyTo` is a token the bus signs, so a provider can
//! answer only a request that was delivered to it.
//!
//! The algorithms are chosen here and only here ([`suite`], [`signer`]): a GOST
//! provider implements `qaqpa_certs::xmldsig::{Suite, Signer}` and is returned by
//! these two functions; the face does not change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use qaqpa_adapters::smev3::{Call, SIGNED_BY_SMEV};
use qaqpa_adapters::ErrorCode;
use qaqpa_certs::xmldsig::{self, DigestAlg, KeySigner, StandardSuite, Suite};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;
use crate::runtime::{Client, Runtime, SignatureTrust, Signer};

/// The verification algorithms.
pub fn suite() -> &'static dyn Suite {
    &StandardSuite
}

/// The gateway's signer for `SIGNED_BY_SMEV`.
pub fn signer(signer: &Signer) -> KeySigner<'_> {
    KeySigner { key: &signer.key, chain: &signer.chain, digest: DigestAlg::Sha256 }
}

fn bad_signature(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::BadSignature, why.to_string())
}

pub fn trust(runtime: &Runtime) -> Result<&SignatureTrust, GatewayError> {
    runtime.signatures.as_deref().ok_or_else(|| {
        GatewayError::new(ErrorCode::Internal, "the SMEV 3 face needs a [signatures] table (trust anchors, cert, key)")
    })
}

pub fn gateway_signer(runtime: &Runtime) -> Result<&Signer, GatewayError> {
    trust(runtime)?.gateway.as_ref().ok_or_else(|| {
        GatewayError::new(
            ErrorCode::Internal,
            "the SMEV 3 face signs its answers: it needs signatures.cert and signatures.key",
        )
    })
}

/// Checks the caller's signature over the part it signed, and returns the system
/// the signing certificate belongs to.
pub fn verify_caller<'r>(
    runtime: &'r Runtime,
    bytes: &[u8],
    call: &Call,
) -> Result<&'r std::sync::Arc<Client>, GatewayError> {
    let trust = trust(runtime)?;
    let signature = call.signature.as_ref().ok_or_else(|| {
        bad_signature(format!("{}Request carries no CallerInformationSystemSignature", call.operation.name()))
    })?;
    let signed = call.signed.as_ref().ok_or_else(|| bad_signature("nothing is signed"))?;
    let verified = xmldsig::verify_detached(bytes, signature.range.start, suite()).map_err(bad_signature)?;
    // By position, not by name: the signature must cover the part the face reads.
    if verified.element != signed.range {
        return Err(bad_signature(format!(
            "the signature covers #{}, not the {}Request's signed part",
            verified.id,
            call.operation.name()
        )));
    }
    let now = super::now_unix();
    let chain: Vec<CertificateDer<'_>> = verified.chain.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    trust.store.verify(&chain, now.max(0) as u64).map_err(bad_signature)?;
    let identity = qaqpa_certs::inspect(&verified.chain[0]).map_err(bad_signature)?;
    crate::exchange::peer_system(runtime, &identity)
        .ok_or_else(|| bad_signature("the signing certificate belongs to no registered system"))
}

/// Signs the element with Id `SIGNED_BY_SMEV` in `fragment` (which holds it),
/// returning the `ds:Signature` to put in `SMEVSignature`.
pub fn sign_answer(runtime: &Runtime, fragment: &str) -> Result<String, GatewayError> {
    let gateway = gateway_signer(runtime)?;
    xmldsig::sign_detached(fragment.as_bytes(), SIGNED_BY_SMEV, &signer(gateway))
        .map_err(|e| GatewayError::new(ErrorCode::Internal, format!("cannot sign the answer: {e}")))
}

/// What `ReplyTo` carries: enough to queue an answer to the requester without the
/// request (which the provider may have acknowledged long before it answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The requester's system.
    pub c: String,
    /// The service (kind of information) asked.
    pub s: String,
    /// The request's message id as the requester named it.
    pub m: String,
    /// The request's mailbox id.
    pub r: uuid::Uuid,
}

impl ReplyTo {
    /// `payload.signature`, both base64url; signed by the gateway's key.
    pub fn issue(&self, runtime: &Runtime) -> Result<String, GatewayError> {
        self.issue_with(gateway_signer(runtime)?)
    }

    /// The same with the gateway's signer at hand (the demo writes a ReplyTo ahead).
    pub fn issue_with(&self, gateway: &Signer) -> Result<String, GatewayError> {
        self.issue_at(gateway, unix_seconds())
    }

    fn issue_at(&self, gateway: &Signer, now: u64) -> Result<String, GatewayError> {
        let token = Token { reply: self.clone(), x: Some(now + REPLY_TO_LIFETIME.as_secs()) };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default());
        let signature = gateway
            .key
            .sign(payload.as_bytes())
            .map_err(|e| GatewayError::new(ErrorCode::Internal, format!("cannot sign ReplyTo: {e}")))?;
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The token's content, if this gateway (or one with its key) issued it.
    pub fn check(runtime: &Runtime, token: &str) -> Result<Self, GatewayError> {
        Self::check_at(gateway_signer(runtime)?, token, unix_seconds())
    }

    fn check_at(gateway: &Signer, token: &str, now: u64) -> Result<Self, GatewayError> {
        let refused = || GatewayError::new(ErrorCode::BadRequest, "To is not a ReplyTo this bus issued");
        if token.len() > 4096 {
            return Err(refused());
        }
        let (payload, signature) = token.split_once('.').ok_or_else(refused)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused())?;
        let leaf = gateway.chain.first().ok_or_else(refused)?;
        qaqpa_certs::keys::verify(gateway.key.alg(), leaf, payload.as_bytes(), &signature).map_err(|_| refused())?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let token: Token = serde_json::from_slice(&json).map_err(|_| refused())?;
        // Tokens from before expiry was added carry none; they were signed by this
        // key all the same, and key rotation ends them.
        match token.x {
            Some(expires) if expires < now => Err(GatewayError::new(
                ErrorCode::BadRequest,
                "the ReplyTo has expired: the request is too old to answer",
            )),
            _ => Ok(token.reply),
        }
    }
}

/// How long a provider may take to answer a request: a `ReplyTo` older than this
/// is refused, so a token seen once cannot queue answers forever. Thirty days
/// covers SMEV 3's slowest regulated answers (document requests answered within
/// days, not months).
pub const REPLY_TO_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The signed form: the reply and when it stops being answerable (`x`, Unix seconds).
#[derive(Serialize, Deserialize)]
struct Token {
    #[serde(flatten)]
    reply: ReplyTo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<u64>,
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qaqpa_certs::pki::DevCa;
    use time::OffsetDateTime;

    fn gateway() -> Signer {
        let ca = DevCa::generate("test CA", OffsetDateTime::now_utc()).unwrap();
        let pair = ca.issue_server(&["gateway"], OffsetDateTime::now_utc()).unwrap();
        Signer {
            key: qaqpa_certs::keys::SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap(),
            chain: vec![pair.cert_der().unwrap().to_vec()],
        }
    }

    fn reply() -> ReplyTo {
        ReplyTo {
            c: "KZ/GOV/1/portal".into(),
            s: "KZ/GOV/2/register/person".into(),
            m: "m-1".into(),
            r: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn a_reply_to_is_answerable_for_its_lifetime_and_not_after() {
        let gateway = gateway();
        let issued = 1_800_000_000;
        let token = reply().issue_at(&gateway, issued).unwrap();
        assert_eq!(ReplyTo::check_at(&gateway, &token, issued).unwrap(), reply());
        let last = issued + REPLY_TO_LIFETIME.as_secs();
        assert_eq!(ReplyTo::check_at(&gateway, &token, last).unwrap(), reply());
        let late = ReplyTo::check_at(&gateway, &token, last + 1).unwrap_err();
        assert!(late.to_string().contains("expired"), "{late}");
    }

    #[test]
    fn a_reply_to_signed_by_another_key_or_altered_is_refused() {
        let gateway = gateway();
        let token = reply().issue_at(&gateway, 1_800_000_000).unwrap();
        assert!(ReplyTo::check_at(&self::gateway(), &token, 1_800_000_000).is_err(), "another gateway's key");
        // Moving the expiry: the payload changes, the signature does not.
        let (payload, signature) = token.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let later = json.replace("\"x\":1802592000", "\"x\":1902592000");
        assert_ne!(later, json, "the expiry is in the signed payload");
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(later));
        assert!(ReplyTo::check_at(&gateway, &forged, 1_800_000_000).is_err());
        // A token from before expiry existed (no `x`), signed by this key, still answers.
        let legacy = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&reply()).unwrap());
        let sig = URL_SAFE_NO_PAD.encode(gateway.key.sign(legacy.as_bytes()).unwrap());
        assert_eq!(ReplyTo::check_at(&gateway, &format!("{legacy}.{sig}"), u64::MAX).unwrap(), reply());
    }
}
