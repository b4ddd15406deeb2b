//! Picks the one face that handles a request.
use std::sync::Arc;

use http::{Request, Response};

use crate::exchange::{GatewayBody, Peer};
use crate::gateway::Gateway;
use crate::server::client_body::ClientBody;

pub async fn serve(gateway: Arc<Gateway>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    crate::exchange::serve(gateway, peer, req).await
}
