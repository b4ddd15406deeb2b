//! Events on JetStream: one stream per topic (`{P}_EV_{topic}`, with the topic's
//! age and size limits), one durable consumer per subscriber with `AckPolicy::All`,
//! so acknowledging an event acknowledges everything before it, as the embedded
//! store's cursor does. The ack subject of each delivery is kept in the leases
//! bucket, so the acknowledgement may reach any node.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{nats_error, token, Nats};
use crate::{frame, unframe, EventDelivery, EventMeta, MailboxError, Published, TopicRules};

impl Nats {
    fn event_subject(&self, topic: &str) -> String {
        format!("{}.ev.{}", self.prefix, token(topic))
    }

    async fn event_stream(&self, topic: &TopicRules) -> Result<stream::Stream, MailboxError> {
        let name = format!("{}_EV_{}", self.prefix, token(&topic.id));
        self.js
            .get_or_create_stream(stream::Config {
                name,
                subjects: vec![self.event_subject(&topic.id)],
                storage: stream::StorageType::File,
                max_age: topic.retention,
                max_bytes: i64::try_from(topic.max_bytes).unwrap_or(i64::MAX),
                duplicate_window: self.policy.dedupe_window.min(topic.retention),
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(nats_error)
    }

    async fn event_consumer(
        &self,
        topic: &TopicRules,
        subscriber: &str,
    ) -> Result<consumer::PullConsumer, MailboxError> {
        let key = (topic.id.clone(), subscriber.to_owned());
        if let Some(c) = self.event_consumers.get(&key) {
            return Ok(c.clone());
        }
        let name = format!("sub_{}", token(subscriber));
        let created = self
            .event_stream(topic)
            .await?
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::All,
                    ack_wait: self.policy.visibility,
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_error)?;
        self.event_consumers.insert(key, created.clone());
        Ok(created)
    }

    pub(super) async fn append_event(
        &self,
        topic: &TopicRules,
        meta: EventMeta,
        body: Bytes,
    ) -> Result<Published, MailboxError> {
        self.event_stream(topic).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", meta.mid.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(self.event_subject(&topic.id), headers, frame(&meta, &body))
            .await
            .map_err(nats_error)?
            .await
            .map_err(nats_error)?;
        Ok(match ack.duplicate {
            true => Published::Duplicate(ack.sequence),
            false => Published::New(ack.sequence),
        })
    }

    fn event_lease_key(topic: &str, subscriber: &str, seq: u64) -> String {
        format!("ev.{}.{}.{seq}", token(topic), token(subscriber))
    }

    pub(super) async fn pull_events(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<EventDelivery>, MailboxError> {
        let consumer = self.event_consumer(topic, subscriber).await?;
        let expires = wait.max(Duration::from_millis(10));
        let mut batch = consumer.fetch().max_messages(max).expires(expires).messages().await.map_err(nats_error)?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(nats_error)?;
            let seq = message.info().map_err(nats_error)?.stream_sequence;
            let Some(ack) = message.reply.as_ref().map(|r| r.to_string()) else { continue };
            let Some((meta, body)) = unframe::<EventMeta>(&message.payload) else { continue };
            self.leases.put(Self::event_lease_key(&topic.id, subscriber, seq), Bytes::from(ack.clone())).await?;
            out.push(EventDelivery { topic: topic.id.clone(), seq, meta, body, token: Some(ack) });
        }
        Ok(out)
    }

    pub(super) async fn ack_through(
        &self,
        topic: &TopicRules,
        subscriber: &str,
        through: u64,
    ) -> Result<(), MailboxError> {
        let key = Self::event_lease_key(&topic.id, subscriber, through);
        let ack = self.leases.get(&key).await?.ok_or(MailboxError::NotDelivered(through))?;
        let subject = String::from_utf8(ack.to_vec()).map_err(|e| MailboxError::Store(e.to_string()))?;
        self.client.publish(subject, Bytes::from_static(b"+ACK")).await.map_err(nats_error)?;
        self.client.flush().await.map_err(nats_error)?;
        self.leases.delete(&key).await?;
        Ok(())
    }

    /// Negative acknowledgements: JetStream delivers these events again at once.
    pub(super) async fn nak_events(&self, events: &[EventDelivery]) -> Result<(), MailboxError> {
        for token in events.iter().filter_map(|e| e.token.clone()) {
            self.client.publish(token, Bytes::from_static(b"-NAK")).await.map_err(nats_error)?;
        }
        self.client.flush().await.map_err(nats_error)
    }
}
