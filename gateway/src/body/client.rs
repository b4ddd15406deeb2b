//! The request body as the client sends it, whichever protocol carried it: hyper's
//! stream for HTTP/1.1 and HTTP/2, a bounded channel fed by the stream's reader for
//! HTTP/3. Each waits at most `idle` for the next frame, so a client that opens a
//! body and then goes quiet holds a connection, a concurrency slot and an upstream
//! request only that long (slow-body defence; the header read timeout covers heads).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("{0}")]
    Hyper(#[from] hyper::Error),
    #[error("HTTP/3 stream: {0}")]
    Stream(String),
    #[error("the client sent nothing for {0:?}")]
    Idle(Duration),
}

/// Frames of an HTTP/3 request body, sent by the task that reads its stream.
pub type FrameReceiver = mpsc::Receiver<Result<Bytes, ClientBodyError>>;

enum Inner {
    Hyper(Incoming),
    /// Read whole already (to check its signature).
    Full(Option<Bytes>),
    Channel {
        frames: FrameReceiver,
        done: bool,
        declared: Option<u64>,
    },
}

pub struct ClientBody {
    inner: Inner,
    idle: Option<Duration>,
    /// Armed lazily on the first `Pending`: a body that arrives at once never costs a timer.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl ClientBody {
    pub fn hyper(body: Incoming, idle: Option<Duration>) -> Self {
        Self { inner: Inner::Hyper(body), idle, deadline: None }
    }

    /// `declared`: the request's `Content-Length`, if any (forwarded as such).
    pub fn channel(frames: FrameReceiver, idle: Option<Duration>, declared: Option<u64>) -> Self {
        Self { inner: Inner::Channel { frames, done: false, declared }, idle, deadline: None }
    }

    /// A body the gateway has read whole.
    pub fn full(bytes: Bytes) -> Self {
        Self { inner: Inner::Full(Some(bytes).filter(|b| !b.is_empty())), idle: None, deadline: None }
    }

    /// An empty body (e.g. HTTP/3 requests that end with their headers).
    pub fn empty() -> Self {
        let (_, frames) = mpsc::channel(1);
        Self { inner: Inner::Channel { frames, done: true, declared: Some(0) }, idle: None, deadline: None }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match &mut self.inner {
            Inner::Hyper(body) => Pin::new(body).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into))),
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Channel { done: true, .. } => Poll::Ready(None),
            Inner::Channel { frames, done, .. } => match frames.poll_recv(cx) {
                Poll::Ready(Some(r)) => Poll::Ready(Some(r.map(Frame::data))),
                Poll::Ready(None) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match this.poll_inner(cx) {
            Poll::Ready(frame) => {
                if let (Some(deadline), Some(idle)) = (this.deadline.as_mut(), this.idle) {
                    deadline.as_mut().reset(Instant::now() + idle);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let Some(idle) = this.idle else { return Poll::Pending };
                let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Idle(idle)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(body) => body.is_end_stream(),
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Channel { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(body) => body.size_hint(),
            Inner::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Channel { declared: Some(n), .. } => SizeHint::with_exact(*n),
            Inner::Channel { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_fails_after_the_idle_timeout() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = ClientBody::channel(rx, Some(Duration::from_secs(5)), None);
        tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"first");
        // Quiet for 4 s: still waiting; a frame then resets the clock.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            tx.send(Ok(Bytes::from_static(b"second"))).await.unwrap();
            tokio::time::sleep(Duration::from_secs(6)).await;
            drop(tx);
        });
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"second");
        let started = Instant::now();
        match body.frame().await {
            Some(Err(ClientBodyError::Idle(d))) => assert_eq!(d, Duration::from_secs(5)),
            other => panic!("expected an idle timeout, got {:?}", other.map(|r| r.map(|_| ()))),
        }
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_and_its_end_pass() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = ClientBody::channel(rx, Some(Duration::from_secs(1)), None);
        tokio::spawn(async move {
            for i in 0..5u8 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                tx.send(Ok(Bytes::from(vec![i]))).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(body.is_end_stream());
    }

    #[test]
    fn the_empty_body_is_at_its_end() {
        assert!(ClientBody::empty().is_end_stream());
    }
}
