//! Stage: identify. The system that speaks is its client certificate's system; a
//! face reads the system the request claims (a header, an envelope element) and this
//! stage checks the two agree. On the insecure demo listener the claim is taken for
//! a registered system.

use std::sync::Arc;

use qaqpa_adapters::ErrorCode;
use qaqpa_certs::CertIdentity;

use super::headers::X_ROAD_CLIENT;
use super::Peer;
use crate::error::GatewayError;
use crate::runtime::{Client, Runtime};

/// The system that speaks, from its certificate, checked against the one
/// `X-Road-Client` it claims.
pub fn identify(runtime: &Runtime, peer: &Peer, headers: &http::HeaderMap) -> Result<Arc<Client>, GatewayError> {
    let claimed = headers
        .get(X_ROAD_CLIENT)
        .ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "X-Road-Client header is required"))?
        .to_str()
        .map_err(|_| GatewayError::new(ErrorCode::BadRequest, "X-Road-Client is not ASCII"))?;
    if claimed.split('/').count() == 3 && qaqpa_routing::SystemId::parse(&format!("{claimed}/x")).is_ok() {
        // A member-level client (X-Road allows `INSTANCE/CLASS/MEMBER`): the registry
        // holds subsystems only, so to X-Road this is a member it does not know.
        return Err(GatewayError::new(ErrorCode::BadRequest, "the client must be a registered subsystem")
            .with_xroad("server.clientproxy.unknown_member"));
    }
    identify_claim(runtime, peer, claimed)
}

/// The identity check every face shares (REST header, SOAP `client` element, …).
pub fn identify_claim(runtime: &Runtime, peer: &Peer, claimed: &str) -> Result<Arc<Client>, GatewayError> {
    qaqpa_routing::SystemId::parse(claimed)
        .map_err(|e| GatewayError::new(ErrorCode::BadRequest, format!("the client is not a system id: {e}")))?;
    let Some(cert) = &peer.certificate else {
        return runtime.systems.get(claimed).cloned().ok_or_else(|| {
            GatewayError::new(ErrorCode::IdentityMismatch, format!("{claimed} is not a registered system"))
        });
    };
    let bound = peer_system(runtime, cert).ok_or_else(|| {
        GatewayError::new(ErrorCode::IdentityMismatch, "the client certificate is bound to no registered system")
    })?;
    if bound.id.as_str() != claimed {
        return Err(GatewayError::new(
            ErrorCode::IdentityMismatch,
            format!("the claimed client {claimed} is not the certificate's system {}", bound.id),
        ));
    }
    Ok(bound.clone())
}

/// The registered system a client certificate is bound to (fingerprint first).
pub fn peer_system<'r>(runtime: &'r Runtime, cert: &CertIdentity) -> Option<&'r Arc<Client>> {
    runtime
        .fingerprints
        .get(&cert.sha256)
        .or_else(|| cert.san_system.as_ref().and_then(|s| runtime.systems.get(s.as_str())))
}
