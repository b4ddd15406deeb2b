//! The message log's writer (docs/operations.md#message-log; format and verification in
//! `qaqpa_certs::msglog`): every exchange becomes a record line in
//! `DATA_DIR/log/seg-NNNNNN.log`, chained to the line before.
//!
//! The promise, and how it is kept:
//! - **Durable before the answer.** An exchange that answers from a provider or
//!   with a built reply calls [`MessageLog::commit`] when its response head is
//!   known and waits: the writer takes every record queued since its last sync,
//!   writes them in one `write`, fsyncs once (group commit: one sync releases all
//!   the exchanges it carried, never one sync per exchange), then wakes their
//!   exchanges. Refusals are appended without waiting ([`MessageLog::append`]).
//! - **Fail closed.** When a write or a sync fails (ENOSPC, EIO, EPERM) the group's
//!   exchanges are refused (`server.log_unavailable`), the log turns unavailable
//!   (new exchanges are refused at once, `/readyz` says not ready) and the writer
//!   probes the disk every [`PROBE`] until it can write again, then resumes by
//!   itself.
//! - **Crash-safe by construction.** A failed write is never retried in place: the
//!   segment is cut back to its last synced length before anything else is
//!   written. On start, [`recover`] cuts a half-written line and seals only what it
//!   can prove (see there); the gateway starts on any log a crash or a full disk
//!   left.
//! - **Truncation and edits detectable.** Each batch (up to [`BATCH`] records or
//!   [`INTERVAL`]) is sealed with the gateway's signature over its Merkle root; seals
//!   are numbered and name the previous seal's hash. The latest seal (the head) is
//!   published in metrics and at `GET /admin/v1/log/head`, so deleting whole
//!   trailing batches shows against a head an auditor kept. Records not yet sealed
//!   are vouched for by the batch journal (`log/journal`): the hash of the last
//!   line of each synced group, so recovery never seals a record edited while the
//!   gateway was down.

mod preallocated;
mod recover;
#[cfg(test)]
mod tests;
mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use qaqpa_certs::msglog::{Entry, Head};

use crate::runtime::Signer;
pub use writer::Faults;

pub const BATCH: usize = 1000;
pub const INTERVAL: Duration = Duration::from_millis(100);
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Records waiting for the writer at most; past it exchanges are refused (the
/// writer is behind: the disk is slower than the traffic).
const QUEUE: usize = 65_536;
/// How often an unavailable log tries the disk again.
pub const PROBE: Duration = Duration::from_millis(500);
/// How long records nobody waits for may gather before they are written.
pub const UNAWAITED_GATHER: Duration = Duration::from_millis(5);

/// How the writer runs; the defaults are the gateway's.
pub struct Options {
    /// A batch is sealed this long after its first record at the latest.
    pub interval: Duration,
    /// Records nobody waits for gather this long at most before a write.
    pub unawaited_gather: Duration,
    pub faults: Option<Arc<Faults>>,
}

impl Default for Options {
    fn default() -> Self {
        Self { interval: INTERVAL, unawaited_gather: UNAWAITED_GATHER, faults: None }
    }
}

/// The message log could not make a record durable: the exchange must not be
/// answered as if it had been logged (`server.log_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the message log cannot write")]
pub struct LogUnavailable;

/// The log's instruments (the gateway registers them in its metrics).
#[derive(Clone)]
pub struct LogMetrics {
    /// Records on disk (synced), counted after the sync, never before.
    pub written: prometheus::IntCounter,
    /// Records lost: queued for a group whose write failed, or refused at the door.
    pub dropped: prometheus::IntCounter,
    /// Failed writes and syncs.
    pub failures: prometheus::IntCounter,
    /// 1 while the log can write, 0 while it refuses.
    pub available: prometheus::IntGauge,
    /// The latest synced seal's number, labelled with its hash (one series).
    pub head: prometheus::IntGaugeVec,
}

/// Something that must be on disk whenever a record is: the replay guard's file.
/// Called before every group's sync of the log.
pub type Companion = Box<dyn Fn() -> std::io::Result<()> + Send>;

pub struct MessageLog {
    shared: Arc<Queue>,
    writer: Mutex<Option<JoinHandle<()>>>,
    metrics: LogMetrics,
}

/// What appenders and the writer share.
struct Queue {
    open: Mutex<Open>,
    /// Wakes the writer when the first record of a group arrives.
    wake: Condvar,
    available: AtomicBool,
    head: Mutex<Option<Head>>,
}

/// The group being gathered for the next sync.
struct Open {
    records: Vec<Entry>,
    done: Arc<Group>,
    stop: bool,
    /// An exchange waits for this group: it is written at once. A group of
    /// records nobody waits for (refusals, `message_log = "async"`) gathers for
    /// up to [`Options::unawaited_gather`] after its first record, so a stream of them
    /// costs one sync per gather, not one per record or two.
    awaited: bool,
    first_at: Option<std::time::Instant>,
}

/// One sync's outcome, awaited by every exchange whose record it carries.
#[derive(Default)]
struct Group {
    durable: OnceLock<bool>,
    notify: tokio::sync::Notify,
}

impl Group {
    fn settle(&self, durable: bool) {
        let _ = self.durable.set(durable);
        self.notify.notify_waiters();
    }

    async fn wait(&self) -> bool {
        loop {
            // Registered before the check: a settle in between still wakes it.
            let notified = self.notify.notified();
            if let Some(durable) = self.durable.get() {
                return *durable;
            }
            notified.await;
        }
    }
}

pub(crate) fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("seg-{n:06}.log"))
}

/// The segments of a log directory, in order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let n = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("seg-")?.strip_suffix(".log")?.parse::<u32>().ok());
        if let Some(n) = n {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the disk under `dir` takes a write again: 64 KiB written, synced and
/// removed (a full disk fails here; a sync error shows a failing device).
pub fn probe_space(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(".probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_data()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

impl MessageLog {
    /// Opens the log in `dir` (created if need be), recovers what a crash left and
    /// starts the writer thread. Fails only when the log cannot be read; a log
    /// that cannot be written starts unavailable and resumes when it can.
    pub fn open(
        dir: &Path,
        signer: Signer,
        metrics: LogMetrics,
        companion: Option<Companion>,
    ) -> std::io::Result<Self> {
        Self::open_with(dir, signer, metrics, companion, Options::default())
    }

    /// [`Self::open`] with other [`Options`] (tests: a fault shim, no timed seals).
    pub fn open_with(
        dir: &Path,
        signer: Signer,
        metrics: LogMetrics,
        companion: Option<Companion>,
        options: Options,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let tail = recover::recover(dir)?;
        let shared = Arc::new(Queue {
            open: Mutex::new(Open {
                records: Vec::new(),
                done: Arc::default(),
                stop: false,
                awaited: false,
                first_at: None,
            }),
            wake: Condvar::new(),
            available: AtomicBool::new(true),
            head: Mutex::new(tail.head.clone()),
        });
        let mut writer = writer::Writer::open(dir.to_owned(), signer, tail, metrics.clone(), shared.clone())?;
        writer.companion = companion;
        writer.faults = options.faults;
        writer.interval = options.interval;
        writer.unawaited_gather = options.unawaited_gather;
        // What a crash left unsealed (and recovery proved) is sealed now, so the
        // log verifies again; a disk that cannot take it leaves the log unavailable.
        writer.start();
        let handle = std::thread::Builder::new().name("message-log".into()).spawn(move || writer.run())?;
        Ok(Self { shared, writer: Mutex::new(Some(handle)), metrics })
    }

    /// Whether the log takes records now.
    pub fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::Acquire)
    }

    /// The latest seal on disk.
    pub fn head(&self) -> Option<Head> {
        self.shared.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues records for the next group, all in the same one (their `seq` and
    /// `prev` are the writer's to set); `None` when they were refused at once.
    fn enqueue(&self, entries: impl ExactSizeIterator<Item = Entry>, awaited: bool) -> Option<Arc<Group>> {
        let count = entries.len() as u64;
        if !self.is_available() {
            self.metrics.dropped.inc_by(count);
            return None;
        }
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.stop || open.records.len() >= QUEUE {
            drop(open);
            self.metrics.dropped.inc_by(count);
            tracing::error!("message log: a record could not be queued (writer behind or stopped)");
            return None;
        }
        let was_empty = open.records.is_empty();
        let first_waiter = awaited && !open.awaited;
        open.records.extend(entries);
        open.awaited |= awaited;
        if was_empty {
            open.first_at = Some(std::time::Instant::now());
        }
        if was_empty || first_waiter {
            // Only the first record of a group, and the first an exchange waits
            // for, wake the writer; the rest ride along (a wake per record cost a
            // futex call and a context switch).
            self.shared.wake.notify_one();
        }
        Some(open.done.clone())
    }

    /// Queues a refusal's record without waiting for it.
    pub fn append(&self, entry: Entry) {
        let _ = self.enqueue(std::iter::once(entry), false);
    }

    /// Queues a record and waits until it is on disk.
    pub async fn commit(&self, entry: Entry) -> Result<(), LogUnavailable> {
        Self::durable(self.enqueue(std::iter::once(entry), true)).await
    }

    /// Queues records into one group and waits until they are all on disk.
    pub async fn commit_all(&self, entries: Vec<Entry>) -> Result<(), LogUnavailable> {
        Self::durable(self.enqueue(entries.into_iter(), true)).await
    }

    async fn durable(group: Option<Arc<Group>>) -> Result<(), LogUnavailable> {
        match group.ok_or(LogUnavailable)?.wait().await {
            true => Ok(()),
            false => Err(LogUnavailable),
        }
    }

    /// Writes and seals what is queued, fsyncs, stops the writer.
    pub fn close(&self) {
        self.shared.open.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

/// Why no bundle could be made for an id.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("reading the message log: {0}")]
    Io(#[from] std::io::Error),
    /// A sender's id is unique per client only: two clients used this one (or,
    /// where only steps of the messages are at hand, two bus ids carry it).
    #[error("message id {id} was used by several clients ({}): name the client, or ask by the bus id", clients.join(", "))]
    Ambiguous { id: String, clients: Vec<String> },
}

/// Every sealed record of one message across `dirs` (one per node), with its proof.
///
/// `id` is the bus id of an asynchronous message, or the sender's own id (an
/// exchange's id). A sender's id is unique per client only, so `client` narrows
/// it; without it an id two clients used is [`EvidenceError::Ambiguous`] rather
/// than a bundle mixing both clients' messages. Steps of an asynchronous message
/// (take, push, ack… by other parties) are found by its bus id.
pub fn find_evidence(
    dirs: &[PathBuf],
    id: &str,
    client: Option<&str>,
) -> Result<qaqpa_certs::msglog::Bundle, EvidenceError> {
    use qaqpa_certs::msglog::{Line, Record};
    // Which messages the id names: exchanges whose own id it is (owned by their
    // client) and the bus ids those carry, or the bus id itself.
    let mut owners: Vec<String> = Vec::new();
    let mut bus_ids: Vec<(String, String)> = Vec::new();
    let mut stepped: Vec<String> = Vec::new();
    let mut is_bus_id = false;
    for dir in dirs {
        for_each_segment(dir, |bytes| {
            for raw in bytes.split(|&b| b == b'\n') {
                let Ok(Line::Record(r)) = serde_json::from_slice(raw) else { continue };
                is_bus_id |= r.bus_id.as_deref() == Some(id);
                if r.id == id && client.is_none_or(|c| c == r.client) {
                    bus_ids.extend(r.bus_id.clone().map(|b| (r.client.clone(), b)));
                    owners.push(r.client);
                } else if r.message.as_deref() == Some(id) {
                    // A step by another party (a take, an ack) names the sender's id
                    // and the bus id; it is how the message is found when only
                    // another node's log holds its send.
                    stepped.extend(r.bus_id);
                }
            }
        })?;
    }
    owners.sort();
    owners.dedup();
    if owners.len() > 1 && !is_bus_id {
        return Err(EvidenceError::Ambiguous { id: id.to_owned(), clients: owners });
    }
    let mut buses: Vec<&str> = bus_ids.iter().map(|(_, b)| b.as_str()).collect();
    if owners.is_empty() && !is_bus_id {
        stepped.sort();
        stepped.dedup();
        if stepped.len() > 1 {
            let clients = stepped.iter().map(|b| format!("bus id {b}")).collect();
            return Err(EvidenceError::Ambiguous { id: id.to_owned(), clients });
        }
        buses.extend(stepped.iter().map(String::as_str));
    }
    if is_bus_id {
        buses.push(id);
    }
    buses.sort_unstable();
    buses.dedup();
    let belongs = |r: &Record| {
        r.bus_id.as_deref().is_some_and(|b| buses.binary_search(&b).is_ok())
            || (r.id == id && !is_bus_id && owners.contains(&r.client))
    };
    let mut evidence: Vec<qaqpa_certs::msglog::Evidence> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<&str> = std::iter::once(id).chain(buses.iter().copied()).collect();
    for dir in dirs {
        // One segment at a time: a batch never spans two (a segment is cut right
        // after a seal), so each segment's evidence is whole.
        for_each_segment(dir, |bytes| {
            for id in &wanted {
                for item in qaqpa_certs::msglog::evidence(std::iter::once(&bytes), id) {
                    let mine = matches!(serde_json::from_str(&item.record), Ok(Line::Record(r)) if belongs(&r));
                    if mine && seen.insert(item.record.clone()) {
                        evidence.push(item);
                    }
                }
            }
        })?;
    }
    Ok(qaqpa_certs::msglog::Bundle { id: id.to_owned(), evidence })
}

fn for_each_segment(dir: &Path, mut each: impl FnMut(Vec<u8>)) -> std::io::Result<()> {
    for (_, path) in segments(dir)? {
        each(read_segment(&path)?);
    }
    Ok(())
}

/// A segment's written part (the live one has zeroed space past its end).
fn read_segment(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    bytes.truncate(qaqpa_certs::msglog::written(&bytes).len());
    Ok(bytes)
}

/// Reads a log directory's segments for verification.
pub fn read_segments(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    segments(dir)?
        .into_iter()
        .map(|(_, path)| {
            let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Ok((name, read_segment(&path)?))
        })
        .collect()
}
