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
