//! Operations features over real sockets: certificate and CRL reload, connection
//! limits per listener and per client system, the idle-body timeout, HTTP/2 rapid
//! reset, active health checks, and HTTP/3 with a client certificate (the h3 crate's
//! client over quinn).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const DATA_TLS: &str =
    r#"tls = { cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }"#;

pub(crate) fn with_data_listener(text: String, extra: &str) -> String {
    text.replacen(DATA_TLS, &format!("{DATA_TLS}\n{extra}"), 1)
}

pub(crate) fn rustls_client(pki: &Pki, stem: &str, alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&pki.read("ca.crt")).unwrap()).unwrap();
    let certs = vec![CertificateDer::from_pem_slice(&pki.read(&format!("{stem}.crt"))).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(&pki.read(&format!("{stem}.key"))).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(qaqpa_gateway::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// The server certificate a fresh TLS handshake sees once the gateway answered a
/// request on it (any HTTP status: the connection was accepted), or the error.
async fn server_leaf(pki: &Pki, stem: &str, addr: SocketAddr) -> Result<Vec<u8>, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_client(pki, stem, b"http/1.1")));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    // TLS 1.3 reports a refused client certificate after the handshake: make a
    // request and read, so the alert arrives.
    let request = format!("GET /r1/{SERVICE}/echo/x HTTP/1.1\r\nhost: localhost\r\nx-road-client: {CLIENT}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 12];
    tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    if !buf.starts_with(b"HTTP/1.1 ") {
        return Err(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

#[tokio::test]
async fn reload_swaps_server_certificate_and_crl_for_new_connections() {
    let gw = TestGateway::start_with("", |pki, text| {
        let ca = qaqpa_gateway::cli::pki_files::load_ca(&pki.path("")).unwrap();
        let empty = ca.revocation_list(&[], time::OffsetDateTime::now_utc(), time::Duration::days(1)).unwrap();
        std::fs::write(pki.path("ca.crl"), empty).unwrap();
        text.replacen(r#"client_ca = "pki/ca.crt" }"#, r#"client_ca = "pki/ca.crt", crls = ["pki/ca.crl"] }"#, 1)
    })
    .await;
    let addr = gw.running.data_addrs[0];
    let before = server_leaf(&gw.pki, "egov-portal", addr).await.expect("valid client accepted");
    // A request in flight on an old connection must survive the reload.
    let kept = gw.client();
    let url = gw.tls_url(&format!("/r1/{SERVICE}/delay?ms=800"));
    let in_flight = tokio::spawn(async move { kept.get(&url).header("X-Road-Client", CLIENT).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // New server certificate, and the client's certificate revoked.
    let pki_dir = gw.pki.path("");
    let ca = qaqpa_gateway::cli::pki_files::load_ca(&pki_dir).unwrap();
    let renewed = ca.issue_server(&["localhost", "127.0.0.1"], time::OffsetDateTime::now_utc()).unwrap();
    qaqpa_gateway::cli::pki_files::write_pair(&pki_dir, "gateway", &renewed).unwrap();
    qaqpa_gateway::cli::pki_files::revoke(&pki_dir, &[gw.pki.path("egov-portal.crt")]).unwrap();
    let r = reqwest::Client::new().post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    assert_eq!(in_flight.await.unwrap().unwrap().status(), 200, "in-flight request answered");
    let refused = server_leaf(&gw.pki, "egov-portal", addr).await.expect_err("revoked certificate refused");
    assert!(refused.to_lowercase().contains("revoked") || refused.contains("alert"), "{refused}");
    let after = server_leaf(&gw.pki, "akimat", addr).await.expect("another client still accepted");
    assert_ne!(before, after, "new connections see the new server certificate");
    assert_eq!(after, renewed.cert_der().unwrap().to_vec());

    // A reload naming a CRL file that is not a CRL is refused; the running TLS stays.
    std::fs::write(gw.pki.path("ca.crl"), "not a crl").unwrap();
    let r = reqwest::Client::new().post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("crls[0]"));
    assert!(server_leaf(&gw.pki, "akimat", addr).await.is_ok());
    assert!(server_leaf(&gw.pki, "egov-portal", addr).await.is_err(), "still revoked");
}

#[tokio::test]
async fn a_client_system_over_its_connection_limit_gets_503_until_one_closes() {
    let gw = TestGateway::start_with_limits("max_connections_per_client = 2").await;
    let url = gw.tls_url(&format!("/r1/{SERVICE}/echo/x"));
    let get = |client: &reqwest::Client| client.get(&url).header("X-Road-Client", CLIENT).send();
    // Each client keeps its one keep-alive connection open.
    let (a, b, c) = (gw.client(), gw.client(), gw.client());
    assert_eq!(get(&a).await.unwrap().status(), 200);
    assert_eq!(get(&b).await.unwrap().status(), 200);
    let refused = get(&c).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["qaqpa-error"], "server.overloaded");
    assert!(refused.text().await.unwrap().contains("too many open connections"));
    // Another system is counted apart.
    let other = gw.pki.client(Some("akimat")).build().unwrap();
    let r = other.get(&url).header("X-Road-Client", OTHER_CLIENT).send().await.unwrap();
    assert_eq!(r.headers()["qaqpa-error"], "client.access_denied", "past the limit check");
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = gw.client();
        if get(&fresh).await.unwrap().status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"qaqpa_connections_refused_total{listener="data",reason="client_full"}"#), "{metrics}");
}

#[tokio::test]
async fn a_full_listener_closes_new_connections_and_serves_held_ones() {
    let gw = TestGateway::start_with("", |_, text| {
        text.replacen("name = \"plain\"\n", "name = \"plain\"\nmax_connections = 2\n", 1)
    })
    .await;
    let addr = gw.plain_addr();
    let request = format!("GET /r1/{SERVICE}/echo/x HTTP/1.1\r\nhost: x\r\nx-road-client: {CLIENT}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(request.as_bytes()).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf)).await.expect("closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)), "third connection must be closed unanswered: {n:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(raw_exchange(addr, request.as_bytes()).await.starts_with("HTTP/1.1 200"), "places freed");
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_cut_at_the_idle_timeout() {
    let gw = TestGateway::start_with_limits("body_idle_timeout = \"500ms\"").await;
    let addr = gw.plain_addr();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /r1/{SERVICE}/sink HTTP/1.1\r\nhost: x\r\nx-road-client: {CLIENT}\r\ncontent-length: 1000\r\n\r\n0123456789"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // Meanwhile another client is served.
    let ok = raw_exchange(
        addr,
        format!("GET /r1/{SERVICE}/echo/x HTTP/1.1\r\nhost: x\r\nx-road-client: {CLIENT}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("qaqpa-error: client.bad_request") && text.contains("idle body timeout"), "{text}");
    assert!(elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

/// One HTTP/2 frame: 9-byte header and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn http2_rapid_reset_is_answered_with_goaway_enhance_your_calm() {
    let gw = TestGateway::start_with_limits("max_pending_resets = 10").await;
    let mut s = tokio::net::TcpStream::connect(gw.plain_addr()).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
                                          // HPACK: :method GET (0x82), :scheme http (0x86), :path / (0x84), :authority "a".
    let headers = [0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
    for i in 0..500u32 {
        let stream = 2 * i + 1;
        out.extend(h2_frame(0x1, 0x4 | 0x1, stream, &headers)); // HEADERS, END_HEADERS|END_STREAM
        out.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM(CANCEL)
    }
    let _ = s.write_all(&out).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    let goaway_code = loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break None,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
        // Walk the frames for a GOAWAY (type 7): error code at payload bytes 4..8.
        let mut at = 0;
        let mut found = None;
        while at + 9 <= got.len() {
            let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
            if at + 9 + len > got.len() {
                break;
            }
            if got[at + 3] == 0x7 && len >= 8 {
                let p = &got[at + 9..at + 17];
                found = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
            }
            at += 9 + len;
        }
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
    };
    assert_eq!(goaway_code, Some(0xb), "expected GOAWAY(ENHANCE_YOUR_CALM)");
    // The gateway still serves everyone else.
    let ok = raw_exchange(
        gw.plain_addr(),
        format!("GET /r1/{SERVICE}/echo/x HTTP/1.1\r\nhost: x\r\nx-road-client: {CLIENT}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

const BALANCED: &str = "KZ/GOV/000000000001/population-register/balanced/v1";

#[tokio::test]
async fn health_checks_eject_a_dead_endpoint_and_bring_it_back() {
    // A free port for the second endpoint, dead for now.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = TestGateway::start_with("", |_, text| {
        let provider = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            "{text}\n[[service]]\nid = \"{BALANCED}\"\nkind = \"rest\"\nupstream = [\"http://{provider}/base\", \"http://{spare}/base\"]\n\
             breaker = {{ failures = 1000 }}\n\
             health_check = {{ path = \"/echo/health\", interval = \"100ms\", timeout = \"100ms\", unhealthy = 2, healthy = 2 }}\n\
             [[access]]\nservice = \"{BALANCED}\"\nclients = [\"{CLIENT}\"]\n"
        )
    })
    .await;
    let client = gw.client();
    let url = gw.tls_url(&format!("/r1/{BALANCED}/echo/x"));
    let metrics_url = gw.admin_url("/metrics");
    let healthy_line = |metrics: &str, addr: SocketAddr| {
        metrics
            .lines()
            .find(|l| l.starts_with("qaqpa_upstream_healthy") && l.contains(&addr.to_string()))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    let wait_for = |standing: &'static str, what: &'static str| {
        let metrics_url = metrics_url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let m = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
                if healthy_line(&m, spare).as_deref() == Some(standing) {
                    break;
                }
                assert!(Instant::now() < deadline, "{what}:\n{m}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Ejected within a few check intervals.
    wait_for("0", "dead endpoint never ejected").await;
    // Now every request goes to the live endpoint: no failures at all.
    for _ in 0..50 {
        let r = client.get(&url).header("X-Road-Client", CLIENT).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // The endpoint comes back and rejoins after two good checks.
    let revived = start_provider_on(spare, false, None).await;
    wait_for("1", "revived endpoint never rejoined").await;
    let probes = revived.seen.requests.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..60 {
        let r = client.get(&url).header("X-Road-Client", CLIENT).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let served = revived.seen.requests.load(std::sync::atomic::Ordering::SeqCst) - probes;
    assert!(served >= 10, "the revived endpoint takes its share again: {served} of 60 (plus probes)");
}

/// An HTTP/3 client (h3 over quinn) presenting `stem`'s certificate.
pub(crate) async fn h3_client(
    pki: &Pki,
    stem: &str,
    addr: SocketAddr,
) -> Result<h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>, String> {
    let tls = rustls_client(pki, stem, b"h3");
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint.connect(addr, "localhost").unwrap().await.map_err(|e| e.to_string())?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        drop(endpoint);
    });
    Ok(send)
}

pub(crate) async fn h3_exchange(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    req: http::Request<()>,
    body: Option<bytes::Bytes>,
) -> Result<(http::Response<()>, Vec<u8>), String> {
    let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
    if let Some(body) = body {
        stream.send_data(body).await.map_err(|e| e.to_string())?;
    }
    stream.finish().await.map_err(|e| e.to_string())?;
    let response = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    Ok((response, out))
}

#[tokio::test]
async fn http3_with_a_client_certificate_is_routed_like_http1() {
    let gw = TestGateway::start_with("", |_, text| with_data_listener(text, "http = [\"h1\", \"h2\", \"h3\"]")).await;
    let addr = gw.running.data_addrs[0];
    let port = addr.port();

    // The TCP listener advertises HTTP/3.
    let r = gw.client().get(gw.tls_url(&format!("/r1/{SERVICE}/echo/x"))).header("X-Road-Client", CLIENT).send().await;
    let r = r.unwrap();
    assert_eq!(r.headers()["alt-svc"], format!("h3=\":{port}\"; ma=86400"));

    let mut send = h3_client(&gw.pki, "egov-portal", addr).await.unwrap();
    let req = http::Request::get(format!("https://localhost:{port}/r1/{SERVICE}/echo/a?b=c"))
        .header("x-road-client", CLIENT)
        .header("x-road-id", "h3-msg-1")
        .body(())
        .unwrap();
    let (response, body) = h3_exchange(&mut send, req, None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-road-id"], "h3-msg-1");
    assert!(response.headers().contains_key("x-road-request-hash"));
    let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["path"], "/base/echo/a");
    assert_eq!(echoed["query"], "b=c");
    assert_eq!(echoed["method"], "GET");
    assert!(echoed["headers"].get("transfer-encoding").is_none(), "a bodyless request is forwarded without a body");

    // A body streams through, on the same connection.
    let payload = bytes::Bytes::from(vec![b'q'; 300_000]);
    let req = http::Request::post(format!("https://localhost:{port}/r1/{SERVICE}/sink"))
        .header("x-road-client", CLIENT)
        .header("content-length", payload.len().to_string())
        .body(())
        .unwrap();
    let (response, body) = h3_exchange(&mut send, req, Some(payload)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body, b"300000");

    // The same refusals as over TCP: another system's claim.
    let req = http::Request::get(format!("https://localhost:{port}/r1/{SERVICE}/echo/a"))
        .header("x-road-client", OTHER_CLIENT)
        .header("accept", PROBLEM_ACCEPT)
        .body(())
        .unwrap();
    let (response, body) = h3_exchange(&mut send, req, None).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["qaqpa-error"], "client.identity_mismatch");
    assert!(String::from_utf8_lossy(&body).contains("client.identity_mismatch"));

    // A certificate from another CA does not get a connection.
    let foreign = h3_client(&gw.pki, "foreign", addr).await;
    match foreign {
        Err(_) => {}
        Ok(mut send) => {
            let req = http::Request::get(format!("https://localhost:{port}/r1/{SERVICE}/echo/a"))
                .header("x-road-client", CLIENT)
                .body(())
                .unwrap();
            assert!(h3_exchange(&mut send, req, None).await.is_err(), "foreign-CA client was served over HTTP/3");
        }
    }
    // Monitoring saw the HTTP/3 exchange under its message id.
    let records = reqwest::get(gw.admin_url("/admin/v1/monitoring")).await.unwrap().text().await.unwrap();
    assert!(records.contains("h3-msg-1"), "{records}");
}

#[tokio::test]
async fn shutdown_lets_an_http3_request_in_flight_finish() {
    let gw = TestGateway::start_with("", |_, text| with_data_listener(text, "http = [\"h1\", \"h2\", \"h3\"]")).await;
    let addr = gw.running.data_addrs[0];
    let mut send = h3_client(&gw.pki, "egov-portal", addr).await.unwrap();
    let req = http::Request::get(format!("https://localhost:{}/r1/{SERVICE}/delay?ms=700", addr.port()))
        .header("x-road-client", CLIENT)
        .body(())
        .unwrap();
    let in_flight = tokio::spawn(async move { h3_exchange(&mut send, req, None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let TestGateway { pki, running, .. } = gw;
    running.shutdown().await;
    let (response, body) = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(body, b"waited 700 ms");
    assert!(started.elapsed() < Duration::from_secs(10), "drained promptly: {:?}", started.elapsed());
    // After the drain nothing is accepted: a new QUIC connection fails.
    let late = tokio::time::timeout(Duration::from_secs(2), h3_client(&pki, "egov-portal", addr)).await;
    assert!(!matches!(late, Ok(Ok(_))), "a connection was accepted after shutdown");
}

#[tokio::test]
async fn an_http3_client_that_never_sends_its_body_is_cut_at_the_idle_timeout() {
    let gw = TestGateway::start_with("body_idle_timeout = \"500ms\"", |_, text| {
        with_data_listener(text, "http = [\"h1\", \"h2\", \"h3\"]")
    })
    .await;
    let addr = gw.running.data_addrs[0];
    let mut send = h3_client(&gw.pki, "egov-portal", addr).await.unwrap();
    let req = http::Request::post(format!("https://localhost:{}/r1/{SERVICE}/sink", addr.port()))
        .header("x-road-client", CLIENT)
        .header("content-length", "1000")
        .body(())
        .unwrap();
    let started = Instant::now();
    let mut stream = send.send_request(req).await.unwrap();
    // Headers only: no data, no end of stream.
    let response = tokio::time::timeout(Duration::from_secs(10), stream.recv_response())
        .await
        .expect("answered, not left hanging")
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["qaqpa-error"], "client.bad_request");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}
