//! The embedded mailbox store: one redb file (`DATA_DIR/mailbox.redb`) and an
//! in-memory index of what is ready, leased and waiting (`lease.rs`); events
//! are in `embedded/events.rs`, in the same file and group commit.
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
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{oneshot, Notify};

use crate::lease::{Index, Leased};
use crate::{
    now_ms, push_attempt, Attempt, DeadLetter, Delivery, Depth, EventDelivery, EventMeta, Kind, MailboxError,
    MessageMeta, Policy, Published, Queue, Sent, Store, TopicRules,
};

/// seq → framed envelope and body of a waiting message.
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Mailbox id → (seq of its waiting message or 0, finished at in Unix ms or 0): every
/// id accepted within the dedupe window, for idempotency.
const IDS: TableDefinition<u128, (u64, i64)> = TableDefinition::new("ids");
/// Mailbox id → framed envelope (with its history) and body of a dead letter.
const DEAD: TableDefinition<u128, &[u8]> = TableDefinition::new("dead");
/// Finished ids by finishing time, for pruning IDS.
const DONE_BY_TIME: TableDefinition<(i64, u128), ()> = TableDefinition::new("done_by_time");

mod events;

/// Jobs applied in one transaction at most.
const MAX_BATCH: usize = 4096;
/// Finished ids pruned per housekeeping pass.
pub(crate) const PRUNE_BATCH: usize = 10_000;

type Applied = Box<dyn Any + Send>;
type Apply = Box<dyn FnOnce(&mut Tables<'_>) -> Result<Applied, redb::StorageError> + Send>;

struct Job {
    apply: Apply,
    done: oneshot::Sender<Result<Applied, String>>,
}

/// The tables of one write transaction, each opened the first time a job of the
/// batch uses it: redb reads a table's definition on opening and looks up its root
/// again at commit even when it is unchanged, so a batch of sends opens the two
/// tables it writes, not all eight.
pub struct Tables<'t> {
    txn: &'t redb::WriteTransaction,
    messages: Option<Table<'t, u64, &'static [u8]>>,
    ids: Option<Table<'t, u128, (u64, i64)>>,
    dead: Option<Table<'t, u128, &'static [u8]>>,
    done_by_time: Option<Table<'t, (i64, u128), ()>>,
    events: Option<events::Tables<'t>>,
}

impl<'t> Tables<'t> {
    fn new(txn: &'t redb::WriteTransaction) -> Self {
        Self { txn, messages: None, ids: None, dead: None, done_by_time: None, events: None }
    }

    /// Opens every table (creating those the file lacks).
    fn open_all(&mut self) -> Result<(), redb::StorageError> {
        self.messages()?;
        self.ids()?;
        self.dead()?;
        self.done_by_time()?;
        self.events()?;
        Ok(())
    }

    fn messages(&mut self) -> Result<&mut Table<'t, u64, &'static [u8]>, redb::StorageError> {
        opened(self.txn, &mut self.messages, MESSAGES)
    }

    fn ids(&mut self) -> Result<&mut Table<'t, u128, (u64, i64)>, redb::StorageError> {
        opened(self.txn, &mut self.ids, IDS)
    }

    fn dead(&mut self) -> Result<&mut Table<'t, u128, &'static [u8]>, redb::StorageError> {
        opened(self.txn, &mut self.dead, DEAD)
    }

    fn done_by_time(&mut self) -> Result<&mut Table<'t, (i64, u128), ()>, redb::StorageError> {
        opened(self.txn, &mut self.done_by_time, DONE_BY_TIME)
    }

    fn events(&mut self) -> Result<&mut events::Tables<'t>, redb::StorageError> {
        let tables = match self.events.take() {
            Some(tables) => tables,
            None => events::Tables::open(self.txn).map_err(table_error)?,
        };
        Ok(self.events.insert(tables))
    }
}

fn opened<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t redb::WriteTransaction,
    slot: &'s mut Option<Table<'t, K, V>>,
    definition: TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>, redb::StorageError> {
    let table = match slot.take() {
        Some(table) => table,
        None => txn.open_table(definition).map_err(table_error)?,
    };
    Ok(slot.insert(table))
}

/// A table that does not open inside a batch: every table was created (with its
/// types) when the store was opened, so only the storage can fail here.
fn table_error(e: redb::TableError) -> redb::StorageError {
    match e {
        redb::TableError::Storage(e) => e,
        other => redb::StorageError::Corrupted(other.to_string()),
    }
}

pub struct Embedded {
    db: Arc<Database>,
    /// `None` asks the writer to finish and stop (see `Drop`).
    jobs: mpsc::SyncSender<Option<Job>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    index: Mutex<Index>,
    changed: Notify,
    policy: Policy,
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
        Tables::new(&txn).open_all().map_err(store_error)?;
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

    /// Persists each leased message's new attempt and reads its body.
    async fn deliver(&self, leased: Vec<Leased>) -> Result<Vec<Delivery>, MailboxError> {
        let attempt = self.policy.attempt("delivered");
        let keys: Vec<u128> = leased.iter().map(|l| l.key).collect();
        let result = self
            .write(move |t| {
                let mut out = Vec::with_capacity(leased.len());
                for Leased { seq, attempts, .. } in leased {
                    let Some(value) = t.messages()?.get(seq)?.map(|v| v.value().to_vec()) else { continue };
                    let Ok((mut envelope, body)) = decode(value) else { continue };
                    envelope.attempts = attempts;
                    let mut event = attempt.clone();
                    event.event = format!("delivered (attempt {attempts})");
                    push_attempt(&mut envelope.history, event);
                    t.messages()?.insert(seq, encode(&envelope, &body).as_ref())?;
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

    /// Moves messages to the dead letters, each with its last event (and, unless
    /// `stopped` names who stopped them, the count of attempts they ran out of).
    async fn bury(&self, victims: Vec<(u128, u64, Attempt)>) -> Result<(), MailboxError> {
        self.bury_as(victims, None).await
    }

    async fn bury_as(&self, victims: Vec<(u128, u64, Attempt)>, stopped: Option<String>) -> Result<(), MailboxError> {
        let max = self.policy.max_attempts;
        let why = stopped.map_or_else(|| format!("dead letter after {max} attempts"), |s| format!("dead letter: {s}"));
        let buried = self
            .write(move |t| {
                let mut moved = Vec::new();
                for (key, seq, event) in victims {
                    if !stored_at(t, seq, key)? {
                        continue;
                    }
                    let Some(value) = t.messages()?.remove(seq)?.map(|v| v.value().to_vec()) else { continue };
                    let Ok((mut envelope, body)) = decode(value) else { continue };
                    let buried = Attempt { event: why.clone(), ..event.clone() };
                    push_attempt(&mut envelope.history, event);
                    push_attempt(&mut envelope.history, buried);
                    t.dead()?.insert(key, encode(&envelope, &body).as_ref())?;
                    t.ids()?.insert(key, (0, 0))?;
                    moved.push((key, seq, envelope));
                }
                Ok(moved)
            })
            .await?;
        let mut index = self.index();
        for (key, seq, _) in &buried {
            if index.remove_at(*key, *seq).is_some() {
                index.dead += 1;
            }
        }
        drop(index);
        for (_, _, envelope) in &buried {
            self.policy.on_dead_letter.tell(envelope);
        }
        self.changed.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Store for Embedded {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    async fn send(&self, mut envelope: MessageMeta, body: Bytes) -> Result<Sent, MailboxError> {
        let queue = envelope.queue();
        if self.index().count(&queue) >= u64::from(self.policy.max_queue_depth) {
            return Err(MailboxError::Full(queue.name().to_owned()));
        }
        envelope.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (key, seq) = (envelope.mid.as_u128(), envelope.seq);
        let framed = encode(&envelope, &body);
        let stored = self
            .write(move |t| {
                // One descent of the ids table: the insert tells whether the id was
                // known; a duplicate gets its entry back and stores nothing.
                let known = t.ids()?.insert(key, (seq, 0))?.map(|v| v.value());
                if let Some(known) = known {
                    t.ids()?.insert(key, known)?;
                    return Ok(false);
                }
                t.messages()?.insert(seq, framed.as_ref())?;
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

    async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError> {
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

    async fn reply(
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
                let Some(value) = t.messages()?.get(old_seq)?.map(|v| v.value().to_vec()) else { return Ok(None) };
                let Ok((request, _)) = decode(value) else { return Ok(None) };
                if request.kind != Kind::Request || request.mid.as_u128() != key {
                    return Ok(None);
                }
                let mut response = MessageMeta {
                    kind: Kind::Response,
                    seq,
                    headers,
                    status: Some(status),
                    ordered: false,
                    attempts: 0,
                    ..request
                };
                push_attempt(&mut response.history, answered);
                t.messages()?.remove(old_seq)?;
                t.messages()?.insert(seq, encode(&response, &body).as_ref())?;
                t.ids()?.insert(key, (seq, 0))?;
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

    async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError> {
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
                t.messages()?.remove(seq)?;
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

    async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError> {
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

    async fn refuse(&self, mid: uuid::Uuid, owner: &str, why: String, resend: bool) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let (seq, _) = self.index().attempts(key).ok_or(MailboxError::Unknown(mid))?;
        if self.index().owned(key, Kind::Request, owner).is_none() {
            return Err(MailboxError::Unknown(mid));
        }
        if resend {
            return self.fail(mid, format!("refused by {owner}: {why}")).await;
        }
        let event = self.policy.attempt(format!("refused by {owner}: {why}"));
        self.bury_as(vec![(key, seq, event)], Some(format!("stopped by {owner}"))).await
    }

    /// Readies messages whose lease or retry delay is over, buries those out of
    /// attempts, and forgets finished ids older than the dedupe window. Called by
    /// the gateway's housekeeping several times a second.
    async fn tick(&self) -> Result<(), MailboxError> {
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
    async fn prune(&self) -> Result<usize, MailboxError> {
        let cutoff = now_ms() - self.policy.dedupe_window.as_millis() as i64;
        self.write(move |t| {
            let mut old = Vec::new();
            for row in t.done_by_time()?.range(..(cutoff, 0u128))?.take(PRUNE_BATCH) {
                let (key, _) = row?;
                old.push(key.value());
            }
            for (time, key) in &old {
                t.done_by_time()?.remove((*time, *key))?;
                // Only if it is still this finishing (not sent again since).
                if t.ids()?.get(*key)?.is_some_and(|v| v.value().1 == *time) {
                    t.ids()?.remove(*key)?;
                }
            }
            Ok(old.len())
        })
        .await
    }

    async fn depths(&self) -> Result<Vec<Depth>, MailboxError> {
        Ok(self.index().depths())
    }

    async fn state(&self, mid: uuid::Uuid) -> Result<Option<crate::MessageState>, MailboxError> {
        use crate::MessageState;
        let key = mid.as_u128();
        match self.index().state_of(key) {
            Some((Kind::Response, _)) => return Ok(Some(MessageState::Answered)),
            Some((Kind::Request, true)) => return Ok(Some(MessageState::Retrying)),
            Some((Kind::Request, false)) => return Ok(Some(MessageState::Waiting)),
            None => {}
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<MessageState>, MailboxError> {
            let read = db.begin_read().map_err(store_error)?;
            if read.open_table(DEAD).map_err(store_error)?.get(key).map_err(store_error)?.is_some() {
                return Ok(Some(MessageState::Dead));
            }
            let known = read.open_table(IDS).map_err(store_error)?.get(key).map_err(store_error)?.is_some();
            Ok(known.then_some(MessageState::Done))
        })
        .await
        .map_err(|e| MailboxError::Store(e.to_string()))?
    }

    async fn dead_count(&self) -> Result<u64, MailboxError> {
        Ok(self.index().dead)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError> {
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

    async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let event = self.policy.attempt("replayed by an operator");
        let envelope = self
            .write(move |t| {
                let Some(value) = t.dead()?.remove(key)?.map(|v| v.value().to_vec()) else { return Ok(None) };
                let Ok((mut envelope, body)) = decode(value) else { return Ok(None) };
                envelope.attempts = 0;
                envelope.seq = seq;
                push_attempt(&mut envelope.history, event);
                t.messages()?.insert(seq, encode(&envelope, &body).as_ref())?;
                t.ids()?.insert(key, (seq, 0))?;
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

    async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let key = mid.as_u128();
        let now = now_ms();
        let found = self
            .write(move |t| {
                if t.dead()?.remove(key)?.is_none() {
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

    async fn publish(&self, topic: &TopicRules, meta: EventMeta, body: Bytes) -> Result<Published, MailboxError> {
        self.append_event(&topic.id, meta, body).await
    }

    async fn pull(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError> {
        self.pull_events(&topic.id, subscriber, max, wait).await
    }

    async fn ack_events(&self, topic: &TopicRules, subscriber: &str, through: u64) -> Result<(), MailboxError> {
        self.move_cursor(&topic.id, subscriber, through).await
    }

    async fn release(&self, topic: &TopicRules, subscriber: &str, _: &[EventDelivery]) -> Result<(), MailboxError> {
        self.rewind_cursor(&topic.id, subscriber);
        Ok(())
    }

    fn needs_housekeeping(&self) -> bool {
        true
    }

    async fn retain(&self, topics: &[TopicRules]) -> Result<u64, MailboxError> {
        self.retain_events(topics).await
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
                let mut tables = Tables::new(&txn);
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

fn update_envelope(
    t: &mut Tables<'_>,
    seq: u64,
    change: impl FnOnce(&mut MessageMeta),
) -> Result<(), redb::StorageError> {
    let Some(value) = t.messages()?.get(seq)?.map(|v| v.value().to_vec()) else { return Ok(()) };
    let Ok((mut envelope, body)) = decode(value) else { return Ok(()) };
    change(&mut envelope);
    t.messages()?.insert(seq, encode(&envelope, &body).as_ref())?;
    Ok(())
}

/// Whether the message stored at `seq` is still the one with id `key` (the ids table
/// points each id at its current message).
fn stored_at(t: &mut Tables<'_>, seq: u64, key: u128) -> Result<bool, redb::StorageError> {
    Ok(t.ids()?.get(key)?.is_some_and(|v| v.value().0 == seq))
}

/// Remembers a finished id (for dedupe, until pruned).
fn finish(t: &mut Tables<'_>, key: u128, now: i64) -> Result<(), redb::StorageError> {
    t.ids()?.insert(key, (0, now))?;
    t.done_by_time()?.insert((now, key), ())?;
    Ok(())
}

fn encode(envelope: &MessageMeta, body: &[u8]) -> Bytes {
    crate::frame(envelope, body)
}

/// Reads a stored value; takes it owned, so the body is a view into it, not a copy.
fn decode(value: Vec<u8>) -> Result<(MessageMeta, Bytes), MailboxError> {
    crate::unframe(&Bytes::from(value)).ok_or_else(|| MailboxError::Store("a stored message is unreadable".into()))
}

fn store_error(e: impl std::fmt::Display) -> MailboxError {
    MailboxError::Store(e.to_string())
}
