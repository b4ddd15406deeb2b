//! Replay protection: a message id is accepted once per client within the replay
//! window. Kept as 128-bit hashes of (client, id) in time buckets (memory bounded by
//! `capacity`: past it the oldest bucket is forgotten early, and counted), and
//! appended to a file in the data directory so a restart — or a kill -9, the write
//! is in the kernel before the request goes on — remembers them. The file is
//! compacted to the live window when the gateway starts.
//!
//! Durable and fail-closed like the message log: an id the file cannot take is
//! refused ([`GuardError::Unavailable`], `server.log_unavailable`) and forgotten
//! again (a retry is not a replay), the file is cut back to its last whole line,
//! and [`ReplayGuard::syncer`] gives the message log the fsync it runs before each
//! of its group syncs, so every exchange answered from the record has its id on
//! disk too (power loss included), without an fsync of its own.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// The cluster's replay memory: `SET key NX PX window` per (client, id).
struct SharedReplay {
    target: crate::cluster::redis_target::RedisTarget,
    /// Connected on first use; a dropped connection is rebuilt by the manager.
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    prefix: String,
    timeout: std::time::Duration,
}

/// Deletes KEYS[1] only while it holds ARGV[1]: one try takes back its own entry.
const DELETE_IF_OURS: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl SharedReplay {
    fn key(&self, client: &str, id: &str) -> String {
        format!("{}:replay:{:032x}", self.prefix, key(client, id))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, String> {
        let mut conn = {
            let mut held = self.conn.lock().await;
            match held.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(self.timeout)
                        .set_response_timeout(self.timeout)
                        .set_number_of_retries(0);
                    let made = tokio::time::timeout(self.timeout, async {
                        let client = self.target.client(self.timeout).await?;
                        redis::aio::ConnectionManager::new_with_config(client, config).await.map_err(|e| e.to_string())
                    })
                    .await
                    .map_err(|_| "connect timed out".to_owned())??;
                    *held = Some(made.clone());
                    made
                }
            }
        };
        let result = tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if result.is_err() && self.target.follows_failover() {
            // Behind Sentinel the master may have moved: the next call asks again.
            self.conn.lock().await.take();
        }
        result
    }
}

pub struct ReplayGuard {
    state: Mutex<State>,
    log: Mutex<LogFile>,
    /// Written since the last sync (the message log's group sync clears it).
    dirty: Arc<AtomicBool>,
    /// A write failed and the file has not taken one since.
    failing: AtomicBool,
    failures: prometheus::IntCounter,
    window: u64,
    bucket: u64,
    capacity: usize,
    /// `[storage] replay = "redis"`: ids live in Redis, shared by the cluster.
    shared: Option<SharedReplay>,
}

struct LogFile {
    file: std::fs::File,
    /// Length up to the last whole line: what a failed write is cut back to.
    good: u64,
}

#[derive(Default)]
struct State {
    buckets: VecDeque<(u64, HashSet<u128>)>,
    total: usize,
    /// Entries forgotten before their time because the guard was full.
    evicted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// Seen within the window.
    Replayed,
    /// The guard's file cannot take the id: the exchange must not go on.
    Unavailable,
}

fn key(client: &str, id: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(client.as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    let digest = h.finalize();
    u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"))
}

impl ReplayGuard {
    /// Opens (and compacts) the guard's file at `path`; `window` and `now` in seconds.
    pub fn open(path: &Path, window: u64, capacity: usize, now: u64) -> std::io::Result<Self> {
        let window = window.max(1);
        let this_state = Mutex::new(State::default());
        let mut kept: Vec<(u64, u128)> = Vec::new();
        if let Ok(file) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(file).lines() {
                let line = line?;
                let Some((ts, hex)) = line.split_once(' ') else { continue };
                // "-key": a tombstone, the id forgotten (its exchange was not accepted).
                let (forgotten, hex) = match hex.strip_prefix('-') {
                    Some(hex) => (true, hex),
                    None => (false, hex),
                };
                let (Ok(ts), Ok(k)) = (ts.parse::<u64>(), u128::from_str_radix(hex, 16)) else { continue };
                if forgotten {
                    kept.retain(|&(_, kept)| kept != k);
                } else if ts + window > now {
                    kept.push((ts, k));
                }
            }
        }
        let tmp: PathBuf = path.with_extension("compacting");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for (ts, k) in &kept {
                writeln!(out, "{ts} {k:032x}")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let good = file.metadata()?.len();
        let guard = Self {
            state: this_state,
            log: Mutex::new(LogFile { file, good }),
            dirty: Arc::new(AtomicBool::new(false)),
            failing: AtomicBool::new(false),
            failures: prometheus::IntCounter::new("replay_failures", "unregistered").expect("valid metric"),
            window,
            bucket: (window / 24).max(60),
            capacity,
            shared: None,
        };
        {
            let mut state = guard.state.lock().unwrap_or_else(|e| e.into_inner());
            for (ts, k) in kept {
                guard.insert(&mut state, ts, k);
            }
        }
        Ok(guard)
    }

    /// Keeps ids in Redis instead of the file (`[storage] replay = "redis"`), so one
    /// signed message is accepted once by the whole cluster. Connects on first use:
    /// a node starts while Redis is down (and refuses signed exchanges until it is up).
    pub fn with_redis(mut self, config: &crate::config::RedisReplay) -> Result<Self, String> {
        let target = crate::cluster::redis_target::RedisTarget::open(&config.url)?;
        self.shared = Some(SharedReplay {
            target,
            conn: tokio::sync::Mutex::new(None),
            prefix: config.prefix.clone(),
            timeout: config.timeout,
        });
        Ok(self)
    }

    /// Records (client, id), in Redis when the guard is shared, else as [`check`](Self::check).
    /// Fail-closed: Redis unreachable is [`GuardError::Unavailable`], never an acceptance.
    pub async fn check_id(&self, client: &str, id: &str, now: u64) -> Result<(), GuardError> {
        let Some(shared) = &self.shared else { return self.check(client, id, now) };
        let key = shared.key(client, id);
        // The value names this try, so a try that timed out can take back its own
        // SET (if it landed) and nobody else's.
        let token = format!("{now}:{}", uuid::Uuid::new_v4().simple());
        let set = redis::cmd("SET").arg(&key).arg(&token).arg("NX").arg("PX").arg(self.window * 1000).clone();
        let result = shared.query::<Option<String>>(set).await;
        self.note_shared(result.is_ok());
        match result {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(GuardError::Replayed),
            Err(e) => {
                self.failures.inc();
                tracing::warn!("replay guard (Redis): {e}; signed exchanges are refused");
                // The SET may have landed with its answer lost: unless it is taken
                // back, the client's retry of this refused message reads as a replay.
                let undo = redis::cmd("EVAL").arg(DELETE_IF_OURS).arg(1).arg(&key).arg(&token).clone();
                if let Err(e) = shared.query::<i64>(undo).await {
                    tracing::warn!("replay guard (Redis): cannot take back a refused id's entry: {e}");
                }
                Err(GuardError::Unavailable)
            }
        }
    }

    /// Forgets (client, id) that this exchange recorded, because the exchange was
    /// not accepted after all (the mailbox store refused it): the client's resend of
    /// the same message must not read as a replay. Best effort: a forget that
    /// cannot be written leaves the id remembered (a refused resend, never an
    /// accepted replay).
    pub async fn forget(&self, client: &str, id: &str, now: u64) {
        if let Some(shared) = &self.shared {
            if let Err(e) = shared.query::<i64>(redis::cmd("DEL").arg(shared.key(client, id)).clone()).await {
                tracing::warn!("replay guard (Redis): cannot forget a refused id: {e}");
            }
            return;
        }
        let k = key(client, id);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = false;
        for (_, keys) in state.buckets.iter_mut() {
            found |= keys.remove(&k);
        }
        if found {
            state.total -= 1;
            // The tombstone keeps a restart from remembering the id again.
            let _ = self.write(format!("{now} -{k:032x}\n").as_bytes());
        }
    }

    /// Pings a shared guard's Redis (every second), so readiness follows Redis
    /// without traffic.
    pub async fn probe_shared(&self) {
        if let Some(shared) = &self.shared {
            let ok = shared.query::<String>(redis::cmd("PING")).await.is_ok();
            self.note_shared(ok);
        }
    }

    fn note_shared(&self, ok: bool) {
        if self.failing.swap(!ok, Ordering::AcqRel) == ok {
            match ok {
                true => tracing::info!("replay guard: Redis answers again"),
                false => tracing::error!("replay guard: Redis does not answer; signed exchanges are refused"),
            }
        }
    }

    /// Counts the file's write failures in the gateway's metrics.
    pub fn with_failure_counter(mut self, failures: prometheus::IntCounter) -> Self {
        self.failures = failures;
        self
    }

    /// Records (client, id) at `now`, or refuses it if seen within the window or
    /// if the file cannot take it.
    pub fn check(&self, client: &str, id: &str, now: u64) -> Result<(), GuardError> {
        let k = key(client, id);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.buckets.front().is_some_and(|(start, _)| start + self.bucket + self.window <= now) {
            let (_, gone) = state.buckets.pop_front().expect("checked");
            state.total -= gone.len();
        }
        if state.buckets.iter().any(|(_, keys)| keys.contains(&k)) {
            return Err(GuardError::Replayed);
        }
        // Written before it is remembered, under the state's lock: an id is either
        // on file and in memory, or in neither (a concurrent duplicate waits here).
        self.write(format!("{now} {k:032x}\n").as_bytes())?;
        self.insert(&mut state, now, k);
        Ok(())
    }

    fn write(&self, line: &[u8]) -> Result<(), GuardError> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        match log.file.write_all(line) {
            Ok(()) => {
                log.good += line.len() as u64;
                self.dirty.store(true, Ordering::Release);
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::warn!("replay guard file: writes again");
                }
                Ok(())
            }
            Err(e) => {
                self.failures.inc();
                // Never retried in place: a part of the line may be on disk.
                let good = log.good;
                let cut = log.file.set_len(good);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::error!("replay guard file: {e} (cut back: {cut:?}); signed exchanges are refused");
                }
                Err(GuardError::Unavailable)
            }
        }
    }

    /// Whether the last write failed (readiness reports it).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Tries the file again while it is failing (an empty line: the loader skips
    /// lines it cannot read), so readiness comes back without traffic.
    pub fn probe(&self) {
        // A shared guard's failures are Redis's: probe_shared tries it.
        if self.is_failing() && self.shared.is_none() {
            let _ = self.write(b"\n");
        }
    }

    /// The fsync the message log runs before each group sync: the file's bytes
    /// reach the disk whenever a record does. Cheap when nothing was written.
    pub fn syncer(&self) -> std::io::Result<Box<dyn Fn() -> std::io::Result<()> + Send>> {
        let file = self.log.lock().unwrap_or_else(|e| e.into_inner()).file.try_clone()?;
        let dirty = self.dirty.clone();
        Ok(Box::new(move || {
            if dirty.swap(false, Ordering::AcqRel) {
                file.sync_data().inspect_err(|_| dirty.store(true, Ordering::Release))?;
            }
            Ok(())
        }))
    }

    fn insert(&self, state: &mut State, ts: u64, k: u128) {
        if state.total >= self.capacity {
            if let Some((_, gone)) = state.buckets.pop_front() {
                state.total -= gone.len();
                state.evicted += gone.len() as u64;
                tracing::warn!(forgotten = gone.len(), "replay guard full: oldest ids forgotten early");
            }
        }
        let start = ts - ts % self.bucket;
        match state.buckets.back_mut() {
            // Clocks step back a little: such an entry joins the newest bucket.
            Some((last, keys)) if *last >= start => {
                keys.insert(k);
            }
            _ => state.buckets.push_back((start, HashSet::from([k]))),
        }
        state.total += 1;
    }

    /// (ids remembered, ids forgotten early because the guard was full).
    pub fn stats(&self) -> (usize, u64) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.total, state.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_accepted_once_per_client_within_the_window_and_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let day = 86_400;
        let g = ReplayGuard::open(&path, day, 1000, 1_000_000).unwrap();
        assert_eq!(g.check("KZ/GOV/1/a", "m-1", 1_000_000), Ok(()));
        assert_eq!(g.check("KZ/GOV/1/a", "m-1", 1_000_100), Err(GuardError::Replayed));
        assert_eq!(g.check("KZ/GOV/1/b", "m-1", 1_000_100), Ok(()), "ids are per client");
        drop(g);
        // A restart remembers; the window's end forgets.
        let g = ReplayGuard::open(&path, day, 1000, 1_000_200).unwrap();
        assert_eq!(g.check("KZ/GOV/1/a", "m-1", 1_000_200), Err(GuardError::Replayed));
        assert_eq!(g.stats().0, 2);
        let later = 1_000_000 + day + 3_600 * 2;
        assert_eq!(g.check("KZ/GOV/1/a", "m-1", later), Ok(()), "past the window");
        drop(g);
        let g = ReplayGuard::open(&path, day, 1000, later + day + 7_200).unwrap();
        assert_eq!(g.stats().0, 0, "the file was compacted to the live window");
    }

    #[tokio::test]
    async fn a_forgotten_id_is_accepted_again_also_after_a_restart_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let g = ReplayGuard::open(&path, 86_400, 1000, 0).unwrap();
        g.check("c", "kept", 1).unwrap();
        g.check("c", "refused-by-the-store", 2).unwrap();
        g.forget("c", "refused-by-the-store", 3).await;
        assert_eq!(g.stats().0, 1);
        g.forget("c", "never-seen", 3).await;
        assert_eq!(g.stats().0, 1, "forgetting an unknown id changes nothing");
        drop(g);
        let g = ReplayGuard::open(&path, 86_400, 1000, 4).unwrap();
        assert_eq!(g.check("c", "kept", 4), Err(GuardError::Replayed));
        assert_eq!(g.check("c", "refused-by-the-store", 4), Ok(()), "the tombstone outlived the restart");
        assert_eq!(g.check("c", "refused-by-the-store", 5), Err(GuardError::Replayed));
    }

    /// Against the Redis on loopback (CI starts one): a forgotten id is accepted
    /// again, and a try takes back only its own entry (what a timed-out SET does).
    #[tokio::test]
    async fn the_shared_guard_forgets_and_takes_back_only_its_own_entry() {
        let url = std::env::var("QAQPA_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        if std::net::TcpStream::connect(url.trim_start_matches("redis://")).is_err() {
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: Redis at {url} is required");
            eprintln!("SKIPPED: Redis at {url} unreachable");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let config = crate::config::RedisReplay { url, timeout: std::time::Duration::from_secs(2), prefix };
        let g = ReplayGuard::open(&dir.path().join("r"), 3600, 100, 0).unwrap().with_redis(&config).unwrap();
        assert_eq!(g.check_id("c", "m-1", 10).await, Ok(()));
        assert_eq!(g.check_id("c", "m-1", 11).await, Err(GuardError::Replayed));
        g.forget("c", "m-1", 12).await;
        assert_eq!(g.check_id("c", "m-1", 13).await, Ok(()), "forgotten: the resend is accepted");

        let shared = g.shared.as_ref().unwrap();
        let key = shared.key("c", "m-1");
        let token: String = shared.query(redis::cmd("GET").arg(&key).clone()).await.unwrap();
        let undo = |token: String| redis::cmd("EVAL").arg(DELETE_IF_OURS).arg(1).arg(&key).arg(token).clone();
        assert_eq!(shared.query::<i64>(undo("13:another-try".into())).await, Ok(0), "not ours: kept");
        assert_eq!(g.check_id("c", "m-1", 14).await, Err(GuardError::Replayed));
        assert_eq!(shared.query::<i64>(undo(token)).await, Ok(1), "ours: taken back");
        assert_eq!(g.check_id("c", "m-1", 15).await, Ok(()));
        let _: Result<i64, _> = shared.query(redis::cmd("DEL").arg(&key).clone()).await;
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(&dir.path().join("r"), 86_400, 100, 0).unwrap();
        assert!(!g.is_failing());
        for i in 0..1000u64 {
            g.check("c", &i.to_string(), i * 10).unwrap();
        }
        let (live, evicted) = g.stats();
        assert!(live <= 100 && evicted > 0, "{live} live, {evicted} evicted");
    }

    #[test]
    fn an_id_the_file_cannot_take_is_refused_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let g = ReplayGuard::open(&path, 86_400, 1000, 0).unwrap();
        g.check("c", "kept", 1).unwrap();
        // A read-only handle in place of the file: every write fails, as on EIO.
        g.log.lock().unwrap().file = std::fs::File::open(&path).unwrap();
        assert_eq!(g.check("c", "m-1", 2), Err(GuardError::Unavailable));
        assert!(g.is_failing());
        assert_eq!(g.failures.get(), 1);
        g.probe();
        assert!(g.is_failing(), "still failing: the probe cannot write either");
        g.log.lock().unwrap().file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        g.probe();
        assert!(!g.is_failing(), "the probe found the file writable");
        assert_eq!(g.check("c", "m-1", 3), Ok(()), "the refused id was not remembered");
        assert_eq!(g.check("c", "m-1", 4), Err(GuardError::Replayed));
        let sync = g.syncer().unwrap();
        sync().unwrap();
        drop(g);
        let g = ReplayGuard::open(&path, 86_400, 1000, 5).unwrap();
        assert_eq!(g.check("c", "kept", 5), Err(GuardError::Replayed));
        assert_eq!(g.check("c", "m-1", 5), Err(GuardError::Replayed));
    }
}
