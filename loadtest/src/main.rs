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
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Parser, Clone)]
#[command(
    name = "qaqpa-load",
    about = "Bounded load generator for the Qaqpa gateway"
)]
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
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
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
    fn record(
        &self,
        measure: bool,
        started: Instant,
        outcome: Result<(u16, Option<String>), String>,
    ) {
        if !measure {
            return;
        }
        let micros = started.elapsed().as_micros() as u64;
        let _ = self.histogram.lock().unwrap().record(micros.max(1));
        match outcome {
            Ok((status, _)) if status < 400 => {
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

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn connect(args: &Args, authority: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        Ok(if args.h2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(send)
        } else {
            let (send, conn) = http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::H1(send)
        })
    }

    async fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(u16, Option<String>), String> {
        let resp = match self {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let code = resp
            .headers()
            .get("x-road-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok((status, code))
    }
}

struct Template {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Template {
    fn request(&self) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

fn template(args: &Args) -> anyhow::Result<(Template, String)> {
    let uri: http::Uri = args.url.parse()?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "only http:// targets (h1 or --h2 for h2c)"
    );
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("URL has no host"))?
        .clone();
    let host = authority.host().trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback || args.allow_remote,
        "{host} is not loopback; pass --allow-remote if you mean it"
    );
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("header {h:?} needs a ':'"))?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().parse()?,
        );
    }
    if !args.h2 {
        headers.insert(http::header::HOST, authority.as_str().parse()?);
    }
    let uri = if args.h2 {
        uri
    } else {
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()?
    };
    let body = Bytes::from(vec![b'x'; args.body_bytes]);
    Ok((
        Template {
            method: args.method.parse()?,
            uri,
            headers,
            body,
        },
        authority.to_string(),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (template, authority) = template(&args)?;
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
        let (args, template, shared, authority) = (
            args.clone(),
            template.clone(),
            shared.clone(),
            authority.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sender = match Sender::connect(&args, &authority).await {
                Ok(s) => s,
                Err(e) => {
                    shared.record(true, Instant::now(), Err(format!("connect: {e}")));
                    return;
                }
            };
            // Open loop: this connection owns every n-th slot of the global schedule.
            let interval = args
                .rate
                .map(|r| Duration::from_secs_f64(args.connections as f64 / r as f64));
            let mut next = start
                + interval
                    .map(|iv| iv.mul_f64(i as f64 / args.connections as f64))
                    .unwrap_or_default();
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
                shared.record(
                    intended >= measure_from && Instant::now() <= end,
                    intended,
                    outcome,
                );
                if failed {
                    match Sender::connect(&args, &authority).await {
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
    report(&args, &shared);
    Ok(())
}

fn report(args: &Args, shared: &Shared) {
    let h = shared.histogram.lock().unwrap();
    let errors = shared.errors.lock().unwrap();
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed: u64 = errors.values().sum();
    let secs = args.duration.as_secs_f64();
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
