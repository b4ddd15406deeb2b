//! The files in deploy/ are checked by the tools that consume them: promtool for
//! the alert rules; the Grafana dashboard and the rules may only name metrics the
//! gateway really exports; kubernetes-validate (the API's JSON schemas, strict) for
//! the manifests; the gateway's own config validation for the cluster config;
//! `nats-server -t` for the NATS cluster file; `systemd-analyze` for the unit.

use std::collections::BTreeSet;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn exported_metric_names() -> BTreeSet<String> {
    let m = qaqpa_gateway::observe::metrics::Metrics::new();
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
    m.connections.with_label_values(&["l"]).set(1);
    m.connections_refused.with_label_values(&["l", "r"]).inc();
    m.upstream_healthy.with_label_values(&["s", "e"]).set(1);
    m.health_checks.with_label_values(&["s", "pass"]).inc();
    m.config_info.with_label_values(&["h", "1", "nats"]).set(1);
    m.config_published.with_label_values(&["refused"]).inc();
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

/// Runs a checking tool; `None` when it is not installed (a failure in CI).
fn run_tool(tool: &str, args: &[&str], envs: &[(&str, &str)]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).envs(envs.iter().copied()).output() {
        Ok(out) => Some(out),
        Err(_) => {
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: {tool} is required");
            eprintln!("SKIPPED: {tool} is not installed");
            None
        }
    }
}

fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const MANIFESTS: [&str; 9] =
    ["namespace", "statefulset", "service", "pdb", "hpa", "networkpolicy", "nats", "redis", "secret.example"];

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    let files: Vec<String> = MANIFESTS.iter().map(|m| format!("{ROOT}/deploy/kubernetes/{m}.yaml")).collect();
    let mut args = vec!["-k", "1.33.0", "--strict"];
    args.extend(files.iter().map(String::as_str));
    let Some(out) = run_tool("kubernetes-validate", &args, &[]) else { return };
    assert_success(&out, "kubernetes-validate");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for kind in [
        "statefulset/qaqpa",
        "service/qaqpa",
        "service/qaqpa-peers",
        "poddisruptionbudget/qaqpa",
        "horizontalpodautoscaler/qaqpa",
        "statefulset/nats",
        "poddisruptionbudget/nats",
        "statefulset/redis",
    ] {
        assert!(report.contains(&format!("passed for resource {kind}")), "{kind} not validated: {report}");
    }
    // The validator itself refuses a misspelt field (so a pass above means something).
    let bad = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&files[1]).unwrap().replace("replicas: 3", "replicaz: 3");
    std::fs::write(bad.path(), text).unwrap();
    let out =
        run_tool("kubernetes-validate", &["-k", "1.33.0", "--strict", bad.path().to_str().unwrap()], &[]).unwrap();
    assert!(!out.status.success(), "a misspelt field passed");

    // Every resource the kustomization lists exists, and what the pods mount is what
    // the config names.
    let kustomization = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/kustomization.yaml")).unwrap();
    for m in MANIFESTS.iter().filter(|m| !m.ends_with(".example")) {
        assert!(kustomization.contains(&format!("- {m}.yaml")), "{m}.yaml not in the kustomization");
    }
    let deployment = std::fs::read_to_string(&files[1]).unwrap();
    for needle in ["mountPath: /etc/qaqpa/pki", "mountPath: /var/lib/qaqpa", "path: /readyz", "path: /healthz"] {
        assert!(deployment.contains(needle), "deployment lacks {needle}");
    }
    // The audit trail outlives its pod: a claim per pod, kept on scale-in, no emptyDir.
    for needle in ["volumeClaimTemplates:", "whenScaled: Retain", "name: data"] {
        assert!(deployment.contains(needle), "the StatefulSet lacks {needle}");
    }
    assert!(!deployment.contains("emptyDir"), "the data directory must not be an emptyDir");
}

#[test]
fn the_cluster_config_is_valid_and_names_each_node_by_its_host() {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/qaqpa.toml")).unwrap();
    // The pod's files, here in a temporary directory with a real dev PKI.
    let dir = tempfile::tempdir().unwrap();
    let systems = [qaqpa_routing::SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap()];
    let ca =
        qaqpa_gateway::cli::pki_files::init(&dir.path().join("pki"), &systems, &["localhost".into()], false).unwrap();
    let crl = ca.revocation_list(&[], time::OffsetDateTime::now_utc(), time::Duration::days(1)).unwrap();
    std::fs::write(dir.path().join("pki/ca.crl"), crl).unwrap();
    let local = text
        .replace("/etc/qaqpa/pki/", &format!("{}/pki/", dir.path().display()))
        .replace("/var/lib/qaqpa", &format!("{}/data", dir.path().display()));
    assert!(!local.contains("/etc/qaqpa"), "every path was mapped");
    // The host's name as `load` finds it, for node = "$HOSTNAME".
    let env = qaqpa_gateway::config::Environment::of_process();
    let config = qaqpa_gateway::config::validate(&local, dir.path(), &env).unwrap_or_else(|e| panic!("{e:#?}"));
    let expected = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_owned());
    assert_eq!(config.node, expected);
    assert!(config.listeners[0].http3 && !config.listeners[0].tls.as_ref().unwrap().crls.is_empty());
    assert!(matches!(config.storage.limits, qaqpa_gateway::config::LimitsBackend::Redis { .. }));
    assert!(
        matches!(config.mailbox.backend, qaqpa_gateway::config::MailboxBackend::Nats { replicas: 3, .. }),
        "mailboxes shared through JetStream, replicated three ways"
    );
    assert!(config.services[0].upstreams.len() >= 2 && config.services[0].health_check.is_some());
}

#[test]
fn the_nats_cluster_file_passes_nats_server() {
    let file = format!("{ROOT}/deploy/cluster/nats.conf");
    let Some(out) = run_tool("nats-server", &["-t", "-c", &file], &[("QAQPA_NODE", "node-1")]) else { return };
    assert_success(&out, "nats-server -t");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("nats-route://").count(), 3, "three routes for three nodes");
    assert!(text.contains("jetstream"));
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(format!("{ROOT}/deploy/systemd/qaqpa.service")).unwrap();
    // Point it at the binary built here, as installing it would.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qaqpa.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/qaqpa", env!("CARGO_BIN_EXE_qaqpa"))).unwrap();
    let path = path.to_str().unwrap();
    let Some(out) = run_tool("systemd-analyze", &["verify", path], &[]) else { return };
    assert_success(&out, "systemd-analyze verify");
    let out = run_tool("systemd-analyze", &["security", "--offline=yes", path], &[]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for qaqpa.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0 (systemd rates 0 safest, 10 unsafe):\n{text}");
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/Dockerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"));
    assert!(text.contains("cargo build --release --locked -p qaqpa-gateway"));
    assert!(text.contains("COPY --from=build /out/qaqpa /usr/local/bin/qaqpa"));
    let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
    assert!(!user.contains("root") && !user.starts_with("USER 0"), "{user}");
}
