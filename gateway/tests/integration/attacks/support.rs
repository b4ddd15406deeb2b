//! What the attack tests share: an upstream that records the raw bytes of every
//! request it receives, a gateway whose test services point at it, and clients that
//! can send what well-behaved libraries refuse to (raw HTTP/1.1 over TCP and mTLS,
//! raw HTTP/2 frames).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qaqpa_certs::keys::SigningKey;
use qaqpa_certs::xmldsig::{self, DigestAlg};
use qaqpa_routing::SystemId;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::*;

/// REST service at the recorder, open to CLIENT and OTHER_CLIENT.
pub const REC: &str = "KZ/GOV/000000000001/population-register/rec/v1";
/// SOAP service at the recorder, no signature policy.
pub const REC_SOAP: &str = "KZ/GOV/000000000001/population-register/rec-soap/v1";
/// SOAP service at the recorder whose policy is `verify`.
pub const REC_SIGNED_SOAP: &str = "KZ/GOV/000000000001/population-register/rec-signed-soap/v1";
/// REST service at the recorder whose policy is `verify` (detached JWS).
pub const REC_SIGNED_REST: &str = "KZ/GOV/000000000001/population-register/rec-signed-rest/v1";

/// An upstream that keeps each request exactly as it arrived (head and body bytes,
/// chunked framing included) and answers `200 recorded`.
pub struct Recorder {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        while let Some(end) = request_end(&buf) {
                            let request: Vec<u8> = buf.drain(..end).collect();
                            let answer = soap_echo(&request).unwrap_or_else(|| {
                                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nrecorded"
                                    .to_vec()
                            });
                            log.lock().unwrap().push(request);
                            if stream.write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Self { addr, log }
    }

    /// Every request received so far, raw.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The requests seen, parsed.
    pub fn parsed(&self) -> Vec<Recorded> {
        self.requests().iter().map(|r| Recorded::parse(r)).collect()
    }
}

/// A SOAP request is answered with itself, as an X-Road echo provider answers: the
/// same X-Road header, so the gateway's check that the answer belongs to the
/// request passes (X-Road refuses any other answer). Anything else gets "recorded".
fn soap_echo(request: &[u8]) -> Option<Vec<u8>> {
    let head_end = request.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = &request[head_end..];
    if !body.windows(8).any(|w| w == b"Envelope") {
        return None;
    }
    let mut answer =
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/xml; charset=utf-8\r\ncontent-length: {}\r\n\r\n", body.len())
            .into_bytes();
    answer.extend_from_slice(body);
    Some(answer)
}

/// Where a complete request ends in `buf` (head plus Content-Length or chunked body).
fn request_end(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    if chunked {
        let mut at = head_end;
        loop {
            let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                let trailer_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
                return Some(trailer_end + 2);
            }
            at += size + 2;
            if at > buf.len() {
                return None;
            }
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().ok()))
        .flatten()
        .unwrap_or(0);
    (buf.len() >= head_end + length).then_some(head_end + length)
}

/// One recorded request: request line, header lines as sent, the body decoded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn parse(raw: &[u8]) -> Self {
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a recorded request has a head") + 4;
        let head = String::from_utf8_lossy(&raw[..head_end - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let rest = &raw[head_end..];
        let body = if chunked { dechunk(rest) } else { rest.to_vec() };
        Self { request_line, headers, body }
    }

    /// All values of header `name` (lower case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The path the provider was asked for.
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or_default()
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
    out
}

/// The test gateway, plus services at `recorder`, a `[signatures]` table, and
/// certificates of CLIENT that are expired and revoked (the data listener checks a
/// CRL naming the revoked one).
pub async fn gateway(recorder: &Recorder) -> TestGateway {
    let rec = recorder.addr;
    TestGateway::start_with("header_read_timeout = \"5s\"", move |pki, text| {
        let dir = pki.path("");
        let ca = qaqpa_gateway::cli::pki_files::load_ca(&dir).unwrap();
        let now = OffsetDateTime::now_utc();
        let client = SystemId::parse(CLIENT).unwrap();
        let revoked = ca.issue_client(&client, now).unwrap();
        qaqpa_gateway::cli::pki_files::write_pair(&dir, "revoked", &revoked).unwrap();
        let expired =
            ca.issue_client_valid(&client, now - time::Duration::days(30), now - time::Duration::days(1)).unwrap();
        qaqpa_gateway::cli::pki_files::write_pair(&dir, "expired", &expired).unwrap();
        let crl = ca.revocation_list(&[&revoked.cert_pem], now, time::Duration::days(1)).unwrap();
        std::fs::write(pki.path("revoked.crl"), crl).unwrap();
        let text = text.replacen(
            "client_ca = \"pki/ca.crt\" }",
            "client_ca = \"pki/ca.crt\", crls = [\"pki/revoked.crl\"] }",
            1,
        );
        assert!(text.contains("revoked.crl"), "the data listener checks the CRL");
        let mut extra = String::from(
            r#"
[signatures]
trust_anchors = "pki/ca.crt"
crls = ["pki/revoked.crl"]
max_clock_skew = "5m"
replay_window = "24h"
"#,
        );
        for (id, kind, path, policy) in [
            (REC, "rest", "/up", "none"),
            (REC_SOAP, "soap", "/soap", "none"),
            (REC_SIGNED_SOAP, "soap", "/signed-soap", "verify"),
            (REC_SIGNED_REST, "rest", "/signed-rest", "verify"),
        ] {
            extra.push_str(&format!(
                "\n[[service]]\nid = \"{id}\"\nkind = \"{kind}\"\nupstream = [\"http://{rec}{path}\"]\nsignature = \"{policy}\"\n\n[[access]]\nservice = \"{id}\"\nclients = [\"{CLIENT}\", \"{OTHER_CLIENT}\"]\n"
            ));
        }
        text + &extra
    })
    .await
}

/// Sends raw bytes over mTLS (HTTP/1.1 by ALPN) presenting `stem`.crt/key and
/// returns what came back, like [`raw_exchange`].
pub async fn tls_exchange(gw: &TestGateway, stem: &str, request: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in qaqpa_gateway::tls::load_certs(&gw.pki.path("ca.crt")).unwrap() {
        roots.add(cert).unwrap();
    }
    let chain = qaqpa_gateway::tls::load_certs(&gw.pki.path(&format!("{stem}.crt"))).unwrap();
    let key = qaqpa_gateway::tls::load_key(&gw.pki.path(&format!("{stem}.key"))).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(qaqpa_gateway::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.running.data_addrs[0]).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `raw`, in order.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ").filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok()).collect()
}

/// The value of the first `X-Road-Error` in a raw response.
pub fn error_code(raw: &str) -> Option<String> {
    raw.split("\r\n")
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("qaqpa-error")))
        .map(|(_, v)| v.trim().to_owned())
}

/// A GET of `path` (after `/r1/REC`) claiming CLIENT, with `extra` header lines.
pub fn get(path: &str, extra: &str) -> String {
    format!("GET /r1/{REC}{path} HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\n{extra}Connection: close\r\n\r\n")
}

/// A response from reqwest: status, `X-Road-Error`, body.
pub async fn answer(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let code = r.headers().get("qaqpa-error").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, code, r.text().await.unwrap())
}

/// An X-Road SOAP 1.1 envelope from `client` to `service`, with message id `id` if any.
pub fn envelope(client: &str, service: &str, id: Option<&str>, iin: &str) -> String {
    use qaqpa_adapters::soap::{write_envelope, SoapVersion, XRoadHeader, XRoadIdentifier};
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id(client)),
        service: Some(XRoadIdentifier::from_id(service)),
        id: id.map(str::to_owned),
        protocol_version: Some("4.0".into()),
        ..Default::default()
    };
    // The Body element is named after the service code, as X-Road requires.
    let op = service.split('/').nth(4).unwrap_or("op");
    let body = format!("<p:{op} xmlns:p=\"urn:person\"><p:iin>{iin}</p:iin></p:{op}>");
    write_envelope(SoapVersion::V11, &header, &body)
}

/// The signing key and chain of `stem` from the PKI directory.
pub fn signer(gw: &TestGateway, stem: &str) -> (SigningKey, Vec<Vec<u8>>) {
    let key = SigningKey::from_pem(&gw.pki.read(&format!("{stem}.key"))).unwrap();
    let chain = qaqpa_gateway::tls::load_certs(&gw.pki.path(&format!("{stem}.crt")))
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    (key, chain)
}

/// `message` signed now by CLIENT's key.
pub fn sign(gw: &TestGateway, message: &str) -> String {
    let (key, chain) = signer(gw, "egov-portal");
    let at = OffsetDateTime::now_utc().unix_timestamp();
    String::from_utf8(xmldsig::sign_soap(message.as_bytes(), &key, &chain, DigestAlg::Sha256, at).unwrap()).unwrap()
}

/// POSTs a SOAP message over mTLS as `stem`: status, `X-Road-Error`, body.
pub async fn post_soap(gw: &TestGateway, stem: &str, body: String) -> (u16, String, String) {
    let client = gw.pki.client(Some(stem)).build().unwrap();
    let r = client
        .post(gw.tls_url("/soap"))
        .header("content-type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

/// An HTTP/2 frame as read off the wire.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const GOAWAY: u8 = 7;
pub const PROTOCOL_ERROR: u32 = 1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK literal without indexing, new name, no Huffman: the encoder that writes
/// what h2 clients refuse to (uppercase names, connection-specific fields).
fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        assert!(s.len() < 127, "short strings only");
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }
    out.push(0);
    string(out, name);
    string(out, value);
}

/// Opens an h2c connection (prior knowledge) to `addr`, sends one GET of `path` on
/// stream 1 with `fields` after the pseudo-headers, and returns the frames the
/// server sent until it answered or reset that stream, or went away.
pub async fn h2_raw(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Vec<Frame> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    let mut block = Vec::new();
    for (n, v) in [(":method", "GET"), (":scheme", "http"), (":authority", "gw"), (":path", path)] {
        hpack_literal(&mut block, n.as_bytes(), v.as_bytes());
    }
    for (n, v) in fields {
        hpack_literal(&mut block, n.as_bytes(), v.as_bytes());
    }
    out.extend(frame(HEADERS, 0x4 | 0x1, 1, &block));
    stream.write_all(&out).await.unwrap();
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let f = Frame {
                kind: buf[3],
                flags: buf[4],
                stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
                payload: buf[9..9 + len].to_vec(),
            };
            buf.drain(..9 + len);
            if f.kind == 4 && f.flags & 1 == 0 {
                // Acknowledge the server's SETTINGS, as a client must.
                let _ = stream.write_all(&frame(4, 1, 0, &[])).await;
            }
            let done = f.kind == GOAWAY || (f.stream == 1 && (f.kind == RST_STREAM || f.kind == HEADERS));
            frames.push(f);
            if done {
                return frames;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return frames,
        }
    }
}

/// Whether the server reset stream 1 as malformed: RST_STREAM(PROTOCOL_ERROR).
pub fn h2_reset(frames: &[Frame]) -> bool {
    frames
        .iter()
        .any(|f| f.kind == RST_STREAM && f.stream == 1 && f.payload.get(..4) == Some(&PROTOCOL_ERROR.to_be_bytes()[..]))
}

/// Whether the server answered stream 1 with `:status` given as an HPACK static
/// index (0x88 is 200, 0x8c is 400): hyper's encoder indexes these.
pub fn h2_status(frames: &[Frame], indexed: u8) -> bool {
    frames.iter().any(|f| f.kind == HEADERS && f.stream == 1 && f.payload.first() == Some(&indexed))
}

pub const H2_200: u8 = 0x88;
pub const H2_400: u8 = 0x8c;

/// Sends raw bytes on a fresh TCP connection and reads until the server closes it
/// or is silent for 2 s (for pipelined answers).
pub async fn raw_all(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed the whole connection: GOAWAY(PROTOCOL_ERROR) (h2 treats
/// a field block it cannot accept as a connection error).
pub fn h2_goaway(frames: &[Frame]) -> bool {
    frames.iter().any(|f| f.kind == GOAWAY && f.payload.get(4..8) == Some(&PROTOCOL_ERROR.to_be_bytes()[..]))
}
