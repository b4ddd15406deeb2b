//! Signing keys and signature verification for XMLDSig and JWS, on ring (the
//! process's one crypto provider, as rustls uses it). The algorithm a signature
//! names must match the key that checks it: no algorithm confusion.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// The signature algorithms Qaqpa signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    RsaSha256,
    EcdsaP256Sha256,
    Ed25519,
}

impl SignatureAlg {
    pub fn xmldsig_uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::EcdsaP256Sha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::Ed25519 => "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519",
        }
    }

    pub fn from_xmldsig_uri(uri: &str) -> Option<Self> {
        [Self::RsaSha256, Self::EcdsaP256Sha256, Self::Ed25519].into_iter().find(|a| a.xmldsig_uri() == uri)
    }

    pub fn jws_name(self) -> &'static str {
        match self {
            Self::RsaSha256 => "RS256",
            Self::EcdsaP256Sha256 => "ES256",
            Self::Ed25519 => "EdDSA",
        }
    }

    pub fn from_jws_name(name: &str) -> Option<Self> {
        [Self::RsaSha256, Self::EcdsaP256Sha256, Self::Ed25519].into_iter().find(|a| a.jws_name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM PKCS#8 private key")]
    NotPkcs8,
    #[error("unsupported key: RSA (2048–8192 bits), ECDSA P-256 or Ed25519 are accepted")]
    Unsupported,
    #[error("signing failed")]
    Sign,
    #[error("the certificate is not valid X.509")]
    BadCertificate,
    #[error("the certificate's key does not fit {0:?}")]
    AlgorithmMismatch(SignatureAlg),
    #[error("the signature does not verify")]
    BadSignature,
}

pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPkcs8)? else {
            return Err(KeyError::NotPkcs8);
        };
        let der = der.secret_pkcs8_der();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
        {
            return Ok(Self::Ecdsa(k));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self::Ed25519(k));
        }
        RsaKeyPair::from_pkcs8(der).map(Self::Rsa).map_err(|_| KeyError::Unsupported)
    }

    pub fn alg(&self) -> SignatureAlg {
        match self {
            Self::Rsa(_) => SignatureAlg::RsaSha256,
            Self::Ecdsa(_) => SignatureAlg::EcdsaP256Sha256,
            Self::Ed25519(_) => SignatureAlg::Ed25519,
        }
    }

    /// The signature in the form XMLDSig and JWS both use (ECDSA as r ‖ s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Self::Ecdsa(k) => Ok(k.sign(&rng, message).map_err(|_| KeyError::Sign)?.as_ref().to_vec()),
            Self::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }

    /// The public key bits, to check that a certificate belongs to this key.
    pub fn public_key(&self) -> &[u8] {
        match self {
            Self::Rsa(k) => k.public().as_ref(),
            Self::Ecdsa(k) => k.public_key().as_ref(),
            Self::Ed25519(k) => k.public_key().as_ref(),
        }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// The algorithm a certificate's public key signs with, and the key bits.
pub fn certificate_key(der: &[u8]) -> Result<(SignatureAlg, Vec<u8>), KeyError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| KeyError::BadCertificate)?;
    let spki = &cert.tbs_certificate.subject_pki;
    let bits = spki.subject_public_key.data.to_vec();
    let alg = match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_RSA => SignatureAlg::RsaSha256,
        OID_EC => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            if curve.as_deref() != Some(OID_P256) {
                return Err(KeyError::Unsupported);
            }
            SignatureAlg::EcdsaP256Sha256
        }
        OID_ED25519 => SignatureAlg::Ed25519,
        _ => return Err(KeyError::Unsupported),
    };
    Ok((alg, bits))
}

/// Verifies `signature` over `message` with the certificate's key, which must be of
/// the kind `alg` names.
pub fn verify(alg: SignatureAlg, certificate: &[u8], message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    let (key_alg, bits) = certificate_key(certificate)?;
    if key_alg != alg {
        return Err(KeyError::AlgorithmMismatch(alg));
    }
    let verifier: &dyn signature::VerificationAlgorithm = match alg {
        SignatureAlg::RsaSha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SignatureAlg::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
        SignatureAlg::Ed25519 => &signature::ED25519,
    };
    UnparsedPublicKey::new(verifier, bits).verify(message, signature).map_err(|_| KeyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;

    #[test]
    fn sign_and_verify_with_the_certificate_and_refuse_confusion() {
        let now = time::OffsetDateTime::now_utc();
        let ca = DevCa::generate("CA", now).unwrap();
        let pair = ca.issue_client(&qaqpa_routing::SystemId::parse("KZ/GOV/1/a").unwrap(), now).unwrap();
        let key = SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap();
        assert_eq!(key.alg(), SignatureAlg::EcdsaP256Sha256);
        let cert = pair.cert_der().unwrap();
        let sig = key.sign(b"message").unwrap();
        assert_eq!(sig.len(), 64, "r || s");
        verify(SignatureAlg::EcdsaP256Sha256, &cert, b"message", &sig).unwrap();
        assert_eq!(verify(SignatureAlg::EcdsaP256Sha256, &cert, b"messagf", &sig), Err(KeyError::BadSignature));
        assert_eq!(
            verify(SignatureAlg::RsaSha256, &cert, b"message", &sig),
            Err(KeyError::AlgorithmMismatch(SignatureAlg::RsaSha256))
        );
        assert_eq!(certificate_key(&cert).unwrap().1, key.public_key());
        assert!(SigningKey::from_pem(b"junk").is_err());
        assert!(verify(SignatureAlg::Ed25519, b"not a cert", b"m", b"s").is_err());
    }
}
