//! The operator console (docs/operations.md#console) after real traffic through the
//! gateway: headless Chromium draws the history charts with points, follows the
//! drill-down from a service to one exchange's message-log evidence, and prints the
//! SLA report to PDF (read back with pdftotext); the usage CSV, the API and the
//! offline `qaqpa usage` agree with the requests sent, class by class; history and
//! usage are the same after a restart. Screenshots go to target/console-*.png (and to
//! docs/ with QAQPA_UPDATE_SCREENSHOTS=1).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

use crate::dashboard::chromium;

/// Requests per (service, class) this suite sends as CLIENT; see [`traffic`].
const OK_SERVICE: u64 = 30;
const NOT_FOUND: u64 = 5;
const DOWN_SENT: u64 = 5;
const DOWN_PASSED: u64 = 2;
const SLOW_OK: u64 = 2;
const SLOW_TIMEOUTS: u64 = 3;

/// A rate limit on DOWN_SERVICE (two pass, then refusals) and an SLA on SLOW_SERVICE
/// (whose timeouts are its incidents).
async fn gateway() -> TestGateway {
    let limits = format!(
        "header_read_timeout = \"5s\"\n\n[[limit]]\nservice = \"{DOWN_SERVICE}\"\nclient = \"{CLIENT}\"\nrate = \"{DOWN_PASSED}/min\"\nburst = {DOWN_PASSED}\n"
    );
    TestGateway::start_with(&limits, |_, text| {
        text.replacen(
            "timeout = \"300ms\"\n",
            "timeout = \"300ms\"\nsla = { availability = 99.0, latency = \"1s\", latency_target = 95.0, window = \"24h\" }\n",
            1,
        )
    })
    .await
}

async fn traffic(gw: &TestGateway) {
    let client = gw.client();
    let send = |path: String, id: String| {
        let client = client.clone();
        let url = gw.tls_url(&path);
        async move { client.get(url).header("X-Road-Client", CLIENT).header("X-Road-Id", id).send().await.unwrap().status() }
    };
    for n in 0..OK_SERVICE {
        assert_eq!(send(format!("/r1/{SERVICE}/echo/{n}"), format!("console-ok-{n}")).await, 200);
    }
    for n in 0..NOT_FOUND {
        assert_eq!(send(format!("/r1/{SERVICE}/missing"), format!("console-404-{n}")).await, 404);
    }
    let mut down = BTreeMap::new();
    for n in 0..DOWN_SENT {
        *down.entry(send(format!("/r1/{DOWN_SERVICE}/x"), format!("console-down-{n}")).await.as_u16()).or_insert(0) +=
            1;
    }
    assert_eq!(down, BTreeMap::from([(502, DOWN_PASSED), (429, DOWN_SENT - DOWN_PASSED)]));
    for n in 0..SLOW_OK {
        assert_eq!(send(format!("/r1/{SLOW_SERVICE}/delay?ms=1"), format!("console-fast-{n}")).await, 200);
    }
    for n in 0..SLOW_TIMEOUTS {
        assert_eq!(send(format!("/r1/{SLOW_SERVICE}/slow"), format!("console-slow-{n}")).await, 504);
    }
}

const TOTAL: u64 = OK_SERVICE + NOT_FOUND + DOWN_SENT + SLOW_OK + SLOW_TIMEOUTS;

async fn get_json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// Usage JSON once every exchange's record is in (records are written as each
/// response finishes; bounded wait).
async fn settled_usage(gw: &TestGateway) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let usage = get_json(&gw.admin_url("/admin/v1/usage?group=day")).await;
        let total: u64 = usage["rows"].as_array().unwrap().iter().map(|r| r["exchanges"].as_u64().unwrap()).sum();
        if total >= TOTAL {
            assert_eq!(total, TOTAL, "{usage}");
            return usage;
        }
        assert!(std::time::Instant::now() < deadline, "only {total} of {TOTAL} exchanges recorded: {usage}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// (client, service) → [exchanges, ok, client_error, server_error, refused], summed
/// over periods, from the usage CSV.
fn csv_sums(csv: &str) -> BTreeMap<(String, String), [u64; 5]> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("period,client,service,exchanges,ok,client_error,server_error,refused,signed,bytes_in,bytes_out")
    );
    let mut sums: BTreeMap<(String, String), [u64; 5]> = BTreeMap::new();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 11, "{line}");
        let key = (cols[1].trim_matches('"').to_owned(), cols[2].trim_matches('"').to_owned());
        let sum = sums.entry(key).or_default();
        for (i, col) in cols[3..8].iter().enumerate() {
            sum[i] += col.parse::<u64>().unwrap();
        }
    }
    sums
}

fn expected_sums() -> BTreeMap<(String, String), [u64; 5]> {
    let key = |s: &str| (CLIENT.to_owned(), s.to_owned());
    BTreeMap::from([
        (key(SERVICE), [OK_SERVICE + NOT_FOUND, OK_SERVICE, NOT_FOUND, 0, 0]),
        (key(DOWN_SERVICE), [DOWN_SENT, 0, 0, DOWN_PASSED, DOWN_SENT - DOWN_PASSED]),
        (key(SLOW_SERVICE), [SLOW_OK + SLOW_TIMEOUTS, SLOW_OK, 0, SLOW_TIMEOUTS, 0]),
    ])
}

fn history_count(h: &Value) -> u64 {
    h["points"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum()
}

/// Headless Chromium as the console tests run it (6 s of virtual time).
fn run_browser(browser: &str, profile: &Path, window: &str, extra: &[&str], url: &str) -> std::process::Output {
    crate::dashboard::headless(browser, profile, window, 6000, extra, url)
}

/// The page's DOM after its scripts ran.
async fn dom(browser: &str, url: String) -> String {
    let browser = browser.to_owned();
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = run_browser(&browser, profile.path(), "1400,1000", &["--dump-dom"], &url);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// A screenshot to target/console-NAME.png, and docs/ when asked to update them.
async fn screenshot(browser: &str, url: String, name: &str, window: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join(format!("target/console-{name}.png"));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let (browser, window, shot) = (browser.to_owned(), window.to_owned(), target.clone());
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = run_browser(&browser, profile.path(), &window, &[&format!("--screenshot={}", shot.display())], &url);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    })
    .await
    .unwrap();
    let png = std::fs::read(&target).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot at {}", target.display());
    if std::env::var_os("QAQPA_UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(root.join(format!("docs/console-{name}.png")), png).unwrap();
    }
}

/// The value of `attr` on the first element whose tag text contains `marker`.
fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let from = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(tag[from..from + tag[from..].find('"')?].to_owned())
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("-v").output().is_ok()
}

#[tokio::test]
async fn console_in_chromium_charts_drill_down_usage_and_sla_report() {
    let Some(browser) = chromium() else {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: chromium is required (apt install chromium)");
        eprintln!("SKIPPED: no chromium on this machine");
        return;
    };
    if !tool("pdftotext") {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI: pdftotext is required (apt install poppler-utils)"
        );
        eprintln!("SKIPPED: no pdftotext (poppler-utils) on this machine");
        return;
    }
    let gw = gateway().await;
    traffic(&gw).await;
    settled_usage(&gw).await;

    // Usage: the CSV the console links to sums to what was sent, class by class.
    let r = reqwest::get(gw.admin_url("/admin/v1/usage?format=csv&group=month")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    assert_eq!(csv_sums(&csv), expected_sums(), "{csv}");

    // The charts: points in the rate and latency series, a budget line for an SLA.
    let ui = |hash: String| gw.admin_url(&format!("/ui#{hash}"));
    let enc = |s: &str| s.replace('/', "%2F");
    let html = dom(browser, ui(format!("service={}", enc(SERVICE)))).await;
    let nonzero = |series: &str| -> u64 {
        attr_after(&html, &format!("data-series=\"{series}\""), "data-nonzero")
            .unwrap_or_else(|| panic!("no {series} series in the page: {html}"))
            .parse()
            .unwrap()
    };
    assert!(nonzero("rate") >= 1, "the rate chart has points");
    assert!(nonzero("p50") >= 1 && nonzero("p99") >= 1, "the latency chart has points");
    assert!(nonzero("error_share") >= 1, "the 404s show as errors");
    let budget = attr_after(&html, "data-series=\"budget\"", "data-points").expect("an SLA budget line");
    assert!(budget.parse::<u64>().unwrap() >= 1);
    let d = attr_after(&html, "data-series=\"rate\"", "d").unwrap();
    assert!(d.starts_with('M') && d.matches('L').count() >= 100, "the hour's rate line spans its intervals: {d}");
    // The first drill-down level: the service's consumers, with their counts.
    let consumer = html.find(&format!("data-client=\"{CLIENT}\"")).unwrap_or_else(|| panic!("no consumer row: {html}"));
    let consumer_row = &html[consumer..consumer + html[consumer..].find("</tr>").unwrap()];
    assert!(consumer_row.contains(&format!("<td>{}</td>", OK_SERVICE + NOT_FOUND)), "{consumer_row}");

    // The usage CSV the console links to: the same sums.
    let href = attr_after(&html, "id=\"usage-csv\"", "href").expect("a CSV download link").replace("&amp;", "&");
    assert!(href.starts_with("/admin/v1/usage?") && href.contains("format=csv"), "{href}");
    let linked = reqwest::get(gw.admin_url(&href)).await.unwrap().text().await.unwrap();
    assert_eq!(csv_sums(&linked), expected_sums(), "{href}: {linked}");
    assert!(html.contains("data-series=\"refused\""), "the limits chart is drawn");

    // The history endpoint the charts read, for a service and for all.
    let h = get_json(&gw.admin_url(&format!("/admin/v1/history?service={}&range=1h", enc(SERVICE)))).await;
    assert_eq!(history_count(&h), OK_SERVICE + NOT_FOUND);
    let week = get_json(&gw.admin_url("/admin/v1/history?range=7d")).await;
    assert_eq!(history_count(&week), TOTAL);
    let shed_and_refused: u64 = get_json(&gw.admin_url(&format!("/admin/v1/history?service={}", enc(DOWN_SERVICE))))
        .await["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["refused"].as_u64().unwrap())
        .sum();
    assert_eq!(shed_and_refused, DOWN_SENT - DOWN_PASSED);

    // Second level: the consumer's exchanges, filtered to client errors.
    let filtered = dom(browser, ui(format!("service={}&client={}&status=4xx", enc(SERVICE), enc(CLIENT)))).await;
    let rows = filtered.matches("data-status=\"404\"").count();
    assert_eq!(rows as u64, NOT_FOUND, "{filtered}");
    assert!(!filtered.contains("data-status=\"200\""), "the status filter applies");

    // Last level: one exchange's record and its evidence, once sealed.
    let id = "console-ok-7";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reqwest::get(gw.admin_url(&format!("/admin/v1/log/evidence?id={id}"))).await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "the exchange was never sealed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let exchange_hash = format!("service={}&client={}&exchange={id}", enc(SERVICE), enc(CLIENT));
    let page = dom(browser, ui(exchange_hash.clone())).await;
    assert!(page.contains("id=\"exchange-record\""), "{page}");
    assert!(page.contains(&format!("data-field=\"id\">{id}<")), "the record is the exchange's: {page}");
    assert!(page.contains("data-field=\"status\">200<"));
    let download = attr_after(&page, "id=\"evidence-download\"", "download").expect("a download link for the bundle");
    assert_eq!(download, format!("evidence-{id}.json"));
    let bytes: usize = attr_after(&page, "id=\"evidence-download\"", "data-bytes").unwrap().parse().unwrap();
    let bundle =
        reqwest::get(gw.admin_url(&format!("/admin/v1/log/evidence?id={id}"))).await.unwrap().text().await.unwrap();
    assert_eq!(bytes, bundle.len(), "the download is the bundle the API serves");
    let sealed: usize = page
        .split("id=\"evidence-summary\">")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no evidence summary: {page}"));
    assert!(sealed >= 1, "{page}");

    // The SLA report, printed to PDF and read back.
    let pdf_dir = tempfile::tempdir().unwrap();
    let pdf = pdf_dir.path().join("sla.pdf");
    let report_url = gw.admin_url("/ui/sla-report");
    let (b, p, url) = (browser.to_owned(), pdf.clone(), report_url.clone());
    let printed = tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = run_browser(
            &b,
            profile.path(),
            "1200,900",
            &["--no-pdf-header-footer", &format!("--print-to-pdf={}", p.display())],
            &url,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = Command::new("pdftotext").args(["-layout", p.to_str().unwrap(), "-"]).output().unwrap();
        assert!(text.status.success());
        String::from_utf8_lossy(&text.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(printed.contains("SLA report"), "{printed}");
    assert!(printed.contains("population-register/slow/v1"), "the SLA services are named: {printed}");
    // SLOW_SERVICE: 2 of 5 answered, 3 timeouts (5xx) against a 1 % allowance.
    assert!(printed.contains("40.000 %"), "its availability: {printed}");
    assert!(printed.contains("6000.0 %"), "its budget spent: 3 failures of 0.05 allowed: {printed}");
    assert!(printed.contains("missed"), "{printed}");
    assert!(printed.contains("100.000 %") && printed.contains("met"), "SERVICE met its objective: {printed}");
    assert!(printed.contains("Incidents: 1 "), "the timeouts are one incident: {printed}");

    screenshot(browser, ui(format!("service={}", enc(SERVICE))), "charts", "1400,1700").await;
    screenshot(browser, ui(exchange_hash), "drilldown", "1400,1250").await;
    screenshot(browser, report_url, "sla-report", "1100,1400").await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn history_and_usage_survive_a_restart() {
    let mut gw = gateway().await;
    traffic(&gw).await;
    let before = settled_usage(&gw).await;
    let history = get_json(&gw.admin_url("/admin/v1/history?range=7d")).await;
    assert_eq!(history_count(&history), TOTAL);
    let data_dir = gw.running.gateway.runtime().config.storage.data_dir.clone();
    gw.running.shutdown().await;

    let config = qaqpa_gateway::config::load(&gw.config_path).unwrap();
    gw.running = qaqpa_gateway::server::start(config, Some(gw.config_path.clone())).await.unwrap();
    let after = get_json(&gw.admin_url("/admin/v1/usage?group=day")).await;
    assert_eq!(after["rows"], before["rows"]);
    for (range, service, count) in
        [("7d", SERVICE, OK_SERVICE + NOT_FOUND), ("1h", SERVICE, OK_SERVICE + NOT_FOUND), ("1h", SLOW_SERVICE, 5)]
    {
        let h = get_json(
            &gw.admin_url(&format!("/admin/v1/history?service={}&range={range}", service.replace('/', "%2F"))),
        )
        .await;
        assert_eq!(history_count(&h), count, "{range} {service} after the restart");
    }
    // The budget of SLOW_SERVICE's SLA is overspent: 3 timeouts of 5 against 1 %.
    let slow =
        get_json(&gw.admin_url(&format!("/admin/v1/history?service={}&range=1h", SLOW_SERVICE.replace('/', "%2F"))))
            .await;
    let last = slow["sla"]["budget"].as_array().unwrap().last().unwrap()["remaining"].as_f64().unwrap();
    assert!(last < 0.0, "{slow}");
    gw.running.shutdown().await;

    // Offline, from the data directory alone: the same rows as the API.
    let (ok, out) = qaqpa(&["usage", "--data-dir", data_dir.to_str().unwrap(), "--format", "json"]);
    assert!(ok, "{out}");
    let offline: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(offline, before["rows"]);
    let (ok, csv) = qaqpa(&["usage", "--data-dir", data_dir.to_str().unwrap(), "--group", "month"]);
    assert!(ok, "{csv}");
    assert_eq!(csv_sums(&csv), expected_sums(), "{csv}");
    let (ok, out) = qaqpa(&["usage", "--data-dir", data_dir.to_str().unwrap(), "--from", "tomorrow"]);
    assert!(!ok && out.contains("RFC 3339"), "{out}");
}
