//! The message log through the real gateway and the real `qaqpa log` commands: every
//! exchange recorded and sealed, verified offline; evidence for one message checked
//! alone; tampering detected with the record named; a restart continues the chain,
//! dropping a half-written line a crash left.

use crate::common;

use std::path::Path;

use common::*;

async fn traffic(gw: &TestGateway, prefix: &str, n: usize) {
    let client = gw.client();
    for i in 0..n {
        let path = if i % 3 == 2 { format!("/r1/{SERVICE}/nowhere") } else { format!("/r1/{SERVICE}/echo/{i}") };
        let r = client
            .post(gw.tls_url(&path))
            .header("x-road-client", CLIENT)
            .header("x-road-id", format!("{prefix}-{i}"))
            .body(format!("body {i}"))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 200 || r.status() == 404);
    }
}

async fn restart(gw: TestGateway) -> TestGateway {
    let TestGateway { pki, provider, running, config_path } = gw;
    running.shutdown().await;
    let config = qaqpa_gateway::config::load(&config_path).unwrap();
    let running = qaqpa_gateway::server::start(config, Some(config_path.clone())).await.unwrap();
    TestGateway { pki, provider, running, config_path }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn every_exchange_is_logged_sealed_and_verifiable_offline() {
    let gw = TestGateway::start().await;
    traffic(&gw, "a", 6).await;
    let gw = restart(gw).await;
    let log = gw.pki.dir.path().join("data/log");
    let cert = gw.pki.path("gateway.crt");
    let (log_s, cert_s) = (log.to_str().unwrap(), cert.to_str().unwrap());
    let (ok, out) = qaqpa(&["log", "verify", log_s, "--cert", cert_s]);
    // Each exchange has two records: its forwarding (on disk before the provider
    // was called) and its answer.
    assert!(ok && out.contains("VALID: 12 records"), "{out}");

    // A crash left half a line: the restart drops it and the chain goes on.
    let segment = log.join("seg-000001.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"{\"record\":{\"seq\":7,\"ti");
    std::fs::write(&segment, &bytes).unwrap();
    let gw = restart(gw).await;
    traffic(&gw, "b", 3).await;
    let TestGateway { pki, running, .. } = gw;
    running.shutdown().await;
    let (ok, out) = qaqpa(&["log", "verify", log_s, "--cert", cert_s]);
    assert!(ok && out.contains("VALID: 18 records"), "{out}");

    // Evidence for one message, checked alone; a changed bundle is not.
    let bundle = pki.dir.path().join("evidence.json");
    let (ok, out) = qaqpa(&["log", "export", "--dir", log_s, "--id", "b-1", "--out", bundle.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = qaqpa(&["log", "verify", bundle.to_str().unwrap(), "--cert", cert_s]);
    assert!(ok && out.contains("2 sealed records name b-1"), "{out}");
    assert!(out.contains("on test: forward (exchange b-1"), "the forwarding is evidence too: {out}");
    let text = std::fs::read_to_string(&bundle).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records: Vec<serde_json::Value> = json["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["record"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(records[0]["record"]["event"], "forward", "the forwarding comes first: {records:?}");
    assert_eq!(records[0]["record"]["status"], 0);
    let record = &records[1];
    assert_eq!(record["record"]["client"], CLIENT);
    assert!(record["record"]["body_sha512"].is_string(), "the body's digest is logged, not the body");
    std::fs::write(&bundle, text.replace("\\\"status\\\":200", "\\\"status\\\":500")).unwrap();
    let (ok, out) = qaqpa(&["log", "verify", bundle.to_str().unwrap(), "--cert", cert_s]);
    assert!(!ok && out.contains("INVALID"), "{out}");

    // Tampering with a copy: one byte of record 2 changed.
    let copy = pki.dir.path().join("tampered");
    copy_dir(&log, &copy);
    let segment = copy.join("seg-000001.log");
    let text = std::fs::read_to_string(&segment).unwrap();
    let changed = text.replacen("\"id\":\"a-1\"", "\"id\":\"a-X\"", 1);
    assert_ne!(changed, text);
    std::fs::write(&segment, changed).unwrap();
    let (ok, out) = qaqpa(&["log", "verify", copy.to_str().unwrap(), "--cert", cert_s]);
    assert!(!ok && out.contains("(record 3)"), "a-1 is the second exchange: its forwarding is record 3: {out}");
    // Signed by another certificate: the seal check names it.
    let (ok, out) = qaqpa(&["log", "verify", log_s, "--cert", pki.path("egov-portal.crt").to_str().unwrap()]);
    assert!(!ok && out.contains("another certificate"), "{out}");
}

/// `message_log = "async"` (unsigned bulk traffic): exchanges are answered without
/// waiting for the log and have no forwarding record, yet every one is logged.
#[tokio::test]
async fn an_async_log_service_answers_without_waiting_and_is_still_logged() {
    let gw = TestGateway::start_with("", |_, text| {
        text.replacen(&format!("id = \"{SERVICE}\"\n"), &format!("id = \"{SERVICE}\"\nmessage_log = \"async\"\n"), 1)
    })
    .await;
    let route = gw.running.gateway.runtime().routes.get(SERVICE).unwrap().clone();
    assert_eq!(route.message_log, qaqpa_gateway::config::LogMode::Async);
    traffic(&gw, "bulk", 4).await;
    let TestGateway { pki, running, .. } = gw;
    running.shutdown().await;
    let log = pki.dir.path().join("data/log");
    let cert = pki.path("gateway.crt");
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", cert.to_str().unwrap()]);
    assert!(ok && out.contains("VALID: 4 records"), "four answers, no forwarding records: {out}");
}
