//! The NATS store as a cluster node needs it (issue 22): the node starts while NATS
//! (or JetStream) is not there yet and keeps connecting in the background; each call
//! is retried across a NATS outage or a stream leader election for `store_retry`,
//! then refused as [`MailboxError::Unavailable`] (`503 server.store_unavailable`
//! with `Retry-After`); a probe keeps [`Resilient::is_available`] (`/readyz`) honest.
//!
//! Retrying is safe for every call: a send carries its mailbox id as `Nats-Msg-Id`
//! (a repeat is a duplicate, not a second message), a reply its `rep-{id}`, and a
//! take that fails mid-batch leaves its leases to expire (at-least-once, as ever).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{
    DeadLetter, Delivery, Depth, EventDelivery, EventMeta, MailboxError, MessageMeta, Options, Policy, Published,
    Queue, Sent, Store, TopicRules,
};

/// First and longest pause between tries to connect (or to create the streams).
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// How often a connected store is probed for `/readyz`.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Longest a probe may take before the store counts as unavailable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Resilient {
    store: OnceCell<Arc<dyn Store>>,
    policy: Policy,
    retry: Duration,
    ordered: Mutex<Vec<String>>,
    available: AtomicBool,
}

impl Resilient {
    /// Starts connecting in the background and returns at once.
    pub fn start(options: Options, retry: Duration) -> Arc<Self> {
        let this = Arc::new(Self {
            store: OnceCell::new(),
            policy: Policy::new(&options),
            retry,
            ordered: Mutex::new(Vec::new()),
            available: AtomicBool::new(false),
        });
        tokio::spawn(Self::keep_up(Arc::downgrade(&this), options));
        this
    }

    /// Connects (bounded backoff, each failure logged), then probes the store every
    /// second; ends when the gateway drops the store.
    async fn keep_up(this: std::sync::Weak<Self>, options: Options) {
        let mut pause = CONNECT_BACKOFF.0;
        let mut tries = 0u32;
        loop {
            if this.strong_count() == 0 {
                return;
            }
            match qaqpa_mailbox::open(&options).await {
                Ok(store) => {
                    let Some(me) = this.upgrade() else { return };
                    store.set_ordered(&me.ordered.lock().map(|o| o.clone()).unwrap_or_default());
                    let _ = me.store.set(store);
                    me.available.store(true, Ordering::Release);
                    if tries > 0 {
                        tracing::info!(tries, "the mailbox store is connected");
                    }
                    break;
                }
                Err(e) => {
                    tries += 1;
                    tracing::warn!(tries, retry_in = ?pause, "the mailbox store is not reachable yet: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_BACKOFF.1);
                }
            }
        }
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let Some(me) = this.upgrade() else { return };
            let Some(store) = me.store.get().cloned() else { return };
            let ok = matches!(tokio::time::timeout(PROBE_TIMEOUT, store.probe()).await, Ok(Ok(())));
            if me.available.swap(ok, Ordering::AcqRel) != ok {
                match ok {
                    true => tracing::info!("the mailbox store answers again"),
                    false => tracing::warn!("the mailbox store does not answer (NATS down or electing a leader)"),
                }
            }
        }
    }

    /// Connected, and the last probe (or call) found the store answering.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// The store, waiting for the first connection until `deadline`.
    async fn connected(&self, deadline: Instant) -> Result<&Arc<dyn Store>, MailboxError> {
        loop {
            if let Some(store) = self.store.get() {
                return Ok(store);
            }
            if Instant::now() >= deadline {
                return Err(MailboxError::Unavailable("not connected to NATS yet".into()));
            }
            tokio::time::sleep(Duration::from_millis(50).min(deadline - Instant::now())).await;
        }
    }

    fn deadline(&self, extra: Duration) -> Instant {
        Instant::now() + self.retry + extra
    }

    /// Notes an outcome for readiness: a store error marks the store unavailable
    /// until the next good probe or call.
    fn note<T>(&self, result: &Result<T, MailboxError>) {
        match result {
            Ok(_) => self.available.store(true, Ordering::Release),
            Err(MailboxError::Store(_) | MailboxError::Unavailable(_)) => {
                self.available.store(false, Ordering::Release)
            }
            Err(_) => {}
        }
    }
}

/// Runs `$call` (with `$s` the connected store) until it succeeds, fails for a reason
/// that is not the store's, or `$deadline` passes: then the last store error becomes
/// [`MailboxError::Unavailable`]. [`retrying_noted!`] also says whether a try failed
/// before the answer: that try may have been carried out with its answer lost.
macro_rules! retrying {
    ($self:ident, $deadline:expr, |$s:ident| $call:expr) => {
        retrying_noted!($self, $deadline, |$s| $call).0
    };
}

macro_rules! retrying_noted {
    ($self:ident, $deadline:expr, |$s:ident| $call:expr) => {{
        let deadline = $deadline;
        let mut pause = Duration::from_millis(50);
        let mut retried = false;
        let result = loop {
            let $s = match $self.connected(deadline).await {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            match tokio::time::timeout_at(deadline, $call).await {
                Ok(Err(MailboxError::Store(why))) => {
                    if Instant::now() + pause >= deadline {
                        break Err(MailboxError::Unavailable(why));
                    }
                    tracing::debug!("mailbox store call failed, retrying: {why}");
                    retried = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Ok(other) => break other,
                Err(_) => break Err(MailboxError::Unavailable("the store did not answer in time".into())),
            }
        };
        $self.note(&result);
        (result, retried)
    }};
}

/// A send's answer after retries: an earlier try whose answer was lost may have
/// stored the message, so the retry's "duplicate" is this send's own first copy
/// (the client sent it once and must not be told it was already sent). A client's
/// genuine resend whose first try also failed reads as new: the message is still
/// stored once.
fn sent_after_retries(result: Result<Sent, MailboxError>, retried: bool) -> Result<Sent, MailboxError> {
    match result {
        Ok(Sent::Duplicate(mid)) if retried => Ok(Sent::New(mid)),
        other => other,
    }
}

/// A settling call's answer after retries (ack, fail, refuse, dead-letter replay or
/// drop): an earlier try whose answer was lost may have settled the message, so the
/// retry's "unknown message" is that try's success, not the caller's mistake.
fn settled_after_retries(result: Result<(), MailboxError>, retried: bool) -> Result<(), MailboxError> {
    match result {
        Err(MailboxError::Unknown(_) | MailboxError::NotDelivered(_)) if retried => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Store for Resilient {
    fn backend(&self) -> &'static str {
        "nats"
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn set_ordered(&self, services: &[String]) {
        if let Ok(mut ordered) = self.ordered.lock() {
            *ordered = services.to_vec();
        }
        if let Some(store) = self.store.get() {
            store.set_ordered(services);
        }
    }

    async fn send(&self, envelope: MessageMeta, body: Bytes) -> Result<Sent, MailboxError> {
        let (result, retried) =
            retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.send(envelope.clone(), body.clone()));
        sent_after_retries(result, retried)
    }

    async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError> {
        let deadline = self.deadline(wait);
        retrying!(self, deadline, |s| s.take(queues, max, wait.min(deadline.saturating_duration_since(Instant::now()))))
    }

    async fn reply(
        &self,
        mid: uuid::Uuid,
        provider: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.reply(
            mid,
            provider,
            status,
            headers.clone(),
            body.clone()
        ))
    }

    async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError> {
        let (result, retried) = retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.ack(mid, system));
        settled_after_retries(result, retried)
    }

    async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError> {
        let (result, retried) = retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.fail(mid, why.clone()));
        settled_after_retries(result, retried)
    }

    async fn refuse(&self, mid: uuid::Uuid, owner: &str, why: String, resend: bool) -> Result<(), MailboxError> {
        let (result, retried) =
            retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.refuse(mid, owner, why.clone(), resend));
        settled_after_retries(result, retried)
    }

    async fn state(&self, mid: uuid::Uuid) -> Result<Option<qaqpa_mailbox::MessageState>, MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.state(mid))
    }

    async fn depths(&self) -> Result<Vec<Depth>, MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.depths())
    }

    async fn dead_count(&self) -> Result<u64, MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.dead_count())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.dead_letters(limit))
    }

    async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let (result, retried) = retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.replay(mid));
        settled_after_retries(result, retried)
    }

    async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
        let (result, retried) = retrying_noted!(self, self.deadline(Duration::ZERO), |s| s.drop_dead(mid));
        settled_after_retries(result, retried)
    }

    async fn publish(&self, topic: &TopicRules, meta: EventMeta, body: Bytes) -> Result<Published, MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.publish(topic, meta.clone(), body.clone()))
    }

    async fn pull(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError> {
        let deadline = self.deadline(wait);
        retrying!(self, deadline, |s| s.pull(
            topic,
            subscriber,
            max,
            wait.min(deadline.saturating_duration_since(Instant::now()))
        ))
    }

    async fn ack_events(&self, topic: &TopicRules, subscriber: &str, through: u64) -> Result<(), MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.ack_events(topic, subscriber, through))
    }

    async fn release(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        events: &[EventDelivery],
    ) -> Result<(), MailboxError> {
        retrying!(self, self.deadline(Duration::ZERO), |s| s.release(topic, subscriber, events))
    }

    async fn probe(&self) -> Result<(), MailboxError> {
        match self.is_available() {
            true => Ok(()),
            false => Err(MailboxError::Unavailable("NATS does not answer".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qaqpa_mailbox::{Backend, Backoff, DeadLetterHook, Kind};
    use std::sync::atomic::AtomicUsize;

    const PROVIDER: &str = "KZ/GOV/000000000001/population-register";
    const SERVICE: &str = "KZ/GOV/000000000001/population-register/notices/v1";

    /// The embedded store whose next `lose` answers are lost after the call was
    /// carried out: what a JetStream ack lost in a leader election looks like.
    struct LosesAnswers {
        inner: Arc<dyn Store>,
        lose: AtomicUsize,
    }

    impl LosesAnswers {
        fn answer<T>(&self, result: Result<T, MailboxError>) -> Result<T, MailboxError> {
            match self.lose.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
                Ok(_) => Err(MailboxError::Store("the answer was lost".into())),
                Err(_) => result,
            }
        }
    }

    #[async_trait]
    impl Store for LosesAnswers {
        fn backend(&self) -> &'static str {
            "test"
        }
        fn policy(&self) -> &Policy {
            self.inner.policy()
        }
        async fn send(&self, envelope: MessageMeta, body: Bytes) -> Result<Sent, MailboxError> {
            let done = self.inner.send(envelope, body).await;
            self.answer(done)
        }
        async fn take(&self, queues: &[Queue], max: usize, wait: Duration) -> Result<Vec<Delivery>, MailboxError> {
            self.inner.take(queues, max, wait).await
        }
        async fn reply(
            &self,
            mid: uuid::Uuid,
            provider: &str,
            status: u16,
            headers: Vec<(String, String)>,
            body: Bytes,
        ) -> Result<(), MailboxError> {
            self.inner.reply(mid, provider, status, headers, body).await
        }
        async fn ack(&self, mid: uuid::Uuid, system: &str) -> Result<(), MailboxError> {
            let done = self.inner.ack(mid, system).await;
            self.answer(done)
        }
        async fn fail(&self, mid: uuid::Uuid, why: String) -> Result<(), MailboxError> {
            self.inner.fail(mid, why).await
        }
        async fn refuse(&self, mid: uuid::Uuid, owner: &str, why: String, resend: bool) -> Result<(), MailboxError> {
            self.inner.refuse(mid, owner, why, resend).await
        }
        async fn depths(&self) -> Result<Vec<Depth>, MailboxError> {
            self.inner.depths().await
        }
        async fn dead_count(&self) -> Result<u64, MailboxError> {
            self.inner.dead_count().await
        }
        async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailboxError> {
            self.inner.dead_letters(limit).await
        }
        async fn replay(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
            self.inner.replay(mid).await
        }
        async fn drop_dead(&self, mid: uuid::Uuid) -> Result<(), MailboxError> {
            self.inner.drop_dead(mid).await
        }
        async fn publish(&self, topic: &TopicRules, meta: EventMeta, body: Bytes) -> Result<Published, MailboxError> {
            self.inner.publish(topic, meta, body).await
        }
        async fn pull(
            &self,
            topic: &TopicRules,
            subscriber: &str,
            max: usize,
            wait: Duration,
        ) -> Result<Vec<EventDelivery>, MailboxError> {
            self.inner.pull(topic, subscriber, max, wait).await
        }
        async fn ack_events(&self, topic: &TopicRules, subscriber: &str, through: u64) -> Result<(), MailboxError> {
            self.inner.ack_events(topic, subscriber, through).await
        }
        async fn release(
            &self,
            topic: &TopicRules,
            subscriber: &str,
            events: &[EventDelivery],
        ) -> Result<(), MailboxError> {
            self.inner.release(topic, subscriber, events).await
        }
    }

    #[tokio::test]
    async fn a_lost_answer_retried_is_neither_a_duplicate_send_nor_an_unknown_ack() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            backend: Backend::Embedded { path: dir.path().join("mailbox.redb") },
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 3,
            backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(200) },
            dedupe_window: Duration::from_secs(3600),
            max_queue_depth: 100,
            node: "test".into(),
            on_dead_letter: DeadLetterHook::default(),
        };
        let inner = qaqpa_mailbox::open(&options).await.unwrap();
        let lossy = Arc::new(LosesAnswers { inner, lose: AtomicUsize::new(1) });
        let store = Resilient {
            store: OnceCell::new_with(Some(lossy.clone() as Arc<dyn Store>)),
            policy: Policy::new(&options),
            retry: Duration::from_secs(5),
            ordered: Mutex::new(Vec::new()),
            available: AtomicBool::new(true),
        };
        let meta = || MessageMeta::request("KZ/GOV/1/client", SERVICE, "m-1", String::new(), Vec::new(), false);

        // The first try stored the message and lost its answer; the retry's
        // "duplicate" is that same send: new to the client.
        let sent = store.send(meta(), Bytes::from_static(b"one")).await.unwrap();
        assert!(matches!(sent, Sent::New(_)), "{sent:?}");
        // A resend by the client, answered without loss, is the duplicate it is.
        let again = store.send(meta(), Bytes::from_static(b"one")).await.unwrap();
        assert!(matches!(again, Sent::Duplicate(_)), "{again:?}");

        let taken = store.take(&[Queue::Requests(SERVICE.into())], 10, Duration::ZERO).await.unwrap();
        assert_eq!(taken.len(), 1, "stored once");
        assert_eq!(taken[0].envelope.kind, Kind::Request);
        let mid = taken[0].envelope.mid;
        // The first ack settled the message and lost its answer; the retry's
        // "unknown" is that ack's success.
        lossy.lose.store(1, Ordering::Release);
        store.ack(mid, PROVIDER).await.unwrap();
        // Without a lost answer, an ack of a settled message is the caller's mistake.
        assert!(matches!(store.ack(mid, PROVIDER).await, Err(MailboxError::Unknown(_))));
    }
}
