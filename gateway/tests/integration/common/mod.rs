//! Fixtures for the gateway's integration tests: a dev PKI in a temp dir, a test
//! provider with controllable behaviour, a gateway started from a real config file,
//! and real HTTP clients (reqwest over mTLS, raw TCP for hostile input).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use qaqpa_certs::DevCa;
use qaqpa_gateway::server::{self, Running};
use qaqpa_routing::SystemId;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const CLIENT: &str = "KZ/GOV/000000000003/egov-portal";
pub const OTHER_CLIENT: &str = "KZ/GOV/000000000004/akimat";
pub const PROVIDER: &str = "KZ/GOV/000000000001/population-register";
pub const SERVICE: &str = "KZ/GOV/000000000001/population-register/person/v1";
pub const DOWN_SERVICE: &str = "KZ/GOV/000000000001/population-register/down/v1";
pub const SLOW_SERVICE: &str = "KZ/GOV/000000000001/population-register/slow/v1";
pub const H2C_SERVICE: &str = "KZ/GOV/000000000001/population-register/h2c/v1";
pub const CHUNK: usize = 64 * 1024;
/// `Accept` of the tests that read Qaqpa's problem+json on `/r1`.
pub const PROBLEM_ACCEPT: &str = "application/problem+json, */*;q=0.5";

/// Dev PKI on disk: the gateway's CA with clients CLIENT and OTHER_CLIENT, and a
/// foreign CA with a certificate claiming CLIENT.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let systems = [
            SystemId::parse(CLIENT).unwrap(),
            SystemId::parse(OTHER_CLIENT).unwrap(),
            SystemId::parse(PROVIDER).unwrap(),
        ];
        let names = ["localhost".to_string(), "127.0.0.1".to_string()];
        qaqpa_gateway::cli::pki_files::init(&dir.path().join("pki"), &systems, &names, false).unwrap();
        let foreign = DevCa::generate("Foreign CA", time::OffsetDateTime::now_utc()).unwrap();
        let forged = foreign.issue_client(&systems[0], time::OffsetDateTime::now_utc()).unwrap();
        qaqpa_gateway::cli::pki_files::write_pair(&dir.path().join("pki"), "foreign", &forged).unwrap();
        qaqpa_gateway::cli::pki_files::write_file(&dir.path().join("pki/foreign-ca.crt"), &foreign.cert_pem, false)
            .unwrap();
        Self { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join("pki").join(file)
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }

    /// An HTTPS client presenting `stem`.crt/key (None: no certificate). It asks for
    /// Qaqpa's problem+json: these tests read Qaqpa's stable codes and statuses; an
    /// X-Road client (no such `Accept`) gets X-Road's errors, which
    /// `xroad_conformance` tests.
    pub fn client(&self, stem: Option<&str>) -> reqwest::ClientBuilder {
        let mut accept = reqwest::header::HeaderMap::new();
        accept.insert(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static(PROBLEM_ACCEPT));
        let mut b = reqwest::Client::builder()
            .default_headers(accept)
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.read("ca.crt")).unwrap())
            .timeout(Duration::from_secs(30));
        if let Some(stem) = stem {
            let pem = [self.read(&format!("{stem}.crt")), self.read(&format!("{stem}.key"))].concat();
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b
    }
}

/// What the test provider observed, for assertions about what crossed the gateway.
#[derive(Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests received, all paths.
    pub requests: AtomicU64,
    pub request_bytes: AtomicU64,
    /// Signalled when the first body bytes of a `/sink` request arrive.
    pub first_bytes: Notify,
    /// The test signals this to let `/source` send the rest of its body.
    pub release: Notify,
}

pub struct Provider {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

/// A provider with these endpoints:
/// - `/echo/...`: JSON with the method, path, query and headers it received;
/// - `/sink`: reads the body, signals `first_bytes`, answers with the byte count;
/// - `/source?bytes=N`: one chunk, waits for `release`, then the rest up to N bytes;
/// - `/slow`: answers after 5 s.
pub async fn start_provider(h2c_only: bool) -> Provider {
    start_provider_with(h2c_only, None).await
}

/// The same provider behind TLS (server certificate `tls`), offering h2 and
/// HTTP/1.1 by ALPN.
pub async fn start_provider_with(h2c_only: bool, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> Provider {
    start_provider_on("127.0.0.1:0".parse().unwrap(), h2c_only, tls).await
}

/// The provider on a given address (to bring a "dead" endpoint back to life).
pub async fn start_provider_on(
    addr: SocketAddr,
    h2c_only: bool,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Provider {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen2.clone();
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(provider(req, seen).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if h2c_only {
                    builder = builder.http2_only();
                }
                match acceptor {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
            });
        }
    });
    Provider { addr, seen }
}

type ProviderBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn provider(req: Request<Incoming>, seen: Arc<Seen>) -> Response<ProviderBody> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    if path.starts_with("/base/echo") {
        let headers: serde_json::Map<String, serde_json::Value> =
            req.headers().iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into())).collect();
        let json = serde_json::json!({
            "method": req.method().as_str(),
            "path": path,
            "query": req.uri().query(),
            "version": format!("{:?}", req.version()),
            "headers": headers,
        });
        return full(json.to_string());
    }
    if path == "/base/hang" {
        // A provider that takes the request and never answers in a test's time.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return full("late".into());
    }
    if path == "/base/mirror" {
        // The request body back, with the signature header it arrived with.
        let signature = req.headers().get("qaqpa-signature").cloned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let mut r = Response::new(BodyExt::boxed(Full::new(body)));
        r.headers_mut().insert("content-type", http::HeaderValue::from_static("text/xml; charset=utf-8"));
        if let Some(s) = signature {
            r.headers_mut().insert("x-seen-signature", s);
        }
        return r;
    }
    if path == "/base/sink" {
        let mut body = req.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                if total == 0 && !data.is_empty() {
                    seen.first_bytes.notify_one();
                }
                total += data.len() as u64;
            }
        }
        seen.request_bytes.store(total, Ordering::SeqCst);
        return full(total.to_string());
    }
    if path == "/base/source" {
        let n: usize =
            req.uri().query().and_then(|q| q.strip_prefix("bytes=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let mut sent = 0;
            while sent < n {
                let len = CHUNK.min(n - sent);
                if tx.send(Ok(Frame::data(chunk.slice(..len)))).await.is_err() {
                    return;
                }
                if sent == 0 {
                    seen.release.notified().await;
                }
                sent += len;
            }
        });
        let stream = tokio_stream_from(rx);
        return Response::new(BodyExt::boxed(StreamBody::new(stream)));
    }
    if path == "/base/delay" {
        let ms: u64 = req.uri().query().and_then(|q| q.strip_prefix("ms=")).and_then(|n| n.parse().ok()).unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return full(format!("waited {ms} ms"));
    }
    if path == "/base/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return full("late".into());
    }
    let mut r = full("not found".into());
    *r.status_mut() = http::StatusCode::NOT_FOUND;
    r
}

fn full(s: String) -> Response<ProviderBody> {
    Response::new(BodyExt::boxed(Full::new(Bytes::from(s))))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Gateway config text for the test PKI and provider.
pub const TLS_SERVICE: &str = "KZ/GOV/000000000001/population-register/tls/v1";
pub const WRONG_CA_SERVICE: &str = "KZ/GOV/000000000001/population-register/wrong-ca/v1";

pub fn config_text(provider: SocketAddr, h2c: SocketAddr, tls: SocketAddr, extra_limits: &str) -> String {
    let tls_port = tls.port();
    format!(
        r#"
[gateway]
node = "test"

[[listener]]
name = "data"
address = "127.0.0.1:0"
tls = {{ cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }}

[[listener]]
name = "plain"
address = "127.0.0.1:0"
insecure = true

[admin]
address = "127.0.0.1:0"
insecure = true

[limits]
{extra_limits}

[[system]]
id = "{CLIENT}"

[[system]]
id = "{OTHER_CLIENT}"

[[system]]
id = "{PROVIDER}"

[[service]]
id = "{SERVICE}"
kind = "rest"
upstream = ["http://{provider}/base"]
# Long enough for the 64 MiB streaming tests on a loaded machine (the provider
# answers after the whole body); timeouts are tested on SLOW_SERVICE.
timeout = "120s"
sla = {{ availability = 99.9, latency = "500ms", latency_target = 99.0, window = "1h" }}

[[service]]
id = "{DOWN_SERVICE}"
kind = "rest"
upstream = ["http://127.0.0.1:9/base"]

[[service]]
id = "{SLOW_SERVICE}"
kind = "rest"
upstream = ["http://{provider}/base"]
timeout = "300ms"

[[service]]
id = "{H2C_SERVICE}"
kind = "rest"
upstream = ["http://{h2c}/base"]
upstream_protocol = "h2"
max_concurrency = 1

[[service]]
id = "{TLS_SERVICE}"
kind = "rest"
upstream = ["https://localhost:{tls_port}/base"]
upstream_ca = "pki/ca.crt"

[[service]]
id = "{WRONG_CA_SERVICE}"
kind = "rest"
upstream = ["https://localhost:{tls_port}/base"]
upstream_ca = "pki/foreign-ca.crt"

[[access]]
service = "{SERVICE}"
clients = ["{CLIENT}"]

[[access]]
service = "{TLS_SERVICE}"
clients = ["{CLIENT}"]

[[access]]
service = "{WRONG_CA_SERVICE}"
clients = ["{CLIENT}"]

[[access]]
service = "{DOWN_SERVICE}"
clients = ["{CLIENT}"]

[[access]]
service = "{SLOW_SERVICE}"
clients = ["{CLIENT}"]

[[access]]
service = "{H2C_SERVICE}"
clients = ["{CLIENT}"]
"#
    )
}

pub struct TestGateway {
    pub pki: Pki,
    pub provider: Provider,
    pub running: Running,
    pub config_path: PathBuf,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with_limits("header_read_timeout = \"5s\"").await
    }

    pub async fn start_with_limits(extra_limits: &str) -> Self {
        Self::start_with(extra_limits, |_, text| text).await
    }

    /// Starts with the config text changed by `edit` (which may also write files
    /// beside the PKI, such as a CRL).
    pub async fn start_with(extra_limits: &str, edit: impl FnOnce(&Pki, String) -> String) -> Self {
        let pki = Pki::new();
        let provider = start_provider(false).await;
        let h2c = start_provider(true).await;
        let mut server = rustls::ServerConfig::builder_with_provider(qaqpa_gateway::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                qaqpa_gateway::tls::load_certs(&pki.path("gateway.crt")).unwrap(),
                qaqpa_gateway::tls::load_key(&pki.path("gateway.key")).unwrap(),
            )
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = start_provider_with(false, Some(std::sync::Arc::new(server))).await;
        let config_path = pki.dir.path().join("qaqpa.toml");
        let text = edit(&pki, config_text(provider.addr, h2c.addr, tls.addr, extra_limits));
        std::fs::write(&config_path, text).unwrap();
        let config = qaqpa_gateway::config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let running = server::start(config, Some(config_path.clone())).await.unwrap();
        Self { pki, provider, running, config_path }
    }

    pub fn tls_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.data_addrs[0].port())
    }

    pub fn plain_addr(&self) -> SocketAddr {
        self.running.data_addrs[1]
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr.unwrap())
    }

    pub fn client(&self) -> reqwest::Client {
        self.pki.client(Some("egov-portal")).build().unwrap()
    }
}

/// A child `qaqpa run`, killed on drop (the crash tests SIGKILL it themselves).
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `qaqpa run --config CONFIG` as a child process, its output discarded.
pub fn run_gateway(config: &Path) -> Child {
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_qaqpa"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits (20 s at most) until the admin listener at `admin` says ready.
pub async fn wait_ready(admin: SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reqwest::get(format!("http://{admin}/readyz")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "the gateway did not become ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs the `qaqpa` command: whether it succeeded, and what it printed (stdout, then stderr).
pub fn qaqpa(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qaqpa")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("qaqpa.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Sends raw bytes on a fresh TCP connection and returns what came back (up to
/// the server closing or 2 s of silence).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is written.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 12 {
            // Enough for status and headers; bodies here are small and come in one read.
            let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await.map(|r| {
                if let Ok(n) = r {
                    out.extend_from_slice(&buf[..n]);
                }
            });
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[macro_use]
pub mod async_bus;

/// Whether python3 can import `module` (an interop peer: zeep, jwcrypto). Outside CI
/// a missing one skips the test, saying so; in CI it fails it.
pub fn python_has(module: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: python3 module {module} is required");
        eprintln!("SKIPPED: python3 module {module} is not installed");
    }
    found
}

/// Whether a SOAP 1.1 fault is X-Road's fault for Qaqpa's stable `code`: its
/// `faultcode` is the X-Road code docs/protocol.md maps `code` to, or, for the
/// codes X-Road's SOAP checks refine (`client.bad_request`, `client.bad_xml`), one of
/// X-Road's `client.*` codes.
pub fn xroad_fault(body: &str, code: &str) -> bool {
    let Some(start) = body.find("<faultcode>").map(|i| i + "<faultcode>".len()) else { return false };
    let Some(faultcode) = body[start..].find('<').map(|e| &body[start..start + e]) else { return false };
    let Some(parsed) = qaqpa_adapters::ErrorCode::parse(code) else { return false };
    faultcode == qaqpa_adapters::xroad::xroad_code(parsed)
        || (matches!(code, "client.bad_request" | "client.bad_xml") && faultcode.starts_with("client."))
}

/// Config `text` with `keys` (TOML lines, each ending in `\n`) added to the
/// `[[system]]` whose id is `system`.
pub fn with_system_keys(text: &str, system: &str, keys: &str) -> String {
    let block = format!("[[system]]\nid = \"{system}\"\n");
    text.replacen(&block, &format!("{block}{keys}"), 1)
}

/// An HTTPS client builder for a PKI directory as `qaqpa certs init` and `qaqpa demo`
/// write it: trusts its `ca.crt` and presents `{stem}.crt` / `{stem}.key` (the
/// caller adds its timeout and protocol).
pub fn mtls_client_builder(pki_dir: &Path, stem: &str) -> reqwest::ClientBuilder {
    let read = |f: &str| std::fs::read(pki_dir.join(f)).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.crt")).unwrap())
        .identity(
            reqwest::Identity::from_pem(&[read(&format!("{stem}.crt")), read(&format!("{stem}.key"))].concat())
                .unwrap(),
        )
}
