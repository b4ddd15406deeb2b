//! The message log's promise under faults, through the real gateway: no answer off
//! the record when the disk fills (503 `server.log_unavailable`, not ready, and
//! back by itself), none lost to a kill -9 under load, and trailing batches
//! deleted after the fact found against the published head. (Each write and sync
//! point failing, and an unsealed record edited while the gateway was down, are
//! shown at unit level in `observe::message_log::tests`.)

use crate::common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::async_bus::free_addr;
use common::*;

/// Message ids of every record in a log directory.
fn logged_ids(log: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    for (_, bytes) in qaqpa_gateway::observe::message_log::read_segments(log).unwrap() {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(qaqpa_certs::msglog::Line::Record(r)) = serde_json::from_slice(line) {
                ids.insert(r.id);
            }
        }
    }
    ids
}

/// Senders that post to the echo service until stopped, each 2xx id kept: what
/// the clients were told was done, which the log must hold.
struct Load {
    answered: Arc<Mutex<Vec<String>>>,
    refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: reqwest::Client, url: String, prefix: &str, senders: usize) -> Self {
        let answered: Arc<Mutex<Vec<String>>> = Arc::default();
        let (refused, stop, next) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let tasks = (0..senders)
            .map(|_| {
                let (client, url, answered, refused, stop, next) =
                    (client.clone(), url.clone(), answered.clone(), refused.clone(), stop.clone(), next.clone());
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("{prefix}-{}", next.fetch_add(1, Ordering::Relaxed));
                        let sent = client
                            .post(format!("{url}/{id}"))
                            .header("x-road-client", CLIENT)
                            .header("x-road-id", &id)
                            .body(vec![b'x'; 512])
                            .send()
                            .await;
                        let Ok(r) = sent else { return };
                        if r.status().is_success() {
                            answered.lock().unwrap().push(id);
                        } else {
                            let code = r.headers().get("qaqpa-error").and_then(|v| v.to_str().ok()).unwrap_or("");
                            assert_eq!((r.status().as_u16(), code), (503, "server.log_unavailable"));
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self { answered, refused, stop, tasks }
    }

    fn answered(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.answered.lock().unwrap().clone()
    }
}

async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A tmpfs of 2 MiB, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` where mounting is not allowed (not root); CI must be able to.
    fn mount(dir: &Path) -> Option<Self> {
        let at = dir.join("small-disk");
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", at.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run the full-disk test: mount a tmpfs");
            eprintln!("skipped: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(Self(at))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        while file.write_all(&[7u8; 4096]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_log_unavailable_and_resumes_by_itself() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(scratch.path()) else { return };
    let data = disk.0.join("data");
    let gw =
        TestGateway::start_with("", |_, text| format!("{text}\n[storage]\ndata_dir = \"{}\"\n", data.display())).await;
    let load = Load::start(gw.client(), gw.tls_url(&format!("/r1/{SERVICE}/echo")), "disk", 4);
    wait_until("answers under load", Duration::from_secs(10), async || load.answered() >= 20).await;

    let filler = disk.fill();
    wait_until("refusals once the disk is full", Duration::from_secs(10), async || {
        load.refused.load(Ordering::Relaxed) >= 5
    })
    .await;
    assert_eq!(status(&gw.admin_url("/readyz")).await, 503, "not ready while the log cannot write");
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("qaqpa_message_log_available 0"), "{metrics}");
    assert!(!metrics.contains("qaqpa_message_log_write_failures_total 0"), "{metrics}");

    std::fs::remove_file(filler).unwrap();
    wait_until("ready again", Duration::from_secs(10), async || status(&gw.admin_url("/readyz")).await == 200).await;
    let before = load.answered();
    wait_until("answers again", Duration::from_secs(10), async || load.answered() > before + 10).await;
    let answered = load.stop().await;
    gw.running.shutdown().await;

    let log = data.join("log");
    let cert = gw.pki.path("gateway.crt");
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", cert.to_str().unwrap()]);
    assert!(ok, "{out}");
    let logged = logged_ids(&log);
    let missing: Vec<_> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(missing.is_empty(), "answered but not logged: {missing:?}");
}

/// A config for a `qaqpa run` child on fixed loopback ports (its own PKI and provider).
struct Spawnable {
    pki: Pki,
    provider: Provider,
    data: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
}

async fn spawnable() -> Spawnable {
    let pki = Pki::new();
    let provider = start_provider(false).await;
    let (data, plain, admin) = (free_addr(), free_addr(), free_addr());
    let text = config_text(provider.addr, free_addr(), free_addr(), "")
        .replacen("127.0.0.1:0", &data.to_string(), 1)
        .replacen("127.0.0.1:0", &plain.to_string(), 1)
        .replacen("127.0.0.1:0", &admin.to_string(), 1);
    let config = write_config(pki.dir.path(), &text);
    Spawnable { pki, provider, data, admin, config }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_leaves_no_answered_exchange_unlogged() {
    let Spawnable { pki, provider: _provider, data, admin, config } = spawnable().await;
    let client = pki.client(Some("egov-portal")).build().unwrap();
    let url = format!("https://localhost:{}/r1/{SERVICE}/echo", data.port());
    // Killed at a different moment each run, each restart recovering what the
    // crash before it left.
    let mut answered = Vec::new();
    for run in 0..3u32 {
        let after = 100
            + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 300)
                as usize;
        let mut child = run_gateway(&config);
        wait_ready(admin).await;
        let load = Load::start(client.clone(), url.clone(), &format!("k9-{run}"), 16);
        wait_until("answers under load", Duration::from_secs(20), async || load.answered() >= after).await;
        child.0.kill().unwrap(); // SIGKILL: no drain, no last seal
        child.0.wait().unwrap();
        answered.extend(load.stop().await);
    }

    // The restart recovers the log (seals what the crash left) before it is ready.
    let restarted = run_gateway(&config);
    wait_ready(admin).await;
    drop(restarted);
    let log = pki.dir.path().join("data/log");
    let cert = pki.path("gateway.crt");
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", cert.to_str().unwrap()]);
    assert!(ok, "{out}");
    let logged = logged_ids(&log);
    let missing: Vec<_> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(missing.is_empty(), "{} answered, {} of them not logged: {missing:?}", answered.len(), missing.len());
}

/// A crash after the request went to the provider and before it answered: the
/// forwarding is on the record (what the provider was sent, by whom), though the
/// exchange was never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_forwarding_and_answering_leaves_the_forwarding_on_record() {
    let Spawnable { pki, provider, data, admin, config } = spawnable().await;
    let mut child = run_gateway(&config);
    wait_ready(admin).await;
    let client = pki.client(Some("egov-portal")).build().unwrap();
    let url = format!("https://localhost:{}/r1/{SERVICE}/hang", data.port());
    let pending = tokio::spawn(client.get(url).header("x-road-client", CLIENT).header("x-road-id", "hung-1").send());
    let seen = provider.seen.clone();
    wait_until("the provider has the request", Duration::from_secs(10), async || {
        seen.requests.load(Ordering::SeqCst) >= 1
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL while the provider holds the request
    child.0.wait().unwrap();
    assert!(pending.await.unwrap().is_err(), "the client was never answered");

    let restarted = run_gateway(&config);
    wait_ready(admin).await;
    drop(restarted);
    let log = pki.dir.path().join("data/log");
    let cert = pki.path("gateway.crt");
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", cert.to_str().unwrap()]);
    assert!(ok, "{out}");
    let mut records = Vec::new();
    for (_, bytes) in qaqpa_gateway::observe::message_log::read_segments(&log).unwrap() {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line: serde_json::Value = serde_json::from_slice(line).unwrap();
            if line["record"]["id"] == "hung-1" {
                records.push(line["record"].clone());
            }
        }
    }
    assert_eq!(records.len(), 1, "the forwarding only, no answer: {records:?}");
    assert_eq!((records[0]["event"].as_str(), records[0]["status"].as_u64()), (Some("forward"), Some(0)));
    assert_eq!((records[0]["client"].as_str(), records[0]["service"].as_str()), (Some(CLIENT), Some(SERVICE)));
}

#[tokio::test]
async fn deleted_trailing_batches_are_found_against_the_published_head() {
    let gw = TestGateway::start().await;
    let client = gw.client();
    let send = async |id: String| {
        let url = gw.tls_url(&format!("/r1/{SERVICE}/echo/{id}"));
        let r = client.get(url).header("x-road-client", CLIENT).header("x-road-id", id).send().await.unwrap();
        assert_eq!(r.status(), 200);
    };
    let head = async || -> serde_json::Value {
        reqwest::get(gw.admin_url("/admin/v1/log/head")).await.unwrap().json().await.unwrap()
    };
    send("h-1".into()).await;
    // Seals come at most 100 ms after a batch's first record.
    wait_until("a first seal", Duration::from_secs(5), async || head().await["batch"] == 1).await;
    let first = head().await;
    send("h-2".into()).await;
    send("h-3".into()).await;
    wait_until("a second seal", Duration::from_secs(5), async || head().await["batch"].as_u64() >= Some(2)).await;
    let published = head().await;
    let n = published["batch"].as_u64().unwrap();
    assert_eq!(published["available"], true);
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let hash = published["hash"].as_str().unwrap();
    assert!(metrics.contains(&format!("qaqpa_message_log_head_batch{{hash=\"{hash}\"}} {n}")), "{metrics}");
    let TestGateway { pki, running, .. } = gw;
    running.shutdown().await;

    let log = pki.dir.path().join("data/log");
    let cert = pki.path("gateway.crt").to_str().unwrap().to_owned();
    let expect = published["head"].as_str().unwrap();
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", &cert, "--expect-head", expect]);
    assert!(ok && out.contains(&format!("head {expect}")), "{out}");

    // The last batch cut off at the seal before it: every remaining link and seal
    // holds, so only the published head shows what is gone.
    let segment = log.join("seg-000001.log");
    let text = std::fs::read_to_string(&segment).unwrap();
    let first_seal_end = text.find("{\"seal\"").map(|at| at + text[at..].find('\n').unwrap() + 1).unwrap();
    std::fs::write(&segment, &text[..first_seal_end]).unwrap();
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", &cert]);
    assert!(ok && out.contains(&format!("head {}", first["head"].as_str().unwrap())), "{out}");
    let (ok, out) = qaqpa(&["log", "verify", log.to_str().unwrap(), "--cert", &cert, "--expect-head", expect]);
    assert!(!ok && out.contains("ends at seal 1") && out.contains(&format!("batches 2..={n} are missing")), "{out}");
}
