//! Stage verify for the ШЭП faces (docs/shep.md#signatures). A service whose policy
//! is `verify` takes only messages whose Body is signed with WS-Security, verified
//! with the certs crate's XMLDSig code ([`qaqpa_certs::xmldsig::verify_wsse`]) under
//! the algorithm set [`ALGORITHMS`] (RSA, ECDSA, Ed25519 today; a GOST 34.310
//! provider is another `Algorithms`). Then the checks every signed exchange passes:
//! the chain reaches the signature trust anchors, the signer is the client system,
//! the signed time is within the clock skew — the signed `wsu:Timestamp`, else the
//! signed Body's `messageDate` — and the `messageId` (inside the signed Body) is new.
//! Under `sign-on-behalf` an unsigned ШЭП message is refused too: the gateway does
//! not yet sign in WS-Security form.

use std::sync::Arc;

use bytes::Bytes;
use qaqpa_adapters::shep::Message;
use qaqpa_adapters::ErrorCode;
use qaqpa_certs::xmldsig::wsse::{Algorithms, Standard};

use crate::config::SignaturePolicy;
use crate::error::GatewayError;
use crate::exchange::{signatures, Ctx};
use crate::runtime::{Client, Route};

/// The signature algorithms ШЭП messages are verified with.
pub static ALGORITHMS: &(dyn Algorithms + Sync) = &Standard;

/// Messages larger than this are verified on a blocking thread.
const OFFLOAD_BYTES: usize = 256 * 1024;

fn bad(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::BadSignature, why.to_string())
}

/// Verifies the message's signature when the service requires one; returns its value.
pub async fn verify(
    ctx: &mut Ctx,
    route: &Route,
    client: &Arc<Client>,
    message: &Message,
    bytes: &Bytes,
) -> Result<Option<Vec<u8>>, GatewayError> {
    if route.signature == SignaturePolicy::None {
        return Ok(None);
    }
    let doc = bytes.clone();
    let work = move || qaqpa_certs::xmldsig::verify_wsse(&doc, ALGORITHMS);
    let verified = if bytes.len() > OFFLOAD_BYTES {
        tokio::task::spawn_blocking(work).await.map_err(|_| bad("the verifier stopped"))?
    } else {
        work()
    }
    .map_err(|e| bad(format!("WS-Security: {e}")))?;
    signatures::require_same_structure(&verified.structure, &message.body, message.header_element.as_ref())?;
    let at = match verified.created {
        Some(at) => at,
        None => message
            .message_date
            .as_deref()
            .and_then(|d| time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok())
            .map(|t| t.unix_timestamp())
            .ok_or_else(|| bad("no signed time: neither a wsu:Timestamp nor an RFC 3339 messageDate"))?,
    };
    let runtime = ctx.runtime.clone();
    let value = signatures::accept_signature(
        &ctx.shared.replay,
        &runtime,
        client,
        ctx.message_id(),
        verified.chain,
        at,
        verified.signature_value,
    )
    .await?;
    Ok(Some(value))
}
