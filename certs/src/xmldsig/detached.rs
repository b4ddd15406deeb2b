//! Detached XMLDSig as SMEV 3 uses it (docs/smev3.md#signatures): one `ds:Signature`
//! beside the element it signs, one Reference `#Id`, transforms exclusive c14n then
//! optionally the SMEV transform ([`crate::smev_transform`]).
//!
//! The algorithms are a [`Suite`] (verification) and a [`Signer`] (signing), so a
//! GOST R 34.10-2012 / 34.11-2012 provider plugs in by implementing them, with no
//! change to the face: [`StandardSuite`] and [`KeySigner`] are the ring-backed
//! RSA / ECDSA / Ed25519 with SHA-256 / SHA-512 the gateway has today.

use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{base64_decode, c14n_options, index, DigestAlg, DsigError, DSIG_NS, EXC_C14N};
use crate::c14n::C14nOptions;
use crate::keys::{self, SignatureAlg, SigningKey};
use crate::smev_transform::{smev_transform, SMEV_TRANSFORM};

/// Digest and signature algorithms by their XMLDSig URIs, for verification.
pub trait Suite: Send + Sync {
    /// The digest of `data` by the algorithm `uri` names; `None` if unsupported.
    fn digest(&self, uri: &str, data: &[u8]) -> Option<Vec<u8>>;
    /// Checks `signature` over `message` with the leaf certificate's key.
    fn verify(&self, uri: &str, certificate: &[u8], message: &[u8], signature: &[u8]) -> Result<(), DsigError>;
}

/// What the gateway verifies with today: SHA-256/512; RSA, ECDSA P-256, Ed25519.
pub struct StandardSuite;

impl Suite for StandardSuite {
    fn digest(&self, uri: &str, data: &[u8]) -> Option<Vec<u8>> {
        DigestAlg::from_uri(uri).map(|d| d.digest(data))
    }

    fn verify(&self, uri: &str, certificate: &[u8], message: &[u8], signature: &[u8]) -> Result<(), DsigError> {
        let alg = SignatureAlg::from_xmldsig_uri(uri).ok_or_else(|| DsigError::Algorithm(uri.to_owned()))?;
        keys::verify(alg, certificate, message, signature).map_err(DsigError::SignatureValue)
    }
}

/// A key that signs, with its algorithms' URIs and certificate chain.
pub trait Signer: Send + Sync {
    fn signature_uri(&self) -> &str;
    fn digest_uri(&self) -> &str;
    fn digest(&self, data: &[u8]) -> Vec<u8>;
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError>;
    /// Leaf first.
    fn chain(&self) -> &[Vec<u8>];
}

/// A ring key ([`SigningKey`]) as a [`Signer`].
pub struct KeySigner<'a> {
    pub key: &'a SigningKey,
    pub chain: &'a [Vec<u8>],
    pub digest: DigestAlg,
}

impl Signer for KeySigner<'_> {
    fn signature_uri(&self) -> &str {
        self.key.alg().xmldsig_uri()
    }

    fn digest_uri(&self) -> &str {
        self.digest.uri()
    }

    fn digest(&self, data: &[u8]) -> Vec<u8> {
        self.digest.digest(data)
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
        self.key.sign(data).map_err(DsigError::Key)
    }

    fn chain(&self) -> &[Vec<u8>] {
        self.chain
    }
}

/// What a verified detached signature vouches for.
#[derive(Debug, Clone)]
pub struct DetachedSignature {
    /// The Id its one Reference names (the element it covers).
    pub id: String,
    /// Byte range of that element in the document.
    pub element: Range<usize>,
    /// The signer's chain from KeyInfo, leaf first (trust is the caller's check).
    pub chain: Vec<Vec<u8>>,
    pub signature_uri: String,
    pub signature_value: Vec<u8>,
}

/// The canonical bytes a Reference digests: exclusive c14n of the element, then
/// the SMEV transform when asked for.
fn reference_bytes(
    index: &super::Index,
    doc: &[u8],
    target: usize,
    options: &C14nOptions,
    smev: bool,
) -> Result<Vec<u8>, DsigError> {
    let mut canonical = Vec::new();
    index.canonicalize(doc, target, None, options, &mut canonical)?;
    if smev {
        canonical = smev_transform(&canonical).map_err(|e| DsigError::Xml(e.to_string()))?;
    }
    Ok(canonical)
}

/// Verifies the `ds:Signature` element starting at `signature_at` in `doc`: one
/// Reference to an element by Id (not one inside the signature), exclusive c14n
/// (then optionally the SMEV transform), the digest and the signature value by
/// `suite`. Comments inside the signed element are refused as for SOAP signatures.
pub fn verify_detached(doc: &[u8], signature_at: usize, suite: &dyn Suite) -> Result<DetachedSignature, DsigError> {
    let index = index(doc)?;
    let sig = index
        .signatures
        .iter()
        .find(|s| index.elements[s.element].start == signature_at)
        .ok_or(DsigError::NoSignature)?;
    let signed_info = sig.signed_info.ok_or(DsigError::Malformed("no SignedInfo"))?;
    let [reference] = sig.references.as_slice() else {
        return Err(DsigError::Malformed("a detached signature has exactly one Reference"));
    };
    let id = reference
        .uri
        .strip_prefix('#')
        .filter(|id| !id.is_empty() && !id.starts_with("xpointer("))
        .ok_or_else(|| DsigError::BadReferenceUri(reference.uri.clone()))?;
    let target = *index.ids.get(id).ok_or_else(|| DsigError::UnresolvedReference(id.to_owned()))?;
    // The signed element is not the signature, nor inside it.
    let signature = &index.elements[sig.element];
    let element = &index.elements[target];
    if element.start >= signature.start && element.start < signature.end_tag.max(signature.start + 1) {
        return Err(DsigError::Malformed("the Reference names the signature itself"));
    }
    let (mut options, mut smev) = (None, false);
    for (alg, prefixes) in &reference.transforms {
        match alg.as_str() {
            super::EXC_C14N | super::EXC_C14N_COMMENTS if options.is_none() && !smev => {
                options = Some(c14n_options(alg, prefixes.as_ref())?)
            }
            SMEV_TRANSFORM if options.is_some() && !smev => smev = true,
            other => return Err(DsigError::Algorithm(other.to_owned())),
        }
    }
    let options = options.ok_or(DsigError::Algorithm("(no exclusive c14n transform)".to_owned()))?;
    let canonical = reference_bytes(&index, doc, target, &options, smev)?;
    let digest = suite
        .digest(&reference.digest_alg, &canonical)
        .ok_or_else(|| DsigError::Algorithm(reference.digest_alg.clone()))?;
    if digest != base64_decode(&reference.digest_value)? {
        return Err(DsigError::DigestMismatch(id.to_owned()));
    }
    index.refuse_comments_in(target)?;
    if sig.certificates.is_empty() {
        return Err(DsigError::NoCertificate);
    }
    let chain = sig.certificates.iter().map(|c| base64_decode(c)).collect::<Result<Vec<_>, _>>()?;
    let info_options = c14n_options(&sig.c14n_alg, sig.c14n_prefixes.as_ref())?;
    let info = index.elements.iter().position(|e| e.start == signed_info).ok_or(DsigError::Malformed("SignedInfo"))?;
    let mut canonical = Vec::new();
    index.canonicalize(doc, info, None, &info_options, &mut canonical)?;
    let value = base64_decode(&sig.value)?;
    suite.verify(&sig.signature_alg, &chain[0], &canonical, &value)?;
    let end = element.end_tag + doc[element.end_tag..].iter().position(|&b| b == b'>').map_or(0, |p| p + 1);
    Ok(DetachedSignature {
        id: id.to_owned(),
        element: element.start..end,
        chain,
        signature_uri: sig.signature_alg.clone(),
        signature_value: value,
    })
}

/// Signs the element of `doc` whose Id is `id` (exclusive c14n, then the SMEV
/// transform) and returns the `ds:Signature` element to put beside it (it declares
/// its own `ds` prefix, so it may go anywhere outside the signed element).
pub fn sign_detached(doc: &[u8], id: &str, signer: &dyn Signer) -> Result<String, DsigError> {
    let index = index(doc)?;
    let target = *index.ids.get(id).ok_or_else(|| DsigError::UnresolvedReference(id.to_owned()))?;
    index.refuse_comments_in(target)?;
    let canonical = reference_bytes(&index, doc, target, &C14nOptions::default(), true)?;
    let digest = STANDARD.encode(signer.digest(&canonical));
    let signed_info = format!(
        "<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\"><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{}\"></ds:SignatureMethod><ds:Reference URI=\"#{}\"><ds:Transforms><ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform><ds:Transform Algorithm=\"{SMEV_TRANSFORM}\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"{}\"></ds:DigestMethod><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
        signer.signature_uri(),
        qaqpa_adapters::soap::escape(id),
        signer.digest_uri(),
    );
    // Standing alone SignedInfo declares `ds` itself, as exclusive c14n renders it
    // in place (the prefix is visibly used): the canonical form is the same.
    let mut canonical = Vec::new();
    crate::c14n::canonicalize(signed_info.as_bytes(), 0, None, &C14nOptions::default(), &mut canonical)?;
    let value = STANDARD.encode(signer.sign(&canonical)?);
    let certificates: String = signer
        .chain()
        .iter()
        .map(|c| format!("<ds:X509Certificate>{}</ds:X509Certificate>", STANDARD.encode(c)))
        .collect();
    let signed_info = signed_info.replacen(&format!(" xmlns:ds=\"{DSIG_NS}\""), "", 1);
    Ok(format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{signed_info}<ds:SignatureValue>{value}</ds:SignatureValue><ds:KeyInfo><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo></ds:Signature>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;

    fn signer_parts() -> (SigningKey, Vec<Vec<u8>>, SigningKey, Vec<Vec<u8>>) {
        let now = time::OffsetDateTime::now_utc();
        let ca = DevCa::generate("CA", now).unwrap();
        let pair = |name: &str| {
            let p = ca.issue_client(&qaqpa_routing::SystemId::parse(name).unwrap(), now).unwrap();
            (SigningKey::from_pem(p.key_pem.as_bytes()).unwrap(), vec![p.cert_der().unwrap().to_vec()])
        };
        let (a, ca_chain) = pair("RU/GOV/1/a");
        let (b, cb_chain) = pair("RU/GOV/2/b");
        (a, ca_chain, b, cb_chain)
    }

    const BODY: &str = "<t:SendRequestRequest xmlns:t=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1\"><t:SenderProvidedRequestData Id=\"SIGNED_BY_CALLER\">\n  <t:MessageID>1</t:MessageID>\n</t:SenderProvidedRequestData><t:CallerInformationSystemSignature>@@</t:CallerInformationSystemSignature></t:SendRequestRequest>";

    fn signed(key: &SigningKey, chain: &[Vec<u8>], id: &str) -> String {
        let signer = KeySigner { key, chain, digest: DigestAlg::Sha256 };
        let sig = sign_detached(BODY.replace("@@", "").as_bytes(), id, &signer).unwrap();
        BODY.replace("@@", &sig)
    }

    #[test]
    fn a_detached_signature_verifies_and_names_what_it_covers() {
        let (key, chain, _, _) = signer_parts();
        let doc = signed(&key, &chain, "SIGNED_BY_CALLER");
        let at = doc.find("<ds:Signature").unwrap();
        let v = verify_detached(doc.as_bytes(), at, &StandardSuite).unwrap();
        assert_eq!(v.id, "SIGNED_BY_CALLER");
        assert_eq!(v.chain, chain);
        assert!(doc[v.element.clone()].starts_with("<t:SenderProvidedRequestData"));
        // Whitespace and prefixes the SMEV transform normalizes do not matter…
        let reformatted = doc.replace("\n  <t:MessageID>1</t:MessageID>\n", "<t:MessageID>1</t:MessageID>");
        let at = reformatted.find("<ds:Signature").unwrap();
        verify_detached(reformatted.as_bytes(), at, &StandardSuite).unwrap();
        // …content does.
        let changed = doc.replace("<t:MessageID>1<", "<t:MessageID>2<");
        let at = changed.find("<ds:Signature").unwrap();
        assert_eq!(
            verify_detached(changed.as_bytes(), at, &StandardSuite).unwrap_err(),
            DsigError::DigestMismatch("SIGNED_BY_CALLER".into())
        );
    }

    #[test]
    fn another_key_a_wrong_reference_or_a_second_reference_fail() {
        let (key, chain, other, other_chain) = signer_parts();
        let doc = signed(&key, &chain, "SIGNED_BY_CALLER");
        let at = doc.find("<ds:Signature").unwrap();
        // The certificate swapped for another system's: the value does not verify.
        let swapped = doc.replace(&STANDARD.encode(&chain[0]), &STANDARD.encode(&other_chain[0]));
        assert!(matches!(verify_detached(swapped.as_bytes(), at, &StandardSuite), Err(DsigError::SignatureValue(_))));
        let _ = other;
        let wrong = doc.replace("URI=\"#SIGNED_BY_CALLER\"", "URI=\"#NOPE\"");
        assert_eq!(
            verify_detached(wrong.as_bytes(), at, &StandardSuite).unwrap_err(),
            DsigError::UnresolvedReference("NOPE".into())
        );
        let outside = doc.replace("URI=\"#SIGNED_BY_CALLER\"", "URI=\"http://evil/\"");
        assert!(matches!(verify_detached(outside.as_bytes(), at, &StandardSuite), Err(DsigError::BadReferenceUri(_))));
        assert_eq!(verify_detached(doc.as_bytes(), 0, &StandardSuite).unwrap_err(), DsigError::NoSignature);
    }

    #[test]
    fn a_suite_decides_the_algorithms() {
        struct Nothing;
        impl Suite for Nothing {
            fn digest(&self, _: &str, _: &[u8]) -> Option<Vec<u8>> {
                None
            }
            fn verify(&self, uri: &str, _: &[u8], _: &[u8], _: &[u8]) -> Result<(), DsigError> {
                Err(DsigError::Algorithm(uri.to_owned()))
            }
        }
        let (key, chain, _, _) = signer_parts();
        let doc = signed(&key, &chain, "SIGNED_BY_CALLER");
        let at = doc.find("<ds:Signature").unwrap();
        assert!(matches!(verify_detached(doc.as_bytes(), at, &Nothing), Err(DsigError::Algorithm(_))));
    }
}
