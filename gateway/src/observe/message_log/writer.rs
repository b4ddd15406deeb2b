//! The writer thread: gathers the records queued since its last sync into one
//! group, writes them (and a seal when the batch is due) in one write, syncs once,
//! and settles the group. A failure rolls its in-memory chain back to the last
//! synced line and cuts the files back to their synced lengths before anything
//! else is written; then the log refuses until a probe finds the disk writable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use qaqpa_certs::msglog::{self, Entry, Head, Line, SealLinks};

use super::preallocated::Preallocated;
use super::recover::{journal_path, Tail};
use super::{
    probe_space, segment_path, Companion, Group, LogMetrics, Queue, BATCH, INTERVAL, PROBE, SEGMENT_BYTES,
    UNAWAITED_GATHER,
};

use crate::runtime::Signer;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Zeroed journal space claimed at a time: a batch's anchors (one per group, at
/// most [`BATCH`] of 86 bytes) fit in two.
const JOURNAL_CHUNK: u64 = 64 * 1024;

/// Fault injection for tests: each bit makes one write or sync point fail (a
/// failing segment write first writes half its bytes, as a full disk does).
#[derive(Default)]
pub struct Faults {
    pub fail: AtomicU32,
    /// Segment syncs done (group commit: far fewer than records).
    pub syncs: AtomicU64,
}

impl Faults {
    pub const SEGMENT_WRITE: u32 = 1;
    pub const SEGMENT_SYNC: u32 = 2;
    pub const JOURNAL_WRITE: u32 = 4;
    pub const JOURNAL_SYNC: u32 = 8;
    pub const COMPANION: u32 = 16;
    pub const TRUNCATE: u32 = 32;
    pub const PROBE: u32 = 64;

    pub fn set(&self, points: u32) {
        self.fail.store(points, Ordering::SeqCst);
    }
}

/// What a failed group rolls back to.
struct Snapshot {
    seq: u64,
    prev: String,
    unsealed: usize,
    head: Option<Head>,
    batch_first: u64,
}

pub(super) struct Writer {
    dir: PathBuf,
    signer: Signer,
    tail: Tail,
    /// The segment; its written end is what a failure cuts back to.
    file: Preallocated,
    /// The batch journal: one fixed-width anchor per synced group of the open
    /// batch, rewound at each seal.
    journal: Preallocated,
    /// First sequence of the unsealed batch.
    batch_first: u64,
    /// When the open batch must be sealed.
    seal_due: Option<Instant>,
    buffer: Vec<u8>,
    spare: Vec<Entry>,
    metrics: LogMetrics,
    shared: Arc<Queue>,
    /// The files may hold bytes past their synced lengths (a failed write whose
    /// cut failed too): nothing is written until they are cut.
    broken: bool,
    pub companion: Option<Companion>,
    pub faults: Option<Arc<Faults>>,
    pub interval: Duration,
    pub unawaited_gather: Duration,
}

fn injected(faults: &Option<Arc<Faults>>, point: u32) -> std::io::Result<()> {
    match faults {
        Some(f) if f.fail.load(Ordering::SeqCst) & point != 0 => {
            Err(std::io::Error::from_raw_os_error(28 /* ENOSPC */))
        }
        _ => Ok(()),
    }
}

impl Writer {
    pub(super) fn open(
        dir: PathBuf,
        signer: Signer,
        tail: Tail,
        metrics: LogMetrics,
        shared: Arc<Queue>,
    ) -> std::io::Result<Self> {
        let file = Preallocated::open(&segment_path(&dir, tail.segment), tail.segment_end)?;
        let journal = Preallocated::open(&journal_path(&dir), tail.journal_end)?.with_chunk(JOURNAL_CHUNK);
        let batch_first = tail.seq - tail.unsealed.len() as u64;
        let seal_due = (!tail.unsealed.is_empty()).then(Instant::now);
        metrics.available.set(1);
        let writer = Self {
            dir,
            signer,
            tail,
            file,
            journal,
            batch_first,
            seal_due,
            buffer: Vec::with_capacity(1 << 20),
            spare: Vec::new(),
            metrics,
            shared,
            broken: false,
            companion: None,
            faults: None,
            interval: INTERVAL,
            unawaited_gather: UNAWAITED_GATHER,
        };
        writer.publish_head();
        Ok(writer)
    }

    /// Seals what recovery left unsealed.
    pub(super) fn start(&mut self) {
        if !self.tail.unsealed.is_empty() {
            let _ = self.group(&mut Vec::new(), true);
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let (mut records, group, stop) = self.gather();
            if !self.shared.available.load(Ordering::Acquire) {
                self.probe();
            }
            let n = records.len() as u64;
            let durable = self.shared.available.load(Ordering::Acquire) && self.group(&mut records, stop).is_ok();
            if durable {
                self.metrics.written.inc_by(n);
            } else {
                self.metrics.dropped.inc_by(n);
            }
            group.settle(durable);
            records.clear();
            self.spare = records;
            if stop {
                return;
            }
        }
    }

    /// Waits for records (or for a seal or a probe to be due) and takes them all.
    fn gather(&mut self) -> (Vec<Entry>, Arc<Group>, bool) {
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if open.stop || open.awaited || open.records.len() >= BATCH {
                break;
            }
            if let Some(first) = open.first_at {
                // Records nobody waits for: gather more, or a waiter, until due.
                let due = first + self.unawaited_gather;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                open = self.shared.wake.wait_timeout(open, due - now).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            let unavailable = !self.shared.available.load(Ordering::Acquire);
            let due = match (self.seal_due, unavailable) {
                (_, true) => Some(Instant::now() + PROBE),
                (Some(at), false) => Some(at),
                (None, false) => None,
            };
            match due {
                None => open = self.shared.wake.wait(open).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let now = Instant::now();
                    if at <= now {
                        break;
                    }
                    open = self.shared.wake.wait_timeout(open, at - now).unwrap_or_else(|e| e.into_inner()).0;
                    if Instant::now() >= at {
                        break;
                    }
                }
            }
        }
        open.awaited = false;
        open.first_at = None;
        let records = std::mem::replace(&mut open.records, std::mem::take(&mut self.spare));
        (records, std::mem::take(&mut open.done), open.stop)
    }

    /// Writes one group and syncs it; seals the batch when it is full or due (or
    /// `seal` asks). On failure everything returns to the last synced line.
    fn group(&mut self, records: &mut Vec<Entry>, seal: bool) -> std::io::Result<()> {
        let snapshot = Snapshot {
            seq: self.tail.seq,
            prev: self.tail.prev.clone(),
            unsealed: self.tail.unsealed.len(),
            head: self.tail.head.clone(),
            batch_first: self.batch_first,
        };
        let due = self.seal_due.is_some_and(|at| Instant::now() >= at);
        for record in records.drain(..) {
            self.push(record);
        }
        let sealed = (seal || due || self.tail.unsealed.len() >= BATCH) && !self.tail.unsealed.is_empty();
        // A seal empties the batch's leaves; a failed group must get them back, or
        // the next seal's root would leave out records already on disk.
        let leaves = sealed.then(|| self.tail.unsealed[..snapshot.unsealed].to_vec());
        let result = (|| {
            if sealed {
                self.seal()?;
            }
            self.sync_group(sealed)
        })();
        match result {
            Ok(()) => {
                if sealed {
                    self.seal_due = None;
                    self.batch_first = self.tail.seq;
                    self.publish_head();
                    self.rotate();
                } else if !self.tail.unsealed.is_empty() {
                    self.seal_due.get_or_insert_with(|| Instant::now() + self.interval);
                }
                Ok(())
            }
            Err(e) => {
                self.tail.seq = snapshot.seq;
                self.tail.prev = snapshot.prev;
                match leaves {
                    Some(leaves) => self.tail.unsealed = leaves,
                    None => self.tail.unsealed.truncate(snapshot.unsealed),
                }
                self.tail.head = snapshot.head;
                self.batch_first = snapshot.batch_first;
                self.buffer.clear();
                self.fail(&e);
                Err(e)
            }
        }
    }

    fn push(&mut self, entry: Entry) {
        // Written straight into the group's buffer and hashed there (issue 20).
        let start = self.buffer.len();
        entry.write_line(self.tail.seq, &self.tail.prev, &mut self.buffer);
        self.tail.seq += 1;
        let hash = self.hash_line(start);
        self.tail.unsealed.push(hash);
    }

    fn line(&mut self, line: &Line) -> [u8; 32] {
        let start = self.buffer.len();
        serde_json::to_writer(&mut self.buffer, line).expect("log lines serialize");
        self.hash_line(start)
    }

    /// Hashes the line written from `start`, chains to it, ends it.
    fn hash_line(&mut self, start: usize) -> [u8; 32] {
        let hash = msglog::sha256(&self.buffer[start..]);
        msglog::hex_into(&hash, &mut self.tail.prev);
        self.buffer.push(b'\n');
        hash
    }

    /// Adds the seal of the open batch to the buffer.
    fn seal(&mut self) -> std::io::Result<()> {
        let (batch, prev_seal) = match &self.tail.head {
            Some(h) => (h.batch + 1, h.hash.clone()),
            None => (1, msglog::GENESIS.to_owned()),
        };
        let links = SealLinks { prev: self.tail.prev.clone(), batch, prev_seal };
        let last = self.tail.seq - 1;
        let time = crate::observe::monitoring::now_us();
        let seal = msglog::seal(
            &self.signer.key,
            &self.signer.chain,
            self.batch_first,
            last,
            &self.tail.unsealed,
            time,
            links,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let hash = self.line(&Line::Seal(seal));
        self.tail.unsealed.clear();
        self.tail.head = Some(Head { batch, hash: msglog::hex(&hash) });
        Ok(())
    }

    /// The group's bytes to disk: the companion's sync, the journal's anchor when
    /// records stay unsealed, the segment.
    fn sync_group(&mut self, sealed: bool) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.broken {
            return Err(std::io::Error::other("the log files are not cut back yet"));
        }
        if let Some(companion) = &self.companion {
            injected(&self.faults, Faults::COMPANION)?;
            companion()?;
        }
        // The anchor goes first: a segment on disk is never ahead of its anchor,
        // so recovery can seal everything that was acknowledged.
        if let (false, Some(hash)) = (sealed, self.tail.unsealed.last()) {
            // Fixed width, so an anchor written over an older one (the journal
            // rewinds at each seal) replaces it whole.
            let anchor = format!("{:020} {}\n", self.tail.seq - 1, msglog::hex(hash));
            self.write_anchor(anchor.as_bytes())?;
        }
        injected(&self.faults, Faults::SEGMENT_WRITE).inspect_err(|_| {
            // A full disk takes part of a write: leave half of it behind.
            self.file.write_partly(&self.buffer);
        })?;
        self.file.write(&self.buffer)?;
        injected(&self.faults, Faults::SEGMENT_SYNC)?;
        self.file.sync()?;
        if let Some(faults) = &self.faults {
            faults.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.file.advance(self.buffer.len());
        self.buffer.clear();
        if sealed {
            // The seal covers every anchored record; an anchor left behind names a
            // sealed sequence and is ignored.
            self.journal.rewind();
        }
        Ok(())
    }

    fn write_anchor(&mut self, anchor: &[u8]) -> std::io::Result<()> {
        injected(&self.faults, Faults::JOURNAL_WRITE)?;
        self.journal.write(anchor)?;
        injected(&self.faults, Faults::JOURNAL_SYNC)?;
        self.journal.sync()?;
        self.journal.advance(anchor.len());
        Ok(())
    }

    /// A write or sync failed: refuse from now on, and cut the files back.
    fn fail(&mut self, e: &std::io::Error) {
        self.metrics.failures.inc();
        if self.shared.available.swap(false, Ordering::AcqRel) {
            tracing::error!("message log: cannot write ({e}); exchanges are refused until it can");
        }
        self.metrics.available.set(0);
        self.broken = true;
        self.repair();
    }

    /// Cuts both files back to their synced lengths (never retried in place: a
    /// half-written group is gone before the next is written).
    fn repair(&mut self) {
        let cut = (|| {
            injected(&self.faults, Faults::TRUNCATE)?;
            self.file.cut_back()?;
            self.journal.cut_back()
        })();
        match cut {
            Ok(()) => self.broken = false,
            Err(e) => tracing::error!("message log: cannot cut the segment back yet: {e}"),
        }
    }

    /// Tries the disk again; the log takes records when it can write.
    fn probe(&mut self) {
        if self.broken {
            self.repair();
            if self.broken {
                return;
            }
        }
        let result = injected(&self.faults, Faults::PROBE).and_then(|()| probe_space(&self.dir));
        if result.is_ok() {
            tracing::warn!("message log: the disk takes writes again; exchanges resume");
            self.metrics.available.set(1);
            self.shared.available.store(true, Ordering::Release);
        }
    }

    fn publish_head(&self) {
        let Some(head) = &self.tail.head else { return };
        *self.shared.head.lock().unwrap_or_else(|e| e.into_inner()) = Some(head.clone());
        self.metrics.head.reset();
        self.metrics.head.with_label_values(&[&head.hash]).set(head.batch as i64);
    }

    /// A new segment once this one is full, always right after a seal, so the
    /// unsealed records (what recovery examines) sit in the last segment only.
    fn rotate(&mut self) {
        if self.file.end() < SEGMENT_BYTES {
            return;
        }
        let path = segment_path(&self.dir, self.tail.segment + 1);
        match Preallocated::open(&path, 0) {
            Ok(file) => {
                // A full segment keeps no zeros (a crash before this leaves them to
                // recovery and readers, which take the written part).
                if let Err(e) = self.file.trim() {
                    tracing::warn!("message log: cannot give back a full segment's unused space: {e}");
                }
                self.tail.segment += 1;
                self.file = file;
            }
            Err(e) => tracing::error!("message log: cannot start {}: {e}; the segment grows on", path.display()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A closed log's segment ends where its lines do.
        let _ = self.file.trim();
        // Exchanges still waiting on a group that will never be written.
        self.shared.open.lock().unwrap_or_else(|e| e.into_inner()).done.settle(false);
    }
}
