//! Whether a signer's certificate chain is trusted: it chains to a configured
//! anchor, every certificate is within its validity at the given time, and none is
//! revoked by the configured CRLs (rustls-webpki, the verifier rustls uses).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

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

/// Most signer chains the cache remembers. Past it the cache starts again empty:
/// bounded memory whatever certificates clients present, and one full
/// validation per chain to refill.
pub const CHAIN_CACHE_ENTRIES: usize = 4096;

/// What a successful validation of one chain leaves behind: enough to know, at a
/// later time and against the CRLs of that time, that the answer is still yes.
struct Validated {
    /// The window every certificate of the verified path is valid in, Unix seconds.
    not_before: u64,
    not_after: u64,
    /// Issuer and serial of each certificate of the path (leaf, intermediates).
    revocable: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Trust anchors, CRLs, and a cache of validated chains (issue 21): a keep-alive
/// client signing every message pays chain building once. The cache is keyed by
/// the presented chain's fingerprint and lives in the store, so a configuration
/// reload (new anchors, new CRLs: a new store) starts it afresh; each use still
/// re-checks the clock against the path's validity and the current CRLs against
/// the path's serials, and falls back to full validation when either says
/// anything but "still valid".
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    crls: RwLock<Vec<CertRevocationList<'static>>>,
    cache: Mutex<HashMap<[u8; 32], Arc<Validated>>>,
}

fn parse_crls(crls: &[CertificateRevocationListDer<'_>]) -> Result<Vec<CertRevocationList<'static>>, TrustError> {
    crls.iter()
        .map(|c| OwnedCertRevocationList::from_der(c).map(CertRevocationList::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::Config(format!("CRL: {e}")))
}

/// SHA-256 over the chain, each certificate length-prefixed (so two chains that
/// concatenate alike do not collide).
fn chain_fingerprint(chain: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        context.update(&(cert.len() as u64).to_be_bytes());
        context.update(cert);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

impl TrustStore {
    pub fn new(anchors: &[CertificateDer<'_>], crls: &[CertificateRevocationListDer<'_>]) -> Result<Self, TrustError> {
        let anchors = anchors
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrustError::Config(format!("trust anchor: {e}")))?;
        let crls = RwLock::new(parse_crls(crls)?);
        Ok(Self { anchors, crls, cache: Mutex::new(HashMap::new()) })
    }

    /// Replaces the CRLs (a refreshed list). Cached chains stay: each use checks
    /// their serials against the lists current then.
    pub fn set_crls(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), TrustError> {
        let crls = parse_crls(crls)?;
        *self.crls.write().unwrap_or_else(|e| e.into_inner()) = crls;
        Ok(())
    }

    /// How many validated chains the cache holds.
    pub fn cached_chains(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Checks `chain` (leaf first) at `now_unix` seconds.
    pub fn verify(&self, chain: &[CertificateDer<'_>], now_unix: u64) -> Result<(), TrustError> {
        if chain.is_empty() {
            return Err(TrustError::NoCertificate);
        }
        let key = chain_fingerprint(chain);
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(v) = cached {
            if (v.not_before..=v.not_after).contains(&now_unix) && !self.may_be_revoked(&v) {
                return Ok(());
            }
            // Out of its window or listed now: full validation names the reason.
        }
        let validated = self.validate(chain, now_unix)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CHAIN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, Arc::new(validated));
        Ok(())
    }

    /// Whether a current CRL of a path certificate's issuer lists its serial
    /// (then full validation decides, with webpki's rules for which CRL counts).
    fn may_be_revoked(&self, v: &Validated) -> bool {
        let crls = self.crls.read().unwrap_or_else(|e| e.into_inner());
        v.revocable.iter().any(|(issuer, serial)| {
            crls.iter().any(|crl| crl.issuer() == issuer.as_slice() && !matches!(crl.find_serial(serial), Ok(None)))
        })
    }

    fn validate(&self, chain: &[CertificateDer<'_>], now_unix: u64) -> Result<Validated, TrustError> {
        let leaf = chain.first().ok_or(TrustError::NoCertificate)?;
        let cert = EndEntityCert::try_from(leaf).map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        let crls = self.crls.read().unwrap_or_else(|e| e.into_inner());
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder.with_depth(RevocationCheckDepth::Chain).with_status_policy(UnknownStatusPolicy::Allow).build(),
            ),
            Err(_) => None, // no CRLs configured
        };
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix));
        let path = cert
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &chain[1..],
                now,
                KeyUsage::client_auth(),
                revocation,
                None,
            )
            .map_err(|e| match e {
                webpki::Error::CertExpired { .. } => TrustError::Expired,
                webpki::Error::CertNotValidYet { .. } => TrustError::NotValidYet,
                webpki::Error::CertRevoked => TrustError::Revoked,
                webpki::Error::UnknownIssuer => TrustError::UnknownIssuer,
                other => TrustError::Other(format!("{other:?}")),
            })?;
        let mut validated = Validated { not_before: 0, not_after: u64::MAX, revocable: Vec::new() };
        let certs = std::iter::once(&**path.end_entity()).chain(path.intermediate_certificates());
        for c in certs {
            let der = c.der();
            let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
                .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
            let validity = parsed.validity();
            let seconds = |t: i64| u64::try_from(t).unwrap_or(0);
            validated.not_before = validated.not_before.max(seconds(validity.not_before.timestamp()));
            validated.not_after = validated.not_after.min(seconds(validity.not_after.timestamp()));
            validated.revocable.push((c.issuer().to_vec(), c.serial().to_vec()));
        }
        Ok(validated)
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

    #[test]
    fn a_cached_chain_is_still_refused_once_revoked_or_expired() {
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp() as u64;
        let ca = DevCa::generate("CA", now).unwrap();
        let system = qaqpa_routing::SystemId::parse("KZ/GOV/1/a").unwrap();
        let pair = ca.issue_client_valid(&system, now - Duration::days(1), now + Duration::days(2)).unwrap();
        let other = ca.issue_client(&system, now).unwrap();
        let anchor = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let store = TrustStore::new(&[anchor], &[]).unwrap();
        let chain = [pair.cert_der().unwrap()];
        assert_eq!(store.verify(&chain, ts), Ok(()));
        assert_eq!(store.cached_chains(), 1);
        assert_eq!(store.verify(&chain, ts + 60), Ok(()), "a hit within the window");
        assert_eq!(store.cached_chains(), 1);
        // The clock passes the certificate's notAfter: the cached answer no longer holds.
        assert_eq!(store.verify(&chain, ts + 3 * 86_400), Err(TrustError::Expired));
        assert_eq!(store.verify(&chain, ts - 2 * 86_400), Err(TrustError::NotValidYet));
        assert_eq!(store.verify(&chain, ts), Ok(()));
        // A CRL listing it arrives after it was cached: refused on the next use.
        let crl_pem = ca.revocation_list(&[&pair.cert_pem], now, Duration::days(1)).unwrap();
        let crl = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap();
        store.set_crls(std::slice::from_ref(&crl)).unwrap();
        assert_eq!(store.verify(&chain, ts), Err(TrustError::Revoked));
        // Another certificate of the same CA, not listed, is unaffected.
        assert_eq!(store.verify(&[other.cert_der().unwrap()], ts), Ok(()));
        // The list withdrawn again: valid again.
        store.set_crls(&[]).unwrap();
        assert_eq!(store.verify(&chain, ts), Ok(()));
    }

    #[test]
    fn the_cache_is_bounded() {
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp() as u64;
        let ca = DevCa::generate("CA", now).unwrap();
        let system = qaqpa_routing::SystemId::parse("KZ/GOV/1/a").unwrap();
        let leaf = ca.issue_client(&system, now).unwrap().cert_der().unwrap();
        let anchor = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let store = TrustStore::new(std::slice::from_ref(&anchor), &[]).unwrap();
        // Distinct presented chains (the leaf with a varying, unused extra
        // certificate) are distinct entries; past the bound the cache restarts.
        for i in 0..CHAIN_CACHE_ENTRIES + 3 {
            let mut extra = anchor.to_vec();
            extra.extend_from_slice(&(i as u64).to_be_bytes());
            let chain = [leaf.clone(), CertificateDer::from(extra)];
            assert_eq!(store.verify(&chain, ts), Ok(()));
            assert!(store.cached_chains() <= CHAIN_CACHE_ENTRIES);
        }
        assert_eq!(store.cached_chains(), 3, "full at the bound, then started again");
    }
}
