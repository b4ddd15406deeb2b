//! The message log's writer (docs/operations.md#message-log; format and verification in
//! `qaqpa_certs::msglog`): every exchange, as it finishes, becomes a record line in
//! `DATA_DIR/log/seg-NNNNNN.log`, chained to the line before; each batch (up to
//! [`BATCH`] records or [`INTERVAL`]) is sealed with the gateway's signature over
//! its Merkle root and fsync'd (group commit). Segments rotate at [`SEGMENT_BYTES`];
//! the chain runs across them. A restart continues the chain, sealing what a crash
//! left unsealed and dropping a half-written last line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TryRecvError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qaqpa_certs::msglog::{self, Line, Record};

use crate::runtime::Signer;

pub const BATCH: usize = 1000;
pub const INTERVAL: Duration = Duration::from_millis(100);
/// How often the writer takes queued records while a batch is open.
const DRAIN_TICK: Duration = Duration::from_millis(5);
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Records waiting for the writer at most; past it they are counted as dropped.
const QUEUE: usize = 65_536;

pub struct MessageLog {
    /// Boxed: the channel's ring is allocated (and touched) whole at start, so its
    /// slots stay pointer-sized. `None` asks the writer to seal and stop.
    sender: SyncSender<Option<Box<Record>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dropped: prometheus::IntCounter,
}

/// Where the chain stands: the next sequence and the hash of the last line.
struct Tail {
    seq: u64,
    prev: String,
    /// Line hashes of records after the last seal, and the first one's sequence.
    unsealed: Vec<[u8; 32]>,
    segment: u32,
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
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

/// Reads where the chain stands, cutting a half-written last line (never
/// acknowledged: it was not fsync'd whole).
fn recover(dir: &Path) -> std::io::Result<Tail> {
    let mut tail = Tail { seq: 1, prev: msglog::GENESIS.to_owned(), unsealed: Vec::new(), segment: 1 };
    let all = segments(dir)?;
    for (i, (n, path)) in all.iter().enumerate() {
        let mut bytes = std::fs::read(path)?;
        if i + 1 == all.len() && !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            tracing::warn!(segment = %path.display(), cut = bytes.len() - keep, "message log: dropping a half-written last line");
            bytes.truncate(keep);
            OpenOptions::new().write(true).open(path)?.set_len(keep as u64)?;
        }
        for raw in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Line>(raw) {
                Ok(Line::Record(r)) => {
                    tail.seq = r.seq + 1;
                    tail.unsealed.push(msglog::sha256(raw));
                }
                Ok(Line::Seal(_)) => tail.unsealed.clear(),
                Err(e) => return Err(std::io::Error::other(format!("{}: unreadable line: {e}", path.display()))),
            }
            tail.prev = msglog::hex(&msglog::sha256(raw));
        }
        tail.segment = *n;
    }
    Ok(tail)
}

impl MessageLog {
    /// Opens the log in `dir` (created if need be) and starts its writer thread.
    /// `written` and `dropped` count sealed and lost records (the metrics).
    pub fn open(
        dir: &Path,
        signer: Signer,
        written: prometheus::IntCounter,
        dropped: prometheus::IntCounter,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let tail = recover(dir)?;
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let mut writer = Writer::open(dir.to_owned(), signer, tail, written)?;
        // What a crash left unsealed is sealed now, so the log verifies again.
        writer.seal_pending()?;
        let handle = std::thread::Builder::new().name("message-log".into()).spawn(move || writer.run(receiver))?;
        Ok(Self { sender, writer: Mutex::new(Some(handle)), dropped })
    }

    /// Queues an exchange's record (its `seq` and `prev` are the writer's to set);
    /// never blocks a request.
    pub fn append(&self, entry: Record) {
        if self.sender.try_send(Some(Box::new(entry))).is_err() {
            self.dropped.inc();
            tracing::error!("message log: a record could not be queued (writer behind or stopped)");
        }
    }

    /// Writes and seals what is queued, fsyncs, stops the writer.
    pub fn close(&self) {
        let _ = self.sender.send(None);
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

struct Writer {
    dir: PathBuf,
    signer: Signer,
    tail: Tail,
    file: File,
    size: u64,
    /// First sequence of the unsealed batch.
    batch_first: u64,
    buffer: Vec<u8>,
    written: prometheus::IntCounter,
}

impl Writer {
    fn open(dir: PathBuf, signer: Signer, tail: Tail, written: prometheus::IntCounter) -> std::io::Result<Self> {
        let path = segment_path(&dir, tail.segment);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let batch_first = tail.seq - tail.unsealed.len() as u64;
        Ok(Self { dir, signer, tail, file, size, batch_first, buffer: Vec::with_capacity(1 << 20), written })
    }

    fn run(mut self, receiver: mpsc::Receiver<Option<Box<Record>>>) {
        // When the last seal is pending (at `deadline`).
        let mut deadline: Option<Instant> = None;
        loop {
            match deadline {
                // All sealed: sleep until a record comes, one wake-up per batch.
                None => match receiver.recv() {
                    Ok(Some(entry)) => {
                        self.push(*entry);
                        deadline = Some(Instant::now() + INTERVAL);
                    }
                    Ok(None) | Err(_) => return self.commit(),
                },
                // A batch is open: take what arrived on a tick. Appenders then find
                // nobody to wake; a wake per record cost a futex call and a context
                // switch per exchange, a quarter of a core at saturation.
                Some(_) => std::thread::sleep(DRAIN_TICK),
            }
            loop {
                match receiver.try_recv() {
                    Ok(Some(entry)) => {
                        self.push(*entry);
                        deadline.get_or_insert_with(|| Instant::now() + INTERVAL);
                        if self.tail.unsealed.len() >= BATCH {
                            self.commit();
                            deadline = None;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Ok(None) | Err(TryRecvError::Disconnected) => return self.commit(),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.commit();
                deadline = None;
            }
        }
    }

    fn push(&mut self, mut record: Record) {
        record.seq = self.tail.seq;
        record.prev = std::mem::take(&mut self.tail.prev);
        self.tail.seq += 1;
        self.line(&Line::Record(record), true);
    }

    fn line(&mut self, line: &Line, record: bool) {
        let text = serde_json::to_vec(line).expect("log lines serialize");
        let hash = msglog::sha256(&text);
        if record {
            self.tail.unsealed.push(hash);
        }
        self.tail.prev = msglog::hex(&hash);
        self.buffer.extend_from_slice(&text);
        self.buffer.push(b'\n');
    }

    /// Seals the batch, writes it and fsyncs: one disk sync for the whole batch.
    fn commit(&mut self) {
        if let Err(e) = self.seal_pending() {
            tracing::error!("message log: cannot write the batch: {e}");
        }
    }

    fn seal_pending(&mut self) -> std::io::Result<()> {
        if !self.tail.unsealed.is_empty() {
            let last = self.tail.seq - 1;
            let time = crate::observe::monitoring::now_us();
            let seal = msglog::seal(
                &self.signer.key,
                &self.signer.chain,
                self.batch_first,
                last,
                &self.tail.unsealed,
                time,
                self.tail.prev.clone(),
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            let records = self.tail.unsealed.len() as u64;
            self.line(&Line::Seal(seal), false);
            self.tail.unsealed.clear();
            self.batch_first = self.tail.seq;
            self.written.inc_by(records);
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buffer)?;
        self.file.sync_data()?;
        self.size += self.buffer.len() as u64;
        self.buffer.clear();
        if self.size >= SEGMENT_BYTES {
            self.tail.segment += 1;
            self.file =
                OpenOptions::new().create(true).append(true).open(segment_path(&self.dir, self.tail.segment))?;
            self.size = 0;
        }
        Ok(())
    }
}

/// The evidence for message `id` in a log directory, reading one segment at a time
/// (a log of many 64 MiB segments is never all in memory).
pub fn find_evidence(dir: &Path, id: &str) -> std::io::Result<Option<qaqpa_certs::msglog::Evidence>> {
    let mut failed = None;
    let bytes = segments(dir)?.into_iter().map_while(|(_, path)| match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let found = qaqpa_certs::msglog::evidence(bytes, id);
    match failed {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Reads a log directory's segments for verification.
pub fn read_segments(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    segments(dir)?
        .into_iter()
        .map(|(_, path)| {
            let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Ok((name, std::fs::read(&path)?))
        })
        .collect()
}
