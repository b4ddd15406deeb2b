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
use crate::faces::{async_events, async_mailbox, contracts, shep_async, shep_sync, smev3, xroad_rest, xroad_soap};
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
    /// SMEV 3 message exchange: `POST /smev3/`, its WSDL and schemas `GET /smev3/…`.
    Smev3,
    /// X-Road REST: `/r1/…`, and every other path (refused there as not a service).
    XRoadRest,
    /// ШЭП SyncChannel `/bip-sync/` and AsyncChannel `/bip-async/` (docs/shep.md).
    ShepSync,
    ShepAsync,
}

impl Door {
    pub fn of<B>(req: &Request<B>) -> Door {
        let path = req.uri().path();
        if shep_sync::is_door(req, shep_sync::SYNC_PATH) {
            Door::ShepSync
        } else if shep_sync::is_door(req, shep_async::ASYNC_PATH) {
            Door::ShepAsync
        } else if xroad_soap::is_soap_call(req) {
            Door::XRoadSoap
        } else if contracts::is_wsdl_request(req) {
            Door::Wsdl
        } else if path.starts_with(async_mailbox::PREFIX) || path.starts_with(async_events::PREFIX) {
            Door::QaqpaAsync
        } else if smev3::is_smev3(req) {
            Door::Smev3
        } else {
            Door::XRoadRest
        }
    }
}

/// [`serve`] as the listener takes it: each door's exchange boxed on its own, so
/// a REST exchange allocates and moves a future of its face's size, not one
/// sized for the largest face (moving that into its box cost ~9k instructions of
/// `memcpy` per exchange; issue 20).
pub fn serve_boxed(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    req: Request<ClientBody>,
) -> crate::server::listener::HandlerFuture {
    match Door::of(&req) {
        Door::XRoadRest => Box::pin(exchange::run(xroad_rest::XRoadRest::new(&req), shared, peer, req)),
        Door::XRoadSoap => Box::pin(exchange::run(xroad_soap::XRoadSoap::new(&req), shared, peer, req)),
        _ => Box::pin(serve(shared, peer, req)),
    }
}

pub async fn serve(shared: Arc<Shared>, peer: Arc<Peer>, req: Request<ClientBody>) -> Response<GatewayBody> {
    match Door::of(&req) {
        Door::XRoadSoap => exchange::run(xroad_soap::XRoadSoap::new(&req), shared, peer, req).await,
        Door::Wsdl => contracts::serve_wsdl(&shared.runtime(), &peer, &req),
        Door::QaqpaAsync => exchange::run(async_mailbox::QaqpaAsync, shared, peer, req).await,
        Door::Smev3 if req.method() == http::Method::GET => smev3::contract::serve(&req, peer.certificate.is_some()),
        Door::Smev3 => exchange::run(smev3::Smev3::new(), shared, peer, req).await,
        Door::XRoadRest => exchange::run(xroad_rest::XRoadRest::new(&req), shared, peer, req).await,
        Door::ShepSync if shep_sync::is_wsdl(&req) => {
            shep_sync::serve_wsdl(&req, &peer, shep_sync::SYNC_PATH, qaqpa_adapters::shep::wsdl::sync_wsdl)
        }
        Door::ShepSync => exchange::run(shep_sync::ShepSync::default(), shared, peer, req).await,
        Door::ShepAsync if shep_sync::is_wsdl(&req) => {
            shep_sync::serve_wsdl(&req, &peer, shep_async::ASYNC_PATH, qaqpa_adapters::shep::wsdl::async_wsdl)
        }
        Door::ShepAsync => exchange::run(shep_async::ShepAsync::default(), shared, peer, req).await,
    }
}
