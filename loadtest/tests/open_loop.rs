//! qaqpa-load against a real server that stalls once: the open loop must charge
//! the stall to every request scheduled during it (no coordinated omission), and
//! every run must stop at its bounds.

use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Serves 200s; request number 50 stalls for 300 ms. Returns (port, request counter).
fn start_server() -> (u16, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            if n == 50 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (rx.recv().unwrap(), count)
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_qaqpa-load")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn open_loop_charges_a_stall_to_every_request_scheduled_during_it() {
    let (port, _) = start_server();
    let url = format!("http://127.0.0.1:{port}/x");
    let r = run(&[&url, "--rate", "200", "--connections", "1", "--duration", "2s", "--warmup", "0s", "--json"]);
    assert_eq!(r["mode"], "open");
    assert_eq!(r["errors"].as_object().unwrap().len(), 0, "{r}");
    let requests = r["requests"].as_u64().unwrap();
    assert!((300..=420).contains(&requests), "about 400 requests at 200/s for 2s: {r}");
    let lat = &r["latency_ms"];
    // ~60 requests were due while request 50 stalled 300 ms: their latency counts from
    // when they should have been sent, so well over 10 % of requests are slow.
    assert!(lat["max"].as_f64().unwrap() >= 290.0, "{r}");
    assert!(lat["p90"].as_f64().unwrap() >= 50.0, "the stall was hidden: {r}");
}

#[test]
fn closed_loop_is_bounded_by_max_requests_and_duration() {
    let (port, served) = start_server();
    let url = format!("http://127.0.0.1:{port}/x");
    let r = run(&[&url, "--connections", "4", "--duration", "3s", "--warmup", "0s", "--max-requests", "200", "--json"]);
    assert_eq!(r["mode"], "closed");
    let total = served.load(Ordering::SeqCst);
    assert!(total <= 200, "sent {total} > --max-requests");
    assert!(r["ok"].as_u64().unwrap() >= 190, "{r}");
    // Non-loopback targets are refused without --allow-remote.
    let out = Command::new(env!("CARGO_BIN_EXE_qaqpa-load"))
        .args(["http://192.0.2.1/x", "--duration", "1s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loopback"));
}
