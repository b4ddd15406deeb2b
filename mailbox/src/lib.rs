//! Durable asynchronous delivery (docs/asynchronous.md): a client sends a request to a service's
//! mailbox and gets `202` once it is on disk; the provider takes it (long-poll, or the
//! gateway pushes it), answers, and the client collects the answer from its outbox.
//! Every taking is a lease: unacknowledged, the message comes back after the
//! visibility timeout, and after `max_attempts` deliveries it is a dead letter kept
//! with its history for an operator to replay or drop. Event topics live beside the
//! mailboxes: an append-only log per topic, a durable cursor per subscriber.
//!
//! Two stores keep the same promises behind one trait, [`Store`]: [`embedded`] (one
//! redb file, group commit) and [`nats`] (JetStream, for a cluster). [`open`] picks
//! one from [`Options`]; `tests/store.rs` runs one behavioural suite against both.
#![forbid(unsafe_code)]

pub mod embedded;
mod lease;
pub mod nats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use qaqpa_routing::retry::Backoff;

/// A message's id in the bus: derived from (client, the client's message id), so a
/// resend of the same message names the same mailbox entry in every store and on
/// every node, which is what makes idempotency cheap.
pub fn mailbox_id(client: &str, message_id: &str) -> uuid::Uuid {
    let mut h = Sha256::new();
    h.update(b"qaqpa mailbox id\0");
    h.update(client.as_bytes());
    h.update([0]);
    h.update(message_id.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// From a client to a service, waiting for its provider.
    Request,
    /// The provider's answer, waiting for the client.
    Response,
}

/// A queue: a service's requests, or one client system's responses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    Requests(String),
    Responses(String),
}

impl Queue {
    pub fn kind(&self) -> Kind {
        match self {
            Queue::Requests(_) => Kind::Request,
            Queue::Responses(_) => Kind::Response,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Queue::Requests(s) | Queue::Responses(s) => s,
        }
    }
}

/// What the store keeps beside a message's body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageMeta {
    pub mid: uuid::Uuid,
    pub kind: Kind,
    /// Order of sending, across the store (FIFO within a queue).
    #[serde(default)]
    pub seq: u64,
    pub client: String,
    pub service: String,
    /// The client's own message id (`X-Road-Id`).
    pub message_id: String,
    /// The path after the service id (and query) the request was sent to, for push.
    #[serde(default)]
    pub path: String,
    /// Unix milliseconds when the request was accepted.
    pub created: i64,
    /// Headers that travel with the body: content type, X-Road user and issue, SOAPAction.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// A response's HTTP status, as the provider gave it.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub ordered: bool,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub history: Vec<Attempt>,
}

impl MessageMeta {
    /// A request as a client sends it, before the store numbers it.
    pub fn request(
        client: &str,
        service: &str,
        message_id: &str,
        path: String,
        headers: Vec<(String, String)>,
        ordered: bool,
    ) -> Self {
        MessageMeta {
            mid: mailbox_id(client, message_id),
            kind: Kind::Request,
            seq: 0,
            client: client.to_owned(),
            service: service.to_owned(),
            message_id: message_id.to_owned(),
            path,
            created: now_ms(),
            headers,
            status: None,
            ordered,
            attempts: 0,
            history: Vec::new(),
        }
    }

    /// Who may take and acknowledge it: the provider system for a request, the client
    /// for a response.
    pub fn owner(&self) -> String {
        match self.kind {
            Kind::Request => {
                qaqpa_routing::ServiceId::parse(&self.service).map(|s| s.system().to_string()).unwrap_or_default()
            }
            Kind::Response => self.client.clone(),
        }
    }

    pub fn queue(&self) -> Queue {
        match self.kind {
            Kind::Request => Queue::Requests(self.service.clone()),
            Kind::Response => Queue::Responses(self.client.clone()),
        }
    }
}

/// One delivery or failure in a message's life, kept for the dead-letter list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    /// Unix milliseconds.
    pub at: i64,
    pub node: String,
    pub event: String,
}

/// Events kept per message at most: the first ones and the latest are what an
/// operator reads.
const MAX_HISTORY: usize = 64;

/// Appends to a message's history, dropping from the middle once it is full.
pub(crate) fn push_attempt(history: &mut Vec<Attempt>, event: Attempt) {
    if history.len() >= MAX_HISTORY {
        history.remove(MAX_HISTORY / 2);
    }
    history.push(event);
}

/// A message handed to its taker, leased until acked or the visibility timeout.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope: MessageMeta,
    pub body: Bytes,
}

/// Where a request is in its life, as its sender may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting for its provider (ready, taken, or behind an earlier ordered one).
    Waiting,
    /// A push failed; it waits for the next try.
    Retrying,
    /// The provider answered; the answer waits for the client.
    Answered,
    /// Finished: acknowledged, or its answer collected.
    Done,
    /// Out of attempts: with the dead letters, for an operator.
    Dead,
}

/// The answer to a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    New(uuid::Uuid),
    /// The same (client, message id) was accepted before: nothing new was stored.
    Duplicate(uuid::Uuid),
}

impl Sent {
    pub fn mid(self) -> uuid::Uuid {
        match self {
            Sent::New(m) | Sent::Duplicate(m) => m,
        }
    }
}

/// Messages in one queue by state.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Depth {
    pub queue: String,
    pub kind: &'static str,
    /// Waiting to be taken.
    pub ready: u64,
    /// Taken, not yet acknowledged.
    pub in_flight: u64,
    /// Waiting for a retry delay, or (ordered) for the message before it.
    pub waiting: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeadLetter {
    pub envelope: MessageMeta,
    pub body_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("no message {0} is waiting for this system")]
    Unknown(uuid::Uuid),
    #[error("event {0} has not been delivered to this subscriber")]
    NotDelivered(u64),
    #[error("the queue {0} is full")]
    Full(String),
    #[error("mailbox store: {0}")]
    Store(String),
    /// The store could not be reached for the caller's whole retry budget (a NATS
    /// outage, a JetStream leader election, a node that has not connected yet).
    #[error("mailbox store unavailable: {0}")]
    Unavailable(String),
}

/// The rules every store applies, from its [`Options`].
#[derive(Debug, Clone)]
pub struct Policy {
    pub visibility: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub dedupe_window: Duration,
    pub max_queue_depth: u32,
    pub node: String,
    pub on_dead_letter: DeadLetterHook,
}

/// Told of each message the store moves to the dead letters (the gateway writes
/// it to the message log: a message's life ends on the record, not silently).
#[derive(Clone, Default)]
pub struct DeadLetterHook(Option<Arc<DeadLetterFn>>);

type DeadLetterFn = dyn Fn(&MessageMeta) + Send + Sync;

impl DeadLetterHook {
    pub fn new(hook: impl Fn(&MessageMeta) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(hook)))
    }

    pub(crate) fn tell(&self, envelope: &MessageMeta) {
        if let Some(hook) = &self.0 {
            hook(envelope);
        }
    }
}

impl std::fmt::Debug for DeadLetterHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "DeadLetterHook(set)" } else { "DeadLetterHook(none)" })
    }
}

impl Policy {
    pub fn new(options: &Options) -> Self {
        Self {
            visibility: options.visibility_timeout,
            max_attempts: options.max_attempts,
            backoff: options.backoff,
            dedupe_window: options.dedupe_window,
            max_queue_depth: options.max_queue_depth,
            node: options.node.clone(),
            on_dead_letter: options.on_dead_letter.clone(),
        }
    }

    pub fn attempt(&self, event: impl Into<String>) -> Attempt {
        Attempt { at: now_ms(), node: self.node.clone(), event: event.into() }
    }

    /// The delay before the next push after `failed` failed attempts.
    pub fn retry_delay(&self, failed: u32) -> Duration {
        self.backoff.delay(failed, rand_u64())
    }
}

/// Which store keeps the mailboxes, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One redb file (the gateway's is `DATA_DIR/mailbox.redb`).
    Embedded { path: PathBuf },
    /// NATS JetStream, for a cluster of gateways; every stream and subject of the store
    /// starts with `prefix`.
    Nats { url: String, prefix: String, replicas: usize },
}

/// How to open a store and the rules it applies (the gateway's `[mailbox]`).
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// How long a taken message stays leased before it is handed out again.
    pub visibility_timeout: Duration,
    /// Deliveries before a message becomes a dead letter.
    pub max_attempts: u32,
    /// Delays between failed pushes.
    pub backoff: Backoff,
    /// How long a (client, message id) is remembered for idempotency.
    pub dedupe_window: Duration,
    /// Messages a queue holds at most; a send past it is refused as [`MailboxError::Full`].
    pub max_queue_depth: u32,
    /// This node's name, in message histories.
    pub node: String,
    pub on_dead_letter: DeadLetterHook,
}

/// Opens the store `options` name: the embedded one creates its file if need be, the
/// NATS one its streams.
pub async fn open(options: &Options) -> Result<Arc<dyn Store>, MailboxError> {
    let policy = Policy::new(options);
    match &options.backend {
        Backend::Embedded { path } => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || embedded::Embedded::open(&path, policy))
                .await
                .map_err(|e| MailboxError::Store(e.to_string()))??;
            Ok(Arc::new(store))
        }
        Backend::Nats { url, prefix, replicas } => {
            Ok(Arc::new(nats::Nats::connect(url, prefix, *replicas, policy).await?))
        }
    }
}

/// A mailbox and events store: what the gateway's faces, push worker and admin API
/// ask of it, the same in every store.
#[async_trait]
pub trait Store: Send + Sync {
    /// The store's name for operators: `embedded` or `nats`.
    fn backend(&self) -> &'static str;

    /// The rules the store was opened with.
    fn policy(&self) -> &Policy;

    /// The delay before the next try after `failed` failed pushes: the store's
    /// `retry_*`, as opened, for requests and events alike.
    fn retry_delay(&self, failed: u32) -> Duration {
        self.policy().retry_delay(failed)
    }

    /// Learns which services keep their requests in order (NATS: one unacknowledged
    /// message at a time per such service; the embedded store reads it per message).
    fn set_ordered(&self, _services: &[String]) {}

    /// Stores a request durably (fsync'd, or acknowledged by the JetStream quorum).
    async fn send(&self, envelope: MessageMeta, body: Bytes) -> Result<Sent, MailboxError>;

    /// Takes up to `max` messages from the queues, leasing each; waits up to `wait`
    /// for the first.
    async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError>;

    /// The provider's answer to a request it owns: the request is done and the answer
    /// waits in the client's outbox.
    async fn reply(
        &self,
        mid: uuid::Uuid,
        provider: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), MailboxError>;

    /// Where a message is, for its sender's status query (ШЭП `getMessageStatus`);
    /// `None` when the store does not know the id (or cannot tell: the default).
    async fn state(&self, _mid: uuid::Uuid) -> Result<Option<MessageState>, MailboxError> {
        Ok(None)
    }

    /// The owner is done with a message (a request without an answer, or a collected answer).
    async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError>;

    /// A push delivery failed: retry after the backoff, or dead-letter it.
    async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError>;

    /// The provider (`owner`) that holds a request it took says it could not accept
    /// it (ШЭП `sendDeliveryNotification`): delivered again after the backoff like a
    /// failed push (`resend`), or stopped at once — a dead letter, for an operator.
    async fn refuse(&self, mid: uuid::Uuid, owner: &str, why: String, resend: bool) -> Result<(), MailboxError>;

    /// Messages per queue and state.
    async fn depths(&self) -> Result<Vec<Depth>, MailboxError>;

    /// Dead letters waiting for an operator, counted without reading them.
    async fn dead_count(&self) -> Result<u64, MailboxError>;

    /// Up to `limit` dead letters, oldest first, with their histories.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError>;

    /// Puts a dead letter back in its queue with a fresh attempt count.
    async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError>;

    /// Deletes a dead letter for good (its id stays remembered for dedupe).
    async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError>;

    /// Appends an event to its topic (idempotent per (publisher, message id)).
    async fn publish(&self, topic: &TopicRules, meta: EventMeta, body: Bytes) -> Result<Published, MailboxError>;

    /// Events after the subscriber's cursor, leased for the visibility timeout.
    async fn pull(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError>;

    /// The subscriber has everything up to and including `through`.
    async fn ack_events(&self, topic: &TopicRules, subscriber: &str, through: u64) -> Result<(), MailboxError>;

    /// Hands leased events back at once (a failed push), to be delivered again in order.
    async fn release(&self, topic: &TopicRules, subscriber: &str, events: &[EventDelivery])
        -> Result<(), MailboxError>;

    /// Checks that the store answers now (NATS: the mailbox stream's leader does);
    /// behind `/readyz`.
    async fn probe(&self) -> Result<(), MailboxError> {
        Ok(())
    }

    /// Whether the host must call [`tick`](Store::tick), [`retain`](Store::retain) and
    /// [`prune`](Store::prune) (the embedded store; JetStream does all this itself).
    fn needs_housekeeping(&self) -> bool {
        false
    }

    /// Readies messages whose lease or retry delay is over and buries those out of
    /// attempts (several times a second).
    async fn tick(&self) -> Result<(), MailboxError> {
        Ok(())
    }

    /// Deletes events past each topic's age or size limit; returns how many.
    async fn retain(&self, _topics: &[TopicRules]) -> Result<u64, MailboxError> {
        Ok(0)
    }

    /// Forgets a batch of finished ids older than the dedupe window; returns how many
    /// (fewer than [`PRUNE_BATCH`]: nothing is left to prune).
    async fn prune(&self) -> Result<usize, MailboxError> {
        Ok(0)
    }
}

/// Whether the NATS client accepts `url` as a server address (what `check-config`
/// asks of each `mailbox.nats_url`, so a list that passes the check also connects).
pub fn is_nats_url(url: &str) -> bool {
    url.parse::<async_nats::ServerAddr>().is_ok()
}

/// Finished ids [`Store::prune`] forgets per call at most.
pub const PRUNE_BATCH: usize = embedded::PRUNE_BATCH;

pub(crate) use qaqpa_adapters::frame::{frame, unframe};

/// What is kept with an event beside its body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventMeta {
    pub mid: uuid::Uuid,
    /// The publisher's own message id (`X-Road-Id`).
    pub message_id: String,
    pub publisher: String,
    /// Unix milliseconds.
    pub published: i64,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// An event handed to a subscriber, leased until acknowledged.
#[derive(Debug, Clone)]
pub struct EventDelivery {
    pub topic: String,
    /// Position in the topic, 1-based, gapless as published.
    pub seq: u64,
    pub meta: EventMeta,
    pub body: Bytes,
    /// JetStream's ack subject (NATS only), to hand the event back on failure.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    New(u64),
    Duplicate(u64),
}

/// A topic's rules, for the stores.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRules {
    pub id: String,
    pub retention: Duration,
    pub max_bytes: u64,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A random draw for retry jitter (not for secrets).
pub(crate) fn rand_u64() -> u64 {
    let u = uuid::Uuid::new_v4();
    u.as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> MessageMeta {
        MessageMeta {
            mid: mailbox_id("KZ/GOV/1/a", "m-1"),
            kind: Kind::Request,
            seq: 7,
            client: "KZ/GOV/1/a".into(),
            service: "KZ/GOV/2/b/svc/v1".into(),
            message_id: "m-1".into(),
            path: "/x?y=1".into(),
            created: 1,
            headers: vec![("content-type".into(), "text/xml".into())],
            status: None,
            ordered: true,
            attempts: 2,
            history: vec![],
        }
    }

    #[test]
    fn an_envelope_round_trips_through_its_frame() {
        // Damaged frames are refused in `qaqpa_adapters::frame` (unit test and fuzz target).
        let e = envelope();
        let framed = frame(&e, b"<body/>");
        let (back, body) = unframe::<MessageMeta>(&framed).unwrap();
        assert_eq!((back, body.as_ref()), (e, &b"<body/>"[..]));
    }

    #[test]
    fn the_mailbox_id_names_a_client_and_its_message_id_together() {
        assert_eq!(mailbox_id("A", "1"), mailbox_id("A", "1"));
        assert_ne!(mailbox_id("A", "1"), mailbox_id("B", "1"), "the same id from two clients is two messages");
        assert_ne!(mailbox_id("A", "1b"), mailbox_id("A1", "b"), "no ambiguity at the boundary");
    }
}
