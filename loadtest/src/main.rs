//! `qaqpa-load`: a bounded HTTP load generator for the gateway.
//!
//! Two modes:
//! - closed loop (`--connections N`): each connection sends its next request as soon
//!   as the previous answer arrives; measures saturation throughput;
//! - open loop (`--rate R`): requests are scheduled at a constant arrival rate and
//!   each latency is measured from its *intended* send time, so a stalled server
//!   cannot hide behind a slowed-down client (no coordinated omission).
//!
//! Every run is bounded by `--duration` and `--max-requests`, and targets loopback
//! unless `--allow-remote` is given.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::Full;

mod connect;
use connect::{Connector, TlsFiles};

#[derive(Parser, Clone)]
#[command(name = "qaqpa-load", about = "Bounded load generator for the Qaqpa gateway")]
struct Args {
    /// Target URL (http://host:port/path).
    url: String,
    /// Concurrent connections (closed loop) or the pool size (open loop).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Open loop: requests per second in total. Without it, closed loop.
    #[arg(long)]
    rate: Option<u64>,
    /// Measured duration.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    duration: Duration,
    /// Warm-up before measuring (requests sent, not recorded).
    #[arg(long, default_value = "1s", value_parser = humantime_duration)]
    warmup: Duration,
    /// Hard cap on requests sent (warm-up included).
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Header "Name: value" (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body size in bytes (filled with 'x'), sent with POST/PUT.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Use HTTP/2 prior knowledge (h2c), one stream per in-flight request.
    #[arg(long)]
    h2: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Allow a non-loopback target (never for tests on shared machines).
    #[arg(long)]
    allow_remote: bool,
    /// CA bundle to verify an https target.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// Client private key (PEM) for mTLS.
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// Request body from a file (e.g. a SOAP envelope) instead of --body-bytes.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// Pre-sign this many copies of --body-file (a SOAP message with an `{id}`
    /// placeholder, replaced by a unique message id each) with XMLDSig before the run
    /// and send them in turn: signed exchanges past the gateway's replay guard.
    /// Signing happens before the clock starts; keep --max-requests at most N.
    #[arg(long, requires_all = ["body_file", "sign_key", "sign_cert"])]
    signed_soap: Option<usize>,
    /// Signing key (PKCS#8 PEM) for --signed-soap.
    #[arg(long)]
    sign_key: Option<std::path::PathBuf>,
    /// Signing certificate (PEM) for --signed-soap.
    #[arg(long)]
    sign_cert: Option<std::path::PathBuf>,
    /// Idle mode: open this many keep-alive connections (one request each), hold
    /// them for --duration, print how many were held, and exit.
    #[arg(long)]
    idle: Option<usize>,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?}; use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

struct Shared {
    histogram: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    sent: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn record(&self, measure: bool, started: Instant, outcome: Result<(u16, Option<String>), String>) {
        if !measure {
            return;
        }
        let micros = started.elapsed().as_micros() as u64;
        let _ = self.histogram.lock().unwrap().record(micros.max(1));
        match outcome {
            // A SOAP fault comes with 200 (as X-Road sends it): the error code,
            // not the status, says it was refused.
            Ok((status, None)) if status < 400 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, code)) => {
                let key = format!("{status} {}", code.unwrap_or_default());
                *self.errors.lock().unwrap().entry(key).or_default() += 1;
            }
            Err(e) => *self.errors.lock().unwrap().entry(e).or_default() += 1,
        }
    }
}

struct Template {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    /// One body, or (pre-signed) many sent in turn.
    bodies: Vec<Bytes>,
    next: std::sync::atomic::AtomicUsize,
}

impl Template {
    fn request(&self) -> http::Request<Full<Bytes>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bodies.len();
        let mut req = http::Request::new(Full::new(self.bodies[i].clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

fn template(args: &Args) -> anyhow::Result<(Template, Connector)> {
    let uri: http::Uri = args.url.parse()?;
    let tls = match uri.scheme_str() {
        Some("http") => None,
        Some("https") => Some(TlsFiles { ca: args.ca.clone(), cert: args.cert.clone(), key: args.key.clone() }),
        _ => anyhow::bail!("the URL must be http:// or https://"),
    };
    let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("URL has no host"))?.clone();
    let host = authority.host().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(loopback || args.allow_remote, "{host} is not loopback; pass --allow-remote if you mean it");
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h.split_once(':').ok_or_else(|| anyhow::anyhow!("header {h:?} needs a ':'"))?;
        headers.append(http::HeaderName::from_bytes(name.trim().as_bytes())?, value.trim().parse()?);
    }
    if !args.h2 {
        headers.insert(http::header::HOST, authority.as_str().parse()?);
    }
    let path: http::Uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").parse()?;
    let body = match &args.body_file {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from(vec![b'x'; args.body_bytes]),
    };
    let bodies = match args.signed_soap {
        Some(n) => signed_bodies(args, &body, n)?,
        None => vec![body],
    };
    let port = authority.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let connector = Connector::new(format!("{host}:{port}"), host, args.h2, tls.as_ref())?;
    let uri = if args.h2 { uri } else { path };
    let next = std::sync::atomic::AtomicUsize::new(0);
    Ok((Template { method: args.method.parse()?, uri, headers, bodies, next }, connector))
}

/// `n` copies of the SOAP template, each with its own message id, signed.
fn signed_bodies(args: &Args, template: &[u8], n: usize) -> anyhow::Result<Vec<Bytes>> {
    let text = std::str::from_utf8(template)?;
    anyhow::ensure!(text.contains("{id}"), "--signed-soap needs an {{id}} placeholder in the body file");
    let key_path = args.sign_key.as_ref().expect("clap requires it");
    let key = qaqpa_certs::keys::SigningKey::from_pem(&std::fs::read(key_path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let cert_pem = std::fs::read(args.sign_cert.as_ref().expect("clap requires it"))?;
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let run = std::process::id();
    let started = Instant::now();
    let bodies = (0..n)
        .map(|i| {
            let message = text.replace("{id}", &format!("load-{run}-{i}"));
            qaqpa_certs::xmldsig::sign_soap(
                message.as_bytes(),
                &key,
                &chain,
                qaqpa_certs::xmldsig::DigestAlg::Sha256,
                now,
            )
            .map(Bytes::from)
            .map_err(|e| anyhow::anyhow!("signing: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!("signed {n} messages in {:.1} s (before the run)", started.elapsed().as_secs_f64());
    Ok(bodies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (template, connector) = template(&args)?;
    if let Some(n) = args.idle {
        return idle(&args, &template, &connector, n).await;
    }
    let template = Arc::new(template);
    let shared = Arc::new(Shared {
        histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ok: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
    });
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let (args, template, shared, connector) = (args.clone(), template.clone(), shared.clone(), connector.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = match connector.connect().await {
                Ok(s) => s,
                Err(e) => {
                    shared.record(true, Instant::now(), Err(format!("connect: {e}")));
                    return;
                }
            };
            // Open loop: this connection owns every n-th slot of the global schedule.
            let interval = args.rate.map(|r| Duration::from_secs_f64(args.connections as f64 / r as f64));
            let mut next =
                start + interval.map(|iv| iv.mul_f64(i as f64 / args.connections as f64)).unwrap_or_default();
            loop {
                let now = Instant::now();
                if now >= end || shared.sent.fetch_add(1, Ordering::Relaxed) >= args.max_requests {
                    break;
                }
                let intended = match interval {
                    Some(iv) => {
                        if next > now {
                            tokio::time::sleep_until(next.into()).await;
                        }
                        let slot = next;
                        next += iv;
                        slot
                    }
                    None => now,
                };
                let outcome = sender.send(template.request()).await;
                let failed = outcome.is_err();
                shared.record(intended >= measure_from && Instant::now() <= end, intended, outcome);
                if failed {
                    match connector.connect().await {
                        Ok(s) => sender = s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // --max-requests may end the run before --duration: rates are per second measured.
    let measured = Instant::now().min(end).saturating_duration_since(measure_from);
    report(&args, &shared, measured);
    Ok(())
}

fn report(args: &Args, shared: &Shared, measured: Duration) {
    let h = shared.histogram.lock().unwrap();
    let errors = shared.errors.lock().unwrap();
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed: u64 = errors.values().sum();
    let secs = measured.as_secs_f64().max(1e-3);
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let summary = serde_json::json!({
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "target_rate": args.rate,
        "connections": args.connections,
        "duration_s": secs,
        "requests": ok + failed,
        "ok": ok,
        "errors": *errors,
        "throughput_rps": (ok + failed) as f64 / secs,
        "latency_ms": { "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p999": q(0.999), "max": h.max() as f64 / 1000.0 },
    });
    if args.json {
        println!("{summary}");
        return;
    }
    println!(
        "requests {} ({} ok, {} errors) in {:.1}s: {:.0} req/s",
        ok + failed,
        ok,
        failed,
        secs,
        (ok + failed) as f64 / secs
    );
    println!(
        "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        h.max() as f64 / 1000.0
    );
    for (what, n) in errors.iter() {
        println!("error {what}: {n}");
    }
}

/// Opens `n` connections, completes one request on each so they are established
/// keep-alive connections, holds them for `--duration`, then reports.
async fn idle(args: &Args, template: &Template, connector: &Connector, n: usize) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while held.len() + failed < n && Instant::now() < deadline {
        let batch = (n - held.len() - failed).min(200);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let connector = connector.clone();
            let req = template.request();
            set.spawn(async move {
                let mut sender = connector.connect().await.map_err(|e| e.to_string())?;
                sender.send(req).await?;
                Ok::<_, String>(sender)
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(sender)) => held.push(sender),
                _ => failed += 1,
            }
        }
    }
    println!("{}", serde_json::json!({ "idle_connections": held.len(), "failed": failed }));
    tokio::time::sleep(args.duration).await;
    drop(held);
    Ok(())
}
