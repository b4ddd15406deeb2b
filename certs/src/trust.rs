//! Whether a signer's certificate chain is trusted: it chains to a configured
//! anchor, every certificate is within its validity at the given time, and none is
//! revoked by the configured CRLs (rustls-webpki, the verifier rustls uses).

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the signer sent no certificate")]
    NoCertificate,
    #[error("the signer's certificate is not valid X.509: {0}")]
    BadCertificate(String),
    #[error("the signer's certificate has expired")]
    Expired,
    #[error("the signer's certificate is not valid yet")]
    NotValidYet,
    #[error("the signer's certificate is revoked")]
    Revoked,
    #[error("the signer's certificate does not chain to a trusted CA")]
    UnknownIssuer,
    #[error("the signer's certificate is not trusted: {0}")]
    Other(String),
    #[error("a trust anchor or CRL is unusable: {0}")]
    Config(String),
}

pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
}

impl TrustStore {
    pub fn new(anchors: &[CertificateDer<'_>], crls: &[CertificateRevocationListDer<'_>]) -> Result<Self, TrustError> {
        let anchors = anchors
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::Config(format!("trust anchor: {e}")))?;
        let crls = crls
            .iter()
            .map(|c| OwnedCertRevocationList::from_der(c).map(CertRevocationList::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::Config(format!("CRL: {e}")))?;
        Ok(Self { anchors, crls })
    }

    /// Checks `chain` (leaf first) at `now_unix` seconds.
    pub fn verify(&self, chain: &[CertificateDer<'_>], now_unix: u64) -> Result<(), TrustError> {
        let leaf = chain.first().ok_or(TrustError::NoCertificate)?;
        let cert = EndEntityCert::try_from(leaf).map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder.with_depth(RevocationCheckDepth::Chain).with_status_policy(UnknownStatusPolicy::Allow).build(),
            ),
            Err(_) => None, // no CRLs configured
        };
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix));
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &chain[1..],
            now,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => TrustError::Expired,
            webpki::Error::CertNotValidYet { .. } => TrustError::NotValidYet,
            webpki::Error::CertRevoked => TrustError::Revoked,
            webpki::Error::UnknownIssuer => TrustError::UnknownIssuer,
            other => TrustError::Other(format!("{other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;
    use rustls_pki_types::pem::PemObject;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn each_way_a_chain_fails_is_named() {
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp() as u64;
        let ca = DevCa::generate("CA", now).unwrap();
        let foreign = DevCa::generate("Other CA", now).unwrap();
        let system = qaqpa_routing::SystemId::parse("KZ/GOV/1/a").unwrap();
        let good = ca.issue_client(&system, now).unwrap();
        let revoked = ca.issue_client(&system, now).unwrap();
        let expired = ca.issue_client_valid(&system, now - Duration::days(10), now - Duration::days(1)).unwrap();
        let early = ca.issue_client_valid(&system, now + Duration::days(1), now + Duration::days(10)).unwrap();
        let stranger = foreign.issue_client(&system, now).unwrap();
        let anchor = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let crl_pem = ca.revocation_list(&[&revoked.cert_pem], now, Duration::days(1)).unwrap();
        let crl = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap();
        let store = TrustStore::new(std::slice::from_ref(&anchor), &[crl]).unwrap();
        let check = |pair: &crate::pki::CertAndKey| store.verify(&[pair.cert_der().unwrap()], ts);
        assert_eq!(check(&good), Ok(()));
        assert_eq!(check(&revoked), Err(TrustError::Revoked));
        assert_eq!(check(&expired), Err(TrustError::Expired));
        assert_eq!(check(&early), Err(TrustError::NotValidYet));
        assert_eq!(check(&stranger), Err(TrustError::UnknownIssuer));
        assert_eq!(store.verify(&[], ts), Err(TrustError::NoCertificate));
        assert!(matches!(store.verify(&[CertificateDer::from(vec![1, 2, 3])], ts), Err(TrustError::BadCertificate(_))));
        // Without CRLs the revoked one passes: revocation comes only from configured lists.
        let no_crl = TrustStore::new(&[anchor], &[]).unwrap();
        assert_eq!(no_crl.verify(&[revoked.cert_der().unwrap()], ts), Ok(()));
    }
}
