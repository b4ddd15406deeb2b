//! Certificates of open connections, re-checked when a reload brings new trust
//! (client CA, CRLs). A certificate revoked after its handshake would otherwise keep
//! its connection, and every request on it, until the client hangs up: each TLS
//! listener keeps a [`LiveCertificates`] registry, and a connection whose
//! certificate the new trust refuses is told to close (HTTP/2 and HTTP/3 by GOAWAY,
//! HTTP/1.1 at once if idle, else after the request in flight) and its further
//! requests are refused with 403 `client.access_denied`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Version};
use qaqpa_adapters::ErrorCode;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;

use crate::body::GatewayBody;
use crate::peer::Peer;

/// The open connections of one listener that presented a client certificate.
#[derive(Default)]
pub struct LiveCertificates {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

struct Entry {
    /// The chain as presented, leaf first.
    chain: Vec<CertificateDer<'static>>,
    revoked: watch::Sender<bool>,
}

/// A connection's place in the registry; dropping it (the connection ended) leaves.
pub struct Registration {
    id: u64,
    registry: Arc<LiveCertificates>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl LiveCertificates {
    /// Registers a connection's certificate chain; the receiver turns true if a
    /// later reload finds the certificate no longer trusted.
    pub fn register(self: &Arc<Self>, chain: Vec<CertificateDer<'static>>) -> (Registration, watch::Receiver<bool>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (revoked, receiver) = watch::channel(false);
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Entry { chain, revoked });
        (Registration { id, registry: self.clone() }, receiver)
    }

    /// Checks every open connection's certificate as a new handshake would be checked
    /// by `verifier` (chain to the client CA, validity now, CRLs) and signals those
    /// it refuses. Returns how many were signalled.
    pub fn recheck(&self, verifier: &dyn ClientCertVerifier) -> usize {
        let now = UnixTime::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut revoked = 0;
        for entry in entries.values().filter(|e| !*e.revoked.borrow()) {
            let Some((leaf, intermediates)) = entry.chain.split_first() else { continue };
            if let Err(e) = verifier.verify_client_cert(leaf, intermediates, now) {
                tracing::warn!("closing a connection whose client certificate is no longer trusted: {e}");
                entry.revoked.send_replace(true);
                revoked += 1;
            }
        }
        revoked
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resolves once `signal` (revoked, draining) turns true; never, if there is no
/// signal (an insecure listener has no certificate to revoke) or its sender is gone.
pub async fn raised(signal: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = signal {
        if rx.wait_for(|r| *r).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The answer to a request on a connection whose certificate was found revoked,
/// if it was: 403, and on HTTP/1.x `Connection: close` so the client reconnects
/// (and meets the new trust at the handshake).
pub fn refusal(peer: &Peer, version: Version) -> Option<http::Response<GatewayBody>> {
    if !peer.is_revoked() {
        return None;
    }
    let detail = "the client certificate of this connection is no longer trusted (revoked since the handshake)";
    let mut response = crate::error::error_response(ErrorCode::AccessDenied, detail, None);
    if matches!(version, Version::HTTP_10 | Version::HTTP_11) {
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateRevocationListDer;

    #[test]
    fn a_recheck_signals_only_revoked_certificates_and_their_requests_are_refused() {
        let now = time::OffsetDateTime::now_utc();
        let ca = qaqpa_certs::DevCa::generate("CA", now).unwrap();
        let system = qaqpa_routing::SystemId::parse("KZ/GOV/1/client").unwrap();
        let (good, bad) = (ca.issue_client(&system, now).unwrap(), ca.issue_client(&system, now).unwrap());
        let verifier = |revoked: &[&str]| {
            let crl = ca.revocation_list(revoked, now, time::Duration::days(1)).unwrap();
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()).unwrap();
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .with_crls([CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).unwrap()])
                .build()
                .unwrap()
        };
        let live = Arc::new(LiveCertificates::default());
        let (kept, kept_rx) = live.register(vec![good.cert_der().unwrap()]);
        let (gone, gone_rx) = live.register(vec![bad.cert_der().unwrap()]);
        assert_eq!(live.recheck(verifier(&[]).as_ref()), 0);
        assert_eq!(live.recheck(verifier(&[&bad.cert_pem]).as_ref()), 1);
        assert!(!*kept_rx.borrow() && *gone_rx.borrow());
        // Signalled once: a later reload does not count it again.
        assert_eq!(live.recheck(verifier(&[&bad.cert_pem]).as_ref()), 0);

        let addr = "127.0.0.1:1".parse().unwrap();
        let peer = Peer::connection(addr, None, Some(gone_rx));
        let h1 = refusal(&peer, Version::HTTP_11).expect("refused");
        assert_eq!(h1.status(), 403);
        assert_eq!(h1.headers()["x-road-error"], "client.access_denied");
        assert_eq!(h1.headers()["connection"], "close");
        let h2 = refusal(&peer, Version::HTTP_2).expect("refused");
        assert!(h2.headers().get("connection").is_none(), "not a field HTTP/2 may carry");
        assert!(refusal(&Peer::connection(addr, None, Some(kept_rx)), Version::HTTP_11).is_none());

        drop((kept, gone));
        assert!(live.is_empty(), "a closed connection leaves the registry");
    }
}
