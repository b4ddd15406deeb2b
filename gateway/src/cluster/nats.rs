//! Carries the published configuration on NATS JetStream's key-value store: the
//! publisher's compare-and-set write, and each node's watch, which hands every new
//! version to [`Gateway::apply_published`] (verify, merge, validate, swap).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{ClusterError, Published, KEY};
use crate::config::{Config, ConfigSource, MailboxBackend};
use crate::gateway::Gateway;

/// How long connecting to NATS or one bucket call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Versions kept in the bucket (what an operator can read back with `nats kv history`).
const HISTORY: i64 = 16;

fn nats_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(e.to_string())
}

/// The bucket on the NATS servers `url` (comma-separated), created with `replicas`
/// copies if it is not there yet.
pub async fn open(url: &str, bucket: &str, replicas: usize) -> Result<kv::Store, ClusterError> {
    let urls: Vec<&str> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CALL_TIMEOUT)
        .name("qaqpa-config")
        .connect(urls.as_slice())
        .await
        .map_err(|e| ClusterError::Nats(format!("cannot reach NATS at {url}: {e}")))?;
    let js = jetstream::new(client);
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    // The bucket's stream made as JetStream's own key-value buckets are (KV_ name,
    // $KV subjects, history per key, roll-ups, direct gets), by get_or_create_stream:
    // the client's create_key_value first asks for the account's info, which it
    // cannot parse from the nats-server 2.9 we run against.
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: HISTORY,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas.max(1),
        discard: jetstream::stream::DiscardPolicy::New,
        max_message_size: -1,
        max_bytes: -1,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| nats_error(format!("creating bucket {bucket}: {e}")))?;
    js.get_key_value(bucket).await.map_err(|e| nats_error(format!("opening bucket {bucket}: {e}")))
}

/// (url, bucket, replicas) of a config whose source is NATS.
pub fn bucket_of(config: &Config) -> Option<(String, String, usize)> {
    let ConfigSource::Nats { url, bucket } = &config.cluster.source else { return None };
    let replicas = match &config.mailbox.backend {
        MailboxBackend::Nats { replicas, .. } => *replicas,
        MailboxBackend::Embedded => 1,
    };
    Some((url.clone(), bucket.clone(), replicas))
}

/// Writes the next version: `sign` is given the version number (one more than the
/// bucket's) and returns the signed document; a concurrent publish between the read
/// and the write makes this one fail rather than overwrite it.
pub async fn publish(
    store: &kv::Store,
    sign: impl FnOnce(u64) -> Result<Published, ClusterError>,
) -> Result<Published, ClusterError> {
    let current = store.entry(KEY).await.map_err(nats_error)?.filter(|e| e.operation == kv::Operation::Put);
    let (version, revision) = match &current {
        Some(entry) => (Published::from_bytes(&entry.value).map_or(0, |d| d.version) + 1, Some(entry.revision)),
        None => (1, None),
    };
    let doc = sign(version)?;
    let bytes = doc.to_bytes().into();
    match revision {
        Some(revision) => store.update(KEY, bytes, revision).await.map(|_| ()).map_err(nats_error)?,
        None => store.create(KEY, bytes).await.map(|_| ()).map_err(nats_error)?,
    }
    Ok(doc)
}

/// A node's watch: applies every version put in the bucket, from the one in force
/// when it starts; reconnects (every second at most) after any NATS failure, so a
/// node started before NATS or through a leader election catches up.
pub async fn run(gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let Some((url, bucket, replicas)) = bucket_of(&gateway.started) else { return };
    loop {
        let watched = async {
            let store = tokio::time::timeout(CALL_TIMEOUT, open(&url, &bucket, replicas))
                .await
                .map_err(|_| nats_error("timed out opening the bucket"))??;
            // The value in force first (absent: the file's registry stays), then each new one.
            let current = store.entry(KEY).await.map_err(nats_error)?;
            if let Some(entry) = current.filter(|e| e.operation == kv::Operation::Put) {
                gateway.offer_published(&entry.value).await;
            }
            gateway.cluster_synced.store(true, std::sync::atomic::Ordering::Release);
            // With history: the latest again (skipped as already running), so a
            // version put between the read above and this watch is not missed.
            let mut updates = store.watch_with_history(KEY).await.map_err(nats_error)?;
            while let Some(entry) = updates.next().await {
                let entry = entry.map_err(nats_error)?;
                if entry.operation == kv::Operation::Put {
                    gateway.offer_published(&entry.value).await;
                }
            }
            Err::<(), _>(nats_error("the watch ended"))
        };
        tokio::select! {
            result = watched => {
                if let Err(e) = result {
                    tracing::warn!(bucket, "watching the published configuration: {e}; retrying");
                }
            }
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
