//! Writing the dev PKI of `qaqpa certs` to disk: `ca.crt`/`ca.key`, `gateway.crt/.key`
//! and `{system short name}.crt/.key`, and apart from them the operators' CA
//! (`operator-ca.crt/.key`) with one operator certificate (`operator.crt/.key`) for
//! the admin listener; keys readable by the owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use qaqpa_certs::{CertAndKey, DevCa};
use qaqpa_routing::SystemId;
use time::OffsetDateTime;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const GATEWAY: &str = "gateway";
/// The operators' own CA: the admin listener trusts it, the data listeners do not,
/// so no member system's certificate opens the admin API.
pub const OPERATOR_CA_CERT: &str = "operator-ca.crt";
pub const OPERATOR_CA_KEY: &str = "operator-ca.key";
/// File stem of the operator certificate `init` issues.
pub const OPERATOR: &str = "operator";
/// The name that certificate carries (SAN URI `urn:qaqpa:operator:duty-operator`).
pub const OPERATOR_NAME: &str = "duty-operator";

#[derive(Debug, thiserror::Error)]
pub enum PkiFilesError {
    #[error("{0}")]
    Pki(#[from] qaqpa_certs::PkiError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} exists; pass --force to replace the PKI")]
    Exists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiFilesError + '_ {
    move |source| PkiFilesError::Io { path: path.to_owned(), source }
}

pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), PkiFilesError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents.as_bytes()).map_err(io(path))
}

pub fn write_pair(dir: &Path, stem: &str, pair: &CertAndKey) -> Result<(PathBuf, PathBuf), PkiFilesError> {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    write_file(&cert, &pair.cert_pem, false)?;
    write_file(&key, &pair.key_pem, true)?;
    Ok((cert, key))
}

/// Creates a CA, a gateway server certificate and one client certificate per system.
pub fn init(dir: &Path, systems: &[SystemId], server_names: &[String], force: bool) -> Result<DevCa, PkiFilesError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_path = dir.join(CA_CERT);
    if ca_path.exists() && !force {
        return Err(PkiFilesError::Exists(ca_path));
    }
    let now = OffsetDateTime::now_utc();
    let ca = DevCa::generate("Qaqpa dev CA", now)?;
    write_file(&ca_path, &ca.cert_pem, false)?;
    write_file(&dir.join(CA_KEY), &ca.key_pem, true)?;
    let names: Vec<&str> = server_names.iter().map(String::as_str).collect();
    write_pair(dir, GATEWAY, &ca.issue_server(&names, now)?)?;
    for system in systems {
        write_pair(dir, system.short_name(), &ca.issue_client(system, now)?)?;
    }
    init_operators(dir)?;
    Ok(ca)
}

/// Creates the operators' CA and one operator certificate ([`OPERATOR_NAME`]) in
/// `dir`, replacing any there.
pub fn init_operators(dir: &Path) -> Result<DevCa, PkiFilesError> {
    let now = OffsetDateTime::now_utc();
    let ca = DevCa::generate("Qaqpa dev operator CA", now)?;
    write_file(&dir.join(OPERATOR_CA_CERT), &ca.cert_pem, false)?;
    write_file(&dir.join(OPERATOR_CA_KEY), &ca.key_pem, true)?;
    write_pair(dir, OPERATOR, &ca.issue_operator(OPERATOR_NAME, now)?)?;
    Ok(ca)
}

/// Loads the CA that `init` wrote.
pub fn load_ca(dir: &Path) -> Result<DevCa, PkiFilesError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    Ok(DevCa::load(&cert, &key)?)
}

/// Loads the operators' CA that `init` wrote.
pub fn load_operator_ca(dir: &Path) -> Result<DevCa, PkiFilesError> {
    let cert_path = dir.join(OPERATOR_CA_CERT);
    let key_path = dir.join(OPERATOR_CA_KEY);
    let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    Ok(DevCa::load(&cert, &key)?)
}

pub const CRL: &str = "ca.crl";
/// Revoked certificates so far, kept beside the CRL so each new list includes them.
const REVOKED: &str = "revoked.pem";

/// Adds `certs` to the CA's revocation list and writes a new `ca.crl` (valid 30 days).
pub fn revoke(dir: &Path, certs: &[PathBuf]) -> Result<PathBuf, PkiFilesError> {
    let ca = load_ca(dir)?;
    let revoked_path = dir.join(REVOKED);
    let mut revoked = match std::fs::read_to_string(&revoked_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(PkiFilesError::Io { path: revoked_path, source: e }),
    };
    for cert in certs {
        revoked.push_str(&std::fs::read_to_string(cert).map_err(io(cert))?);
    }
    let pems: Vec<String> = revoked
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|p| p.contains("-----BEGIN CERTIFICATE-----"))
        .map(|p| p.trim().to_owned())
        .collect();
    let refs: Vec<&str> = pems.iter().map(String::as_str).collect();
    let crl = ca.revocation_list(&refs, OffsetDateTime::now_utc(), time::Duration::days(30))?;
    let path = dir.join(CRL);
    write_file(&path, &crl, false)?;
    write_file(&revoked_path, &(pems.join("\n") + "\n"), false)?;
    Ok(path)
}
