//! REST routing through real sockets: mTLS clients (reqwest/rustls), HTTP/1.1 and
//! HTTP/2, streaming bodies, error codes, and hostile raw input.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

fn url(service: &str, rest: &str) -> String {
    format!("/r1/{service}{rest}")
}

async fn problem(resp: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let code = resp.headers()["qaqpa-error"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code.as_str());
    assert_eq!(body["status"], status);
    (status, code, body)
}

#[tokio::test]
async fn mtls_happy_path_forwards_headers_and_answers_with_x_road_headers() {
    let gw = TestGateway::start().await;
    let client = gw.pki.client(Some("egov-portal")).http1_only().build().unwrap();
    let resp = client
        .get(gw.tls_url(&url(SERVICE, "/echo/900101300123?full=1")))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", "msg-0001")
        .header("Connection", "x-hop")
        .header("X-Hop", "must not cross")
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.headers()["x-road-id"], "msg-0001");
    let hash = resp.headers()["x-road-request-hash"].to_str().unwrap().to_owned();
    let request_id = resp.headers()["x-road-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["x-road-client"], CLIENT);
    assert_eq!(hash.len(), 88, "base64 of a SHA-512");
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/base/echo/900101300123");
    assert_eq!(seen["query"], "full=1");
    let h = &seen["headers"];
    assert_eq!(h["x-road-client"], CLIENT);
    assert_eq!(h["x-road-id"], "msg-0001");
    assert_eq!(h["x-custom"], "kept");
    assert!(h.get("x-hop").is_none(), "hop-by-hop header named in Connection crossed: {h}");
    assert!(h.get("connection").is_none() || h["connection"] != "x-hop");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["forwarded"], "for=127.0.0.1;proto=https");
    assert_eq!(h["host"], gw.provider.addr.to_string());

    // Same request again: another X-Road-Request-Id, so another request hash (X-Road
    // hashes the id with the request); a generated message id is a UUIDv7.
    let resp = client
        .get(gw.tls_url(&url(SERVICE, "/echo/900101300123?full=1")))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", "msg-0001")
        .header("Connection", "x-hop")
        .header("X-Hop", "must not cross")
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-road-request-hash"].to_str().unwrap(), hash);
    assert_ne!(resp.headers()["x-road-request-id"].to_str().unwrap(), request_id, "one X-Road-Request-Id per exchange");
    let resp = client.get(gw.tls_url(&url(SERVICE, "/echo/1"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    let id = resp.headers()["x-road-id"].to_str().unwrap();
    assert_eq!(uuid_version(id), 7);
    gw.running.shutdown().await;
}

fn uuid_version(id: &str) -> u32 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "{id}");
    u32::from_str_radix(&hex[12..13], 16).unwrap()
}

#[tokio::test]
async fn tls12_client_and_http2_client_are_served() {
    let gw = TestGateway::start().await;
    let tls12 = gw.pki.client(Some("egov-portal")).max_tls_version(reqwest::tls::Version::TLS_1_2).build().unwrap();
    let resp = tls12.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let h2 = gw.pki.client(Some("egov-portal")).build().unwrap();
    let resp = h2.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-road-client"], CLIENT);
    assert_eq!(seen["version"], "HTTP/1.1", "the provider hop uses its own protocol");

    // h2c prior knowledge on the insecure listener, and to an h2c-only provider.
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = h2c
        .get(format!("http://{}{}", gw.plain_addr(), url(H2C_SERVICE, "/echo/y")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn handshake_refused_without_certificate_or_with_foreign_ca() {
    let gw = TestGateway::start().await;
    let anonymous = gw.pki.client(None).build().unwrap();
    let err = anonymous
        .get(gw.tls_url(&url(SERVICE, "/echo/x")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .expect_err("a client without a certificate must not get through");
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    let forged = gw.pki.client(Some("foreign")).build().unwrap();
    let err = forged
        .get(gw.tls_url(&url(SERVICE, "/echo/x")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .expect_err("a certificate from another CA must not get through");
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    // The listener still serves good clients afterwards.
    let resp =
        gw.client().get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn identity_route_and_access_errors_carry_stable_codes() {
    let gw = TestGateway::start().await;
    let client = gw.client();

    // Valid certificate, but it claims another system.
    let resp =
        client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", OTHER_CLIENT).send().await.unwrap();
    let (status, code, body) = problem(resp).await;
    assert_eq!((status, code.as_str()), (403, "client.identity_mismatch"));
    assert_eq!(body["type"], "urn:qaqpa:error:client.identity_mismatch");

    // No claim at all.
    let resp = client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).send().await.unwrap();
    assert_eq!(problem(resp).await.1, "client.bad_request");

    // Unknown service, and an unknown version of a known one.
    for path in [url("KZ/GOV/000000000001/population-register/nope/v1", "/x"), url(SERVICE, "").replace("/v1", "/v9")] {
        let resp = client.get(gw.tls_url(&path)).header("X-Road-Client", CLIENT).send().await.unwrap();
        let (status, code, _) = problem(resp).await;
        assert_eq!((status, code.as_str()), (404, "client.unknown_service"), "{path}");
    }

    // OTHER_CLIENT, with its own certificate, is not on the access list.
    let other = gw.pki.client(Some("akimat")).build().unwrap();
    let resp = other
        .get(gw.tls_url(&url(SERVICE, "/echo/x")))
        .header("X-Road-Client", OTHER_CLIENT)
        .header("X-Road-Id", "denied-1")
        .send()
        .await
        .unwrap();
    let (status, code, body) = problem(resp).await;
    assert_eq!((status, code.as_str()), (403, "client.access_denied"));
    assert_eq!(body["messageId"], "denied-1");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504_after_its_timeout() {
    let gw = TestGateway::start().await;
    let client = gw.client();
    let resp = client.get(gw.tls_url(&url(DOWN_SERVICE, "/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    let (status, code, _) = problem(resp).await;
    assert_eq!((status, code.as_str()), (502, "server.upstream_unavailable"));

    let started = Instant::now();
    let resp =
        client.get(gw.tls_url(&url(SLOW_SERVICE, "/slow"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    let elapsed = started.elapsed();
    let (status, code, _) = problem(resp).await;
    assert_eq!((status, code.as_str()), (504, "server.upstream_timeout"));
    assert!(elapsed >= Duration::from_millis(290), "answered before the 300ms timeout: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "the provider's 5s delay leaked through: {elapsed:?}");
    gw.running.shutdown().await;
}

const BIG: usize = 64 * 1024 * 1024;

#[tokio::test]
async fn a_64_mib_request_streams_to_the_provider_before_the_client_finishes() {
    let gw = TestGateway::start().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    }));
    let seen = gw.provider.seen.clone();
    let sender = tokio::spawn(async move {
        let chunk = bytes::Bytes::from(vec![b'a'; CHUNK]);
        tx.send(Ok(chunk.clone())).await.unwrap();
        // Unless the gateway streams, the provider cannot see these bytes yet.
        tokio::time::timeout(Duration::from_secs(10), seen.first_bytes.notified())
            .await
            .expect("provider saw no bytes while the client was still sending");
        for _ in 1..BIG / CHUNK {
            tx.send(Ok(chunk.clone())).await.unwrap();
        }
    });
    // 64 MiB through two TLS hops of a debug build: the bound is for a loaded
    // machine, not a speed claim (streaming is what this test asserts).
    let client = gw.pki.client(Some("egov-portal")).timeout(Duration::from_secs(120)).build().unwrap();
    let resp = client
        .post(gw.tls_url(&url(SERVICE, "/sink")))
        .header("X-Road-Client", CLIENT)
        .body(body)
        .send()
        .await
        .unwrap();
    sender.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-road-request-hash"));
    assert_eq!(resp.text().await.unwrap(), BIG.to_string());
    assert_eq!(gw.provider.seen.request_bytes.load(Ordering::SeqCst), BIG as u64);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_64_mib_response_streams_to_the_client_before_the_provider_finishes() {
    let gw = TestGateway::start().await;
    let mut resp = gw
        .client()
        .get(gw.tls_url(&url(SERVICE, &format!("/source?bytes={BIG}"))))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The provider holds everything after its first chunk until we release it.
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("no bytes reached the client while the provider was still sending")
        .unwrap()
        .unwrap();
    let mut total = first.len();
    gw.provider.seen.release.notify_one();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, BIG);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn body_over_the_limit_is_refused_with_too_large() {
    let gw = TestGateway::start_with_limits("max_body_bytes = 100000").await;
    let client = gw.client();
    // Declared too large: refused before anything is forwarded.
    let resp = client
        .post(gw.tls_url(&url(SERVICE, "/sink")))
        .header("X-Road-Client", CLIENT)
        .body(vec![0u8; 100_001])
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await.1, "client.too_large");
    // Streamed without a length: refused when the limit is crossed.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        (0..4).map(|_| Ok(bytes::Bytes::from(vec![0u8; 40_000]))).collect();
    let resp = client
        .post(gw.tls_url(&url(SERVICE, "/sink")))
        .header("X-Road-Client", CLIENT)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await.1, "client.too_large");
    // Within the limit: fine.
    let resp = client
        .post(gw.tls_url(&url(SERVICE, "/sink")))
        .header("X-Road-Client", CLIENT)
        .body(vec![0u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "100000");
    // Oversized bodies are the client's failure: however many, they do not open the
    // provider's circuit breaker for everyone else.
    for _ in 0..8 {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
            (0..4).map(|_| Ok(bytes::Bytes::from(vec![0u8; 40_000]))).collect();
        let resp = client
            .post(gw.tls_url(&url(SERVICE, "/sink")))
            .header("X-Road-Client", CLIENT)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(problem(resp).await.1, "client.too_large");
    }
    let resp = client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    gw.running.shutdown().await;
}

fn status_of(response: &str) -> u16 {
    response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[tokio::test]
async fn hostile_raw_requests_get_400_or_431_and_the_next_request_works() {
    let gw = TestGateway::start().await;
    let addr = gw.plain_addr();
    let good = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\nConnection: close\r\n\r\n",
        url(SERVICE, "/echo/ok")
    );
    let huge_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1024 * 1024));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let cases: Vec<(&str, String, &[u16], Option<&str>)> = vec![
        ("malformed request line", "GARBAGE\r\n\r\n".into(), &[400], None),
        ("bad method token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n".into(), &[400], None),
        ("1 MiB header", huge_header, &[431], None),
        ("10,000 headers", many_headers, &[431], None),
        (
            "invalid percent encoding",
            format!("GET {} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\n\r\n", url(SERVICE, "/a%zz")),
            &[400],
            Some("client.bad_request"),
        ),
        (
            "path traversal in the service id",
            format!("GET /r1/KZ/GOV/../../admin/v1/x HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\n\r\n"),
            &[400],
            Some("client.bad_request"),
        ),
        (
            "encoded traversal after the service",
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\n\r\n",
                url(SERVICE, "/%2e%2e/%2E%2E/etc")
            ),
            &[400],
            Some("client.bad_request"),
        ),
        (
            "NUL in the path",
            format!("GET {} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\n\r\n", url(SERVICE, "/a%00b")),
            &[400],
            Some("client.bad_request"),
        ),
        (
            "oversized message id",
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\nX-Road-Id: {}\r\n\r\n",
                url(SERVICE, "/x"),
                "i".repeat(200)
            ),
            &[400],
            Some("client.bad_request"),
        ),
        (
            "not a REST path",
            format!("GET /etc/passwd HTTP/1.1\r\nHost: x\r\nX-Road-Client: {CLIENT}\r\n\r\n"),
            &[400],
            Some("client.bad_request"),
        ),
    ];
    for (what, request, statuses, code) in cases {
        let response = raw_exchange(addr, request.as_bytes()).await;
        let status = status_of(&response);
        assert!(statuses.contains(&status), "{what}: got {status} in {response:.200}");
        if let Some(code) = code {
            assert!(response.to_ascii_lowercase().contains(&format!("qaqpa-error: {code}")), "{what}: {response:.400}");
            // A raw client sends no problem+json Accept: X-Road's error body.
            assert!(response.contains(&format!("\"type\":\"{code}\"")), "{what}: {response:.400}");
        }
        let after = raw_exchange(addr, good.as_bytes()).await;
        assert_eq!(status_of(&after), 200, "after {what}: {after:.200}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn admin_health_readiness_and_reload() {
    let gw = TestGateway::start().await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(gw.admin_url("/healthz")).send().await.unwrap().text().await.unwrap(), "ok\n");
    assert_eq!(http.get(gw.admin_url("/readyz")).send().await.unwrap().status(), 200);

    // Grant OTHER_CLIENT access by editing the file and reloading: the new access
    // list takes effect without a restart.
    let other = gw.pki.client(Some("akimat")).build().unwrap();
    let call = || other.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", OTHER_CLIENT).send();
    assert_eq!(call().await.unwrap().status(), 403);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let granted = text.replacen(
        &format!("clients = [\"{CLIENT}\"]"),
        &format!("clients = [\"{CLIENT}\", \"{OTHER_CLIENT}\"]"),
        1,
    );
    std::fs::write(&gw.config_path, granted).unwrap();
    let resp = http.post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);

    // A broken file is refused and the running configuration stays.
    std::fs::write(&gw.config_path, "[[service]]\nid = 3\n").unwrap();
    let resp = http.post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let detail = resp.text().await.unwrap();
    assert!(detail.contains("qaqpa.toml:2: "), "{detail}");
    assert_eq!(call().await.unwrap().status(), 200);

    // Data clients cannot reach admin endpoints through a data listener.
    let resp = gw.client().get(gw.tls_url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn tls_upstreams_are_verified_against_their_configured_ca() {
    let gw = TestGateway::start().await;
    let client = gw.client();
    let resp =
        client.get(gw.tls_url(&url(TLS_SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0", "an https provider offering h2 gets h2 by ALPN");
    assert_eq!(seen["headers"]["x-road-client"], CLIENT);

    // The provider's certificate does not chain to the CA configured for this service.
    let resp =
        client.get(gw.tls_url(&url(WRONG_CA_SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    let (status, code, _) = problem(resp).await;
    assert_eq!((status, code.as_str()), (502, "server.upstream_unavailable"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_client_connection_keeps_its_own_provider_connection_and_h2_streams_share_it_or_the_pool() {
    let gw = TestGateway::start().await;
    let echo = gw.tls_url(&url(SERVICE, "/echo/kept"));
    let before = gw.provider.seen.connections.load(Ordering::SeqCst);
    // Two HTTP/1.1 clients, one connection each, three requests each in turn: one
    // provider connection per client connection, reused.
    for _ in 0..2 {
        let client = gw.pki.client(Some("egov-portal")).http1_only().build().unwrap();
        for _ in 0..3 {
            let resp = client.get(&echo).header("X-Road-Client", CLIENT).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let seen: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(seen["headers"]["host"], gw.provider.addr.to_string());
            assert_eq!(seen["path"], "/base/echo/kept");
        }
    }
    assert_eq!(gw.provider.seen.connections.load(Ordering::SeqCst) - before, 2);
    // Concurrent streams of one HTTP/2 connection: the one that holds the kept
    // connection uses it, the others the pool; every one is answered.
    let h2 = gw.client();
    let sends = (0..16).map(|i| {
        let h2 = h2.clone();
        let echo = format!("{echo}/{i}");
        async move {
            let resp = h2.get(&echo).header("X-Road-Client", CLIENT).send().await.unwrap();
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let seen: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(seen["path"], format!("/base/echo/kept/{i}"));
        }
    });
    futures_util::future::join_all(sends).await;
}

#[tokio::test]
async fn an_https_provider_pinned_to_http1_is_reached_over_the_client_connections_own_tls_connection() {
    let pin_h1 = |_: &Pki, text: String| {
        text.replace("upstream_ca = \"pki/ca.crt\"", "upstream_ca = \"pki/ca.crt\"\nupstream_protocol = \"h1\"")
            .replace(
                "upstream_ca = \"pki/foreign-ca.crt\"",
                "upstream_ca = \"pki/foreign-ca.crt\"\nupstream_protocol = \"h1\"",
            )
    };
    let gw = TestGateway::start_with("header_read_timeout = \"5s\"", pin_h1).await;
    let client = gw.pki.client(Some("egov-portal")).http1_only().build().unwrap();
    for _ in 0..2 {
        let resp =
            client.get(gw.tls_url(&url(TLS_SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let seen: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(seen["version"], "HTTP/1.1");
        assert!(seen["headers"]["host"].as_str().unwrap().starts_with("localhost:"), "{seen}");
        assert_eq!(seen["path"], "/base/echo/x");
    }
    // The same verification of the provider's certificate on this path.
    let resp =
        client.get(gw.tls_url(&url(WRONG_CA_SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    let (status, code, _) = problem(resp).await;
    assert_eq!((status, code.as_str()), (502, "server.upstream_unavailable"));
    gw.running.shutdown().await;
}
