//! What a valid config may still get wrong about the admin listener: operators
//! trusted through the data clients' CA, or no operator list. Not errors (a lab or
//! a single-CA shop may mean it), but `qaqpa check-config` and the start-up log say
//! so. Reads the CA files the config names, so it runs after the files pass.

use std::collections::HashSet;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::{Config, ConfigError};

/// Every warning for `config`, with the key and line of what it is about.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let Some(admin) = &config.admin else { return out };
    let line = |key: &str| config.files.iter().find(|f| f.key == key).and_then(|f| f.line);
    let Some(tls) = &admin.tls else {
        if !config.operators.is_empty() {
            out.push(ConfigError {
                line: None,
                key: "operator".into(),
                message: "the admin listener is insecure: it serves every call to whoever reaches it, and the \
                          [[operator]] list is not consulted"
                    .into(),
            });
        }
        return out;
    };
    let key = "admin.tls.client_ca";
    let admin_certs = certificates(&tls.client_ca);
    for (i, data) in config.listeners.iter().enumerate() {
        let Some(data_tls) = &data.tls else { continue };
        let same_file = same_file(&tls.client_ca, &data_tls.client_ca);
        let shared = !admin_certs.is_disjoint(&certificates(&data_tls.client_ca));
        if same_file || shared {
            let what = if same_file { "is the same file as" } else { "shares certificates with" };
            out.push(ConfigError {
                line: line(key),
                key: key.into(),
                message: format!(
                    "{what} listener[{i}].tls.client_ca ({:?}): every data client certificate reaches the \
                     admin listener; give operators a CA of their own",
                    data.name
                ),
            });
        }
    }
    if config.operators.is_empty() {
        out.push(ConfigError {
            line: line(key),
            key: "operator".into(),
            message: "no [[operator]] is listed: the admin API answers read-only calls to any certificate its \
                      client CA admits and refuses reload and dead-letter changes (403)"
                .into(),
        });
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The DER certificates of a PEM bundle (empty if unreadable: the files pass has
/// already reported that).
fn certificates(path: &Path) -> HashSet<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).map(|c| c.as_ref().to_vec()).collect()
}
