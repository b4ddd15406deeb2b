//! Which system a client certificate speaks for (docs/protocol.md#identifiers): a SAN URI
//! `urn:qaqpa:{system id}` or the certificate's SHA-256 fingerprint in the registry.
//! Chain and validity are checked by the TLS layer before a certificate gets here.

use qaqpa_routing::ids::SAN_URI_PREFIX;

/// SAN URI prefix naming an operator of the admin API (`urn:qaqpa:operator:NAME`).
/// Checked before [`SAN_URI_PREFIX`]: an operator is not a system.
pub const OPERATOR_URI_PREFIX: &str = "urn:qaqpa:operator:";
use qaqpa_routing::SystemId;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate is not valid DER X.509")]
    NotX509,
    #[error("certificate has more than one {SAN_URI_PREFIX} SAN URI")]
    AmbiguousBinding,
    #[error("certificate's {SAN_URI_PREFIX} SAN URI names an invalid system id")]
    BadSystemId,
    #[error("certificate has more than one {OPERATOR_URI_PREFIX} SAN URI")]
    AmbiguousOperator,
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The system named by a `urn:qaqpa:` SAN URI, if any.
    pub san_system: Option<SystemId>,
    /// The operator named by a `urn:qaqpa:operator:` SAN URI, if any (admin API).
    pub san_operator: Option<String>,
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
}

pub fn inspect(der: &[u8]) -> Result<CertIdentity, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::NotX509)?;
    let mut san_system = None;
    let mut san_operator = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(operator) = uri.strip_prefix(OPERATOR_URI_PREFIX) {
                if san_operator.replace(operator.to_owned()).is_some() {
                    return Err(IdentityError::AmbiguousOperator);
                }
                continue;
            }
            let Some(id) = uri.strip_prefix(SAN_URI_PREFIX) else {
                continue;
            };
            let system = SystemId::parse(id).map_err(|_| IdentityError::BadSystemId)?;
            if san_system.replace(system).is_some() {
                return Err(IdentityError::AmbiguousBinding);
            }
        }
    }
    Ok(CertIdentity { san_system, san_operator, sha256: Sha256::digest(der).into() })
}

/// Lower-case hex without separators, the form the config uses.
pub fn fingerprint_hex(sha256: &[u8; 32]) -> String {
    crate::msglog::hex(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;
    use time::OffsetDateTime;

    #[test]
    fn reads_san_binding_and_fingerprint() {
        let now = OffsetDateTime::now_utc();
        let ca = DevCa::generate("Test CA", now).unwrap();
        let system = SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap();
        let client = ca.issue_client(&system, now).unwrap();
        let der = client.cert_der().unwrap();
        let id = inspect(&der).unwrap();
        assert_eq!(id.san_system, Some(system));
        assert_eq!(fingerprint_hex(&id.sha256).len(), 64);

        let server = ca.issue_server(&["localhost", "127.0.0.1"], now).unwrap();
        assert_eq!(inspect(&server.cert_der().unwrap()).unwrap().san_system, None);

        let operator = ca.issue_operator("duty-1", now).unwrap();
        let id = inspect(&operator.cert_der().unwrap()).unwrap();
        assert_eq!((id.san_system, id.san_operator.as_deref()), (None, Some("duty-1")));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(inspect(b"not a certificate"), Err(IdentityError::NotX509));
        assert_eq!(inspect(&[]), Err(IdentityError::NotX509));
    }
}
