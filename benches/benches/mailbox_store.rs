//! Durable mailbox throughput (docs/PERFORMANCE.md: ≥ 20,000 accepted 1 KiB messages/s with
//! fsync): C concurrent senders store 1 KiB requests in the embedded store (redb,
//! group commit, fsync per commit) for a bounded time and count; every send returns
//! only once its commit is on disk. Prints messages/s and the enqueue latency
//! percentiles. With QAQPA_BENCH_NATS=nats://127.0.0.1:4222 the same load goes to
//! JetStream too (a fresh stream prefix; acknowledged by the server, which syncs on
//! its own schedule).
//!
//!   cargo bench -p qaqpa-benches --bench mailbox_store [-- SECONDS CONCURRENCY]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use qaqpa_gateway::config::{MailboxBackend, MailboxConfig};
use qaqpa_gateway::mailbox::{Kind, Mailboxes, MessageMeta};

const BODY: usize = 1024;
/// Upper bound on messages per run, whatever the duration.
const MAX_MESSAGES: u64 = 2_000_000;

fn config(backend: MailboxBackend) -> MailboxConfig {
    MailboxConfig {
        store_retry: std::time::Duration::from_secs(5),
        backend,
        visibility_timeout: Duration::from_secs(30),
        max_attempts: 5,
        backoff: qaqpa_routing::retry::Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) },
        dedupe_window: Duration::from_secs(3600),
        max_wait: Duration::from_secs(60),
        max_message_bytes: 4 << 20,
        max_queue_depth: 10_000_000,
        push_concurrency: 16,
    }
}

async fn run(name: &str, store: Arc<Mailboxes>, seconds: u64, concurrency: usize) {
    let body = Bytes::from(vec![b'x'; BODY]);
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, body, histogram, next) = (store.clone(), body.clone(), histogram.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= MAX_MESSAGES {
                    break;
                }
                let id = format!("bench-{n}");
                let client = "KZ/GOV/000000000003/egov-portal";
                let envelope = MessageMeta {
                    mid: qaqpa_gateway::mailbox::mailbox_id(client, &id),
                    kind: Kind::Request,
                    seq: 0,
                    client: client.into(),
                    service: "KZ/GOV/000000000001/population-register/notices/v1".into(),
                    message_id: id,
                    path: String::new(),
                    created: 0,
                    headers: vec![("content-type".into(), "application/json".into())],
                    status: None,
                    ordered: false,
                    attempts: 0,
                    history: vec![],
                };
                let t = Instant::now();
                store.send(envelope, body.clone()).await.expect("send");
                let _ = local.record(t.elapsed().as_micros().max(1) as u64);
            }
            histogram.lock().unwrap().add(&local).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = histogram.lock().unwrap();
    println!(
        "{name}: {} messages of {BODY} B in {elapsed:.1} s = {:.0}/s durable; enqueue latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({concurrency} senders)",
        h.len(),
        h.len() as f64 / elapsed,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}

fn main() {
    // `cargo bench` passes "--bench"; take the numbers that follow it, if any.
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(10).min(120);
    let concurrency = numbers.get(1).copied().unwrap_or(256).clamp(1, 10_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let embedded =
            Mailboxes::open(&config(MailboxBackend::Embedded), dir.path(), "bench", Default::default()).await.unwrap();
        run("embedded (redb, fsync per group commit)", Arc::new(embedded), seconds, concurrency).await;
        if let Ok(url) = std::env::var("QAQPA_BENCH_NATS") {
            let prefix = format!("BENCH{}", uuid::Uuid::new_v4().simple());
            let backend = MailboxBackend::Nats { url: url.clone(), prefix: prefix.clone(), replicas: 1 };
            let nats = Mailboxes::open(&config(backend), dir.path(), "bench", Default::default()).await.unwrap();
            run("nats (JetStream file store)", Arc::new(nats), seconds, concurrency).await;
            // Leave nothing behind on the shared server.
            let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
            for stream in ["MAILBOX", "DEAD", "LEASES", "HISTORY"] {
                let _ = js.delete_stream(format!("{prefix}_{stream}")).await;
            }
        }
    });
}
