//! `[cluster]`: where the registry comes from (this file, or the configuration an
//! operator published to the cluster), who may sign a published configuration, and
//! the peers whose admin APIs the cluster-wide views ask.

use serde::Deserialize;
use toml::Spanned;

use super::checker::Checker;
use super::files::PemKind;
use super::{ClusterConfig, ConfigSource, MailboxBackend, MailboxConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// "file" (default: the registry of this file) or "nats": the registry published
    /// with `qaqpa config publish` to the NATS key-value store of `[mailbox]`.
    pub config_source: Option<Spanned<String>>,
    /// CA certificates (PEM) a published configuration's signer must chain to.
    pub config_signers: Option<Spanned<String>>,
    /// Admin URLs of the other nodes (`https://node-2:9090`), asked by the
    /// cluster-wide views (`?scope=cluster`).
    #[serde(default)]
    pub peers: Vec<Spanned<String>>,
    /// The operator certificate and key this node shows the peers' admin listeners,
    /// and the CA bundle their server certificates chain to.
    pub peer_cert: Option<Spanned<String>>,
    pub peer_key: Option<Spanned<String>>,
    pub peer_ca: Option<Spanned<String>>,
}

pub(super) fn check(c: &mut Checker, raw: Option<&RawCluster>, mailbox: &MailboxConfig) -> ClusterConfig {
    let Some(raw) = raw else { return ClusterConfig::default() };
    let source =
        c.choice(raw.config_source.as_ref(), "cluster.config_source", &[("file", false), ("nats", true)], false);
    let signers = raw.config_signers.as_ref().map(|s| c.pem_file(s, "cluster.config_signers", PemKind::Certificates));
    let source = match (source, &mailbox.backend) {
        (false, _) => ConfigSource::File,
        (true, MailboxBackend::Nats { url, prefix, .. }) => {
            ConfigSource::Nats { url: url.clone(), bucket: format!("{prefix}_CONFIG") }
        }
        (true, MailboxBackend::Embedded) => {
            let span = raw.config_source.as_ref().map_or(0..0, |s| s.span());
            c.error(
                span,
                "cluster.config_source",
                "\"nats\" needs [mailbox] backend = \"nats\" (its servers carry it)",
            );
            ConfigSource::File
        }
    };
    if matches!(source, ConfigSource::Nats { .. }) && signers.is_none() {
        let span = raw.config_source.as_ref().map_or(0..0, |s| s.span());
        c.error(
            span,
            "cluster.config_signers",
            "missing: a published configuration is applied only once its signature verifies",
        );
    }
    let mut peers = Vec::new();
    for peer in &raw.peers {
        let url = peer.get_ref().trim_end_matches('/');
        match url.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("https" | "http")) && uri.host().is_some() => {
                peers.push(url.to_owned())
            }
            _ => c.error(
                peer.span(),
                "cluster.peers",
                format!("{url:?} is not an http(s) URL of a peer's admin listener"),
            ),
        }
    }
    let peer_identity = match (&raw.peer_cert, &raw.peer_key) {
        (Some(cert), Some(key)) => Some((
            c.pem_file(cert, "cluster.peer_cert", PemKind::Certificates),
            c.pem_file(key, "cluster.peer_key", PemKind::PrivateKey),
        )),
        (None, None) => None,
        (Some(v), None) | (None, Some(v)) => {
            c.error(v.span(), "cluster.peer_cert", "peer_cert and peer_key go together");
            None
        }
    };
    let peer_ca = raw.peer_ca.as_ref().map(|ca| c.pem_file(ca, "cluster.peer_ca", PemKind::Certificates));
    if peer_ca.is_none() {
        if let Some(peer) = raw.peers.iter().find(|p| p.get_ref().starts_with("https://")) {
            c.error(
                peer.span(),
                "cluster.peer_ca",
                "an https peer needs peer_ca (the CA of the peers' admin certificates)",
            );
        }
    }
    ClusterConfig { source, signers, peers, peer_identity, peer_ca }
}
