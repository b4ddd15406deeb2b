//! A development PKI: one CA, server certificates for the gateway, and one client
//! certificate per system carrying the SAN URI binding of docs/protocol.md#identifiers.
//!
//! Production deployments bring their own CA; this exists so that `qaqpa demo` and the
//! tests run real mTLS with nothing to set up.

use qaqpa_routing::SystemId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0} is not valid PEM")]
    BadPem(&'static str),
}

/// How long dev certificates live. Long enough for a demo left running; short enough
/// that nobody mistakes them for production material.
pub const CA_VALIDITY: Duration = Duration::days(3650);
pub const LEAF_VALIDITY: Duration = Duration::days(397);

/// A PEM certificate with its PKCS#8 PEM private key.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl CertAndKey {
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|_| PkiError::BadPem("certificate"))
    }
}

pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self { issuer: Issuer::new(params, key), cert_pem: cert.pem(), key_pem })
    }

    /// Loads an existing CA (for `qaqpa certs issue`).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| PkiError::BadPem("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self { issuer, cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned() })
    }

    /// A TLS server certificate for the given DNS names and IP addresses.
    pub fn issue_server(&self, names: &[&str], now: OffsetDateTime) -> Result<CertAndKey, PkiError> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = name(names.first().copied().unwrap_or("qaqpa gateway"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign_leaf(params, now, now + LEAF_VALIDITY)
    }

    /// A client certificate bound to `system` by its SAN URI.
    pub fn issue_client(&self, system: &SystemId, now: OffsetDateTime) -> Result<CertAndKey, PkiError> {
        self.issue_client_valid(system, now - Duration::minutes(5), now + LEAF_VALIDITY)
    }

    /// A client certificate with an explicit validity window (tests of expired and
    /// not-yet-valid certificates need one).
    pub fn issue_client_valid(
        &self,
        system: &SystemId,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<CertAndKey, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(system.as_str());
        params.subject_alt_names = vec![SanType::URI(system.san_uri().try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_leaf(params, not_before, not_after)
    }

    /// A client certificate for an operator of the admin API, named by the SAN URI
    /// `urn:qaqpa:operator:{name}`; it binds to no system, so it opens no data door.
    pub fn issue_operator(&self, operator: &str, now: OffsetDateTime) -> Result<CertAndKey, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(operator);
        let uri = format!("{}{operator}", crate::identity::OPERATOR_URI_PREFIX);
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_leaf(params, now - Duration::minutes(5), now + LEAF_VALIDITY)
    }

    /// A client certificate for a key made elsewhere (RSA from openssl, an HSM's key):
    /// `key_pem` is its PKCS#8 private key (only the public half is used).
    pub fn issue_client_for_key(
        &self,
        system: &SystemId,
        key_pem: &str,
        now: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| PkiError::BadPem("private key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(system.as_str());
        params.subject_alt_names = vec![SanType::URI(system.san_uri().try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + LEAF_VALIDITY;
        Ok(params.signed_by(&key, &self.issuer)?.pem())
    }

    fn sign_leaf(
        &self,
        mut params: CertificateParams,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

impl DevCa {
    /// A CRL signed by this CA revoking the given certificates (PEM), valid for
    /// `validity` from `now`. Numbered by `now` so a newer list supersedes an older one.
    pub fn revocation_list(
        &self,
        revoked_pems: &[&str],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<String, PkiError> {
        let mut revoked_certs = Vec::new();
        for pem in revoked_pems {
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| PkiError::BadPem("certificate"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| PkiError::BadPem("certificate"))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(cert.raw_serial()),
                revocation_time: now,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + validity,
            crl_number: SerialNumber::from(now.unix_timestamp().max(0) as u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Qaqpa dev PKI");
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloaded_ca_issues_certificates_with_the_same_issuer() {
        let now = OffsetDateTime::now_utc();
        let ca = DevCa::generate("Test CA", now).unwrap();
        let again = DevCa::load(&ca.cert_pem, &ca.key_pem).unwrap();
        let system = SystemId::parse("KZ/GOV/1/sys").unwrap();
        let a = ca.issue_client(&system, now).unwrap().cert_der().unwrap();
        let b = again.issue_client(&system, now).unwrap().cert_der().unwrap();
        let issuer = |der: &[u8]| {
            let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
            c.issuer().to_string()
        };
        assert_eq!(issuer(&a), issuer(&b));
        assert!(DevCa::load("garbage", &ca.key_pem).is_err());
        assert!(DevCa::load(&ca.cert_pem, "garbage").is_err());
    }
}
