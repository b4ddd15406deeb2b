//! Events in the embedded store: each topic an append-only sequence in redb (in the
//! same file and group commit as the mailboxes), each subscriber a durable cursor.
//!
//! A pull leases the events after the cursor for the visibility timeout; an ack moves
//! the cursor (cumulatively, like an offset); a lease that ends unacknowledged, or a
//! release, hands the same events out again, so delivery is at-least-once and in order.
//! Retention deletes from the front of a topic by age and by size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{store_error, Embedded};
use crate::{frame, now_ms, unframe, EventDelivery, EventMeta, MailboxError, Published, TopicRules};

/// (topic, seq) → framed event.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// Event id → (its seq), for idempotent publishing.
const EVENT_IDS: TableDefinition<u128, u64> = TableDefinition::new("event_ids");
/// (topic, subscriber) → last acknowledged seq.
const CURSORS: TableDefinition<(&str, &str), u64> = TableDefinition::new("cursors");
/// topic → its [`TopicStats`] (JSON).
const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");

/// Events deleted by retention per pass and topic.
const RETAIN_BATCH: usize = 10_000;

pub(super) struct Tables<'t> {
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    ids: Table<'t, u128, u64>,
    cursors: Table<'t, (&'static str, &'static str), u64>,
    topics: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            events: txn.open_table(EVENTS)?,
            ids: txn.open_table(EVENT_IDS)?,
            cursors: txn.open_table(CURSORS)?,
            topics: txn.open_table(TOPICS)?,
        })
    }

    fn stats(&self, topic: &str) -> Result<TopicStats, redb::StorageError> {
        Ok(self.topics.get(topic)?.and_then(|v| serde_json::from_slice(v.value()).ok()).unwrap_or_default())
    }

    fn set_stats(&mut self, topic: &str, stats: &TopicStats) -> Result<(), redb::StorageError> {
        self.topics.insert(topic, serde_json::to_vec(stats).unwrap_or_default().as_slice())?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct TopicStats {
    /// Oldest seq still kept (0: none yet).
    first: u64,
    /// Newest seq published.
    last: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    acked: u64,
    /// Leased through this seq (≥ acked) until `lease_until`.
    delivered: u64,
    lease_until: Option<Instant>,
}

#[derive(Default)]
pub(super) struct EventIndex {
    topics: HashMap<String, TopicStats>,
    cursors: HashMap<(String, String), Cursor>,
}

impl EventIndex {
    pub(super) fn load(read: &ReadTransaction) -> Result<Self, MailboxError> {
        let mut index = EventIndex::default();
        if let Ok(topics) = read.open_table(TOPICS) {
            for row in topics.iter().map_err(store_error)? {
                let (k, v) = row.map_err(store_error)?;
                let stats = serde_json::from_slice(v.value()).unwrap_or_default();
                index.topics.insert(k.value().to_owned(), stats);
            }
        }
        if let Ok(cursors) = read.open_table(CURSORS) {
            for row in cursors.iter().map_err(store_error)? {
                let (k, v) = row.map_err(store_error)?;
                let (topic, subscriber) = k.value();
                let acked = v.value();
                index.cursors.insert(
                    (topic.to_owned(), subscriber.to_owned()),
                    Cursor { acked, delivered: acked, lease_until: None },
                );
            }
        }
        Ok(index)
    }
}

impl Embedded {
    fn event_index(&self) -> std::sync::MutexGuard<'_, EventIndex> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn append_event(
        &self,
        topic: &str,
        meta: EventMeta,
        body: Bytes,
    ) -> Result<Published, MailboxError> {
        let key = meta.mid.as_u128();
        let value = frame(&meta, &body);
        let owned = topic.to_owned();
        let (published, stats) = self
            .write(move |t| {
                let t = t.events()?;
                let stats = t.stats(&owned)?;
                if let Some(seq) = t.ids.get(key)?.map(|v| v.value()) {
                    return Ok((Published::Duplicate(seq), stats));
                }
                let seq = stats.last + 1;
                t.events.insert((owned.as_str(), seq), value.as_ref())?;
                t.ids.insert(key, seq)?;
                let stats = TopicStats {
                    first: if stats.first == 0 { seq } else { stats.first },
                    last: seq,
                    bytes: stats.bytes + value.len() as u64,
                };
                t.set_stats(&owned, &stats)?;
                Ok((Published::New(seq), stats))
            })
            .await?;
        self.event_index().topics.insert(topic.to_owned(), stats);
        self.events_changed.notify_waiters();
        Ok(published)
    }

    pub(super) async fn pull_events(
        &self,
        topic: &str,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.events_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some((from, to)) = self.lease_events(topic, subscriber, max) {
                let out = self.read_events(topic, from, to).await;
                if out.is_err() {
                    self.rewind_cursor(topic, subscriber);
                }
                return out;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// The seq range leased to the subscriber now, if any is waiting.
    fn lease_events(&self, topic: &str, subscriber: &str, max: usize) -> Option<(u64, u64)> {
        let mut index = self.event_index();
        let stats = index.topics.get(topic).copied().unwrap_or_default();
        let cursor = index.cursors.entry((topic.to_owned(), subscriber.to_owned())).or_default();
        let now = Instant::now();
        if cursor.lease_until.is_none_or(|until| now >= until) {
            cursor.delivered = cursor.acked;
        }
        let from = cursor.delivered.max(stats.first.saturating_sub(1)) + 1;
        let to = stats.last.min(from + max as u64 - 1);
        if stats.first == 0 || from > to {
            return None;
        }
        cursor.delivered = to;
        cursor.lease_until = Some(now + self.policy.visibility);
        Some((from, to))
    }

    async fn read_events(&self, topic: &str, from: u64, to: u64) -> Result<Vec<EventDelivery>, MailboxError> {
        let db = self.db.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Vec<EventDelivery>, MailboxError> {
            let read = db.begin_read().map_err(store_error)?;
            let events = read.open_table(EVENTS).map_err(store_error)?;
            let mut out = Vec::new();
            for row in events.range((topic.as_str(), from)..=(topic.as_str(), to)).map_err(store_error)? {
                let (k, v) = row.map_err(store_error)?;
                let Some((meta, body)) = unframe::<EventMeta>(&Bytes::copy_from_slice(v.value())) else { continue };
                out.push(EventDelivery { topic: topic.clone(), seq: k.value().1, meta, body, token: None });
            }
            Ok(out)
        })
        .await
        .map_err(|e| MailboxError::Store(e.to_string()))?
    }

    pub(super) async fn move_cursor(&self, topic: &str, subscriber: &str, through: u64) -> Result<(), MailboxError> {
        {
            let index = self.event_index();
            let cursor = index.cursors.get(&(topic.to_owned(), subscriber.to_owned())).copied().unwrap_or_default();
            if through <= cursor.acked {
                return Ok(());
            }
            if through > cursor.delivered {
                return Err(MailboxError::NotDelivered(through));
            }
        }
        let (t, s) = (topic.to_owned(), subscriber.to_owned());
        self.write(move |tables| {
            let cursors = &mut tables.events()?.cursors;
            let stored = cursors.get((t.as_str(), s.as_str()))?.map_or(0, |v| v.value());
            cursors.insert((t.as_str(), s.as_str()), stored.max(through))?;
            Ok(())
        })
        .await?;
        let mut index = self.event_index();
        let cursor = index.cursors.entry((topic.to_owned(), subscriber.to_owned())).or_default();
        cursor.acked = cursor.acked.max(through);
        if cursor.acked >= cursor.delivered {
            cursor.lease_until = None;
        }
        Ok(())
    }

    /// Hands the subscriber's leased events back at once.
    pub(super) fn rewind_cursor(&self, topic: &str, subscriber: &str) {
        if let Some(cursor) = self.event_index().cursors.get_mut(&(topic.to_owned(), subscriber.to_owned())) {
            cursor.delivered = cursor.acked;
            cursor.lease_until = None;
        }
        self.events_changed.notify_waiters();
    }

    /// Deletes events past each topic's age or size limit, oldest first.
    /// When the event at `seq` was published, if it is still kept.
    async fn published_at(&self, topic: &str, seq: u64) -> Result<Option<i64>, MailboxError> {
        let db = self.db.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Option<i64>, MailboxError> {
            let read = db.begin_read().map_err(store_error)?;
            let events = read.open_table(EVENTS).map_err(store_error)?;
            let value = events.get((topic.as_str(), seq)).map_err(store_error)?;
            Ok(value.and_then(|v| unframe::<EventMeta>(&Bytes::copy_from_slice(v.value()))).map(|(m, _)| m.published))
        })
        .await
        .map_err(|e| MailboxError::Store(e.to_string()))?
    }

    pub(super) async fn retain_events(&self, topics: &[TopicRules]) -> Result<u64, MailboxError> {
        let now = now_ms();
        let mut deleted = 0;
        for rules in topics {
            let Some(stats) = self.event_index().topics.get(&rules.id).copied() else { continue };
            if stats.first == 0 || stats.first > stats.last {
                continue;
            }
            let cutoff = now - rules.retention.as_millis() as i64;
            // Most passes find nothing to delete: tell so by a read, without a commit.
            if stats.bytes <= rules.max_bytes
                && self.published_at(&rules.id, stats.first).await?.is_none_or(|t| t >= cutoff)
            {
                continue;
            }
            let (topic, max_bytes) = (rules.id.clone(), rules.max_bytes);
            let (n, stats) = self
                .write(move |t| {
                    let t = t.events()?;
                    let mut stats = t.stats(&topic)?;
                    let mut gone = Vec::new();
                    let mut remaining = stats.bytes;
                    for row in
                        t.events.range((topic.as_str(), stats.first)..=(topic.as_str(), stats.last))?.take(RETAIN_BATCH)
                    {
                        let (k, v) = row?;
                        let Some((meta, _)) = unframe::<EventMeta>(&Bytes::copy_from_slice(v.value())) else {
                            continue;
                        };
                        let size = v.value().len() as u64;
                        if meta.published >= cutoff && remaining <= max_bytes {
                            break;
                        }
                        remaining = remaining.saturating_sub(size);
                        gone.push((k.value().1, meta.mid.as_u128(), size));
                    }
                    for (seq, mid, size) in &gone {
                        t.events.remove((topic.as_str(), *seq))?;
                        t.ids.remove(*mid)?;
                        stats.bytes = stats.bytes.saturating_sub(*size);
                        stats.first = seq + 1;
                    }
                    if !gone.is_empty() {
                        t.set_stats(&topic, &stats)?;
                    }
                    Ok((gone.len() as u64, stats))
                })
                .await?;
            if n > 0 {
                self.event_index().topics.insert(rules.id.clone(), stats);
                deleted += n;
            }
        }
        Ok(deleted)
    }
}
