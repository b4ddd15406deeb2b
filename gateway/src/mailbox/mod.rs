//! Durable asynchronous delivery (docs/asynchronous.md), as the gateway uses it: the store itself
//! (types, the [`Store`] trait, the embedded and NATS stores) is the `qaqpa-mailbox`
//! crate; here are the gateway's handle on it ([`Mailboxes`], opened from
//! `[mailbox]`), the wire form of a message ([`wire`]), and the housekeeping loop the embedded store needs.

pub mod resilient;
pub mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use qaqpa_mailbox::{
    mailbox_id, now_ms, Attempt, Backend, DeadLetter, DeadLetterHook, Delivery, Depth, EventDelivery, EventMeta, Kind,
    MailboxError, MessageMeta, Options, Policy, Published, Queue, Sent, Store, TopicRules,
};

use crate::config::{Config, MailboxBackend, MailboxConfig};

/// The store's options from `[mailbox]`: the embedded store lives in
/// `DATA_DIR/mailbox.redb`; `node` names this gateway in message histories.
pub fn options(config: &MailboxConfig, data_dir: &Path, node: &str, on_dead_letter: DeadLetterHook) -> Options {
    Options {
        backend: match &config.backend {
            MailboxBackend::Embedded => Backend::Embedded { path: data_dir.join("mailbox.redb") },
            MailboxBackend::Nats { url, prefix, replicas } => {
                Backend::Nats { url: url.clone(), prefix: prefix.clone(), replicas: *replicas }
            }
        },
        visibility_timeout: config.visibility_timeout,
        max_attempts: config.max_attempts,
        backoff: config.backoff,
        dedupe_window: config.dedupe_window,
        max_queue_depth: config.max_queue_depth,
        node: node.to_owned(),
        on_dead_letter,
    }
}

/// The store behind the mailboxes, chosen by `mailbox.backend`: derefs to
/// [`Store`], so `gateway.mailboxes.send(…)` and the like call the store.
#[derive(Clone)]
pub struct Mailboxes(Arc<dyn Store>, Option<Arc<resilient::Resilient>>);

impl Mailboxes {
    /// Opens the store; `on_dead_letter` hears of each message it dead-letters
    /// (the gateway's is [`dead_letters_to_log`]).
    pub async fn open(
        config: &MailboxConfig,
        data_dir: &Path,
        node: &str,
        on_dead_letter: DeadLetterHook,
    ) -> Result<Self, MailboxError> {
        let options = options(config, data_dir, node, on_dead_letter);
        match options.backend {
            // A cluster node starts without NATS and connects when it can (issue 22).
            Backend::Nats { .. } => {
                let store = resilient::Resilient::start(options, config.store_retry);
                Ok(Self(store.clone(), Some(store)))
            }
            Backend::Embedded { .. } => qaqpa_mailbox::open(&options).await.map(|s| Self(s, None)),
        }
    }

    /// Whether the store answers (always, for the embedded store): part of `/readyz`.
    pub fn is_available(&self) -> bool {
        self.1.as_ref().is_none_or(|r| r.is_available())
    }

    /// Learns what the configuration says about queues (which services are ordered).
    pub fn configure(&self, config: &Config) {
        let ordered: Vec<String> = config.services.iter().filter(|s| s.ordered).map(|s| s.id.to_string()).collect();
        self.0.set_ordered(&ordered);
    }
}

/// Each dead-lettered message becomes a message-log record: the end of a
/// message's life is on the record too.
pub fn dead_letters_to_log(telemetry: &Arc<crate::observe::Telemetry>) -> DeadLetterHook {
    let telemetry = telemetry.clone();
    DeadLetterHook::new(move |envelope: &MessageMeta| {
        crate::observe::record::Step::of("dead_letter", envelope).append_alone(&telemetry, &envelope.client, 410);
    })
}

impl From<Arc<dyn Store>> for Mailboxes {
    fn from(store: Arc<dyn Store>) -> Self {
        Self(store, None)
    }
}

impl std::ops::Deref for Mailboxes {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Prune batches per housekeeping pass (every 10 s): up to 500,000 ids.
const MAX_PRUNE_BATCHES: usize = 50;

/// Readies expired leases and retry delays (embedded store: JetStream does this
/// itself) and forgets old finished ids, until the gateway stops.
/// `topics` gives the configured topics' rules as of now (they change on reload).
pub async fn housekeeping(
    store: Mailboxes,
    topics: impl Fn() -> Vec<TopicRules> + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if !store.needs_housekeeping() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        if let Err(e) = store.tick().await {
            tracing::error!("mailbox housekeeping: {e}");
        }
        if n.is_multiple_of(10) {
            let topics = topics();
            if let Err(e) = store.retain(&topics).await {
                tracing::error!("event retention: {e}");
            }
        }
        if n.is_multiple_of(100) {
            // Batches of finished ids until the backlog is gone (bounded per pass), so
            // pruning keeps pace with tens of thousands of messages a second.
            let mut pruned = 0;
            for _ in 0..MAX_PRUNE_BATCHES {
                match store.prune().await {
                    Ok(n) => {
                        pruned += n;
                        if n < qaqpa_mailbox::PRUNE_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!("mailbox pruning: {e}");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::debug!(pruned, "finished mailbox ids forgotten");
            }
        }
    }
}
/// A topic's store rules from its configuration.
pub fn rules(topic: &crate::config::TopicConfig) -> TopicRules {
    TopicRules { id: topic.id.to_string(), retention: topic.retention, max_bytes: topic.max_bytes }
}
