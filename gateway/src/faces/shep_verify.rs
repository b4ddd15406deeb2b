//! Stage verify for the ШЭП faces: a service whose policy is `verify` takes only
//! messages whose Body is signed with WS-Security (docs/shep.md#signatures).
//! Placeholder until the WS-Security verifier lands: such services refuse ШЭП calls.

use std::sync::Arc;

use bytes::Bytes;
use qaqpa_adapters::shep::Message;
use qaqpa_adapters::ErrorCode;

use crate::config::SignaturePolicy;
use crate::error::GatewayError;
use crate::exchange::Ctx;
use crate::runtime::{Client, Route};

pub async fn verify(
    _ctx: &mut Ctx,
    route: &Route,
    _client: &Arc<Client>,
    _message: &Message,
    _bytes: &Bytes,
) -> Result<Option<Vec<u8>>, GatewayError> {
    match route.signature {
        SignaturePolicy::None => Ok(None),
        _ => Err(GatewayError::new(ErrorCode::BadSignature, "WS-Security signatures are not verified yet")),
    }
}
