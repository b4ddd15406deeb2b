//! The writer under faults: a shim fails each write and sync point in turn; group
//! commit; recovery of a crashed log, an edited unsealed record and a cut line.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qaqpa_certs::msglog::{self, Entry, Line, Record};

use super::*;

/// One key for every test: a restarted log must seal with the key it started with.
fn signer() -> Signer {
    static KEY: std::sync::OnceLock<(String, Vec<u8>)> = std::sync::OnceLock::new();
    let (pem, cert) = KEY.get_or_init(|| {
        let now = time::OffsetDateTime::now_utc();
        let ca = qaqpa_certs::pki::DevCa::generate("log test", now).unwrap();
        let pair = ca.issue_server(&["gateway"], now).unwrap();
        (pair.key_pem.clone(), pair.cert_der().unwrap().to_vec())
    });
    Signer { key: qaqpa_certs::keys::SigningKey::from_pem(pem.as_bytes()).unwrap(), chain: vec![cert.clone()] }
}

fn metrics() -> LogMetrics {
    LogMetrics {
        written: prometheus::IntCounter::new("w", "w").unwrap(),
        dropped: prometheus::IntCounter::new("d", "d").unwrap(),
        failures: prometheus::IntCounter::new("f", "f").unwrap(),
        available: prometheus::IntGauge::new("a", "a").unwrap(),
        head: prometheus::IntGaugeVec::new(prometheus::Opts::new("h", "h"), &["hash"]).unwrap(),
    }
}

fn entry(record: Record) -> Entry {
    Entry::encode(&msglog::Fields::of(&record))
}

fn record(id: &str) -> Record {
    Record {
        seq: 0,
        time: 1,
        node: "node-1".into(),
        id: id.into(),
        client: "KZ/GOV/1/a".into(),
        service: "KZ/GOV/2/b/s".into(),
        status: 200,
        code: None,
        body_sha512: None,
        signature: None,
        event: None,
        bus_id: None,
        message: None,
        attempt: None,
        prev: String::new(),
    }
}

/// A log that seals only when full or closed (timed seals would race the test).
fn open(dir: &Path, faults: &Arc<Faults>) -> (MessageLog, LogMetrics) {
    let m = metrics();
    let options = Options { interval: Duration::from_secs(3600), faults: Some(faults.clone()), ..Options::default() };
    (MessageLog::open_with(dir, signer(), m.clone(), None, options).unwrap(), m)
}

fn ids(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, bytes) in read_segments(dir).unwrap() {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(Line::Record(r)) = serde_json::from_slice::<Line>(line) {
                out.push(r.id);
            }
        }
    }
    out
}

fn verify(dir: &Path) -> msglog::Summary {
    msglog::verify(&read_segments(dir).unwrap(), None).unwrap_or_else(|f| panic!("{f}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_wait_for_one_sync_per_group_and_the_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let (log, m) = open(dir.path(), &faults);
    let log = Arc::new(log);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let log = log.clone();
        tasks.spawn(async move { log.commit(entry(record(&format!("m-{i}")))).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    // Every commit returned after its record was synced, and was counted then.
    assert_eq!(m.written.get(), 400);
    let syncs = faults.syncs.load(Ordering::Relaxed);
    assert!(syncs < 400, "group commit: {syncs} syncs for 400 records");
    log.close();
    let summary = verify(dir.path());
    assert_eq!(summary.records, 400);
    assert_eq!(log.head(), summary.head, "the published head is the last seal on disk");
}

/// Each write or sync point fails once: the exchange in that group is refused, the
/// log turns unavailable, the files are cut back, and it resumes by itself.
#[tokio::test]
async fn a_failure_at_each_write_point_refuses_cuts_back_and_resumes() {
    let points = [
        Faults::SEGMENT_WRITE,
        Faults::SEGMENT_SYNC,
        Faults::JOURNAL_WRITE,
        Faults::JOURNAL_SYNC,
        Faults::COMPANION,
        // The cut itself fails too: nothing is written until it succeeds.
        Faults::SEGMENT_WRITE | Faults::TRUNCATE,
    ];
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let m = metrics();
    let options = Options { interval: Duration::from_secs(3600), faults: Some(faults.clone()), ..Options::default() };
    let companion: Companion = Box::new(|| Ok(()));
    let log = MessageLog::open_with(dir.path(), signer(), m.clone(), Some(companion), options).unwrap();
    let mut expected = Vec::new();
    for (round, &point) in points.iter().enumerate() {
        let ok = format!("ok-{round}");
        log.commit(entry(record(&ok))).await.unwrap();
        expected.push(ok);
        faults.set(point | Faults::PROBE);
        assert_eq!(log.commit(entry(record(&format!("lost-{round}")))).await, Err(LogUnavailable), "point {point}");
        assert!(!log.is_available());
        assert_eq!(m.available.get(), 0);
        // Refused at once while unavailable, and not counted as written.
        assert_eq!(log.commit(entry(record("refused"))).await, Err(LogUnavailable));
        assert_eq!(m.written.get(), expected.len() as u64);
        faults.set(0);
        let started = Instant::now();
        while !log.is_available() {
            assert!(started.elapsed() < Duration::from_secs(5), "the log resumes by itself");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = format!("after-{round}");
        log.commit(entry(record(&after))).await.unwrap();
        expected.push(after);
    }
    assert_eq!(m.failures.get(), points.len() as u64);
    log.close();
    verify(dir.path());
    assert_eq!(ids(dir.path()), expected, "exactly the committed records, in order, nothing half-written");
}

/// The log as a kill -9 leaves it: records synced, not sealed.
async fn crashed(dir: &Path, n: usize) -> std::path::PathBuf {
    let faults = Arc::new(Faults::default());
    let (log, _) = open(dir, &faults);
    log.commit(entry(record("sealed-0"))).await.unwrap();
    log.close();
    let (log, _) = open(dir, &faults);
    for i in 0..n {
        log.commit(entry(record(&format!("m-{i}")))).await.unwrap();
    }
    let image = dir.with_extension("image");
    std::fs::create_dir_all(&image).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), image.join(entry.file_name())).unwrap();
    }
    log.close();
    image
}

#[tokio::test]
async fn recovery_seals_what_the_journal_proves() {
    let dir = tempfile::tempdir().unwrap();
    let image = crashed(&dir.path().join("log"), 3).await;
    assert!(msglog::verify(&read_segments(&image).unwrap(), None).unwrap_err().reason.contains("not sealed"));
    // A crash also left half a line.
    let segment = segment_path(&image, 1);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"{\"record\":{\"seq\":5,\"ti");
    std::fs::write(&segment, bytes).unwrap();
    let faults = Arc::new(Faults::default());
    let (log, _) = open(&image, &faults);
    assert_eq!(log.head().unwrap().batch, 2, "the crash's records sealed as batch 2");
    log.commit(entry(record("next"))).await.unwrap();
    log.close();
    assert_eq!(verify(&image).records, 5);
    assert_eq!(ids(&image), ["sealed-0", "m-0", "m-1", "m-2", "next"]);
}

#[tokio::test]
async fn recovery_never_seals_an_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    for (edited, kept) in [(2usize, 2usize), (0, 0)] {
        let image = crashed(&dir.path().join(format!("log-{edited}")), 3).await;
        // The last unsealed record is edited the hardest way: only the journal's
        // anchor can tell (no line after it holds its hash); the first, by the chain.
        let target = if edited == 2 { "m-2" } else { "m-0" };
        let segment = segment_path(&image, 1);
        let text = std::fs::read_to_string(&segment).unwrap();
        let changed = text.replace(&format!("\"id\":\"{target}\""), "\"id\":\"forged\"");
        assert_ne!(changed, text);
        std::fs::write(&segment, changed).unwrap();
        let faults = Arc::new(Faults::default());
        let (log, _) = open(&image, &faults);
        log.close();
        verify(&image);
        let mut expected = vec!["sealed-0".to_owned()];
        expected.extend((0..3).take(kept).map(|i| format!("m-{i}")));
        assert_eq!(ids(&image), expected, "edited {target}");
        let aside: Vec<_> = std::fs::read_dir(&image)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("unproven-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let moved = std::fs::read_to_string(image.join(&aside[0])).unwrap();
        assert!(moved.contains("forged"), "the unproven lines are kept for a person");
    }
}

/// A timed seal whose write fails leaves the batch's records (already on disk)
/// in the next seal: the log verifies after the disk comes back.
#[tokio::test]
async fn a_failed_seal_keeps_its_batch_for_the_next_seal() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let m = metrics();
    let options = Options { interval: Duration::from_millis(30), faults: Some(faults.clone()), ..Options::default() };
    let log = MessageLog::open_with(dir.path(), signer(), m.clone(), None, options).unwrap();
    log.commit(entry(record("before"))).await.unwrap();
    // The seal of "before" is due in 30 ms; its write fails.
    faults.set(Faults::SEGMENT_WRITE | Faults::PROBE);
    let started = Instant::now();
    while log.is_available() {
        assert!(started.elapsed() < Duration::from_secs(5), "the timed seal was tried");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.failures.get(), 1);
    faults.set(0);
    while !log.is_available() {
        assert!(started.elapsed() < Duration::from_secs(5), "the log resumes by itself");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.commit(entry(record("after"))).await.unwrap();
    log.close();
    assert_eq!(ids(dir.path()), ["before", "after"]);
    assert_eq!(verify(dir.path()).records, 2);
}

/// A sender's id is unique per client only: two clients' messages with one id are
/// never mixed in one bundle; the client (or the bus id) picks one, with its steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_by_a_sender_id_two_clients_used_is_refused_or_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let (log, _) = open(dir.path(), &faults);
    let send = |client: &str, bus: &str| Record {
        client: client.into(),
        event: Some("send".into()),
        bus_id: Some(bus.into()),
        ..record("m-1")
    };
    let take = |bus: &str| Record {
        client: "KZ/GOV/2/b".into(),
        event: Some("take".into()),
        bus_id: Some(bus.into()),
        message: Some("m-1".into()),
        ..record(&format!("take-{bus}"))
    };
    let alone = Record { message: Some("m-9".into()), ..take("bus-9") };
    for r in
        [send("KZ/GOV/1/a", "bus-a"), send("KZ/GOV/1/c", "bus-c"), take("bus-a"), take("bus-c"), alone, record("m-2")]
    {
        log.commit(entry(r)).await.unwrap();
    }
    log.close();
    let dirs = [dir.path().to_path_buf()];
    let names = |b: &msglog::Bundle| -> Vec<String> {
        let mut v: Vec<String> = b
            .evidence
            .iter()
            .map(|e| match serde_json::from_str(&e.record).unwrap() {
                Line::Record(r) => format!("{} {}", r.id, r.client),
                Line::Seal(_) => unreachable!(),
            })
            .collect();
        v.sort();
        v
    };
    match find_evidence(&dirs, "m-1", None) {
        Err(EvidenceError::Ambiguous { clients, .. }) => assert_eq!(clients, ["KZ/GOV/1/a", "KZ/GOV/1/c"]),
        other => panic!("{other:?}"),
    }
    let a = find_evidence(&dirs, "m-1", Some("KZ/GOV/1/a")).unwrap();
    assert_eq!(names(&a), ["m-1 KZ/GOV/1/a", "take-bus-a KZ/GOV/2/b"]);
    msglog::verify_bundle(&a, None).unwrap();
    let by_bus = find_evidence(&dirs, "bus-c", None).unwrap();
    assert_eq!(names(&by_bus), ["m-1 KZ/GOV/1/c", "take-bus-c KZ/GOV/2/b"]);
    // Only a step at hand (another node's log holds the send): found by the bus id it carries.
    let alone = find_evidence(&dirs, "m-9", None).unwrap();
    assert_eq!(names(&alone), ["take-bus-9 KZ/GOV/2/b"]);
    // A synchronous exchange: its own record.
    assert_eq!(names(&find_evidence(&dirs, "m-2", None).unwrap()), ["m-2 KZ/GOV/1/a"]);
    assert!(find_evidence(&dirs, "nobody", None).unwrap().evidence.is_empty());
}

/// A live segment is written inside zeroed space claimed ahead of its end (a sync
/// then writes data, not the file's size); an auditor's copy of it, zeros and
/// all, verifies and yields evidence, and a closed segment keeps no zeros.
#[tokio::test]
async fn a_live_segment_ends_in_claimed_zeros_that_every_reader_skips() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let options = Options { interval: Duration::from_millis(20), faults: Some(faults.clone()), ..Options::default() };
    let log = MessageLog::open_with(dir.path(), signer(), metrics(), None, options).unwrap();
    for i in 0..5 {
        log.commit(entry(record(&format!("live-{i}")))).await.unwrap();
    }
    let started = Instant::now();
    while log.head().is_none() {
        assert!(started.elapsed() < Duration::from_secs(5), "the timed seal came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let segment = segment_path(dir.path(), 1);
    let raw = std::fs::read(&segment).unwrap();
    let written = msglog::written(&raw).len();
    assert!(raw.len() > written && raw[written..].iter().all(|&b| b == 0), "zeroed space past the end");
    assert_eq!(raw[written - 1], b'\n');
    // The auditor's copy, as found on disk.
    let summary = msglog::verify(&[("seg-000001.log".into(), raw.clone())], None).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(summary.records, 5);
    assert_eq!(msglog::evidence([&raw], "live-3").len(), 1);
    assert_eq!(find_evidence(&[dir.path().to_owned()], "live-3", None).unwrap().evidence.len(), 1);
    log.close();
    assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, written, "closed: the zeros given back");
    assert_eq!(verify(dir.path()).records, 5);
}

/// Records nobody waits for (refusals, asynchronous services) gather; the first
/// record an exchange waits for takes them along in one sync.
#[tokio::test]
async fn unawaited_records_gather_until_an_exchange_waits() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let m = metrics();
    let options = Options {
        interval: Duration::from_secs(3600),
        unawaited_gather: Duration::from_secs(3600),
        faults: Some(faults.clone()),
    };
    let log = MessageLog::open_with(dir.path(), signer(), m.clone(), None, options).unwrap();
    for i in 0..50 {
        log.append(entry(record(&format!("refused-{i}"))));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((m.written.get(), faults.syncs.load(Ordering::Relaxed)), (0, 0), "still gathering");
    log.commit(entry(record("answered"))).await.unwrap();
    assert_eq!((m.written.get(), faults.syncs.load(Ordering::Relaxed)), (51, 1), "one sync for all of them");
    log.append(entry(record("last")));
    log.close();
    assert_eq!(ids(dir.path()).len(), 52, "closing writes what gathers");
}

/// A crash that left a torn group in the claimed space (a page of it written, the
/// page before still zeros): recovery keeps what was synced and sets the rest aside.
#[tokio::test]
async fn recovery_cuts_a_torn_group_out_of_the_claimed_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let image = crashed(&dir.path().join("log"), 2).await;
    let segment = segment_path(&image, 1);
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = msglog::written(&bytes).len();
    assert!(bytes.len() > end + 5000, "the image holds claimed zeros");
    // The torn group: its first page never reached the disk, a later one did.
    let torn = b"\"id\":\"torn\"},\"seq\":9}}\n{\"rec";
    bytes[end + 4096..end + 4096 + torn.len()].copy_from_slice(torn);
    std::fs::write(&segment, &bytes).unwrap();
    let faults = Arc::new(Faults::default());
    let (log, _) = open(&image, &faults);
    log.commit(entry(record("after"))).await.unwrap();
    log.close();
    verify(&image);
    assert_eq!(ids(&image), ["sealed-0", "m-0", "m-1", "after"]);
    let aside = std::fs::read_dir(&image)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("unproven-"));
    assert!(aside.is_some(), "the torn bytes are kept for a person");
}
