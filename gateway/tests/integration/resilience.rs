//! Operations under traffic: reloads while requests flow, SIGTERM drain of a real
//! process with requests in flight, and a slowloris client cut at the header timeout.

use crate::common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn twenty_reloads_under_load_fail_no_request_and_a_bad_one_is_refused() {
    let gw = TestGateway::start().await;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, url, ok, failed, stop) =
            (gw.client(), gw.tls_url(&format!("/r1/{SERVICE}/delay?ms=5")), ok.clone(), failed.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            // Bounded: at most 2,000 requests per task, and only while reloading.
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match client.get(&url).header("X-Road-Client", CLIENT).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let http = reqwest::Client::new();
    let original = std::fs::read_to_string(&gw.config_path).unwrap();
    let granted = original.replacen(
        &format!("clients = [\"{CLIENT}\"]"),
        &format!("clients = [\"{CLIENT}\", \"{OTHER_CLIENT}\"]"),
        1,
    );
    for i in 0..20 {
        std::fs::write(&gw.config_path, if i % 2 == 0 { &granted } else { &original }).unwrap();
        let r = http.post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
        assert_eq!(r.status(), 200, "reload {i}");
        if i == 10 {
            std::fs::write(&gw.config_path, "[[listener]]\naddress = 1\n").unwrap();
            let r = http.post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
            assert_eq!(r.status(), 400, "an invalid file is refused");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} requests failed during reloads ({ok} succeeded)");
    assert!(ok > 100, "the load ran: {ok} requests");
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("qaqpa_config_reloads_total{result=\"ok\"} 20"), "{metrics}");
    assert!(metrics.contains("qaqpa_config_reloads_total{result=\"refused\"} 1"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_0() {
    let pki = Pki::new();
    let provider = start_provider(false).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\ninsecure = true\n[[system]]\nid = \"{CLIENT}\"\n[[system]]\nid = \"{PROVIDER}\"\n\
         [[service]]\nid = \"{SERVICE}\"\nkind = \"rest\"\nupstream = [\"http://{}/base\"]\n\
         [[access]]\nservice = \"{SERVICE}\"\nclients = [\"{CLIENT}\"]\n",
        provider.addr
    );
    let path = write_config(pki.dir.path(), &config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_qaqpa"))
        .args(["run", "--config", path.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/r1/{SERVICE}/delay?ms=800");
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(
                async move { client.get(&url).header("X-Road-Client", CLIENT).send().await.map(|r| r.status()) },
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    for r in in_flight {
        assert_eq!(r.await.unwrap().unwrap(), 200, "a request accepted before SIGTERM must be answered");
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the listener is closed after the drain");
}

#[tokio::test]
async fn a_slowloris_client_is_cut_at_the_header_timeout_while_others_are_served() {
    let gw = TestGateway::start_with_limits("header_read_timeout = \"1s\"").await;
    let addr = gw.plain_addr();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /r1/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Dribble a header byte every 200 ms: never completing the head.
    let dribble = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        loop {
            if slow.write_all(b"X").await.is_err() {
                return started.elapsed();
            }
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {} // hyper may send 408 before closing
                Err(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(10), "slowloris connection never cut");
        }
    });
    // Meanwhile a normal client is served.
    let r = gw
        .client()
        .get(gw.tls_url(&format!("/r1/{SERVICE}/echo/x")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cut_after = dribble.await.unwrap();
    assert!(cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(4), "cut after {cut_after:?}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_dead_endpoint_is_skipped_by_its_breaker_and_rejoins_when_back() {
    let a = start_provider(false).await;
    let b_addr: std::net::SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let pki = Pki::new();
    let service = "KZ/GOV/000000000001/population-register/pair/v1";
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ninsecure = true\n[[system]]\nid = \"{CLIENT}\"\n[[system]]\nid = \"{PROVIDER}\"\n\
         [[service]]\nid = \"{service}\"\nkind = \"rest\"\nupstream = [\"http://{}/base\", \"http://{b_addr}/base\"]\n\
         breaker = {{ failures = 2, open_for = \"300ms\" }}\n\
         [[access]]\nservice = \"{service}\"\nclients = [\"{CLIENT}\"]\n",
        a.addr
    );
    let path = write_config(pki.dir.path(), &config);
    let running = qaqpa_gateway::server::start(qaqpa_gateway::config::load(&path).unwrap(), None).await.unwrap();
    let url = format!("http://{}/r1/{service}/echo/x", running.data_addrs[0]);
    let client = reqwest::Client::new();
    let call = || client.get(&url).header("X-Road-Client", CLIENT).send();

    // B refuses connections: GETs that land on it are retried on A, so every caller
    // gets its answer; after two failures B's breaker keeps it out.
    for i in 0..30 {
        assert_eq!(call().await.unwrap().status(), 200, "request {i}");
    }
    assert_eq!(a.seen.requests.load(Ordering::SeqCst), 30);

    // B comes back; once its breaker lets a probe through, it takes traffic again.
    let b = start_provider_on(b_addr, false, None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in 0..40 {
        assert_eq!(call().await.unwrap().status(), 200, "request {i} after B's return");
    }
    let to_b = b.seen.requests.load(Ordering::SeqCst);
    assert!(to_b >= 10, "B rejoined the balancing: {to_b} of 40");
    running.shutdown().await;
}

#[tokio::test]
async fn when_every_endpoint_is_down_callers_get_fast_refusals() {
    let gw = TestGateway::start().await;
    let client = gw.client();
    let call = || client.get(gw.tls_url(&format!("/r1/{DOWN_SERVICE}/x"))).header("X-Road-Client", CLIENT).send();
    // The default breaker opens after 5 consecutive failures.
    for _ in 0..5 {
        assert_eq!(call().await.unwrap().headers()["qaqpa-error"], "server.upstream_unavailable");
    }
    let started = Instant::now();
    let r = call().await.unwrap();
    assert_eq!(r.headers()["qaqpa-error"], "server.upstream_unavailable");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("circuit open"), "{body}");
    assert!(started.elapsed() < Duration::from_millis(500), "no connect attempt while open");
    gw.running.shutdown().await;
}
