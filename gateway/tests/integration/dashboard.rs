//! The operator dashboard in a real browser: headless Chromium loads /ui from a
//! gateway carrying traffic; the DOM must show the services with non-zero rates,
//! and a screenshot is written to target/ui-screenshot.png for people to look at.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

pub(crate) fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Headless Chromium on `url` with a fresh `profile`, a `window` ("W,H") and
/// `budget_ms` of virtual time for the page's scripts; `extra` says what to dump.
pub(crate) fn headless(
    browser: &str,
    profile: &std::path::Path,
    window: &str,
    budget_ms: u32,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--window-size={window}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[tokio::test]
async fn dashboard_shows_live_services_in_chromium() {
    let Some(browser) = chromium() else {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: chromium is required (apt install chromium)");
        eprintln!("SKIPPED: no chromium on this machine");
        return;
    };
    const NOTICES: &str = "KZ/GOV/000000000001/population-register/notices/v1";
    let gw = TestGateway::start_with("", |_, text| {
        format!(
            "{text}\n[[service]]\nid = \"{NOTICES}\"\nkind = \"rest\"\nupstream = [\"http://127.0.0.1:9/\"]\nmailbox = \"pull\"\n\n[[access]]\nservice = \"{NOTICES}\"\nclients = [\"{CLIENT}\"]\n"
        )
    })
    .await;
    let client = gw.client();
    for n in 0..3 {
        let r = client
            .post(gw.tls_url(&format!("/a1/{NOTICES}")))
            .header("X-Road-Client", CLIENT)
            .header("X-Road-Id", format!("dash-{n}"))
            .body("notice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    for _ in 0..20 {
        let r = client
            .get(gw.tls_url(&format!("/r1/{SERVICE}/echo/x")))
            .header("X-Road-Client", CLIENT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let profile = tempfile::tempdir().unwrap();
    let ui = gw.admin_url("/ui");
    let browser = browser.to_owned();
    let (dom, shot) = {
        let ui = ui.clone();
        let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshot.png");
        // The target directory may live elsewhere (CARGO_TARGET_DIR): make this one.
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        tokio::task::spawn_blocking(move || {
            let dom = headless(&browser, profile.path(), "1500,700", 4000, &["--dump-dom"], &ui);
            let shot = headless(
                &browser,
                profile.path(),
                "1500,700",
                4000,
                &[&format!("--screenshot={}", target.display())],
                &ui,
            );
            (dom, (shot, target))
        })
        .await
        .unwrap()
    };
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let row_start =
        html.find(&format!("data-service=\"{SERVICE}\"")).unwrap_or_else(|| panic!("no row for {SERVICE}: {html}"));
    let row = &html[row_start..html[row_start..].find("</tr>").map_or(html.len(), |e| row_start + e)];
    let rate: f64 = row
        .split("class=\"rate\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate cell in {row}"));
    assert!(rate > 0.0, "rate shown as {rate} after 20 requests: {row}");
    assert!(row.contains(CLIENT), "top consumers should name the client: {row}");
    assert!(html.contains(&format!("data-service=\"{DOWN_SERVICE}\"")), "every registered service has a row");
    assert!(html.contains("id=\"node\">test<"), "node name shown");
    let queue = html.find(&format!("data-queue=\"{NOTICES}\"")).unwrap_or_else(|| panic!("no mailbox row: {html}"));
    let queue_row = &html[queue..queue + html[queue..].find("</tr>").unwrap()];
    assert!(queue_row.contains("class=\"ready\">3<"), "three messages ready: {queue_row}");
    assert!(html.contains("id=\"dead-letters\">0<"), "no dead letters shown as 0");
    let (shot, target) = shot;
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let png = std::fs::read(&target).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot at {}", target.display());
    gw.running.shutdown().await;
}
