use super::*;
use qaqpa_certs::pki::DevCa;

const TEXT: &str = "[[system]]\nid = \"KZ/GOV/1/a\"\n";

fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

fn operators() -> (DevCa, qaqpa_certs::pki::CertAndKey) {
    let ca = DevCa::generate("Operators", time::OffsetDateTime::now_utc()).unwrap();
    let op = ca.issue_operator("duty", time::OffsetDateTime::now_utc()).unwrap();
    (ca, op)
}

#[test]
fn a_signed_document_verifies_and_survives_the_bucket() {
    let (ca, op) = operators();
    let doc = sign(TEXT, 7, op.key_pem.as_bytes(), op.cert_pem.as_bytes()).unwrap();
    assert_eq!((doc.version, doc.hash.as_str()), (7, sha256_hex(TEXT.as_bytes()).as_str()));
    let stored = Published::from_bytes(&doc.to_bytes()).unwrap();
    assert_eq!(stored, doc);
    stored.verify(ca.cert_pem.as_bytes(), now()).unwrap();
    assert!(stored.signer().contains("duty"), "{}", stored.signer());
}

#[test]
fn every_altered_or_foreign_document_is_refused() {
    let (ca, op) = operators();
    let doc = sign(TEXT, 3, op.key_pem.as_bytes(), op.cert_pem.as_bytes()).unwrap();
    let anchors = ca.cert_pem.as_bytes();

    // The text changed, hash recomputed: the signature no longer covers it.
    let mut text = doc.clone();
    text.toml.push_str("[[system]]\nid = \"KZ/GOV/1/b\"\n");
    text.hash = sha256_hex(text.toml.as_bytes());
    assert!(
        matches!(text.verify(anchors, now()), Err(ClusterError::Signature(_))),
        "{:?}",
        text.verify(anchors, now())
    );
    // The text changed, hash left: refused before the signature is looked at.
    let mut hash = doc.clone();
    hash.toml.push('\n');
    assert!(matches!(hash.verify(anchors, now()), Err(ClusterError::Hash)));
    // A version raised without signing it again.
    let mut version = doc.clone();
    version.version = 4;
    assert!(matches!(version.verify(anchors, now()), Err(ClusterError::Version { signed: Some(3), document: 4 })));
    // Signed by a key of another CA (a well-formed signature, an untrusted signer).
    let (_, stranger) = operators();
    let foreign = sign(TEXT, 3, stranger.key_pem.as_bytes(), stranger.cert_pem.as_bytes()).unwrap();
    assert!(matches!(foreign.verify(anchors, now()), Err(ClusterError::Untrusted(_))));
    // A signer whose certificate has expired by the time a node reads it.
    let later = now() + 3 * 365 * 24 * 3600;
    assert!(matches!(doc.verify(anchors, later), Err(ClusterError::Untrusted(_))));
    // Not a document at all.
    assert!(matches!(Published::from_bytes(b"{\"version\":1}"), Err(ClusterError::Form(_))));
    // No signers configured in the PEM.
    assert!(matches!(doc.verify(b"", now()), Err(ClusterError::Signers(_))));
}

#[test]
fn merge_takes_the_registry_from_the_published_text_and_the_rest_from_the_node() {
    let local = "[gateway]\nnode = \"n1\"\n[storage]\ndata_dir = \"d1\"\n[[system]]\nid = \"KZ/GOV/1/old\"\n[[access]]\nservice = \"x\"\nclients = []\n";
    let published = "[gateway]\nnode = \"elsewhere\"\n[storage]\ndata_dir = \"d-other\"\n[[system]]\nid = \"KZ/GOV/1/new\"\n[signatures]\ntrust_anchors = \"ca.crt\"\n";
    let merged: toml::Table = merge(local, published).unwrap().parse().unwrap();
    assert_eq!(merged["gateway"]["node"].as_str(), Some("n1"), "node-local sections stay");
    assert_eq!(merged["storage"]["data_dir"].as_str(), Some("d1"));
    assert_eq!(merged["system"][0]["id"].as_str(), Some("KZ/GOV/1/new"), "the registry is published");
    assert!(!merged.contains_key("access"), "a section absent from the published text is absent");
    assert_eq!(merged["signatures"]["trust_anchors"].as_str(), Some("ca.crt"));
    assert!(matches!(merge(local, "[[system]\n"), Err(ClusterError::Merge(_))));
}
