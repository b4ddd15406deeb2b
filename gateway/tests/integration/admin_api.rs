//! The admin API (docs/protocol.md) through the real admin listener: the registry as the
//! gateway enforces it (after a reload too), message-log evidence an auditor checks
//! offline with `qaqpa log verify`, and the API's OpenAPI document, against which
//! schemathesis (a real OpenAPI client, Python) drives every operation.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const TOPIC: &str = "KZ/GOV/000000000001/population-register/person-changed/v1";

fn with_registry_extras(_: &Pki, text: String) -> String {
    format!(
        r#"{text}
[[topic]]
id = "{TOPIC}"
subscribers = ["{CLIENT}"]
retention = "2d"

[[limit]]
service = "{SERVICE}"
client = "{CLIENT}"
rate = "50/s"
quota_day = 1000
"#
    )
}

async fn get_json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.headers()["content-type"], "application/json", "{url}");
    r.json().await.unwrap()
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|v| v["id"] == id).unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[tokio::test]
async fn the_registry_reads_back_as_enforced_and_follows_a_reload() {
    let gw = TestGateway::start_with("header_read_timeout = \"5s\"", with_registry_extras).await;

    let systems = get_json(&gw.admin_url("/admin/v1/systems")).await;
    assert_eq!(systems.as_array().unwrap().len(), 3);
    let portal = find(&systems, CLIENT);
    assert!(portal["may_call"].as_array().unwrap().iter().any(|s| s == SERVICE), "{portal}");
    assert_eq!(portal["provides"], serde_json::json!([]));
    assert_eq!(portal["certificate_sha256"], Value::Null);
    let register = find(&systems, PROVIDER);
    assert_eq!(register["provides"].as_array().unwrap().len(), 6, "{register}");
    assert_eq!(register["topics"], serde_json::json!([TOPIC]));
    assert_eq!(find(&systems, OTHER_CLIENT)["may_call"], serde_json::json!([]));

    let services = get_json(&gw.admin_url("/admin/v1/services")).await;
    let person = find(&services, SERVICE);
    assert_eq!(person["provider"], PROVIDER);
    assert_eq!(person["kind"], "rest");
    assert_eq!(person["access"], serde_json::json!([CLIENT]));
    assert_eq!(person["sla"]["latency_ms"], 500);
    assert_eq!(person["mailbox"], "none");
    assert_eq!(find(&services, SLOW_SERVICE)["timeout_ms"], 300);
    assert_eq!(find(&services, H2C_SERVICE)["protocol"], "http2");
    assert_eq!(find(&services, H2C_SERVICE)["max_concurrency"], 1);

    let grants = get_json(&gw.admin_url(&format!("/admin/v1/access?service={SERVICE}"))).await;
    assert_eq!(grants, serde_json::json!([{ "client": CLIENT, "service": SERVICE }]));
    let none = get_json(&gw.admin_url(&format!("/admin/v1/access?client={OTHER_CLIENT}"))).await;
    assert_eq!(none, serde_json::json!([]));

    let limits = get_json(&gw.admin_url("/admin/v1/limits")).await;
    assert_eq!(limits["backend"], "local");
    assert_eq!(
        limits["rules"],
        serde_json::json!([{ "client": CLIENT, "service": SERVICE, "rate": { "requests": 50, "per_seconds": 1 },
                             "quota_day": 1000, "quota_month": null }])
    );

    let topics = get_json(&gw.admin_url("/admin/v1/topics")).await;
    let topic = find(&topics, TOPIC);
    assert_eq!(topic["owner"], PROVIDER);
    assert_eq!(topic["subscribers"], serde_json::json!([CLIENT]));
    assert_eq!(topic["retention_s"], 2 * 86_400);

    // The operator grants OTHER_CLIENT access and reloads: the views follow.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let granted = text.replace(
        &format!("service = \"{SERVICE}\"\nclients = [\"{CLIENT}\"]"),
        &format!("service = \"{SERVICE}\"\nclients = [\"{CLIENT}\", \"{OTHER_CLIENT}\"]"),
    );
    assert_ne!(granted, text);
    std::fs::write(&gw.config_path, granted).unwrap();
    let reload = || async {
        let r = reqwest::Client::new().post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    assert_eq!(reload().await["restart_needed"], serde_json::json!([]), "an access change applies at once");
    let grants = get_json(&gw.admin_url(&format!("/admin/v1/access?client={OTHER_CLIENT}"))).await;
    assert_eq!(grants, serde_json::json!([{ "client": OTHER_CLIENT, "service": SERVICE }]));
    let systems = get_json(&gw.admin_url("/admin/v1/systems")).await;
    assert_eq!(find(&systems, OTHER_CLIENT)["may_call"], serde_json::json!([SERVICE]));

    // A key the store read at start is reloaded but named: it applies at restart,
    // and stays named on every later reload until then.
    let mut text = std::fs::read_to_string(&gw.config_path).unwrap();
    text.push_str("\n[mailbox]\nvisibility_timeout = \"7s\"\n");
    std::fs::write(&gw.config_path, text).unwrap();
    for _ in 0..2 {
        assert_eq!(reload().await["restart_needed"], serde_json::json!(["mailbox.visibility_timeout"]));
    }
}

#[tokio::test]
async fn evidence_for_one_message_is_served_and_verifies_offline() {
    let gw = TestGateway::start().await;
    let r = gw
        .client()
        .post(gw.tls_url(&format!("/r1/{SERVICE}/echo/1")))
        .header("x-road-client", CLIENT)
        .header("x-road-id", "audit-me-1")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Seals come every 100 ms: ask until the record is sealed (bounded).
    let url = gw.admin_url("/admin/v1/log/evidence?id=audit-me-1");
    let mut bundle = None;
    for _ in 0..50 {
        let r = reqwest::get(&url).await.unwrap();
        if r.status() == 200 {
            bundle = Some(r.bytes().await.unwrap());
            break;
        }
        assert_eq!(r.status(), 404);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bundle = bundle.expect("the record was sealed within 2.5 s");
    let file = gw.pki.dir.path().join("evidence.json");
    std::fs::write(&file, &bundle).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qaqpa"))
        .args(["log", "verify", file.to_str().unwrap(), "--cert", gw.pki.path("gateway.crt").to_str().unwrap()])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.contains("2 sealed records name audit-me-1"), "{printed}");

    let r = reqwest::get(gw.admin_url("/admin/v1/log/evidence?id=never-sent")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "client.unknown_message");
    let r = reqwest::get(gw.admin_url("/admin/v1/log/evidence")).await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_openapi_document_describes_every_answer() {
    let gw = TestGateway::start_with("header_read_timeout = \"5s\"", with_registry_extras).await;
    let doc = get_json(&gw.admin_url("/admin/v1/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/v1/systems",
        "/admin/v1/mailboxes",
        "/admin/v1/dead-letters/{id}/replay",
        "/admin/v1/log/evidence",
        "/admin/v1/log/head",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    // The other direction: every path the admin router names is documented (a
    // path ending in `/` is the prefix of a templated one).
    let router = include_str!("../../src/admin/mod.rs");
    let named =
        router.split('"').filter(|s| s.starts_with("/admin/v1/") || matches!(*s, "/healthz" | "/readyz" | "/metrics"));
    for path in named {
        let documented = paths.contains_key(path) || (path.ends_with('/') && paths.keys().any(|p| p.starts_with(path)));
        assert!(documented, "{path} is served but not in the OpenAPI document");
    }
    if !python_has("schemathesis") {
        return;
    }
    // Schemathesis sends valid and invalid requests to every operation and checks
    // each answer's status, content type and body against the document, that
    // nothing answers 5xx and that invalid input is refused. (The dead-letter ids it
    // invents meet 404s: this gateway has no mailbox services.) It reads the
    // document from a file: loaded from a URL it leaves out the operation that
    // serves the document itself.
    let document = gw.pki.dir.path().join("admin-openapi.json");
    std::fs::write(&document, doc.to_string()).unwrap();
    let (document, base) = (document.to_str().unwrap().to_owned(), gw.admin_url(""));
    let scratch = gw.pki.dir.path().to_owned();
    // The gateway serves from this test's runtime: wait for the run off it.
    let run = move || {
        std::process::Command::new("python3")
        .args([
            "-m",
            "schemathesis.cli",
            "run",
            &document,
            "--url",
            &base,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its caches (.schemathesis, .hypothesis) go beside the PKI, not into the tree.
        .current_dir(&scratch)
        .output()
        .unwrap()
    };
    let out = tokio::task::spawn_blocking(run).await.unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found answers the document does not describe:\n{printed}");
    let operations: usize =
        paths.values().map(|p| p.as_object().unwrap().keys().filter(|k| *k != "parameters").count()).sum();
    assert!(printed.contains(&format!("Tested: {operations}")), "not every operation was exercised:\n{printed}");
}
