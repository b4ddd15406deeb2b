//! The files in deploy/ are checked by the tools that consume them: promtool for
//! the alert rules; the Grafana dashboard and the rules may only name metrics the
//! gateway really exports.

use std::collections::BTreeSet;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn exported_metric_names() -> BTreeSet<String> {
    let m = qaqpa_gateway::metrics::Metrics::new();
    // Vectors appear in the output only once they have a child.
    m.requests.with_label_values(&["c", "s", "ok"]).inc();
    m.duration.with_label_values(&["s"]).observe(0.1);
    m.upstream_duration.with_label_values(&["s"]).observe(0.1);
    m.request_bytes.with_label_values(&["s"]).inc();
    m.response_bytes.with_label_values(&["s"]).inc();
    m.rejections.with_label_values(&["c", "s", "rate"]).inc();
    m.quota_remaining.with_label_values(&["c", "s", "day"]).set(1);
    m.tls_failures.with_label_values(&["l", "r"]).inc();
    m.reloads.with_label_values(&["ok"]).inc();
    m.sla_availability.with_label_values(&["s"]).set(1.0);
    m.sla_latency.with_label_values(&["s"]).set(1.0);
    m.sla_budget.with_label_values(&["s", "availability"]).set(1.0);
    let text = String::from_utf8(m.render()).unwrap();
    text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).map(str::to_owned).collect()
}

fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("qaqpa_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn alert_rules_pass_promtool_and_name_real_metrics() {
    let rules = format!("{ROOT}/deploy/prometheus/alerts.yml");
    match Command::new("promtool").args(["check", "rules", &rules]).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI: promtool is required (apt install prometheus)"
            );
            eprintln!("SKIPPED promtool check rules: promtool not installed");
        }
    }
    let exported = exported_metric_names();
    let text = std::fs::read_to_string(&rules).unwrap();
    for name in referenced_metrics(&text) {
        assert!(exported.contains(&name), "alerts.yml uses {name}, which the gateway does not export ({exported:?})");
    }
}

#[test]
fn grafana_dashboard_is_valid_json_over_exported_metrics() {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/grafana/qaqpa.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let exported = exported_metric_names();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = referenced_metrics(expr);
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                let base = name.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
                assert!(
                    exported.contains(&name) || exported.contains(&format!("{base}_bucket")),
                    "panel {} uses {name}, which the gateway does not export",
                    panel["title"]
                );
            }
        }
    }
}
