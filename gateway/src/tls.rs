//! rustls configuration for the listeners (mandatory client certificates) and for
//! TLS upstreams (verified against the service's configured CA only).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::{Limits, TlsFiles};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no usable {what}")]
    Pem { path: String, what: &'static str },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("message signatures: {0}")]
    Signing(String),
    #[error("QUIC: {0}")]
    Quic(String),
    #[error("client CA bundle rejected: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// One provider for the whole process: ring, chosen for build time and because it
/// backs rcgen too. Passed explicitly so no dependency's feature flags can swap it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?)
        .map_err(|_| TlsError::Pem { path: path.display().to_string(), what: "private key" })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

pub fn load_crls(paths: &[std::path::PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let bytes = read(path)?;
        let before = crls.len();
        crls.extend(CertificateRevocationListDer::pem_slice_iter(&bytes).filter_map(Result::ok));
        if crls.len() == before {
            return Err(TlsError::Pem { path: path.display().to_string(), what: "certificate revocation list" });
        }
    }
    Ok(crls)
}

/// Server config demanding a client certificate that chains to `files.client_ca`
/// and is not revoked by any of `files.crls`. TLS 1.3 and 1.2 only; ALPN offers the
/// HTTP versions the listener serves.
pub fn server_config(files: &TlsFiles, http1: bool, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = base_server_config(files, &[&rustls::version::TLS13, &rustls::version::TLS12])?;
    if http2 {
        config.alpn_protocols.push(b"h2".to_vec());
    }
    if http1 {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Ok(Arc::new(config))
}

/// The same trust for HTTP/3: QUIC is TLS 1.3 only, ALPN `h3`.
pub fn quic_server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let mut config = base_server_config(files, &[&rustls::version::TLS13])?;
    config.alpn_protocols = vec![b"h3".to_vec()];
    // 0-RTT data could be replayed by an attacker; requests here are not all idempotent.
    config.max_early_data_size = 0;
    Ok(config)
}

/// The check every client certificate passes at the handshake: chains to
/// `files.client_ca`, valid now, not revoked by `files.crls`. A reload also runs
/// it over the certificates of open connections.
pub fn client_verifier(files: &TlsFiles) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    Ok(WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.client_ca)?), provider())
        .with_crls(load_crls(&files.crls)?)
        .build()?)
}

fn base_server_config(
    files: &TlsFiles,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier = client_verifier(files)?;
    Ok(ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)?)
}

/// Client config for a TLS upstream: trusts only `ca`, optionally presents the
/// gateway's own certificate to providers that require mTLS.
pub fn upstream_config(ca: &Path, client_cert: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots(ca)?);
    Ok(match client_cert {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    })
}

/// QUIC transport and TLS for a listener; rebuilt on reload and swapped into the endpoint.
pub fn quic_config(files: &TlsFiles, limits: &Limits) -> Result<quinn::ServerConfig, TlsError> {
    let tls = quic_server_config(files)?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(format!("no TLS 1.3 cipher suite for QUIC: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(limits.max_concurrent_streams.into())
        // Clients open only the control and QPACK streams one way.
        .max_concurrent_uni_streams(8u32.into())
        .max_idle_timeout(Some(quinn::IdleTimeout::try_from(Duration::from_secs(60)).expect("60 s fits")));
    config.transport_config(Arc::new(transport));
    // A client must prove it owns its address before the gateway spends a handshake on it.
    config.migration(false);
    Ok(config)
}

/// A listener's TLS configuration, swapped whole when certificates or CRLs reload;
/// each handshake uses the one current when it starts.
pub type SwappableTls = std::sync::Arc<arc_swap::ArcSwap<rustls::ServerConfig>>;
