//! The one exchange under every face. A face (see [`crate::faces`]) reads its
//! protocol's envelope and calls the stages in this order:
//!
//! ```text
//! identify → route → authorize → limit → verify → deliver → sign → log → measure
//! ```
//!
//! Each stage is a function of what the previous one produced that either returns
//! its output or a [`GatewayError`]. [`run`] is the frame written once for every
//! face: the per-exchange [`Ctx`], the `exchange` span, one exit for errors (the
//! face renders them in its own format) and one for answers, and the record that
//! measures and logs the exchange when its response has been sent.
//!
//! Every answer (a provider's response passed through, whatever its status, or a
//! reply the gateway built) waits in [`respond`] until its message-log record is
//! on disk; when the log cannot write, the client gets `server.log_unavailable`
//! (503) in the face's format instead (docs/operations.md#message-log). Order for
//! a forwarded request (a service's `message_log = "sync"`, the default): the
//! replay guard's line is written, a record of the forwarding (ids, parties,
//! signature; `event: forward`) is synced together with the replay guard's file,
//! the request goes to the provider, the provider answers, the record of the
//! exchange (with the request's digest and the provider's status) is synced, then
//! the head goes out. A crash between forwarding and answering leaves the
//! forwarding on the record and no answer (a retry of a signed request meets the
//! replay guard, so the provider is not called twice for it). With
//! `message_log = "async"` (unsigned services only) both are queued, not awaited.

pub mod identify;
pub mod limit;
pub mod route;
pub mod signatures;

pub use identify::{identify, identify_claim, peer_system};
pub use route::{authorize, route, route_under, OPENAPI_PATH};

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use qaqpa_adapters::ErrorCode;
use tracing::{field, info_span, Instrument};

use crate::body::client::ClientBody;
use crate::body::{full_body, GatewayBody, Tracked};
use crate::error::{GatewayError, QAQPA_ERROR};
use crate::headers;
use crate::observe::record::ExchangeRecord;
pub use crate::peer::Peer;
use crate::runtime::{Client, Route, Runtime};
use crate::shared::Shared;
use limit::Admission;

/// What the stages produced: the provider's stream passed through, or an answer the
/// gateway built (mediated, signed, an asynchronous receipt, a contract document).
pub enum Reply {
    Stream(Response<Incoming>),
    Built(Response<Bytes>),
}

/// A successful exchange: the reply and what its admission holds until the
/// response has been sent.
pub struct Outcome {
    pub reply: Reply,
    pub admission: Admission,
}

impl Outcome {
    pub fn new(reply: Reply, admission: Admission) -> Self {
        Self { reply, admission }
    }

    /// An answer the gateway built, outside the limits (asynchronous operations).
    pub fn built(response: Response<Bytes>) -> Self {
        Self { reply: Reply::Built(response), admission: Admission::none() }
    }
}

/// Everything one exchange runs with: the runtime snapshot it started on (it keeps
/// it across a reload), the peer, the shared handles (stages ask for theirs
/// through [`crate::shared::Param`]),
/// and the record that measures it.
pub struct Ctx {
    pub runtime: Arc<Runtime>,
    pub peer: Arc<Peer>,
    pub record: ExchangeRecord,
    /// The node's handles. Faces compose stages and may use any; stages take only
    /// the handles they name (their signatures say which).
    pub shared: Arc<Shared>,
}

impl Ctx {
    /// The message id the face read; named in the span and the record.
    pub fn set_message_id(&mut self, id: String) {
        tracing::Span::current().record("id", id.as_str());
        self.record.set_id(id);
    }

    pub fn message_id(&self) -> &str {
        self.record.id()
    }

    /// The identify stage's answer, for the span and the record.
    pub fn identified(&mut self, client: &Arc<Client>) {
        tracing::Span::current().record("client", client.id.as_str());
        self.record.set_client(client);
    }

    /// The route stage's answer, for the span and the record.
    pub fn routed(&mut self, route: &Route) {
        tracing::Span::current().record("service", route.id.as_str());
        self.record.set_service(route);
    }
}

/// One wire protocol's door. It reads its envelope (client, service, message id,
/// signature container) and drives the stages; it answers errors its own way.
/// Adding a protocol is one module implementing this plus one line in
/// [`crate::dispatch`].
pub trait Face: Send {
    /// The face's name in spans and logs.
    const NAME: &'static str;

    /// Runs the exchange. Calls [`Ctx::set_message_id`] as soon as the id is known
    /// (an exchange refused before that is recorded under a generated id).
    fn exchange(
        &mut self,
        ctx: &mut Ctx,
        req: Request<ClientBody>,
    ) -> impl Future<Output = Result<Outcome, GatewayError>> + Send;

    /// The refusal in this face's format (problem+json, a SOAP fault, …).
    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody>;
}

/// The frame of every exchange, written once: context, span, the face's stages, one
/// exit for answers and one for errors, the closing log line.
pub async fn run<F: Face>(
    mut face: F,
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    req: Request<ClientBody>,
) -> Response<GatewayBody> {
    let started = Instant::now();
    let record = ExchangeRecord::begin(shared.telemetry.clone(), String::new(), started);
    let mut ctx = Ctx { runtime: shared.runtime(), peer, record, shared };
    let span = info_span!("exchange", face = F::NAME, id = field::Empty, client = field::Empty, service = field::Empty);
    // The head's framing and once-only headers are checked before any face reads
    // it; a refusal here is the face's own, like every other.
    // A head refused here leaves no trustworthy boundary for the next request on
    // an HTTP/1 connection, so that connection is closed after the refusal. Any
    // later refusal concerns a request hyper framed without doubt (a SOAP fault
    // for a service code that does not match its Body, say): the connection stays
    // open, as X-Road keeps it, and the client's keep-alive pool is not broken.
    let head = headers::check_head(&req);
    let close_after = head.is_err() && req.version() < http::Version::HTTP_2;
    let outcome = match head {
        Ok(()) => face.exchange(&mut ctx, req).instrument(span.clone()).await,
        Err(why) => Err(GatewayError::new(ErrorCode::BadRequest, why.to_string())),
    };
    let mut record = ctx.record;
    if record.id().is_empty() {
        span.record("id", record.ensure_id());
    }
    let answered = match outcome {
        Ok(Outcome { reply, admission }) => respond(reply, admission, record).await,
        Err(error) => Err((record, error)),
    };
    let response = match answered {
        Ok(response) => response,
        Err((mut record, error)) => {
            let code = error.code;
            if code == ErrorCode::StoreUnavailable {
                // Nothing was stored: the client resends the same signed message,
                // which must not read as a replay of this refused one.
                if let Some((client, id)) = record.replay_claim() {
                    let now = signatures::now_unix().max(0) as u64;
                    ctx.shared.replay.forget(client, id, now).await;
                }
            }
            let mut response = face.refusal(error, record.id());
            if close_after {
                response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            record.response_head(response.status().as_u16(), Some(code), Admission::none());
            record.finish(0);
            response
        }
    };
    span.in_scope(|| {
        let code = response.headers().get(QAQPA_ERROR).and_then(|v| v.to_str().ok());
        tracing::info!(
            status = response.status().as_u16(),
            code = code.unwrap_or(""),
            micros = started.elapsed().as_micros() as u64,
            "exchange done"
        )
    });
    response
}

/// The client's response for a successful reply, once its message-log record is
/// on disk; the record measures the exchange when its body has been sent
/// (streams) or at once (built answers). `Err` hands the record back with the
/// refusal to send instead (the provider's body is dropped unread).
async fn respond(
    reply: Reply,
    admission: Admission,
    mut record: ExchangeRecord,
) -> Result<Response<GatewayBody>, (ExchangeRecord, GatewayError)> {
    let unavailable = || GatewayError::new(ErrorCode::LogUnavailable, "the message log cannot record this exchange");
    match reply {
        Reply::Stream(response) => {
            let (mut parts, body) = response.into_parts();
            admission.add_headers(&mut parts.headers);
            record.response_head(parts.status.as_u16(), None, admission);
            if record.commit().await.is_err() {
                return Err((record, unavailable()));
            }
            Ok(Response::from_parts(parts, Either::Left(Tracked::new(body, record))))
        }
        Reply::Built(response) => {
            let (mut parts, body) = response.into_parts();
            admission.add_headers(&mut parts.headers);
            if !parts.headers.contains_key(headers::X_ROAD_ID) {
                if let Ok(id) = HeaderValue::from_str(record.id()) {
                    parts.headers.insert(headers::X_ROAD_ID, id);
                }
            }
            record.response_head(parts.status.as_u16(), None, admission);
            if record.commit().await.is_err() {
                return Err((record, unavailable()));
            }
            record.finish(body.len() as u64);
            Ok(Response::from_parts(parts, full_body(body)))
        }
    }
}
