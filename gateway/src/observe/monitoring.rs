//! Monitoring records (docs/operations.md): one per exchange, kept in a bounded in-memory
//! ring for the dashboard and appended to hourly NDJSON files in
//! `DATA_DIR/monitoring/` (plain text an auditor can grep), deleted after the
//! retention period. A background writer batches appends; when it falls behind,
//! records are dropped and counted rather than blocking exchanges.

use std::collections::VecDeque;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::history::History;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub client: String,
    pub service: String,
    pub node: String,
    /// Microseconds since the Unix epoch.
    pub request_in: i64,
    pub request_out: Option<i64>,
    pub response_in: Option<i64>,
    pub response_out: i64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub status: u16,
    pub code: Option<String>,
    /// Request in to response head out, microseconds.
    pub duration_us: u64,
    /// The request carried a verified signature, or the gateway signed it on the
    /// client's behalf (its value is in the message log record).
    #[serde(default)]
    pub signed: bool,
}

pub const CSV_HEADER: &str = "id,client,service,node,request_in,request_out,response_in,response_out,request_bytes,response_bytes,status,code,duration_us,signed";

impl Record {
    /// The record as one JSON object, byte for byte what `serde_json` writes for
    /// it, without serde's derived code (~4.7k instructions a record that way;
    /// one record an exchange: issue 20).
    pub fn write_json<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        use qaqpa_certs::msglog::json_string;
        fn number<W: std::io::Write>(
            out: &mut W,
            key: &[u8],
            value: Option<impl itoa::Integer>,
        ) -> std::io::Result<()> {
            out.write_all(key)?;
            match value {
                Some(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes()),
                None => out.write_all(b"null"),
            }
        }
        out.write_all(b"{\"id\":")?;
        json_string(out, &self.id)?;
        out.write_all(b",\"client\":")?;
        json_string(out, &self.client)?;
        out.write_all(b",\"service\":")?;
        json_string(out, &self.service)?;
        out.write_all(b",\"node\":")?;
        json_string(out, &self.node)?;
        number(out, b",\"request_in\":", Some(self.request_in))?;
        number(out, b",\"request_out\":", self.request_out)?;
        number(out, b",\"response_in\":", self.response_in)?;
        number(out, b",\"response_out\":", Some(self.response_out))?;
        number(out, b",\"request_bytes\":", Some(self.request_bytes))?;
        number(out, b",\"response_bytes\":", Some(self.response_bytes))?;
        number(out, b",\"status\":", Some(self.status))?;
        out.write_all(b",\"code\":")?;
        match &self.code {
            Some(code) => json_string(out, code)?,
            None => out.write_all(b"null")?,
        }
        number(out, b",\"duration_us\":", Some(self.duration_us))?;
        out.write_all(if self.signed { b",\"signed\":true}" } else { b",\"signed\":false}" })
    }

    pub fn csv_line(&self) -> String {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        // Ids are printable ASCII without spaces; quote anyway so a comma cannot shift columns.
        format!(
            "\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.id.replace('"', "\"\""),
            self.client,
            self.service,
            self.node,
            self.request_in,
            opt(self.request_out),
            opt(self.response_in),
            self.response_out,
            self.request_bytes,
            self.response_bytes,
            self.status,
            self.code.as_deref().unwrap_or(""),
            self.duration_us,
            self.signed
        )
    }
}

pub fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

enum Command {
    Append(Arc<Record>),
    Flush(oneshot::Sender<()>),
}

pub struct Monitoring {
    /// Shared with the writer's queue: one record allocated once, not cloned
    /// (five strings) for each (issue 20).
    ring: Mutex<VecDeque<Arc<Record>>>,
    capacity: usize,
    writer: mpsc::Sender<Command>,
    dir: PathBuf,
    /// The console's charts, fed by the writer task (see [`super::history`]).
    history: Arc<Mutex<History>>,
}

/// Filter of a query; times in microseconds since the epoch.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub client: Option<String>,
    pub service: Option<String>,
    pub code: Option<String>,
    /// One exchange's message id.
    pub id: Option<String>,
    /// Inclusive range of statuses.
    pub status: Option<(u16, u16)>,
    pub limit: usize,
}

impl Query {
    fn matches(&self, r: &Record) -> bool {
        self.from.is_none_or(|f| r.request_in >= f)
            && self.to.is_none_or(|t| r.request_in < t)
            && self.client.as_deref().is_none_or(|c| r.client == c)
            && self.service.as_deref().is_none_or(|s| r.service == s)
            && self.code.as_deref().is_none_or(|c| r.code.as_deref().unwrap_or("ok") == c)
            && self.id.as_deref().is_none_or(|id| r.id == id)
            && self.status.is_none_or(|(lo, hi)| (lo..=hi).contains(&r.status))
    }
}

impl Monitoring {
    /// Starts the writer task (needs a tokio runtime).
    pub fn start(dir: PathBuf, capacity: usize, retention: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let history = Arc::new(Mutex::new(History::open(&dir.join("history"), now_us() / 1_000_000)?));
        let (tx, rx) = mpsc::channel(65_536);
        tokio::spawn(writer(dir.clone(), rx, retention, history.clone()));
        Ok(Self { ring: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))), capacity, writer: tx, dir, history })
    }

    /// The per-service history the charts draw (read under its lock, briefly).
    pub fn history<T>(&self, read: impl FnOnce(&History) -> T) -> T {
        read(&self.history.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Where the hourly record files are (the usage and SLA reports read them).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the writer put what it holds on disk (records and history), waiting 5 s at most.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Command::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }

    /// Keeps the record; false if the writer queue was full and it was not persisted.
    pub fn record(&self, record: Record) -> bool {
        let record = Arc::new(record);
        let persisted = self.writer.try_send(Command::Append(record.clone())).is_ok();
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(record);
        persisted
    }

    /// The newest records in memory, oldest first (for live views).
    pub fn recent(&self, since_us: i64) -> Vec<Record> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().filter(|r| r.request_in >= since_us).map(|r| Record::clone(r)).collect()
    }

    /// Records from the files, after making the writer flush what it holds.
    pub async fn query(&self, q: &Query) -> std::io::Result<Vec<Record>> {
        self.flush().await;
        let dir = self.dir.clone();
        let q = q.clone();
        tokio::task::spawn_blocking(move || read_files(&dir, &q)).await.map_err(std::io::Error::other)?
    }
}

fn hour_file(dir: &Path, us: i64) -> PathBuf {
    let t = OffsetDateTime::from_unix_timestamp(us / 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    dir.join(format!("{:04}-{:02}-{:02}T{:02}.ndjson", t.year(), u8::from(t.month()), t.day(), t.hour()))
}

fn read_files(dir: &Path, q: &Query) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    scan(dir, q.from, q.to, |record| {
        if q.matches(&record) {
            out.push(record);
        }
        out.len() < q.limit
    })?;
    Ok(out)
}

/// Calls `visit` with every record in the hourly files of `dir` whose request came in
/// within `[from, to)` (µs), oldest file first, until it returns false. Lines that do
/// not parse (a torn last line after a crash) are skipped.
pub fn scan(
    dir: &Path,
    from: Option<i64>,
    to: Option<i64>,
    mut visit: impl FnMut(Record) -> bool,
) -> std::io::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    // Hourly names sort by time; skip whole files outside the range.
    let first = from.map(|f| hour_file(dir, f));
    let last = to.map(|t| hour_file(dir, t));
    for file in files {
        if first.as_ref().is_some_and(|f| file < *f) || last.as_ref().is_some_and(|l| file > *l) {
            continue;
        }
        let reader = std::io::BufReader::new(std::fs::File::open(&file)?);
        for line in reader.lines() {
            let Ok(record) = serde_json::from_str::<Record>(&line?) else { continue };
            if from.is_some_and(|f| record.request_in < f) || to.is_some_and(|t| record.request_in >= t) {
                continue;
            }
            if !visit(record) {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn writer(dir: PathBuf, mut rx: mpsc::Receiver<Command>, retention: Duration, history: Arc<Mutex<History>>) {
    // The open file, by the hour it holds: the file's name is built only when the
    // hour changes (building it per record cost five allocations; issue 20).
    let mut current: Option<(i64, BufWriter<std::fs::File>)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_sweep = std::time::Instant::now() - Duration::from_secs(3600);
    let mut last_history = std::time::Instant::now();
    let persist_history = || {
        let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = h.persist(now_us() / 1_000_000) {
            tracing::error!("monitoring history {}: {e}", dir.join("history").display());
        }
    };
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Command::Append(record)) => {
                    history.lock().unwrap_or_else(|e| e.into_inner()).add(&record);
                    let hour = record.request_in.div_euclid(3_600_000_000);
                    if current.as_ref().is_none_or(|(h, _)| *h != hour) {
                        if let Some((_, mut w)) = current.take() {
                            let _ = w.flush();
                        }
                        let path = hour_file(&dir, record.request_in);
                        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                            Ok(f) => current = Some((hour, BufWriter::with_capacity(64 * 1024, f))),
                            Err(e) => {
                                tracing::error!("monitoring file {}: {e}", path.display());
                                continue;
                            }
                        }
                    }
                    if let Some((_, w)) = current.as_mut() {
                        if record.write_json(&mut *w).is_ok() {
                            let _ = w.write_all(b"\n");
                        }
                    }
                }
                Some(Command::Flush(done)) => {
                    if let Some((_, w)) = current.as_mut() {
                        let _ = w.flush();
                    }
                    persist_history();
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick() => {
                if let Some((_, w)) = current.as_mut() {
                    let _ = w.flush();
                }
                if last_history.elapsed() >= Duration::from_secs(5) {
                    last_history = std::time::Instant::now();
                    persist_history();
                }
                if last_sweep.elapsed() > Duration::from_secs(600) {
                    last_sweep = std::time::Instant::now();
                    sweep(&dir, retention);
                }
            }
        }
    }
    if let Some((_, mut w)) = current {
        let _ = w.flush();
    }
    persist_history();
}

/// Deletes hourly files older than the retention period.
fn sweep(dir: &Path, retention: Duration) {
    let cutoff = hour_file(dir, now_us() - retention.as_micros() as i64);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_some_and(|e| e == "ndjson") && path < cutoff {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Record;

    #[test]
    fn a_record_is_written_as_serde_writes_it() {
        let full = Record {
            id: "id \"q\" \\ \u{1}".into(),
            client: "KZ/GOV/1/a".into(),
            service: "KZ/GOV/2/b/s ünï".into(),
            node: "node-1".into(),
            request_in: -5,
            request_out: Some(i64::MAX),
            response_in: Some(7),
            response_out: 9,
            request_bytes: u64::MAX,
            response_bytes: 0,
            status: 503,
            code: Some("server.log_unavailable".into()),
            duration_us: 12,
            signed: true,
        };
        let bare = Record { request_out: None, response_in: None, code: None, signed: false, ..full.clone() };
        for record in [full, bare] {
            let mut out = Vec::new();
            record.write_json(&mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&record).unwrap());
        }
    }
}
