//! Fixtures for the asynchronous suites (mailboxes, events): the NATS server to test
//! against, free ports, and a push target that records what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    Nats,
}

/// The `[mailbox]` keys that select a backend (a fresh JetStream prefix per test);
/// `None` when NATS is unreachable outside CI (in CI that panics).
pub fn store_keys(backend: Backend) -> Option<String> {
    match backend {
        Backend::Embedded => Some(String::new()),
        Backend::Nats => {
            let url = nats_url()?;
            purge_stale_streams(&url);
            let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
            Some(format!("backend = \"nats\"\nnats_url = \"{url}\"\nnats_prefix = \"{prefix}\"\n"))
        }
    }
}

/// Deletes the streams earlier test and benchmark runs left on the shared server
/// (prefixes `T…`/`BENCH…` followed by 32 hex digits), once they are 5 minutes old,
/// so runs do not pile up data on the machine's NATS.
fn purge_stale_streams(url: &str) {
    let url = url.to_owned();
    let purge = async move {
        use futures_util::StreamExt;
        let client = async_nats::connect(&url).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut streams = js.streams();
        let cutoff = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
        let mut stale = Vec::new();
        while let Some(Ok(info)) = streams.next().await {
            let name = &info.config.name;
            let prefix = name.split('_').next().unwrap_or("");
            let hex = prefix.trim_start_matches("BENCH").trim_start_matches('T');
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && info.created < cutoff {
                stale.push(name.clone());
            }
        }
        for name in stale {
            let _ = js.delete_stream(&name).await;
        }
        Some(())
    };
    // Runs on its own thread and runtime: callers are inside a test's runtime.
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(purge))
    })
    .join();
}

pub fn nats_url() -> Option<String> {
    let url = std::env::var("QAQPA_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let addr = url.trim_start_matches("nats://").to_owned();
    let reachable = addr
        .parse::<SocketAddr>()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("NATS JetStream is not reachable at {url}: CI requires it (see shared/services.md)");
    }
    eprintln!("SKIPPED: NATS is not reachable at {url} (set QAQPA_TEST_NATS); the embedded half still ran");
    None
}

/// Unused loopback port (nothing listens there until a test starts something).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// What the push provider received: (X-Road-Id, attempt, body).
pub type Pushed = Arc<Mutex<Vec<(String, String, String)>>>;

pub async fn start_push_provider(addr: SocketAddr) -> Pushed {
    let seen: Pushed = Arc::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let (id, attempt, path) = (h("x-road-id"), h("qaqpa-attempt"), req.uri().path().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        seen.lock().unwrap().push((id, attempt, body.clone()));
                        let answer = format!("pushed to {path}: {body}");
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(answer))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    seen
}

/// One test per backend for each scenario `async fn scenario(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$scenario(super::common::async_bus::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                super::$scenario(super::common::async_bus::Backend::Nats).await
            }
        }
    )*};
}
