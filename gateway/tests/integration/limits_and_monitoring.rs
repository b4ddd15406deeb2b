//! Limits, metrics, SLA and monitoring records through real sockets.

use crate::common;

use std::time::Duration;

use common::*;

fn url(service: &str, rest: &str) -> String {
    format!("/r1/{service}{rest}")
}

/// Value of one sample line `name{labels} value` in Prometheus text format.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let labels_text = rest.trim_end_matches('}');
        let ok = labels.iter().all(|(k, v)| labels_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

/// promtool is the reference parser of the text format; required in CI.
fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: promtool is required (apt install prometheus)");
        eprintln!("SKIPPED promtool check: promtool not installed");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // promtool exits 1 for lint suggestions too; parse errors say "error while".
    assert!(!report.contains("error while"), "promtool could not parse /metrics: {report}");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let extra = format!("\n[[limit]]\nservice = \"{SERVICE}\"\nclient = \"{CLIENT}\"\nrate = \"2/min\"\nburst = 2\n");
    let gw = TestGateway::start_with_limits(&extra).await;
    let client = gw.client();
    let call = || client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send();
    let first = call().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "\"pair\";q=2;w=60");
    assert!(first.headers()["ratelimit"].to_str().unwrap().starts_with("\"pair\";r=1;"), "{:?}", first.headers());
    let second = call().await.unwrap();
    assert!(second.headers()["ratelimit"].to_str().unwrap().starts_with("\"pair\";r=0;"));
    let third = call().await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["qaqpa-error"], "client.rate_limited");
    let retry: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=31).contains(&retry), "one request per 30 s: Retry-After {retry}");
    assert!(third.headers().contains_key("ratelimit"));

    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    promtool_check_metrics(&metrics);
    let ok = [("client", CLIENT), ("service", SERVICE), ("code", "ok")];
    assert_eq!(sample(&metrics, "qaqpa_requests_total", &ok), Some(2.0), "{metrics}");
    let limited = [("client", CLIENT), ("service", SERVICE), ("code", "client.rate_limited")];
    assert_eq!(sample(&metrics, "qaqpa_requests_total", &limited), Some(1.0));
    let rejected = [("client", CLIENT), ("service", SERVICE), ("reason", "rate")];
    assert_eq!(sample(&metrics, "qaqpa_limiter_rejections_total", &rejected), Some(1.0));
    assert_eq!(sample(&metrics, "qaqpa_request_duration_seconds_count", &[("service", SERVICE)]), Some(3.0));
    assert_eq!(sample(&metrics, "qaqpa_upstream_duration_seconds_count", &[("service", SERVICE)]), Some(2.0));
    assert!(sample(&metrics, "qaqpa_response_bytes_total", &[("service", SERVICE)]).unwrap() > 100.0);
    assert_eq!(sample(&metrics, "qaqpa_sla_availability_ratio", &[("service", SERVICE)]), Some(1.0));
    assert!(sample(&metrics, "qaqpa_overload_limit", &[]).unwrap() >= 16.0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn overload_and_service_concurrency_shed_with_503() {
    let gw = TestGateway::start_with_limits("\n[overload]\nmax_in_flight = 1\nmin_in_flight = 1\n").await;
    let client = gw.client();
    // Hold one exchange open: the provider sends one chunk and waits for release.
    let mut held = client
        .get(gw.tls_url(&url(SERVICE, "/source?bytes=200000")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    let _ = held.chunk().await.unwrap();
    let shed = client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["qaqpa-error"], "server.overloaded");
    assert_eq!(shed.headers()["retry-after"], "1");
    gw.provider.seen.release.notify_one();
    while held.chunk().await.unwrap().is_some() {}
    // The exchange has ended, so its slot is free again.
    let again = client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(again.status(), 200);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn per_service_concurrency_limit() {
    let gw = TestGateway::start().await;
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let base = format!("http://{}", gw.plain_addr());
    let mut held = h2c
        .get(format!("{base}{}", url(H2C_SERVICE, "/source?bytes=200000")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    let _ = held.chunk().await.unwrap();
    let refused = h2c
        .get(format!("{base}{}", url(H2C_SERVICE, "/echo/x")))
        .header("X-Road-Client", CLIENT)
        .header("accept", PROBLEM_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("maximum of requests in flight"), "{body}");
    drop(held);
    // Other services are not affected.
    let other =
        h2c.get(format!("{base}{}", url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(other.status(), 200);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn monitoring_records_are_queryable_as_json_and_csv_and_sla_is_reported() {
    let gw = TestGateway::start().await;
    let client = gw.client();
    for i in 0..3 {
        let r = client
            .get(gw.tls_url(&url(SERVICE, "/echo/x")))
            .header("X-Road-Client", CLIENT)
            .header("X-Road-Id", format!("mon-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = client.get(gw.tls_url(&url(DOWN_SERVICE, "/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(r.status(), 502);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let http = reqwest::Client::new();
    let q = |query: &str| http.get(gw.admin_url(&format!("/admin/v1/monitoring?{query}"))).send();
    let enc = |s: &str| s.replace('/', "%2F");
    let records: serde_json::Value = q(&format!("service={}", enc(SERVICE))).await.unwrap().json().await.unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    let first = &records[0];
    assert_eq!(first["id"], "mon-0");
    assert_eq!(first["client"], CLIENT);
    assert_eq!(first["status"], 200);
    assert_eq!(first["node"], "test");
    for k in ["request_in", "request_out", "response_in", "response_out"] {
        assert!(first[k].as_i64().unwrap() > 1_700_000_000_000_000, "{k}: {first}");
    }
    assert!(first["request_in"].as_i64() <= first["request_out"].as_i64());
    assert!(first["response_in"].as_i64() <= first["response_out"].as_i64());
    assert!(first["response_bytes"].as_u64().unwrap() > 0);

    let failed: serde_json::Value = q("code=server.upstream_unavailable").await.unwrap().json().await.unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["service"], DOWN_SERVICE);
    assert_eq!(failed[0]["status"], 502);

    let csv = q(&format!("service={}&format=csv", enc(SERVICE))).await.unwrap().text().await.unwrap();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines[0], qaqpa_gateway::observe::monitoring::CSV_HEADER);
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("\"mon-0\","), "{csv}");

    let empty: serde_json::Value =
        q("from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await.unwrap().json().await.unwrap();
    assert_eq!(empty.as_array().unwrap().len(), 0);
    let bad = q("from=yesterday").await.unwrap();
    assert_eq!(bad.status(), 400);

    let sla: serde_json::Value = http.get(gw.admin_url("/admin/v1/sla")).send().await.unwrap().json().await.unwrap();
    let report = sla.as_array().unwrap().iter().find(|r| r["service"] == SERVICE).unwrap();
    assert_eq!(report["total"], 3);
    assert_eq!(report["availability"], 1.0);
    assert_eq!(report["availability_budget_remaining"], 1.0);

    let stats: serde_json::Value =
        http.get(gw.admin_url("/admin/v1/stats")).send().await.unwrap().json().await.unwrap();
    let svc = stats["services"].as_array().unwrap().iter().find(|s| s["service"] == SERVICE).unwrap();
    assert_eq!(svc["requests_60s"], 3);
    assert_eq!(svc["top_consumers"][0]["client"], CLIENT);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn redis_backend_limits_over_http() {
    let url_redis = std::env::var("QAQPA_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if std::net::TcpStream::connect(url_redis.trim_start_matches("redis://")).is_err() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: Redis at {url_redis} is required");
        eprintln!("SKIPPED: Redis at {url_redis} unreachable");
        return;
    }
    // A fresh key prefix per run, so earlier runs' Redis keys cannot interfere.
    let prefix = format!("qaqpa-test-{}", std::process::id());
    let extra = format!(
        "\n[storage]\nlimits_backend = \"redis\"\nredis_url = \"{url_redis}\"\nredis_prefix = \"{prefix}-{}\"\n\n[[limit]]\nservice = \"{SERVICE}\"\nrate = \"1/min\"\nburst = 1\nquota_day = 1000\n",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let gw = TestGateway::start_with_limits(&extra).await;
    let client = gw.client();
    let call = |id: String| {
        client.get(gw.tls_url(&url(SERVICE, "/echo/x"))).header("X-Road-Client", CLIENT).header("X-Road-Id", id).send()
    };
    assert_eq!(call("r-1".into()).await.unwrap().status(), 200);
    let second = call("r-2".into()).await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["qaqpa-error"], "client.rate_limited");
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let left = sample(&metrics, "qaqpa_quota_remaining", &[("service", SERVICE), ("period", "day")]).unwrap();
    assert!((0.0..1000.0).contains(&left), "{left}");
    gw.running.shutdown().await;
}
