//! One configuration for a cluster (docs/operations.md#cluster): an operator
//! publishes the registry, signed, to NATS JetStream's key-value store; every node
//! with `[cluster] config_source = "nats"` watches it, verifies the signature
//! against its own `config_signers`, merges it with its own node-local sections,
//! validates the result as `check-config` would and swaps it in through the same
//! path as a file reload. This module is the document and its checks (no I/O but
//! the node's own files); [`nats`] carries it.

pub mod nats;
pub mod redis_target;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The top-level keys a published configuration sets on every node: the registry
/// and the trust that signed messages are checked against. Everything else
/// (`[gateway]`, listeners, `[admin]`, `[storage]`, `[mailbox]`, `[limits]`,
/// `[overload]`, `[xml]`, `[monitoring]`, operators, `[cluster]`) stays the node's
/// own: addresses, data directories and key paths differ per node, and a published
/// document that could move them could take a node off the air.
pub const CLUSTER_KEYS: [&str; 6] = ["system", "service", "access", "limit", "topic", "signatures"];

/// The key under which the bucket holds the configuration in force.
pub const KEY: &str = "current";

/// What `qaqpa config publish` puts in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// One more than the version it replaces; a node never goes back to a lower one.
    pub version: u64,
    /// SHA-256 (hex) of `toml`'s bytes: what `/admin/v1/config` and
    /// `qaqpa_config_info{hash}` show on every node that runs it.
    pub hash: String,
    /// Detached JWS (RFC 7797) over `toml`'s bytes, by an operator's key, with the
    /// signer's chain in `x5c` and the version in `qaqpa-config-version`.
    pub signature: String,
    /// The configuration file as the operator checked it.
    pub toml: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the published configuration is not a document of qaqpa config publish: {0}")]
    Form(String),
    #[error("the published configuration's hash does not match its text")]
    Hash,
    #[error("the published configuration's signature: {0}")]
    Signature(#[from] qaqpa_certs::jws::JwsError),
    #[error("the published configuration's signature names version {signed:?}, the document {document}")]
    Version { signed: Option<u64>, document: u64 },
    #[error("the published configuration's signer is not trusted by cluster.config_signers: {0}")]
    Untrusted(#[from] qaqpa_certs::trust::TrustError),
    #[error("cluster.config_signers: {0}")]
    Signers(String),
    #[error("version {offered} is not newer than version {running}, which this node runs")]
    Stale { offered: u64, running: u64 },
    #[error("this node's config_source is not \"nats\"")]
    NotNats,
    #[error("merging the published registry with this node's file: {0}")]
    Merge(String),
    #[error("NATS: {0}")]
    Nats(String),
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

const VERSION_CLAIM: &str = "qaqpa-config-version";

/// Signs `toml` as `version` with `key` (PEM) whose certificate chain is `chain_pem`
/// (leaf first).
pub fn sign(toml: &str, version: u64, key_pem: &[u8], chain_pem: &[u8]) -> Result<Published, ClusterError> {
    let key = qaqpa_certs::keys::SigningKey::from_pem(key_pem).map_err(|e| ClusterError::Signers(e.to_string()))?;
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(chain_pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| ClusterError::Signers(format!("the signer's certificate: {e}")))?;
    if chain.is_empty() {
        return Err(ClusterError::Signers("no certificate in the signer's PEM".into()));
    }
    let mut claims = serde_json::Map::new();
    claims.insert(VERSION_CLAIM.into(), version.into());
    claims.insert("iat".into(), time::OffsetDateTime::now_utc().unix_timestamp().into());
    let signature = qaqpa_certs::jws::sign_detached(&key, &chain, claims, toml.as_bytes())?;
    Ok(Published { version, hash: sha256_hex(toml.as_bytes()), signature, toml: toml.to_owned() })
}

impl Published {
    /// The document as stored in the bucket.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClusterError> {
        serde_json::from_slice(bytes).map_err(|e| ClusterError::Form(e.to_string()))
    }

    /// The signature covers this text and this version, and its signer chains to
    /// one of `signers_pem` (CA certificates) at `now_unix`. Nothing of the TOML is
    /// read before this passes.
    pub fn verify(&self, signers_pem: &[u8], now_unix: u64) -> Result<(), ClusterError> {
        if sha256_hex(self.toml.as_bytes()) != self.hash {
            return Err(ClusterError::Hash);
        }
        let verified = qaqpa_certs::jws::verify_detached(&self.signature, self.toml.as_bytes())?;
        let signed = verified.header.get(VERSION_CLAIM).and_then(serde_json::Value::as_u64);
        if signed != Some(self.version) {
            return Err(ClusterError::Version { signed, document: self.version });
        }
        let anchors: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(signers_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClusterError::Signers(e.to_string()))?;
        if anchors.is_empty() {
            return Err(ClusterError::Signers("holds no certificate".into()));
        }
        let store = qaqpa_certs::trust::TrustStore::new(&anchors, &[])?;
        let chain: Vec<CertificateDer<'_>> =
            verified.chain.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        store.verify(&chain, now_unix)?;
        Ok(())
    }

    /// Who signed it: the leaf's subject, for the log.
    pub fn signer(&self) -> String {
        let Some((protected, _)) = self.signature.split_once("..") else { return String::new() };
        let header: Option<serde_json::Value> = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(protected)
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok());
        let leaf = header
            .as_ref()
            .and_then(|h| h["x5c"][0].as_str())
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        leaf.and_then(|der| x509_parser::parse_x509_certificate(&der).ok().map(|(_, c)| c.subject().to_string()))
            .unwrap_or_default()
    }
}

/// The node's file with its cluster-wide sections replaced by the published ones:
/// the text a node validates and runs. Errors name the key; lines are of this text.
pub fn merge(local: &str, published: &str) -> Result<String, ClusterError> {
    let mut local: toml::Table =
        local.parse().map_err(|e: toml::de::Error| ClusterError::Merge(format!("this node's file: {e}")))?;
    let published: toml::Table =
        published.parse().map_err(|e: toml::de::Error| ClusterError::Merge(format!("the published text: {e}")))?;
    for key in CLUSTER_KEYS {
        local.remove(key);
        if let Some(value) = published.get(key) {
            local.insert(key.to_owned(), value.clone());
        }
    }
    toml::to_string(&local).map_err(|e| ClusterError::Merge(e.to_string()))
}

#[cfg(test)]
mod tests;

/// What a node runs for `doc`: its signature verified against this node's
/// `config_signers` (before any of its text is parsed), its registry merged into
/// this node's file at `path`, the whole validated as `check-config` does (files
/// included, relative paths from the file's directory).
pub fn load_published(
    path: &std::path::Path,
    doc: &Published,
    cluster: &crate::config::ClusterConfig,
) -> Result<(crate::config::Config, crate::gateway::ConfigVersion), crate::gateway::ReloadError> {
    use crate::config::{ConfigErrors, ConfigSource};
    let ConfigSource::Nats { bucket, .. } = &cluster.source else { return Err(ClusterError::NotNats.into()) };
    let signers_path = cluster.signers.as_ref().ok_or_else(|| ClusterError::Signers("not set".into()))?;
    let signers = std::fs::read(signers_path)
        .map_err(|e| ClusterError::Signers(format!("cannot read {}: {e}", signers_path.display())))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    doc.verify(&signers, now)?;
    let file = std::path::PathBuf::from(format!("published v{} merged with {}", doc.version, path.display()));
    let local = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: path.to_owned(),
        errors: vec![crate::config::ConfigError { line: None, key: "(file)".into(), message: e.to_string() }],
    })?;
    let merged = merge(&local, &doc.toml)?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let config = crate::config::validate(&merged, base, &crate::config::Environment::of_process())
        .map_err(|errors| ConfigErrors { file, errors })?;
    if config.cluster.source == ConfigSource::File {
        // The node's file now says `config_source = "file"`: the file alone, as asked.
        let version = crate::gateway::ConfigVersion::of(Some(path));
        return Ok((crate::config::load(path)?, version));
    }
    Ok((config, crate::gateway::ConfigVersion::of_published(doc, bucket)))
}
