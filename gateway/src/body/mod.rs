//! The request body on its way to the provider: streamed frame by frame, never
//! buffered whole, while the gateway hashes it (for `X-Road-Request-Hash`) and
//! enforces the body size limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use sha2::{Digest, Sha512};

pub mod client;

use http_body_util::{Either, Full};

use crate::body::client::{ClientBody, ClientBodyError};
use crate::observe::body_outcome::{BodyOutcome, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum ForwardBodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("reading the request body failed: {0}")]
    Client(#[from] ClientBodyError),
}

/// Where the forwarded body comes from: the client's stream, or a message the
/// gateway had to read whole (a SOAP envelope, parsed before routing).
pub enum Source {
    Stream(ClientBody),
    Buffered(Option<Bytes>),
}

impl Source {
    pub fn is_end_stream(&self) -> bool {
        match self {
            Source::Stream(b) => b.is_end_stream(),
            Source::Buffered(b) => b.as_ref().is_none_or(Bytes::is_empty),
        }
    }
}

pub struct ForwardBody {
    inner: Source,
    hasher: Option<Sha512>,
    received: u64,
    limit: u64,
    outcome: Arc<BodyOutcome>,
}

impl ForwardBody {
    pub fn new(inner: Source, limit: u64) -> (Self, Arc<BodyOutcome>) {
        let outcome = Arc::new(BodyOutcome::default());
        let mut body = Self { inner, hasher: Some(Sha512::new()), received: 0, limit, outcome: outcome.clone() };
        // A body that is empty from the start may never be polled by the client.
        if body.inner.is_end_stream() {
            body.finish();
        }
        (body, outcome)
    }

    fn finish(&mut self) {
        if let Some(hasher) = self.hasher.take() {
            self.outcome.set(Outcome::Complete(hasher.finalize().into()));
        }
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = ForwardBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Source::Stream(body) => ready!(Pin::new(body).poll_frame(cx)),
            Source::Buffered(bytes) => bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))),
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.outcome.set_received(this.received);
                    if this.received > this.limit {
                        this.hasher = None;
                        this.outcome.set(Outcome::TooLarge);
                        return Poll::Ready(Some(Err(ForwardBodyError::TooLarge(this.limit))));
                    }
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(data);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.hasher = None;
                let idle = matches!(e, ClientBodyError::Idle(_));
                this.outcome.set(if idle { Outcome::ClientIdle } else { Outcome::ClientAborted });
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Source::Stream(b) => b.size_hint(),
            Source::Buffered(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// The provider's response body on its way to the client, counted; when it ends
/// (or the client goes away) the exchange is measured and its reservations freed.
pub struct Tracked {
    inner: Incoming,
    bytes: u64,
    exchange: Option<crate::observe::record::ExchangeRecord>,
}

impl Tracked {
    pub fn new(inner: Incoming, exchange: crate::observe::record::ExchangeRecord) -> Self {
        let mut this = Self { inner, bytes: 0, exchange: Some(exchange) };
        if this.inner.is_end_stream() {
            this.finish();
        }
        this
    }

    fn finish(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(self.bytes);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Some(Err(_)) | None => this.finish(),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    TooLarge,
    CutOff,
}

/// Reads a body whole, refusing it once it passes `limit` bytes (while reading, so
/// an oversized body is never buffered).
pub async fn collect_bounded<B>(body: B, limit: usize) -> Result<Bytes, Collect>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Collect::TooLarge),
        Err(_) => Err(Collect::CutOff),
    }
}

/// Response bodies: the provider's stream passed through (and measured), or a small
/// one the gateway built.
pub type GatewayBody = Either<Tracked, Full<Bytes>>;

pub fn full_body(bytes: impl Into<Bytes>) -> GatewayBody {
    Either::Right(Full::new(bytes.into()))
}
