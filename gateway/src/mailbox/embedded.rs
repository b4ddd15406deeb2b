//! The embedded mailbox store: one redb file (`DATA_DIR/mailbox.redb`) and an
//! in-memory index of what is ready, leased and waiting.
//!
//! Durability by group commit: every change is a job for one writer thread, which
//! applies all jobs waiting at once in a single write transaction and commits it
//! (redb's `Durability::Immediate`: fsync) before any of their callers hears back.
//! While one commit is on disk the next batch gathers, so throughput grows with load
//! while each `202` still means "on disk".
//!
//! Leases live only in memory: after a crash every message not acknowledged is ready
//! again (at-least-once), with its attempt count, which is persisted on each delivery.
//!
//! Messages are keyed by their sequence number, so a batch of sends appends to the
//! right edge of the B-tree (copy-on-write dirties a few pages, not one per message);
//! the one table keyed by the random mailbox id holds only small entries.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{oneshot, Notify};

use super::{now_ms, push_attempt, DeadLetter, Delivery, Depth, Envelope, Kind, MailboxError, Policy, Queue, Sent};

/// seq → framed envelope and body of a waiting message.
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Mailbox id → (seq of its waiting message or 0, finished at in Unix ms or 0): every
/// id accepted within the dedupe window, for idempotency.
const IDS: TableDefinition<u128, (u64, i64)> = TableDefinition::new("ids");
/// Mailbox id → framed envelope (with its history) and body of a dead letter.
const DEAD: TableDefinition<u128, &[u8]> = TableDefinition::new("dead");
/// Finished ids by finishing time, for pruning IDS.
const DONE_BY_TIME: TableDefinition<(i64, u128), ()> = TableDefinition::new("done_by_time");

#[path = "embedded_events.rs"]
mod events;

/// Jobs applied in one transaction at most.
const MAX_BATCH: usize = 4096;
/// Finished ids pruned per housekeeping pass.
pub(super) const PRUNE_BATCH: usize = 10_000;

type Applied = Box<dyn Any + Send>;
type Apply = Box<dyn FnOnce(&mut Tables<'_>) -> Result<Applied, redb::StorageError> + Send>;

struct Job {
    apply: Apply,
    done: oneshot::Sender<Result<Applied, String>>,
}

/// The tables of one write transaction, opened once per batch.
pub struct Tables<'t> {
    messages: Table<'t, u64, &'static [u8]>,
    ids: Table<'t, u128, (u64, i64)>,
    dead: Table<'t, u128, &'static [u8]>,
    done_by_time: Table<'t, (i64, u128), ()>,
    events: events::Tables<'t>,
}

pub struct Embedded {
    db: Arc<Database>,
    /// `None` asks the writer to finish and stop (see `Drop`).
    jobs: mpsc::SyncSender<Option<Job>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    index: Mutex<Index>,
    changed: Notify,
    pub(super) policy: Policy,
    next_seq: AtomicU64,
    events: Mutex<events::EventIndex>,
    events_changed: Notify,
}

impl Embedded {
    /// Opens (or creates) the store and rebuilds the index from it. Blocking.
    pub fn open(path: &Path, policy: Policy) -> Result<Self, MailboxError> {
        let db = Arc::new(Database::create(path).map_err(store_error)?);
        // Create the tables, so reads before the first write find them.
        let txn = db.begin_write().map_err(store_error)?;
        {
            let _ = open_tables(&txn).map_err(store_error)?;
        }
        txn.commit().map_err(store_error)?;
        let mut index = Index::default();
        let mut max_seq = 0;
        let read = db.begin_read().map_err(store_error)?;
        let messages = read.open_table(MESSAGES).map_err(store_error)?;
        let mut waiting = 0usize;
        for row in messages.iter().map_err(store_error)? {
            let (_, value) = row.map_err(store_error)?;
            let (envelope, _) = decode(value.value().to_vec())?;
            max_seq = max_seq.max(envelope.seq);
            index.insert(&envelope);
            waiting += 1;
        }
        let dead = read.open_table(DEAD).map_err(store_error)?;
        for row in dead.iter().map_err(store_error)? {
            let (_, value) = row.map_err(store_error)?;
            max_seq = max_seq.max(decode(value.value().to_vec())?.0.seq);
            index.dead += 1;
        }
        let event_index = events::EventIndex::load(&read)?;
        drop((messages, dead, read));
        tracing::info!(messages = waiting, dead = index.dead, "mailbox store opened: {}", path.display());
        let (jobs, queue) = mpsc::sync_channel(MAX_BATCH * 4);
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("qaqpa-mailbox".into())
            .spawn(move || writer(writer_db, queue))
            .map_err(|e| MailboxError::Store(e.to_string()))?;
        Ok(Self {
            db,
            jobs,
            writer: Mutex::new(Some(writer)),
            index: Mutex::new(index),
            changed: Notify::new(),
            policy,
            next_seq: AtomicU64::new(max_seq + 1),
            events: Mutex::new(event_index),
            events_changed: Notify::new(),
        })
    }

    /// Runs `apply` in the next group commit; returns once it is on disk.
    async fn write<R: Send + 'static>(
        &self,
        apply: impl FnOnce(&mut Tables<'_>) -> Result<R, redb::StorageError> + Send + 'static,
    ) -> Result<R, MailboxError> {
        let (done, result) = oneshot::channel();
        let job = Job { apply: Box::new(move |t| apply(t).map(|r| Box::new(r) as Applied)), done };
        // The channel is bounded: a full one means the disk is behind; wait off the workers.
        let jobs = self.jobs.clone();
        match jobs.try_send(Some(job)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => tokio::task::spawn_blocking(move || jobs.send(job))
                .await
                .map_err(|e| MailboxError::Store(e.to_string()))?
                .map_err(|_| MailboxError::Store("the mailbox writer stopped".into()))?,
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(MailboxError::Store("the mailbox writer stopped".into()))
            }
        }
        let applied = result.await.map_err(|_| MailboxError::Store("the mailbox writer stopped".into()))?;
        let applied = applied.map_err(MailboxError::Store)?;
        applied.downcast::<R>().map(|r| *r).map_err(|_| MailboxError::Store("mismatched job result".into()))
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn send(&self, mut envelope: Envelope, body: Bytes) -> Result<Sent, MailboxError> {
        let queue = envelope.queue();
        if self.index().count(&queue) >= u64::from(self.policy.max_queue_depth) {
            return Err(MailboxError::Full(queue.name().to_owned()));
        }
        envelope.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (key, seq) = (envelope.mid.as_u128(), envelope.seq);
        let framed = encode(&envelope, &body);
        let stored = self
            .write(move |t| {
                if t.ids.get(key)?.is_some() {
                    return Ok(false);
                }
                t.messages.insert(seq, framed.as_ref())?;
                t.ids.insert(key, (seq, 0))?;
                Ok(true)
            })
            .await?;
        if !stored {
            return Ok(Sent::Duplicate(envelope.mid));
        }
        self.index().insert(&envelope);
        self.changed.notify_waiters();
        Ok(Sent::New(envelope.mid))
    }

    pub async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let until = now_ms() + self.policy.visibility.as_millis() as i64;
            let leased = self.index().lease(queues, max, until);
            if !leased.is_empty() {
                return self.deliver(leased).await;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Wake for new messages, or to look at expired leases (the housekeeping
            // tick readies them).
            let nap = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// Persists each leased message's new attempt and reads its body.
    async fn deliver(&self, leased: Vec<Leased>) -> Result<Vec<Delivery>, MailboxError> {
        let attempt = self.policy.attempt("delivered");
        let keys: Vec<u128> = leased.iter().map(|l| l.key).collect();
        let result = self
            .write(move |t| {
                let mut out = Vec::with_capacity(leased.len());
                for Leased { seq, attempts, .. } in leased {
                    let Some(value) = t.messages.get(seq)?.map(|v| v.value().to_vec()) else { continue };
                    let Ok((mut envelope, body)) = decode(value) else { continue };
                    envelope.attempts = attempts;
                    let mut event = attempt.clone();
                    event.event = format!("delivered (attempt {attempts})");
                    push_attempt(&mut envelope.history, event);
                    t.messages.insert(seq, encode(&envelope, &body).as_ref())?;
                    out.push(Delivery { envelope, body });
                }
                Ok(out)
            })
            .await;
        if result.is_err() {
            // Not delivered after all: ready again at once.
            let mut index = self.index();
            for key in keys {
                index.expire_now(key);
            }
        }
        result
    }

    pub async fn reply(
        &self,
        mid: uuid::Uuid,
        provider: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let old_seq = self.index().owned(key, Kind::Request, provider).ok_or(MailboxError::Unknown(mid))?.seq;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let answered = self.policy.attempt(format!("answered by {provider} with {status}"));
        let response = self
            .write(move |t| {
                let Some(value) = t.messages.get(old_seq)?.map(|v| v.value().to_vec()) else { return Ok(None) };
                let Ok((request, _)) = decode(value) else { return Ok(None) };
                if request.kind != Kind::Request || request.mid.as_u128() != key {
                    return Ok(None);
                }
                let mut response = Envelope {
                    kind: Kind::Response,
                    seq,
                    headers,
                    status: Some(status),
                    ordered: false,
                    attempts: 0,
                    ..request
                };
                push_attempt(&mut response.history, answered);
                t.messages.remove(old_seq)?;
                t.messages.insert(seq, encode(&response, &body).as_ref())?;
                t.ids.insert(key, (seq, 0))?;
                Ok(Some(response))
            })
            .await?
            .ok_or(MailboxError::Unknown(mid))?;
        let mut index = self.index();
        index.remove_at(key, old_seq);
        index.insert(&response);
        drop(index);
        self.changed.notify_waiters();
        Ok(())
    }

    pub async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let seq = {
            let index = self.index();
            [Kind::Response, Kind::Request].into_iter().find_map(|k| index.owned(key, k, system).map(|e| e.seq))
        };
        let seq = seq.ok_or(MailboxError::Unknown(mid))?;
        let now = now_ms();
        // The message may have changed since the index was read (answered, buried):
        // only the one the caller saw is finished.
        let finished = self
            .write(move |t| {
                if !stored_at(t, seq, key)? {
                    return Ok(false);
                }
                t.messages.remove(seq)?;
                finish(t, key, now)?;
                Ok(true)
            })
            .await?;
        if !finished {
            return Err(MailboxError::Unknown(mid));
        }
        self.index().remove_at(key, seq);
        self.changed.notify_waiters();
        Ok(())
    }

    pub async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let (seq, attempts) = self.index().attempts(key).ok_or(MailboxError::Unknown(mid))?;
        let event = self.policy.attempt(format!("failed: {why}"));
        if attempts >= self.policy.max_attempts {
            return self.bury(vec![(key, seq, event)]).await;
        }
        let delay = self.policy.retry_delay(attempts);
        self.write(move |t| {
            update_envelope(t, seq, |e| push_attempt(&mut e.history, event))?;
            Ok(())
        })
        .await?;
        self.index().delay(key, now_ms() + delay.as_millis() as i64);
        Ok(())
    }

    /// Moves messages to the dead letters, each with its last event.
    async fn bury(&self, victims: Vec<(u128, u64, super::Attempt)>) -> Result<(), MailboxError> {
        let max = self.policy.max_attempts;
        let buried = self
            .write(move |t| {
                let mut moved = Vec::new();
                for (key, seq, event) in victims {
                    if !stored_at(t, seq, key)? {
                        continue;
                    }
                    let Some(value) = t.messages.remove(seq)?.map(|v| v.value().to_vec()) else { continue };
                    let Ok((mut envelope, body)) = decode(value) else { continue };
                    let buried = super::Attempt { event: format!("dead letter after {max} attempts"), ..event.clone() };
                    push_attempt(&mut envelope.history, event);
                    push_attempt(&mut envelope.history, buried);
                    t.dead.insert(key, encode(&envelope, &body).as_ref())?;
                    t.ids.insert(key, (0, 0))?;
                    moved.push((key, seq));
                }
                Ok(moved)
            })
            .await?;
        let mut index = self.index();
        for (key, seq) in buried {
            if index.remove_at(key, seq).is_some() {
                index.dead += 1;
            }
        }
        drop(index);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Readies messages whose lease or retry delay is over, buries those out of
    /// attempts, and forgets finished ids older than the dedupe window. Called by
    /// the gateway's housekeeping several times a second.
    pub async fn tick(&self) -> Result<(), MailboxError> {
        let now = now_ms();
        let expired = self.index().expire(now, self.policy.max_attempts);
        if !expired.timed_out.is_empty() {
            let event = self.policy.attempt("visibility timeout expired");
            let readied = expired.timed_out.clone();
            self.write(move |t| {
                for (_, seq) in readied {
                    update_envelope(t, seq, |e| push_attempt(&mut e.history, event.clone()))?;
                }
                Ok(())
            })
            .await?;
        }
        if !expired.dead.is_empty() {
            let event = self.policy.attempt("visibility timeout expired");
            self.bury(expired.dead.into_iter().map(|(k, seq)| (k, seq, event.clone())).collect()).await?;
        }
        if expired.readied > 0 {
            self.changed.notify_waiters();
        }
        Ok(())
    }

    /// Forgets finished message ids older than the dedupe window (a bounded batch).
    pub async fn prune(&self) -> Result<usize, MailboxError> {
        let cutoff = now_ms() - self.policy.dedupe_window.as_millis() as i64;
        self.write(move |t| {
            let mut old = Vec::new();
            for row in t.done_by_time.range(..(cutoff, 0u128))?.take(PRUNE_BATCH) {
                let (key, _) = row?;
                old.push(key.value());
            }
            for (time, key) in &old {
                t.done_by_time.remove((*time, *key))?;
                // Only if it is still this finishing (not sent again since).
                if t.ids.get(*key)?.is_some_and(|v| v.value().1 == *time) {
                    t.ids.remove(*key)?;
                }
            }
            Ok(old.len())
        })
        .await
    }

    pub fn depths(&self) -> Vec<Depth> {
        self.index().depths()
    }

    pub fn dead_count(&self) -> u64 {
        self.index().dead
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<DeadLetter>, MailboxError> {
            let read = db.begin_read().map_err(store_error)?;
            let dead = read.open_table(DEAD).map_err(store_error)?;
            let mut out = Vec::new();
            for row in dead.iter().map_err(store_error)?.take(limit) {
                let (_, value) = row.map_err(store_error)?;
                let (envelope, body) = decode(value.value().to_vec())?;
                out.push(DeadLetter { envelope, body_bytes: body.len() });
            }
            out.sort_by_key(|d| d.envelope.seq);
            Ok(out)
        })
        .await
        .map_err(|e| MailboxError::Store(e.to_string()))?
    }

    pub async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let event = self.policy.attempt("replayed by an operator");
        let envelope = self
            .write(move |t| {
                let Some(value) = t.dead.remove(key)?.map(|v| v.value().to_vec()) else { return Ok(None) };
                let Ok((mut envelope, body)) = decode(value) else { return Ok(None) };
                envelope.attempts = 0;
                envelope.seq = seq;
                push_attempt(&mut envelope.history, event);
                t.messages.insert(seq, encode(&envelope, &body).as_ref())?;
                t.ids.insert(key, (seq, 0))?;
                Ok(Some(envelope))
            })
            .await?
            .ok_or(MailboxError::Unknown(mid))?;
        let mut index = self.index();
        index.dead = index.dead.saturating_sub(1);
        index.insert(&envelope);
        drop(index);
        self.changed.notify_waiters();
        Ok(())
    }

    pub async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let now = now_ms();
        let found = self
            .write(move |t| {
                if t.dead.remove(key)?.is_none() {
                    return Ok(false);
                }
                finish(t, key, now)?;
                Ok(true)
            })
            .await?;
        if !found {
            return Err(MailboxError::Unknown(mid));
        }
        let mut index = self.index();
        index.dead = index.dead.saturating_sub(1);
        Ok(())
    }
}

/// Stopping waits for the writer: once the store is dropped the file lock is free, so
/// a gateway restarted in the same process (tests, an embedding host) can open it.
impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.jobs.send(None);
        let writer = self.writer.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

fn open_tables(txn: &redb::WriteTransaction) -> Result<Tables<'_>, redb::TableError> {
    Ok(Tables {
        messages: txn.open_table(MESSAGES)?,
        ids: txn.open_table(IDS)?,
        dead: txn.open_table(DEAD)?,
        done_by_time: txn.open_table(DONE_BY_TIME)?,
        events: events::Tables::open(txn)?,
    })
}

/// The group-commit loop: everything queued while the last commit was on disk goes
/// into the next transaction.
fn writer(db: Arc<Database>, jobs: mpsc::Receiver<Option<Job>>) {
    let mut stopping = false;
    while let Ok(Some(first)) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Some(job)) => batch.push(job),
                Ok(None) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut applied = Vec::with_capacity(batch.len());
        let outcome = (|| -> Result<(), String> {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut tables = open_tables(&txn).map_err(|e| e.to_string())?;
                for job in batch.drain(..) {
                    match (job.apply)(&mut tables) {
                        Ok(result) => applied.push((job.done, result)),
                        Err(e) => {
                            // One failed write spoils the transaction: fail the whole batch.
                            let _ = job.done.send(Err(e.to_string()));
                            return Err(e.to_string());
                        }
                    }
                }
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        match outcome {
            Ok(()) => {
                for (done, result) in applied {
                    let _ = done.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!("mailbox commit failed: {e}");
                for (done, _) in applied {
                    let _ = done.send(Err(e.clone()));
                }
                for job in batch {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn update_envelope(t: &mut Tables<'_>, seq: u64, change: impl FnOnce(&mut Envelope)) -> Result<(), redb::StorageError> {
    let Some(value) = t.messages.get(seq)?.map(|v| v.value().to_vec()) else { return Ok(()) };
    let Ok((mut envelope, body)) = decode(value) else { return Ok(()) };
    change(&mut envelope);
    t.messages.insert(seq, encode(&envelope, &body).as_ref())?;
    Ok(())
}

/// Whether the message stored at `seq` is still the one with id `key` (the ids table
/// points each id at its current message).
fn stored_at(t: &Tables<'_>, seq: u64, key: u128) -> Result<bool, redb::StorageError> {
    Ok(t.ids.get(key)?.is_some_and(|v| v.value().0 == seq))
}

/// Remembers a finished id (for dedupe, until pruned).
fn finish(t: &mut Tables<'_>, key: u128, now: i64) -> Result<(), redb::StorageError> {
    t.ids.insert(key, (0, now))?;
    t.done_by_time.insert((now, key), ())?;
    Ok(())
}

fn encode(envelope: &Envelope, body: &[u8]) -> Bytes {
    super::frame(envelope, body)
}

/// Reads a stored value; takes it owned, so the body is a view into it, not a copy.
fn decode(value: Vec<u8>) -> Result<(Envelope, Bytes), MailboxError> {
    super::unframe(&Bytes::from(value)).ok_or_else(|| MailboxError::Store("a stored message is unreadable".into()))
}

fn store_error(e: impl std::fmt::Display) -> MailboxError {
    MailboxError::Store(e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    /// Taken; back when the lease ends (Unix ms).
    Leased(i64),
    /// Waiting for a retry delay (Unix ms).
    Delayed(i64),
    /// An ordered message behind an earlier one of its (client, service).
    Blocked,
    /// Out of attempts, being moved to the dead letters.
    Dying,
}

struct Entry {
    queue: Queue,
    seq: u64,
    owner: String,
    kind: Kind,
    group: Option<(String, String)>,
    state: State,
    attempts: u32,
}

/// A message just taken: its id, where it is stored, which delivery this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leased {
    key: u128,
    seq: u64,
    attempts: u32,
}

/// What a pass over the timers found: (id, seq) of leases that ran out, and of
/// messages out of attempts.
#[derive(Default)]
struct Expired {
    timed_out: Vec<(u128, u64)>,
    dead: Vec<(u128, u64)>,
    readied: usize,
}

/// What is where, in memory; rebuilt from the store at start.
#[derive(Default)]
struct Index {
    entries: HashMap<u128, Entry>,
    ready: HashMap<Queue, BTreeSet<(u64, u128)>>,
    timers: BTreeSet<(i64, u128)>,
    /// Ordered (client, service) pairs: their messages by seq; the first is the only one out.
    groups: HashMap<(String, String), BTreeSet<(u64, u128)>>,
    counts: HashMap<Queue, u64>,
    dead: u64,
}

impl Index {
    fn count(&self, queue: &Queue) -> u64 {
        self.counts.get(queue).copied().unwrap_or(0)
    }

    fn insert(&mut self, e: &Envelope) {
        let key = e.mid.as_u128();
        let queue = e.queue();
        *self.counts.entry(queue.clone()).or_default() += 1;
        let group = (e.ordered && e.kind == Kind::Request).then(|| (e.client.clone(), e.service.clone()));
        let mut state = State::Ready;
        if let Some(g) = &group {
            let members = self.groups.entry(g.clone()).or_default();
            members.insert((e.seq, key));
            if members.first() != Some(&(e.seq, key)) {
                state = State::Blocked;
            }
        }
        if state == State::Ready {
            self.ready.entry(queue.clone()).or_default().insert((e.seq, key));
        }
        self.entries.insert(
            key,
            Entry { queue, seq: e.seq, owner: e.owner(), kind: e.kind, group, state, attempts: e.attempts },
        );
    }

    fn owned(&self, key: u128, kind: Kind, owner: &str) -> Option<&Entry> {
        self.entries.get(&key).filter(|e| e.kind == kind && e.owner == owner && e.state != State::Dying)
    }

    fn attempts(&self, key: u128) -> Option<(u64, u32)> {
        self.entries.get(&key).filter(|e| matches!(e.state, State::Leased(_))).map(|e| (e.seq, e.attempts))
    }

    fn unschedule(&mut self, key: u128, entry_state: State, queue: &Queue, seq: u64) {
        match entry_state {
            State::Ready => {
                if let Some(set) = self.ready.get_mut(queue) {
                    set.remove(&(seq, key));
                }
            }
            State::Leased(t) | State::Delayed(t) => {
                self.timers.remove(&(t, key));
            }
            State::Blocked | State::Dying => {}
        }
    }

    /// Removes the entry for `key` if it is still the message stored at `seq`.
    fn remove_at(&mut self, key: u128, seq: u64) -> Option<Entry> {
        if self.entries.get(&key)?.seq != seq {
            return None;
        }
        self.remove(key)
    }

    fn remove(&mut self, key: u128) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        self.unschedule(key, entry.state, &entry.queue, entry.seq);
        if let Some(n) = self.counts.get_mut(&entry.queue) {
            *n = n.saturating_sub(1);
        }
        if let Some(g) = &entry.group {
            let next = self.groups.get_mut(g).and_then(|members| {
                members.remove(&(entry.seq, key));
                members.first().copied()
            });
            match next {
                Some((_, next)) => self.make_ready(next),
                None => {
                    self.groups.remove(g);
                }
            }
        }
        Some(entry)
    }

    fn make_ready(&mut self, key: u128) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let (old, queue, seq) = (entry.state, entry.queue.clone(), entry.seq);
        if old == State::Ready {
            return;
        }
        entry.state = State::Ready;
        self.unschedule(key, old, &queue, seq);
        self.ready.entry(queue).or_default().insert((seq, key));
    }

    fn expire_now(&mut self, key: u128) {
        self.make_ready(key);
    }

    /// Leases up to `max` ready messages of the queues, oldest first per queue.
    fn lease(&mut self, queues: &[Queue], max: usize, until: i64) -> Vec<Leased> {
        let mut out = Vec::new();
        for queue in queues {
            while out.len() < max {
                let Some((_, key)) = self.ready.get_mut(queue).and_then(|set| set.pop_first()) else { break };
                let Some(entry) = self.entries.get_mut(&key) else { continue };
                entry.state = State::Leased(until);
                entry.attempts += 1;
                self.timers.insert((until, key));
                out.push(Leased { key, seq: entry.seq, attempts: entry.attempts });
            }
        }
        out
    }

    fn delay(&mut self, key: u128, until: i64) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let (old, queue, seq) = (entry.state, entry.queue.clone(), entry.seq);
        entry.state = State::Delayed(until);
        self.unschedule(key, old, &queue, seq);
        self.timers.insert((until, key));
    }

    fn expire(&mut self, now: i64, max_attempts: u32) -> Expired {
        let mut out = Expired::default();
        while let Some(&(due, key)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            let Some(entry) = self.entries.get_mut(&key) else { continue };
            match entry.state {
                State::Leased(_) if entry.attempts >= max_attempts => {
                    entry.state = State::Dying;
                    out.dead.push((key, entry.seq));
                }
                State::Leased(_) => {
                    out.timed_out.push((key, entry.seq));
                    entry.state = State::Blocked;
                    self.make_ready(key);
                    out.readied += 1;
                }
                State::Delayed(_) => {
                    entry.state = State::Blocked;
                    self.make_ready(key);
                    out.readied += 1;
                }
                _ => {}
            }
        }
        out
    }

    fn depths(&self) -> Vec<Depth> {
        let mut by_queue: HashMap<&Queue, Depth> = HashMap::new();
        for entry in self.entries.values() {
            let d = by_queue.entry(&entry.queue).or_insert_with(|| Depth {
                queue: entry.queue.name().to_owned(),
                kind: match entry.kind {
                    Kind::Request => "requests",
                    Kind::Response => "responses",
                },
                ..Depth::default()
            });
            match entry.state {
                State::Ready => d.ready += 1,
                State::Leased(_) | State::Dying => d.in_flight += 1,
                State::Delayed(_) | State::Blocked => d.waiting += 1,
            }
        }
        let mut out: Vec<Depth> = by_queue.into_values().collect();
        out.sort_by(|a, b| (a.kind, &a.queue).cmp(&(b.kind, &b.queue)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(client: &str, id: &str, ordered: bool, seq: u64) -> Envelope {
        Envelope {
            mid: super::super::mailbox_id(client, id),
            kind: Kind::Request,
            seq,
            client: client.into(),
            service: "KZ/GOV/1/prov/svc".into(),
            message_id: id.into(),
            path: String::new(),
            created: 0,
            headers: vec![],
            status: None,
            ordered,
            attempts: 0,
            history: vec![],
        }
    }

    const Q: fn() -> Queue = || Queue::Requests("KZ/GOV/1/prov/svc".into());

    #[test]
    fn ordered_pairs_release_one_message_at_a_time() {
        let mut ix = Index::default();
        let (a1, a2, b1) = (envelope("A", "1", true, 1), envelope("A", "2", true, 2), envelope("B", "1", true, 3));
        for e in [&a1, &a2, &b1] {
            ix.insert(e);
        }
        let leased = ix.lease(&[Q()], 10, 100);
        let keys: Vec<u128> = leased.iter().map(|l| l.key).collect();
        assert_eq!(keys, vec![a1.mid.as_u128(), b1.mid.as_u128()], "A's second waits behind its first");
        ix.remove(a1.mid.as_u128());
        assert_eq!(ix.lease(&[Q()], 10, 100), vec![Leased { key: a2.mid.as_u128(), seq: 2, attempts: 1 }]);
    }

    #[test]
    fn leases_expire_into_ready_then_into_the_dead_letters() {
        let mut ix = Index::default();
        let e = envelope("A", "1", false, 1);
        ix.insert(&e);
        let key = e.mid.as_u128();
        assert_eq!(ix.lease(&[Q()], 1, 100), vec![Leased { key, seq: 1, attempts: 1 }]);
        assert!(ix.lease(&[Q()], 1, 100).is_empty(), "a leased message is invisible");
        let x = ix.expire(99, 2);
        assert!(x.timed_out.is_empty() && x.dead.is_empty(), "not before the lease ends");
        let x = ix.expire(100, 2);
        assert_eq!(x.timed_out, vec![(key, 1)]);
        assert_eq!(ix.lease(&[Q()], 1, 200), vec![Leased { key, seq: 1, attempts: 2 }], "redelivered, second attempt");
        let x = ix.expire(200, 2);
        assert_eq!(x.dead, vec![(key, 1)], "out of attempts");
        assert!(ix.owned(key, Kind::Request, "KZ/GOV/1/prov").is_none(), "a dying message cannot be acked");
    }

    #[test]
    fn delayed_messages_wait_for_their_time() {
        let mut ix = Index::default();
        let e = envelope("A", "1", false, 1);
        ix.insert(&e);
        let key = e.mid.as_u128();
        ix.lease(&[Q()], 1, 100);
        ix.delay(key, 500);
        assert!(ix.expire(400, 5).readied == 0);
        assert!(ix.lease(&[Q()], 1, 1000).is_empty());
        assert_eq!(ix.expire(500, 5).readied, 1);
        assert_eq!(ix.lease(&[Q()], 1, 1000), vec![Leased { key, seq: 1, attempts: 2 }]);
        let d = ix.depths();
        assert_eq!((d[0].ready, d[0].in_flight, d[0].waiting), (0, 1, 0));
    }
}
