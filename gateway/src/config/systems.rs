//! `[[system]]`: the registered systems, their certificate fingerprints and the
//! signing keys the gateway holds for them; and the certificate-and-key pairs that
//! `[signatures]` shares.

use std::collections::HashSet;

use qaqpa_routing::SystemId;
use toml::Spanned;

use super::checker::Checker;
use super::files::{FileKind, PemKind};
use super::raw::RawSystem;
use super::SystemConfig;

/// The systems, and the set of their ids for the sections that name them.
pub(super) fn check(c: &mut Checker, raw: &[RawSystem]) -> (Vec<SystemConfig>, HashSet<SystemId>) {
    let mut systems = Vec::new();
    let mut known_systems = HashSet::new();
    let mut fingerprints = HashSet::new();
    let mut shep_senders = HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("system[{i}]");
        let Some(id) = c.system_id(&s.id, &format!("{key}.id")) else {
            continue;
        };
        if !known_systems.insert(id.clone()) {
            c.error(s.id.span(), format!("{key}.id"), format!("system {id} is registered twice"));
        }
        let cert_sha256 = s.cert_sha256.as_ref().and_then(|f| {
            let parsed = fingerprint(f.get_ref());
            match parsed {
                None => c.error(
                    f.span(),
                    format!("{key}.cert_sha256"),
                    "must be 64 hex digits (SHA-256 of the DER certificate)",
                ),
                Some(fp) if !fingerprints.insert(fp) => {
                    c.error(f.span(), format!("{key}.cert_sha256"), "this fingerprint is bound to another system too")
                }
                Some(_) => {}
            }
            parsed
        });
        let signing = key_pair(c, s.signing_cert.as_ref(), s.signing_key.as_ref(), &key, "signing_cert", "signing_key");
        let (shep_sender, shep_password_hash) = shep(c, s, &key, &mut shep_senders);
        systems.push(SystemConfig { id, cert_sha256, signing, shep_sender, shep_password_hash });
    }
    (systems, known_systems)
}

/// The ШЭП `senderId` (unique among systems) and the password's hash, which must be
/// an Argon2 PHC string: a plain password in the file is refused.
fn shep(c: &mut Checker, s: &RawSystem, key: &str, seen: &mut HashSet<String>) -> (Option<String>, Option<String>) {
    let sender = s.shep_sender.as_ref().and_then(|v| {
        let text = v.get_ref();
        if text.is_empty() || text.len() > qaqpa_adapters::shep::MAX_FIELD_LEN || text.trim() != text {
            c.error(v.span(), format!("{key}.shep_sender"), "must be a non-empty senderId without surrounding spaces");
            return None;
        }
        if !seen.insert(text.clone()) {
            c.error(
                v.span(),
                format!("{key}.shep_sender"),
                format!("senderId {text:?} is given to another system too"),
            );
        }
        Some(text.clone())
    });
    let hash = s.shep_password_hash.as_ref().and_then(|v| {
        if sender.is_none() {
            c.error(v.span(), format!("{key}.shep_password_hash"), "needs shep_sender");
        }
        match argon2::password_hash::PasswordHash::new(v.get_ref()) {
            Ok(h) if h.algorithm.as_str().starts_with("argon2") => Some(v.get_ref().clone()),
            _ => {
                let message = "must be an Argon2 PHC string ($argon2id$v=19$…); make one with `qaqpa shep-password`";
                c.error(v.span(), format!("{key}.shep_password_hash"), message);
                None
            }
        }
    });
    (sender, hash)
}

/// A certificate and its private key, both or neither; the files pass checks that
/// the key is one the gateway can sign with and belongs to the certificate.
pub(super) fn key_pair(
    c: &mut Checker,
    cert: Option<&Spanned<String>>,
    key: Option<&Spanned<String>>,
    table: &str,
    cert_key: &str,
    key_key: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match (cert, key) {
        (None, None) => None,
        (Some(cert), None) => {
            c.error(cert.span(), format!("{table}.{key_key}"), format!("missing: {cert_key} needs {key_key}"));
            None
        }
        (None, Some(key)) => {
            c.error(key.span(), format!("{table}.{cert_key}"), format!("missing: {key_key} needs {cert_key}"));
            None
        }
        (Some(cert), Some(key)) => {
            let cert_path = c.pem_file(cert, format!("{table}.{cert_key}"), PemKind::Certificates);
            let key_path = c.pem_file(key, format!("{table}.{key_key}"), PemKind::PrivateKey);
            let signing = FileKind::SigningKey { cert: cert_path.clone(), cert_key: cert_key.to_owned() };
            c.file(key, format!("{table}.{key_key}"), signing);
            Some((cert_path, key_path))
        }
    }
}

/// A SHA-256 fingerprint: 64 hex digits, colons allowed between them.
pub(super) fn fingerprint(hex: &str) -> Option<[u8; 32]> {
    let hex: String = hex.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
