//! The files pass: reads what a validated config names (PEM certificates, keys, CA
//! bundles, CRLs; WSDL and OpenAPI documents), checks that each holds what its key
//! needs, and fills in the contracts services serve. Its errors name the key and line
//! that named the file, as the text pass's do.

use std::path::PathBuf;

use qaqpa_routing::ServiceId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::{Config, ConfigError};

/// A file the config names, and where.
#[derive(Debug, Clone)]
pub(super) struct NamedFile {
    pub key: String,
    pub line: Option<usize>,
    /// Resolved from the config file's directory.
    pub path: PathBuf,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PemKind {
    Certificates,
    PrivateKey,
    Crl,
}

#[derive(Debug, Clone)]
pub(super) enum FileKind {
    Pem(PemKind),
    /// The private key of a signing pair: one the gateway can sign with, belonging to
    /// the certificate at `cert` (named by `cert_key`). Both files are also checked as
    /// PEM by entries of their own.
    SigningKey {
        cert: PathBuf,
        cert_key: String,
    },
    /// A SOAP service's WSDL, and the operations of its REST face to find in it.
    Wsdl {
        service: Option<ServiceId>,
        operations: Vec<ContractOperation>,
    },
    /// A REST service's OpenAPI document, and the operations of its SOAP face to find in it.
    OpenApi {
        service: Option<ServiceId>,
        operations: Vec<ContractOperation>,
    },
}

/// A mediated operation as a contract must offer it, with where it was written.
#[derive(Debug, Clone)]
pub(super) struct ContractOperation {
    pub name: String,
    pub name_key: String,
    pub name_line: Option<usize>,
    pub method: http::Method,
    pub template: String,
    pub path_key: String,
    pub path_line: Option<usize>,
}

/// What a contract file gave a service.
pub(super) enum Contents {
    Wsdl(ServiceId, String),
    OpenApi(ServiceId, serde_json::Value),
}

/// Reads and checks every file `config` names, and fills in its services' WSDL and
/// OpenAPI documents. Errors are sorted by line.
pub fn check_files(config: &mut Config) -> Result<(), Vec<ConfigError>> {
    let (mut errors, contents) = check(&config.files);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line.unwrap_or(0));
        return Err(errors);
    }
    fill(config, contents);
    Ok(())
}

/// The files pass over a list, for [`check_files`] and for a text whose own pass
/// failed (so that every error is reported at once).
pub(super) fn check(files: &[NamedFile]) -> (Vec<ConfigError>, Vec<Contents>) {
    let mut pass = FilesPass { errors: Vec::new(), contents: Vec::new() };
    for file in files {
        match &file.kind {
            FileKind::Pem(kind) => pass.pem(file, *kind),
            FileKind::SigningKey { cert, cert_key } => pass.signing_key(file, cert, cert_key),
            FileKind::Wsdl { service, operations } => pass.wsdl(file, service.as_ref(), operations),
            FileKind::OpenApi { service, operations } => pass.openapi(file, service.as_ref(), operations),
        }
    }
    (pass.errors, pass.contents)
}

pub(super) fn fill(config: &mut Config, contents: Vec<Contents>) {
    for c in contents {
        let id = match &c {
            Contents::Wsdl(id, _) | Contents::OpenApi(id, _) => id,
        };
        let Some(service) = config.services.iter_mut().find(|s| &s.id == id) else { continue };
        match c {
            Contents::Wsdl(_, text) => service.wsdl = Some(text),
            Contents::OpenApi(_, doc) => {
                if let Some(mediation) = service.mediation.as_mut() {
                    super::mediation::type_from_openapi(std::sync::Arc::make_mut(mediation), &doc);
                }
                service.openapi = Some(doc)
            }
        }
    }
}

struct FilesPass {
    errors: Vec<ConfigError>,
    contents: Vec<Contents>,
}

impl FilesPass {
    fn error(&mut self, line: Option<usize>, key: &str, message: String) {
        self.errors.push(ConfigError { line, key: key.to_owned(), message });
    }

    fn read(&mut self, file: &NamedFile) -> Option<Vec<u8>> {
        std::fs::read(&file.path)
            .map_err(|e| self.error(file.line, &file.key, format!("cannot read {}: {e}", file.path.display())))
            .ok()
    }

    fn pem(&mut self, file: &NamedFile, kind: PemKind) {
        let Some(bytes) = self.read(file) else { return };
        let ok = match kind {
            PemKind::Certificates => CertificateDer::pem_slice_iter(&bytes).next().is_some_and(|c| c.is_ok()),
            PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
            PemKind::Crl => CertificateRevocationListDer::pem_slice_iter(&bytes).next().is_some_and(|c| c.is_ok()),
        };
        if !ok {
            let what = match kind {
                PemKind::Certificates => "a PEM certificate",
                PemKind::PrivateKey => "a PEM private key",
                PemKind::Crl => "a PEM certificate revocation list",
            };
            self.error(file.line, &file.key, format!("{} does not hold {what}", file.path.display()));
        }
    }

    fn signing_key(&mut self, file: &NamedFile, cert: &PathBuf, cert_key: &str) {
        let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read(cert), std::fs::read(&file.path)) else {
            return; // reported by the files' PEM entries
        };
        match qaqpa_certs::keys::SigningKey::from_pem(&key_pem) {
            Err(e) => self.error(file.line, &file.key, e.to_string()),
            Ok(signing) => {
                let leaf = CertificateDer::pem_slice_iter(&cert_pem).next().and_then(Result::ok);
                let matches = leaf
                    .and_then(|l| qaqpa_certs::keys::certificate_key(&l).ok())
                    .is_some_and(|(_, bits)| bits == signing.public_key());
                if !matches {
                    self.error(file.line, &file.key, format!("is not the key of {cert_key}"));
                }
            }
        }
    }

    fn wsdl(&mut self, file: &NamedFile, service: Option<&ServiceId>, operations: &[ContractOperation]) {
        let path = file.path.display();
        let text = match std::fs::read_to_string(&file.path) {
            Ok(text) => text,
            Err(e) => return self.error(file.line, &file.key, format!("cannot read {path}: {e}")),
        };
        match qaqpa_adapters::wsdl::rewrite_endpoint(&text, "https://check.invalid/soap") {
            Ok((_, 0)) => {
                return self.error(file.line, &file.key, format!("{path} has no soap:address to point at the gateway"))
            }
            Ok(_) => {}
            Err(e) => return self.error(file.line, &file.key, format!("{path}: {e}")),
        }
        let names = qaqpa_adapters::wsdl::operation_names(&text);
        for op in operations.iter().filter(|op| !names.contains(&op.name)) {
            self.error(op.name_line, &op.name_key, format!("the WSDL has no operation {}", op.name));
        }
        if let Some(id) = service {
            self.contents.push(Contents::Wsdl(id.clone(), text));
        }
    }

    fn openapi(&mut self, file: &NamedFile, service: Option<&ServiceId>, operations: &[ContractOperation]) {
        let path = file.path.display();
        let parsed = std::fs::read_to_string(&file.path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
        let doc = match parsed {
            Ok(doc) if doc.get("openapi").is_some() && doc.get("paths").is_some_and(|p| p.is_object()) => doc,
            Ok(_) => return self.error(file.line, &file.key, format!("{path} is not an OpenAPI 3 document")),
            Err(e) => return self.error(file.line, &file.key, format!("cannot read {path}: {e}")),
        };
        for op in operations {
            let method = op.method.as_str().to_ascii_lowercase();
            let offered = doc["paths"].get(&op.template).is_some_and(|p| p.get(&method).is_some());
            if !offered {
                let message = format!("the OpenAPI document has no {} {}", op.method, op.template);
                self.error(op.path_line, &op.path_key, message);
            }
        }
        if let Some(id) = service {
            self.contents.push(Contents::OpenApi(id.clone(), doc));
        }
    }
}
