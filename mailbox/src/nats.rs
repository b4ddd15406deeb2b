//! The mailbox store on NATS JetStream, for a cluster of gateways that share queues.
//!
//! - Stream `{P}_MAILBOX` (work-queue retention): requests on `{P}.req.{service}`,
//!   responses on `{P}.rep.{client}` (ids hashed into subject tokens). A durable pull
//!   consumer per queue; its `ack_wait` is the visibility timeout, so JetStream itself
//!   redelivers what a taker never acknowledged, on any node.
//! - Idempotency: each message is published with `Nats-Msg-Id` = its mailbox id, and
//!   the stream's duplicate window is `mailbox.dedupe_window`.
//! - Ordered services: their consumer allows one unacknowledged message at a time,
//!   which orders per service (stricter than per client and service).
//! - Leases (who may ack, and the JetStream ack subject) live in the KV bucket
//!   `{P}_LEASES`, so a reply or ack reaches any node; attempt histories in
//!   `{P}_HISTORY`.
//! - Dead letters: a message delivered more than `max_attempts` times is moved to
//!   the stream `{P}_DEAD` with its history when next fetched.
//! - States for the sender's status query (ШЭП `getMessageStatus`): the work queue
//!   cannot be searched by message, so each request's state is kept in the bucket
//!   `{P}_STATE` (waiting, retrying, answered, done; written beside the message, not
//!   after it), and a dead letter is found in `{P}_DEAD` by its subject.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    now_ms, push_attempt, Attempt, DeadLetter, Delivery, Depth, EventDelivery, EventMeta, Kind, MailboxError,
    MessageMeta, MessageState, Policy, Published, Queue, Sent, Store, TopicRules,
};

mod events;

pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    mailbox: stream::Stream,
    dead: stream::Stream,
    leases: Bucket,
    history: Bucket,
    states: Bucket,
    consumers: DashMap<Queue, consumer::PullConsumer>,
    /// Services whose consumer holds one message at a time.
    ordered: DashMap<String, ()>,
    policy: Policy,
    replicas: usize,
    event_consumers: DashMap<(String, String), consumer::PullConsumer>,
}

/// What a node must know to finish another node's delivery.
#[derive(Serialize, Deserialize)]
struct Lease {
    /// JetStream's ack subject of the delivery.
    ack: String,
    owner: String,
    kind: Kind,
    /// The message's envelope, from which a reply builds the response.
    envelope: MessageMeta,
}

impl Nats {
    pub async fn connect(url: &str, prefix: &str, replicas: usize, policy: Policy) -> Result<Self, MailboxError> {
        // One URL or several (comma-separated): the servers of one NATS cluster.
        let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("qaqpa")
            .connect(urls.as_slice())
            .await
            .map_err(|e| MailboxError::Store(format!("cannot reach NATS at {url}: {e}")))?;
        let js = jetstream::new(client.clone());
        let mailbox = js
            .get_or_create_stream(stream::Config {
                name: format!("{prefix}_MAILBOX"),
                subjects: vec![format!("{prefix}.req.*"), format!("{prefix}.rep.*")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: policy.dedupe_window,
                max_messages_per_subject: i64::from(policy.max_queue_depth),
                discard: stream::DiscardPolicy::New,
                discard_new_per_subject: true,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error(format!("creating stream {prefix}_MAILBOX: {e}")))?;
        let dead = js
            .get_or_create_stream(stream::Config {
                name: format!("{prefix}_DEAD"),
                subjects: vec![format!("{prefix}.dead.*")],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(nats_error)?;
        let leases = Bucket::open(&js, &format!("{prefix}_LEASES"), replicas).await?;
        let history = Bucket::open(&js, &format!("{prefix}_HISTORY"), replicas).await?;
        let states = Bucket::open(&js, &format!("{prefix}_STATE"), replicas).await?;
        Ok(Self {
            client,
            js,
            prefix: prefix.to_owned(),
            mailbox,
            dead,
            leases,
            history,
            states,
            consumers: DashMap::new(),
            ordered: DashMap::new(),
            policy,
            replicas,
            event_consumers: DashMap::new(),
        })
    }

    fn subject(&self, queue: &Queue) -> String {
        match queue {
            Queue::Requests(s) => format!("{}.req.{}", self.prefix, token(s)),
            Queue::Responses(c) => format!("{}.rep.{}", self.prefix, token(c)),
        }
    }

    async fn consumer(&self, queue: &Queue) -> Result<consumer::PullConsumer, MailboxError> {
        if let Some(c) = self.consumers.get(queue) {
            return Ok(c.clone());
        }
        let subject = self.subject(queue);
        let name = subject.replace('.', "_");
        let ordered = matches!(queue, Queue::Requests(s) if self.ordered.contains_key(s));
        let created = self
            .mailbox
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    // The queue's name, so any node lists it (subjects carry a hash).
                    description: Some(describe(queue)),
                    filter_subject: subject,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.policy.visibility,
                    max_deliver: -1,
                    max_ack_pending: if ordered { 1 } else { 10_000 },
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_error)?;
        self.consumers.insert(queue.clone(), created.clone());
        Ok(created)
    }

    /// Publishes and waits for JetStream's acknowledgement; `true` for a duplicate.
    async fn store(
        &self,
        subject: String,
        msg_id: &str,
        envelope: &MessageMeta,
        body: &[u8],
    ) -> Result<bool, MailboxError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let ack = self
            .js
            .publish_with_headers(subject, headers, crate::frame(envelope, body))
            .await
            .map_err(nats_error)?
            .await
            .map_err(|e| {
                // JetStream refuses past max_messages_per_subject with a text, not a kind.
                if e.to_string().contains("maximum messages per subject") {
                    MailboxError::Full(envelope.queue().name().to_owned())
                } else {
                    nats_error(e)
                }
            })?;
        Ok(ack.duplicate)
    }

    async fn fetch(
        &self,
        queue: &Queue,
        max: usize,
        expires: Duration,
        out: &mut Vec<Delivery>,
    ) -> Result<(), MailboxError> {
        let consumer = self.consumer(queue).await?;
        let mut batch = consumer.fetch().max_messages(max).expires(expires).messages().await.map_err(nats_error)?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(nats_error)?;
            let delivered = message.info().map_err(nats_error)?.delivered.max(1) as u32;
            let Some((mut envelope, body)) = crate::unframe::<MessageMeta>(&message.payload) else {
                tracing::error!("an unreadable mailbox message was dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            };
            let Some(ack) = message.reply.as_ref().map(|r| r.to_string()) else { continue };
            let key = lease_key(envelope.kind, envelope.mid);
            if delivered > self.policy.max_attempts {
                envelope.history = self.history(envelope.mid).await;
                let last = self.policy.attempt(format!("dead letter after {} attempts", self.policy.max_attempts));
                push_attempt(&mut envelope.history, last);
                let subject = format!("{}.dead.{}", self.prefix, envelope.mid.simple());
                self.store(subject, &format!("dead-{}-{}", envelope.mid, now_ms()), &envelope, &body).await?;
                message.ack().await.map_err(nats_error)?;
                let _ = self.leases.delete(&key).await;
                self.policy.on_dead_letter.tell(&envelope);
                continue;
            }
            envelope.attempts = delivered;
            envelope.history = self.note(envelope.mid, format!("delivered (attempt {delivered})")).await;
            if delivered > 1 && envelope.kind == Kind::Request {
                // A retry after a failed push is on delivery again.
                self.set_state(envelope.mid, MessageState::Waiting).await;
            }
            let lease = Lease { ack, owner: envelope.owner(), kind: envelope.kind, envelope: envelope.clone() };
            let value = serde_json::to_vec(&lease).unwrap_or_default();
            self.leases.put(&key, value.into()).await?;
            out.push(Delivery { envelope, body });
        }
        Ok(())
    }

    async fn lease(&self, mid: uuid::Uuid, kind: Kind, owner: &str) -> Option<Lease> {
        let value = self.leases.get(lease_key(kind, mid)).await.ok()??;
        let lease: Lease = serde_json::from_slice(&value).ok()?;
        (lease.owner == owner).then_some(lease)
    }

    async fn finish(&self, mid: uuid::Uuid, kind: Kind, lease: &Lease, how: &'static [u8]) -> Result<(), MailboxError> {
        self.client.publish(lease.ack.clone(), Bytes::from_static(how)).await.map_err(nats_error)?;
        self.client.flush().await.map_err(nats_error)?;
        let _ = self.leases.delete(lease_key(kind, mid)).await;
        Ok(())
    }

    /// Records where a request is, for [`Store::state`]. A lost write only makes a
    /// status answer stale; the message itself is unaffected.
    async fn set_state(&self, mid: uuid::Uuid, state: MessageState) {
        if let Err(e) = self.states.put(mid.to_string(), Bytes::from_static(state_name(state))).await {
            tracing::warn!("mailbox state of {mid} not recorded: {e}");
        }
    }

    /// Adds an event to a message's history; returns the history as stored.
    async fn note(&self, mid: uuid::Uuid, event: String) -> Vec<Attempt> {
        let mut history = self.history(mid).await;
        push_attempt(&mut history, self.policy.attempt(event));
        let _ = self.history.put(mid.to_string(), serde_json::to_vec(&history).unwrap_or_default().into()).await;
        history
    }

    async fn history(&self, mid: uuid::Uuid) -> Vec<Attempt> {
        match self.history.get(mid.to_string()).await {
            Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    async fn dead_messages(&self, limit: usize) -> Result<Vec<(u64, MessageMeta, Bytes)>, MailboxError> {
        let mut dead = self.dead.clone();
        let state = dead.info().await.map_err(nats_error)?.state.clone();
        let mut out = Vec::new();
        let mut seq = state.first_sequence;
        while seq <= state.last_sequence && out.len() < limit && state.messages > 0 {
            if let Ok(message) = self.dead.get_raw_message(seq).await {
                if let Some((envelope, body)) = crate::unframe::<MessageMeta>(&message.payload) {
                    out.push((seq, envelope, body));
                }
            }
            seq += 1;
        }
        Ok(out)
    }

    async fn dead_one(&self, mid: uuid::Uuid) -> Result<(u64, MessageMeta, Bytes), MailboxError> {
        let subject = format!("{}.dead.{}", self.prefix, mid.simple());
        let message =
            self.dead.get_last_raw_message_by_subject(&subject).await.map_err(|_| MailboxError::Unknown(mid))?;
        let (envelope, body) = crate::unframe::<MessageMeta>(&message.payload).ok_or(MailboxError::Unknown(mid))?;
        Ok((message.sequence, envelope, body))
    }
}

#[async_trait]
impl Store for Nats {
    fn backend(&self) -> &'static str {
        "nats"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Services that asked for ordering (from the configuration).
    fn set_ordered(&self, services: &[String]) {
        for s in services {
            self.ordered.insert(s.clone(), ());
        }
    }

    async fn send(&self, envelope: MessageMeta, body: Bytes) -> Result<Sent, MailboxError> {
        let mid = envelope.mid;
        // The queue's consumer exists from the first message on, so depths see it.
        self.consumer(&envelope.queue()).await?;
        let subject = self.subject(&envelope.queue());
        let kind = envelope.kind;
        let msg_id = mid.to_string();
        let stored = self.store(subject, &msg_id, &envelope, &body);
        if kind != Kind::Request {
            return stored.await.map(|duplicate| if duplicate { Sent::Duplicate(mid) } else { Sent::New(mid) });
        }
        // The state is written beside the message, in the same round trip, and only
        // where there is none yet: a duplicate keeps the first one's state, and a
        // state written by a reply that overtook it stays. Should the message's own
        // write fail, `waiting` names a message the sender was told was refused and
        // sends again (the same id, so the same message).
        let waiting = Bytes::from_static(state_name(MessageState::Waiting));
        let (stored, _) = tokio::join!(stored, self.states.create(mid.to_string(), waiting));
        let duplicate = stored?;
        Ok(if duplicate { Sent::Duplicate(mid) } else { Sent::New(mid) })
    }

    async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut out = Vec::new();
            // One queue can wait on the server; several are polled in turn.
            let slice = if queues.len() == 1 { wait } else { Duration::from_millis(100) };
            for queue in queues {
                if out.len() >= max {
                    break;
                }
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let expires = slice.min(remaining).max(Duration::from_millis(10));
                self.fetch(queue, max - out.len(), expires, &mut out).await?;
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
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
        let lease = self.lease(mid, Kind::Request, provider).await.ok_or(MailboxError::Unknown(mid))?;
        let request = lease.envelope.clone();
        self.note(mid, format!("answered by {provider} with {status}")).await;
        let response = MessageMeta {
            kind: Kind::Response,
            headers,
            status: Some(status),
            ordered: false,
            attempts: 0,
            history: Vec::new(),
            ..request
        };
        let subject = self.subject(&response.queue());
        self.store(subject, &format!("rep-{mid}"), &response, &body).await?;
        self.finish(mid, Kind::Request, &lease, b"+ACK").await?;
        self.set_state(mid, MessageState::Answered).await;
        Ok(())
    }

    async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError> {
        for kind in [Kind::Response, Kind::Request] {
            if let Some(lease) = self.lease(mid, kind, system).await {
                self.finish(mid, kind, &lease, b"+ACK").await?;
                if kind == Kind::Response {
                    let _ = self.history.delete(mid.to_string()).await;
                }
                self.set_state(mid, MessageState::Done).await;
                return Ok(());
            }
        }
        Err(MailboxError::Unknown(mid))
    }

    async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError> {
        let value = self.leases.get(lease_key(Kind::Request, mid)).await?;
        let lease: Lease = value.and_then(|v| serde_json::from_slice(&v).ok()).ok_or(MailboxError::Unknown(mid))?;
        let history = self.note(mid, format!("failed: {why}")).await;
        let failed = history.iter().filter(|a| a.event.starts_with("delivered")).count() as u32;
        // Out of attempts: back at once, and the next fetch buries it.
        let delay = if failed >= self.policy.max_attempts { Duration::ZERO } else { self.policy.retry_delay(failed) };
        let nak = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
        self.client.publish(lease.ack.clone(), nak.into()).await.map_err(nats_error)?;
        self.client.flush().await.map_err(nats_error)?;
        let _ = self.leases.delete(lease_key(Kind::Request, mid)).await;
        self.set_state(mid, MessageState::Retrying).await;
        Ok(())
    }

    async fn refuse(&self, mid: uuid::Uuid, owner: &str, why: String, resend: bool) -> Result<(), MailboxError> {
        let lease = self.lease(mid, Kind::Request, owner).await.ok_or(MailboxError::Unknown(mid))?;
        if resend {
            return self.fail(mid, format!("refused by {owner}: {why}")).await;
        }
        // Stopped at once: a dead letter with its body, which the lease does not
        // carry; the work queue still holds the message at the sequence its ack
        // subject names.
        let seq = stream_sequence(&lease.ack)
            .ok_or_else(|| nats_error(format!("an ack subject without a stream sequence: {}", lease.ack)))?;
        let message = self.mailbox.get_raw_message(seq).await.map_err(nats_error)?;
        let (_, body) = crate::unframe::<MessageMeta>(&message.payload)
            .ok_or_else(|| nats_error("an unreadable mailbox message"))?;
        let mut envelope = lease.envelope.clone();
        envelope.history = self.history(mid).await;
        push_attempt(&mut envelope.history, self.policy.attempt(format!("refused by {owner}: {why}")));
        push_attempt(&mut envelope.history, self.policy.attempt(format!("dead letter: stopped by {owner}")));
        let subject = format!("{}.dead.{}", self.prefix, mid.simple());
        self.store(subject, &format!("dead-{mid}-{}", now_ms()), &envelope, &body).await?;
        self.finish(mid, Kind::Request, &lease, b"+ACK").await?;
        self.policy.on_dead_letter.tell(&envelope);
        Ok(())
    }

    /// Every queue of the stream, whichever node created it: the consumers JetStream
    /// holds, named by their description (a node's own consumers from before
    /// descriptions are recognised by name).
    async fn depths(&self) -> Result<Vec<Depth>, MailboxError> {
        let mut out = Vec::new();
        let mut infos = self.mailbox.consumers();
        let mut seen = 0usize;
        while let Some(info) = infos.next().await {
            let info = info.map_err(nats_error)?;
            seen += 1;
            if seen > MAX_LISTED_QUEUES {
                tracing::warn!("more than {MAX_LISTED_QUEUES} mailbox queues: the rest are not listed");
                break;
            }
            let queue = info.config.description.as_deref().and_then(described).or_else(|| {
                self.consumers
                    .iter()
                    .find(|e| self.subject(e.key()).replace('.', "_") == info.name)
                    .map(|e| e.key().clone())
            });
            let Some(queue) = queue else { continue };
            out.push(Depth {
                queue: queue.name().to_owned(),
                kind: match queue.kind() {
                    Kind::Request => "requests",
                    Kind::Response => "responses",
                },
                ready: info.num_pending,
                in_flight: info.num_ack_pending as u64,
                waiting: 0,
            });
        }
        out.sort_by(|a, b| (a.kind, &a.queue).cmp(&(b.kind, &b.queue)));
        Ok(out)
    }

    async fn dead_count(&self) -> Result<u64, MailboxError> {
        let mut dead = self.dead.clone();
        Ok(dead.info().await.map_err(nats_error)?.state.messages)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError> {
        Ok(self
            .dead_messages(limit)
            .await?
            .into_iter()
            .map(|(_, envelope, body)| DeadLetter { envelope, body_bytes: body.len() })
            .collect())
    }

    async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let (seq, mut envelope, body) = self.dead_one(mid).await?;
        envelope.attempts = 0;
        envelope.history.clear();
        let _ = self.history.delete(mid.to_string()).await;
        self.note(mid, "replayed by an operator".into()).await;
        let subject = self.subject(&envelope.queue());
        self.store(subject, &format!("replay-{mid}-{seq}"), &envelope, &body).await?;
        self.set_state(mid, MessageState::Waiting).await;
        self.dead.delete_message(seq).await.map_err(nats_error)?;
        Ok(())
    }

    async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let (seq, _, _) = self.dead_one(mid).await?;
        // Finished for good, as the embedded store reports a dropped id.
        self.set_state(mid, MessageState::Done).await;
        self.dead.delete_message(seq).await.map_err(nats_error)?;
        let _ = self.history.delete(mid.to_string()).await;
        Ok(())
    }

    /// A dead letter first (found by its subject in `{P}_DEAD`), else the state
    /// recorded in `{P}_STATE` (kept as long as the bucket's age limit).
    async fn state(&self, mid: uuid::Uuid) -> Result<Option<MessageState>, MailboxError> {
        let subject = format!("{}.dead.{}", self.prefix, mid.simple());
        match self.dead.get_last_raw_message_by_subject(&subject).await {
            Ok(_) => return Ok(Some(MessageState::Dead)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(nats_error(e)),
        }
        Ok(self.states.get(mid.to_string()).await?.as_deref().and_then(state_named))
    }

    async fn probe(&self) -> Result<(), MailboxError> {
        // Stream info is answered by the stream's leader: during an election it fails.
        let mut mailbox = self.mailbox.clone();
        mailbox.info().await.map_err(nats_error)?;
        Ok(())
    }

    async fn publish(&self, topic: &TopicRules, meta: EventMeta, body: Bytes) -> Result<Published, MailboxError> {
        self.append_event(topic, meta, body).await
    }

    async fn pull(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError> {
        self.pull_events(topic, subscriber, max, wait).await
    }

    async fn ack_events(&self, topic: &TopicRules, subscriber: &str, through: u64) -> Result<(), MailboxError> {
        self.ack_through(topic, subscriber, through).await
    }

    async fn release(&self, _: &TopicRules, _: &str, events: &[EventDelivery]) -> Result<(), MailboxError> {
        self.nak_events(events).await
    }
}

/// A last-value-per-key store on a plain stream (one message per subject): what a
/// JetStream KV bucket is, built directly because the KV API of the client library
/// expects a newer server than the 2.9 line deployments still run.
struct Bucket {
    js: jetstream::Context,
    stream: stream::Stream,
    name: String,
}

impl Bucket {
    async fn open(js: &jetstream::Context, name: &str, replicas: usize) -> Result<Self, MailboxError> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![format!("{name}.>")],
                storage: stream::StorageType::File,
                max_messages_per_subject: 1,
                max_age: Duration::from_secs(14 * 24 * 3600),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error(format!("creating stream {name}: {e}")))?;
        Ok(Self { js: js.clone(), stream, name: name.to_owned() })
    }

    async fn get(&self, key: impl AsRef<str>) -> Result<Option<Bytes>, MailboxError> {
        let subject = format!("{}.{}", self.name, key.as_ref());
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) if m.payload.is_empty() => Ok(None),
            Ok(m) => Ok(Some(m.payload)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(nats_error(e)),
        }
    }

    async fn put(&self, key: impl AsRef<str>, value: Bytes) -> Result<(), MailboxError> {
        let subject = format!("{}.{}", self.name, key.as_ref());
        self.js.publish(subject, value).await.map_err(nats_error)?.await.map_err(nats_error)?;
        Ok(())
    }

    /// Puts `value` only where the key has never had one (JetStream checks the
    /// subject's last sequence is 0); `false` when it had.
    async fn create(&self, key: impl AsRef<str>, value: Bytes) -> Result<bool, MailboxError> {
        let subject = format!("{}.{}", self.name, key.as_ref());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        let ack = self.js.publish_with_headers(subject, headers, value).await.map_err(nats_error)?.await;
        match ack {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("wrong last sequence") => Ok(false),
            Err(e) => Err(nats_error(e)),
        }
    }

    /// An empty value is a deletion (the stream keeps one message per key).
    async fn delete(&self, key: impl AsRef<str>) -> Result<(), MailboxError> {
        self.put(key, Bytes::new()).await
    }
}

/// The stream sequence in a JetStream ack subject: `$JS.ACK.<stream>.<consumer>.
/// <delivered>.<stream seq>.…` (9 tokens), or with a domain and account hash before
/// the stream (12 tokens).
fn stream_sequence(ack: &str) -> Option<u64> {
    let tokens: Vec<&str> = ack.split('.').collect();
    let at = match tokens.len() {
        9 => 5,
        n if n >= 11 => 7,
        _ => return None,
    };
    tokens.get(at)?.parse().ok()
}

fn state_name(state: MessageState) -> &'static [u8] {
    match state {
        MessageState::Waiting => b"waiting",
        MessageState::Retrying => b"retrying",
        MessageState::Answered => b"answered",
        MessageState::Done => b"done",
        MessageState::Dead => b"dead",
    }
}

fn state_named(name: &[u8]) -> Option<MessageState> {
    Some(match name {
        b"waiting" => MessageState::Waiting,
        b"retrying" => MessageState::Retrying,
        b"answered" => MessageState::Answered,
        b"done" => MessageState::Done,
        b"dead" => MessageState::Dead,
        _ => return None,
    })
}

fn lease_key(kind: Kind, mid: uuid::Uuid) -> String {
    match kind {
        Kind::Request => format!("rq.{mid}"),
        Kind::Response => format!("rs.{mid}"),
    }
}

/// Queues [`Store::depths`] lists at most.
const MAX_LISTED_QUEUES: usize = 10_000;

fn describe(queue: &Queue) -> String {
    match queue {
        Queue::Requests(s) => format!("qaqpa:req:{s}"),
        Queue::Responses(c) => format!("qaqpa:rep:{c}"),
    }
}

fn described(text: &str) -> Option<Queue> {
    if let Some(s) = text.strip_prefix("qaqpa:req:") {
        return Some(Queue::Requests(s.to_owned()));
    }
    text.strip_prefix("qaqpa:rep:").map(|c| Queue::Responses(c.to_owned()))
}

/// A subject token for an id (ids hold `/` and `.`, which subjects cannot).
fn token(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn nats_error(e: impl std::fmt::Display) -> MailboxError {
    MailboxError::Store(format!("NATS: {e}"))
}
