//! Where the chain stands when the gateway starts, and what of a crashed run's
//! unsealed records may be sealed.
//!
//! Sealed batches are the auditor's to check (`qaqpa log verify`); recovery reads
//! only the last segment (the writer rotates right after a seal, so the unsealed
//! records are all there) and, if it holds no seal, the segments before it up to
//! the last seal. It then:
//! - cuts a half-written last line (never acknowledged: not synced whole);
//! - proves the records after the last seal: each line's `prev` must be the line
//!   before's hash, and a proven record is one whose hash the batch journal
//!   anchored (the writer anchors the last record of every synced group before
//!   the segment is written) or that a later proven record chains to. Whatever
//!   follows the last proven record (a group a crash cut short, or lines edited
//!   while the gateway was down) is never sealed: it is moved to
//!   `unproven-SEGMENT-SEQ.log` beside the log, for a person to examine, and the
//!   segment is cut to the proven end.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use qaqpa_certs::msglog::{self, Head, Line, GENESIS};

use super::segments;

/// Where the chain stands: the next sequence and the hash of the last line.
pub(super) struct Tail {
    pub seq: u64,
    pub prev: String,
    /// Line hashes of records after the last seal.
    pub unsealed: Vec<[u8; 32]>,
    pub head: Option<Head>,
    pub segment: u32,
    /// Where the last segment's next line goes (its written, proven end).
    pub segment_end: u64,
    /// Where the journal's next anchor goes: after its last whole line (a torn
    /// anchor is written over; zeros past the end are space claimed ahead).
    pub journal_end: u64,
}

pub(super) fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// The journal's written part (empty when there is none yet).
fn read_journal(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = match std::fs::read(journal_path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    bytes.truncate(msglog::written(&bytes).len());
    Ok(bytes)
}

/// The journal's anchors: sequence → line hash (the last entry for a sequence wins).
fn anchors(journal: &[u8]) -> HashMap<u64, String> {
    String::from_utf8_lossy(journal)
        .lines()
        .filter_map(|l| {
            let (seq, hash) = l.split_once(' ')?;
            Some((seq.parse().ok()?, hash.to_owned()))
        })
        .collect()
}

/// The state a segment leaves: after its last seal, the records that follow.
#[derive(Default)]
struct Scan {
    /// Hash of the last line, the next sequence, the last seal.
    prev: Option<String>,
    next_seq: Option<u64>,
    head: Option<Head>,
    /// The sequence after the last seal's batch.
    sealed_next: Option<u64>,
    /// Byte offset just past the last seal, and the record lines after it
    /// (start, end, hash) — the tail to prove.
    after_seal: usize,
    tail: Vec<(usize, usize, [u8; 32])>,
    seen_seal: bool,
}

fn scan(bytes: &[u8]) -> Scan {
    let mut s = Scan::default();
    let mut start = 0;
    for raw in bytes.split_inclusive(|&b| b == b'\n') {
        let end = start + raw.len();
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let digest = msglog::sha256(line);
        let hash = msglog::hex(&digest);
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Seal(seal)) => {
                s.head = Some(Head { batch: seal.batch, hash: hash.clone() });
                s.next_seq = Some(seal.last + 1);
                s.sealed_next = s.next_seq;
                s.after_seal = end;
                s.tail.clear();
                s.seen_seal = true;
            }
            Ok(Line::Record(r)) => {
                s.next_seq = Some(r.seq + 1);
                s.tail.push((start, end, digest));
            }
            // An unreadable line is part of the tail; proving it fails there.
            Err(_) => s.tail.push((start, end, digest)),
        }
        s.prev = Some(hash);
        start = end;
    }
    s
}

/// Reads where the chain stands, proving and sealing-ready what follows the last
/// seal (see the module's notes).
pub(super) fn recover(dir: &Path) -> std::io::Result<Tail> {
    let all = segments(dir)?;
    let journal = read_journal(dir)?;
    let journal_end = journal.iter().rposition(|&b| b == b'\n').map_or(0, |p| p as u64 + 1);
    let mut tail = Tail {
        seq: 1,
        prev: GENESIS.to_owned(),
        unsealed: Vec::new(),
        head: None,
        segment: 1,
        segment_end: 0,
        journal_end,
    };
    let Some((last_n, last_path)) = all.last().cloned() else { return Ok(tail) };
    tail.segment = last_n;
    // The state before the last segment: earlier segments, newest first, to a seal.
    let mut earlier: Vec<Scan> = Vec::new();
    for (_, path) in all[..all.len() - 1].iter().rev() {
        let s = scan(msglog::written(&std::fs::read(path)?));
        let sealed = s.seen_seal;
        earlier.push(s);
        if sealed {
            break;
        }
    }
    let mut before = earlier.iter().rev();
    if let Some(first) = before.next() {
        tail.head = first.head.clone();
        let mut next = first.next_seq;
        let mut prev = first.prev.clone();
        let mut pending: Vec<[u8; 32]> = first.tail.iter().map(|t| t.2).collect();
        for s in before {
            next = s.next_seq.or(next);
            prev = s.prev.clone().or(prev);
            pending.extend(s.tail.iter().map(|t| t.2));
        }
        tail.seq = next.unwrap_or(1);
        tail.prev = prev.unwrap_or_else(|| GENESIS.to_owned());
        // Records a writer from before the journal left unsealed across a rotation
        // (it rotated mid-batch; this one rotates only after a seal). The chain
        // into the last segment is all that vouches for them.
        if !pending.is_empty() {
            tracing::warn!(pending = pending.len(), "message log: unsealed records in an earlier segment");
        }
        tail.unsealed = pending;
    }
    let mut bytes = std::fs::read(&last_path)?;
    let on_disk = bytes.len();
    bytes.truncate(msglog::written(&bytes).len());
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        tracing::warn!(segment = %last_path.display(), cut = bytes.len() - keep, "message log: dropping a half-written last line");
        bytes.truncate(keep);
    }
    if bytes.len() < on_disk {
        // A half-written line, and the zeroed space claimed ahead of the end.
        cut(&last_path, bytes.len() as u64)?;
    }
    let last = scan(&bytes);
    if last.seen_seal {
        tail.head = last.head.clone();
        tail.seq = last.sealed_next.unwrap_or(tail.seq);
    }
    // The chain resumes after the last seal (its hash is the head's), or after the
    // earlier segments when this one holds none.
    let (mut prev, mut seq) = match (&last.head, last.seen_seal) {
        (Some(head), true) => (head.hash.clone(), tail.seq),
        _ => (tail.prev.clone(), tail.seq),
    };
    let journal = anchors(&journal);
    let mut proven_end = last.after_seal;
    let mut proven: Vec<[u8; 32]> = if last.seen_seal { Vec::new() } else { std::mem::take(&mut tail.unsealed) };
    let mut chained: Vec<[u8; 32]> = Vec::new();
    let mut proven_state = (prev.clone(), seq);
    for &(start, end, _) in &last.tail {
        let raw = &bytes[start..end - 1];
        let Ok(Line::Record(record)) = serde_json::from_slice::<Line>(raw) else { break };
        if record.prev != prev || record.seq != seq {
            break;
        }
        let hash = msglog::sha256(raw);
        prev = msglog::hex(&hash);
        seq += 1;
        chained.push(hash);
        if journal.get(&record.seq) == Some(&prev) {
            proven.append(&mut chained);
            proven_end = end;
            proven_state = (prev.clone(), seq);
        }
    }
    tail.segment_end = bytes.len() as u64;
    if proven_end < bytes.len() {
        set_aside(dir, &last_path, last_n, proven_state.1, &bytes[proven_end..])?;
        cut(&last_path, proven_end as u64)?;
        tail.segment_end = proven_end as u64;
    }
    (tail.prev, tail.seq) = proven_state;
    tail.unsealed = proven;
    Ok(tail)
}

fn cut(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Keeps lines recovery cannot prove out of the log, but on disk for a person.
fn set_aside(dir: &Path, segment: &Path, n: u32, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
    let aside = dir.join(format!("unproven-{n:06}-{seq}.log"));
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    tracing::error!(
        segment = %segment.display(),
        lines,
        from_seq = seq,
        aside = %aside.display(),
        "message log: records after the last seal cannot be proven (cut short by a crash, or changed while the \
         gateway was down); they are not sealed and were moved aside"
    );
    Ok(())
}
