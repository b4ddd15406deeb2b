//! WS-Security signatures as ШЭП messages carry them (docs/shep.md#signatures): a
//! `ds:Signature` inside the SOAP Header's `wsse:Security` (or directly in the
//! Header), signing the Body by its `wsu:Id`, optionally a `wsu:Timestamp`.
//!
//! The defences are those of [`super::verify_soap`]: unique Ids, each Reference
//! resolving to one element, the Envelope's one Body among the signed elements (by
//! position, so a signed copy moved elsewhere does not count), no comments inside
//! signed content. What differs: the signature's container, no X-Road header to
//! cover, and a Timestamp that may be absent (ШЭП clients sign `messageDate` inside
//! the Body instead; the caller judges freshness).
//!
//! The algorithms are pluggable ([`Algorithms`]): [`Standard`] verifies RSA, ECDSA
//! P-256 and Ed25519 with SHA-256/512 digests; Kazakhstan's GOST 34.310/34.311
//! (`xmldsig-more#gost34310-gost34311`) is another implementation of the trait.
//! The reference and SignatureValue checks are `verify_soap`'s own
//! (`check_signature`); only the placement and coverage rules differ.

use super::{index, soap_structure, DigestAlg, DsigError, Structure, WSU_NS};
use crate::keys::{self, SignatureAlg};

pub const WSSE_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const X509V3: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";

/// Whether an element is `ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier`
/// carrying an X.509 certificate (ValueType X509v3), as ШЭП clients send the
/// signer's certificate.
pub(super) fn is_key_identifier(
    element: &super::Element,
    elements: &[super::Element],
    attr: &dyn Fn(&[u8]) -> Option<String>,
) -> bool {
    let parent = element.parent.map(|p| &elements[p]);
    let grandparent = parent.and_then(|p| p.parent).map(|g| &elements[g]);
    element.ns == WSSE_NS
        && element.local == "KeyIdentifier"
        && parent.is_some_and(|p| p.ns == WSSE_NS && p.local == "SecurityTokenReference")
        && grandparent.is_some_and(|g| g.ns == super::DSIG_NS && g.local == "KeyInfo")
        && attr(b"ValueType").as_deref() == Some(X509V3)
}

/// Signature and digest algorithms by their XMLDSig URIs.
pub trait Algorithms {
    /// Checks `signature` over `signed` with the key of `cert_der`, for SignatureMethod `uri`.
    fn verify(&self, uri: &str, cert_der: &[u8], signed: &[u8], signature: &[u8]) -> Result<(), DsigError>;
    /// The digest of `data` for DigestMethod `uri`, or `None` for an unknown one.
    fn digest(&self, uri: &str, data: &[u8]) -> Option<Vec<u8>>;
    /// A running digest for DigestMethod `uri`, which canonicalization writes
    /// into (no canonical copy kept). `None` (the default): the verifier buffers
    /// the canonical bytes and calls [`Algorithms::digest`].
    fn digester(&self, uri: &str) -> Option<Box<dyn super::Digester>> {
        let _ = uri;
        None
    }
}

/// RSA, ECDSA P-256, Ed25519; SHA-256 and SHA-512.
pub struct Standard;

impl Algorithms for Standard {
    fn verify(&self, uri: &str, cert_der: &[u8], signed: &[u8], signature: &[u8]) -> Result<(), DsigError> {
        let alg = SignatureAlg::from_xmldsig_uri(uri).ok_or_else(|| DsigError::Algorithm(uri.to_owned()))?;
        keys::verify(alg, cert_der, signed, signature).map_err(DsigError::SignatureValue)
    }

    fn digest(&self, uri: &str, data: &[u8]) -> Option<Vec<u8>> {
        DigestAlg::from_uri(uri).map(|d| d.digest(data))
    }

    fn digester(&self, uri: &str) -> Option<Box<dyn super::Digester>> {
        DigestAlg::from_uri(uri).map(|d| Box::new(d.digester()) as Box<dyn super::Digester>)
    }
}

/// What a verified WS-Security signature vouches for.
#[derive(Debug, Clone)]
pub struct WsseSignature {
    /// The SignatureMethod URI.
    pub alg: String,
    /// The signer's chain from KeyInfo, leaf first (trust is the caller's check).
    pub chain: Vec<Vec<u8>>,
    /// `wsu:Created` of a signed Timestamp, Unix seconds, if there is one.
    pub created: Option<i64>,
    pub signature_value: Vec<u8>,
    /// Where this verifier found the Header and the Body's content.
    pub structure: Structure,
}

/// Verifies a ШЭП message's WS-Security signature and that it covers the Body.
pub fn verify_wsse(doc: &[u8], algorithms: &dyn Algorithms) -> Result<WsseSignature, DsigError> {
    let index = index(doc)?;
    let soap = soap_structure(&index)?;
    let sig = match index.signatures.as_slice() {
        [] => return Err(DsigError::NoSignature),
        [one] => one,
        _ => return Err(DsigError::TooManySignatures),
    };
    // In the Header, or in one of its children (wsse:Security).
    let parent = index.elements[sig.element].parent;
    let in_header = parent == Some(soap.header) || parent.and_then(|p| index.elements[p].parent) == Some(soap.header);
    if !in_header {
        return Err(DsigError::MisplacedSignature);
    }
    let super::Checked { signed, chain, value } = super::check_signature(&index, doc, sig, algorithms)?;
    if !signed.contains(&soap.body) {
        return Err(DsigError::Unsigned("the SOAP Body".into()));
    }
    // A Timestamp, if the Header has one, is signed and well-formed.
    let mut created = None;
    let timestamps = index.elements.iter().enumerate().filter(|(_, e)| e.ns == WSU_NS && e.local == "Timestamp");
    for (i, _) in timestamps {
        if !signed.contains(&i) {
            return Err(DsigError::Unsigned("the wsu:Timestamp".into()));
        }
        let at = index
            .elements
            .iter()
            .enumerate()
            .find(|(_, e)| e.parent == Some(i) && e.ns == WSU_NS && e.local == "Created")
            .and_then(|(c, _)| index.created.get(&c))
            .and_then(|t| time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339).ok())
            .ok_or(DsigError::Timestamp)?;
        if created.replace(at.unix_timestamp()).is_some() {
            return Err(DsigError::Unsigned("a second wsu:Timestamp".into()));
        }
    }
    Ok(WsseSignature {
        alg: sig.signature_alg.clone(),
        chain,
        created,
        signature_value: value,
        structure: Structure::of(doc, &index, &soap),
    })
}

#[cfg(test)]
mod tests;
