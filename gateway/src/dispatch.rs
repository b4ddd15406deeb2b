//! Picks the one face that handles a request, once, from its method, path and (for
//! `POST /`) content type. A face that does not own a request never sees it; a
//! face that needs the service's kind (the REST face serving a SOAP service's REST
//! side) decides after routing, with its own refusal. Adding a protocol is one
//! module in [`crate::faces`] plus one arm here.

use std::sync::Arc;

use http::{Request, Response};

use crate::body::client::ClientBody;
use crate::body::GatewayBody;
use crate::exchange::{self, Peer};
use crate::faces::{async_events, async_mailbox, contracts, xroad_rest, xroad_soap};
use crate::shared::Shared;

/// The faces, by the door a request comes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// X-Road SOAP: `POST /soap`, or `POST /` with a SOAP content type.
    XRoadSoap,
    /// Contracts: `GET /soap/{service id}?wsdl`.
    Wsdl,
    /// Qaqpa asynchronous: mailboxes `/a1/…` and events `/e1/…`.
    QaqpaAsync,
    /// X-Road REST: `/r1/…`, and every other path (refused there as not a service).
    XRoadRest,
}

impl Door {
    pub fn of<B>(req: &Request<B>) -> Door {
        let path = req.uri().path();
        if xroad_soap::is_soap_call(req) {
            Door::XRoadSoap
        } else if contracts::is_wsdl_request(req) {
            Door::Wsdl
        } else if path.starts_with(async_mailbox::PREFIX) || path.starts_with(async_events::PREFIX) {
            Door::QaqpaAsync
        } else {
            Door::XRoadRest
        }
    }
}

pub async fn serve(shared: Arc<Shared>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    match Door::of(&req) {
        Door::XRoadSoap => exchange::run(xroad_soap::XRoadSoap::new(&req), shared, peer, req).await,
        Door::Wsdl => contracts::serve_wsdl(&shared.runtime(), &peer, &req),
        Door::QaqpaAsync => exchange::run(async_mailbox::QaqpaAsync, shared, peer, req).await,
        Door::XRoadRest => exchange::run(xroad_rest::XRoadRest::new(&req), shared, peer, req).await,
    }
}
