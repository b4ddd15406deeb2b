//! Who may call the admin API, and what: the certificate presented to the admin
//! listener is matched against the `[[operator]]` list of the running config (so a
//! reload can add or remove an operator), and only the `admin` role may change the
//! running gateway (reload, dead-letter replay and drop). The listener's client CA
//! decides who may connect; this decides who may act.

use http::Method;
use qaqpa_adapters::ErrorCode;

use crate::body::GatewayBody;
use crate::config::{Config, OperatorRole};
use crate::error::error_response;
use crate::peer::Peer;

/// Who a permitted call is from, for the log of what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caller {
    /// An insecure admin listener (loopback unless explicitly allowed): no identity.
    Unauthenticated,
    /// A certificate the client CA admits, with no operator list configured: read only.
    Certificate(String),
    Operator(String),
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Unauthenticated => f.write_str("(insecure admin listener)"),
            Caller::Certificate(fingerprint) => write!(f, "certificate sha256:{fingerprint}"),
            Caller::Operator(name) => write!(f, "operator {name}"),
        }
    }
}

/// Whether this call may change the running gateway.
pub(super) fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// The caller if the call is permitted, else why not (answered 403 `client.access_denied`).
pub(super) fn authorize(config: &Config, peer: &Peer, method: &Method, path: &str) -> Result<Caller, String> {
    let mutating = is_mutating(method);
    let Some(cert) = &peer.certificate else {
        // Only an insecure listener has no certificate; should its config have gained
        // TLS since (a reload keeps a listener's TLS mode), refuse rather than trust.
        return match config.admin.as_ref().is_some_and(|a| a.tls.is_some()) {
            true => Err("a client certificate is required".into()),
            false => Ok(Caller::Unauthenticated),
        };
    };
    let fingerprint = qaqpa_certs::fingerprint_hex(&cert.sha256);
    if config.operators.is_empty() {
        // The safe default: without a list there is no one to trust with changes.
        return match mutating {
            true => Err("no [[operator]] is configured: the admin API refuses changes (reload, dead-letter \
                         replay and drop) until one with role \"admin\" is listed"
                .into()),
            false => Ok(Caller::Certificate(fingerprint)),
        };
    }
    let operator = config.operators.iter().find(|o| match &o.fingerprint {
        Some(pinned) => *pinned == cert.sha256,
        None => cert.san_operator.as_deref() == Some(o.name.as_str()),
    });
    match operator {
        // Liveness and readiness say nothing an outsider could use, and probes
        // rarely hold an operator's certificate.
        None if !mutating && matches!(path, "/healthz" | "/readyz") => Ok(Caller::Certificate(fingerprint)),
        None => Err(format!("certificate sha256:{fingerprint} is not a listed [[operator]]")),
        Some(o) if mutating && o.role != OperatorRole::Admin => {
            Err(format!("operator {} has role \"read\": only role \"admin\" may {method} {path}", o.name))
        }
        Some(o) => Ok(Caller::Operator(o.name.clone())),
    }
}

pub(super) fn denied(reason: &str) -> http::Response<GatewayBody> {
    error_response(ErrorCode::AccessDenied, reason, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qaqpa_certs::CertIdentity;

    fn config(operators: &str) -> Config {
        let source = format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\ninsecure = true\n\n[admin]\naddress = \"127.0.0.1:2\"\n\
             tls = {{ cert = \"g.crt\", key = \"g.key\", client_ca = \"operators.crt\" }}\n{operators}"
        );
        let base = std::path::Path::new("/nonexistent");
        crate::config::parse(&source, base, &crate::config::Environment::default()).unwrap()
    }

    fn peer(operator: Option<&str>, sha256: u8) -> Peer {
        let certificate =
            CertIdentity { san_system: None, san_operator: operator.map(str::to_owned), sha256: [sha256; 32] };
        Peer::connection("127.0.0.1:3".parse().unwrap(), Some(certificate), None)
    }

    #[test]
    fn names_pins_and_roles_decide() {
        let pin = "cd".repeat(32);
        let c = config(&format!(
            "[[operator]]\nname = \"ops\"\nrole = \"admin\"\n[[operator]]\nname = \"audit\"\nrole = \"read\"\n\
             [[operator]]\nname = \"pinned\"\nfingerprint = \"{pin}\"\nrole = \"admin\"\n"
        ));
        let (get, post) = (Method::GET, Method::POST);
        let reload = "/admin/v1/reload";
        assert_eq!(authorize(&c, &peer(Some("ops"), 1), &post, reload), Ok(Caller::Operator("ops".into())));
        assert!(authorize(&c, &peer(Some("audit"), 1), &post, reload).unwrap_err().contains("role \"read\""));
        assert!(authorize(&c, &peer(Some("audit"), 1), &get, "/admin/v1/stats").is_ok());
        // A pin is the certificate, whatever name it carries; a pinned entry's name
        // alone opens nothing.
        assert_eq!(authorize(&c, &peer(None, 0xcd), &post, reload), Ok(Caller::Operator("pinned".into())));
        assert!(authorize(&c, &peer(Some("pinned"), 1), &get, "/admin/v1/stats").is_err());
        // Strangers: health only.
        assert!(authorize(&c, &peer(None, 2), &get, "/admin/v1/stats").is_err());
        assert!(authorize(&c, &peer(None, 2), &get, "/readyz").is_ok());
        assert!(authorize(&c, &peer(None, 2), &Method::DELETE, "/healthz").is_err());
        // No certificate where the admin listener has TLS: refused.
        let anonymous = Peer::connection("127.0.0.1:3".parse().unwrap(), None, None);
        assert!(authorize(&c, &anonymous, &get, "/healthz").is_err());

        let none = config("");
        assert!(authorize(&none, &peer(None, 2), &get, "/admin/v1/stats").is_ok());
        assert!(authorize(&none, &peer(Some("ops"), 1), &post, reload).unwrap_err().contains("no [[operator]]"));
    }
}
