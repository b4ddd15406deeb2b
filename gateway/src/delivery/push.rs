//! Push delivery. Events: for each `push` entry of a topic, a worker posts the
//! subscriber's events in order to the subscriber's registered service.
//!
//! Requests: for every service with `mailbox = "push"` the gateway takes requests
//! from its queue and posts each to the service's upstream, through the same pooled
//! client, breakers and timeouts as synchronous traffic. A 2xx–4xx answer is the
//! provider's reply and goes to the client's outbox; a 5xx, a refused connection or a
//! timeout is a failed attempt, retried after an exponential, jittered backoff, and
//! after `max_attempts` a dead letter.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::body::Source;
use crate::config::MailboxMode;
use crate::delivery::forward::ProviderPath;
use crate::headers::X_ROAD_CLIENT;
use crate::mailbox::wire::{pick, put_carried, ATTEMPT, MESSAGE_ID, SEQ, TOPIC};
use crate::mailbox::{Delivery, EventDelivery, Queue, TopicRules};
use crate::observe::record::{ExchangeRecord, Step};
use crate::peer::Peer;
use crate::shared::Shared;

/// How often the supervisor looks for services that start or stop pushing.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How long one take waits for work before looking at the stop signal again.
const TAKE_WAIT: Duration = Duration::from_secs(1);

/// What one push worker does.
#[derive(Clone, PartialEq)]
enum Job {
    /// Requests of a `mailbox = "push"` service, to its upstream.
    Requests(String),
    /// A topic's events for one subscriber, to the subscriber's service, in order.
    Events { topic: TopicRules, subscriber: String, service: String },
}

fn wanted(runtime: &crate::runtime::Runtime) -> Vec<Job> {
    let config = &runtime.config;
    let requests =
        config.services.iter().filter(|s| s.mailbox == MailboxMode::Push).map(|s| Job::Requests(s.id.to_string()));
    let events = config.topics.iter().flat_map(|t| {
        t.push.iter().map(move |(subscriber, service)| Job::Events {
            topic: crate::mailbox::rules(t),
            subscriber: subscriber.to_string(),
            service: service.to_string(),
        })
    });
    requests.chain(events).collect()
}

pub async fn run(gateway: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut workers: Vec<(Job, tokio::task::JoinHandle<()>, watch::Sender<bool>)> = Vec::new();
    loop {
        let runtime = gateway.runtime();
        let wanted = wanted(&runtime);
        workers.retain(|(job, handle, halt)| {
            let keep = wanted.contains(job) && !handle.is_finished();
            if !keep {
                let _ = halt.send(true);
            }
            keep
        });
        for job in wanted {
            if workers.iter().any(|(j, _, _)| *j == job) {
                continue;
            }
            let (halt, halted) = watch::channel(false);
            let concurrency = runtime.config.mailbox.push_concurrency as usize;
            let handle = match &job {
                Job::Requests(service) => tokio::spawn(worker(gateway.clone(), service.clone(), concurrency, halted)),
                Job::Events { topic, subscriber, service } => {
                    let (t, sub, svc) = (topic.clone(), subscriber.clone(), service.clone());
                    tokio::spawn(event_worker(gateway.clone(), t, sub, svc, halted))
                }
            };
            workers.push((job, handle, halt));
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, handle, halt) in workers {
        let _ = halt.send(true);
        let _ = handle.await;
    }
}

/// Posts a subscriber's events one by one, in order: each delivered one is
/// acknowledged; at the first failure the rest are handed back and the worker
/// waits out a growing, jittered delay before trying again from there.
async fn event_worker(
    gateway: Arc<Shared>,
    topic: TopicRules,
    subscriber: String,
    service: String,
    mut halt: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let pulled = tokio::select! {
            p = gateway.mailboxes.pull(&topic, &subscriber, 16, TAKE_WAIT) => p,
            _ = halt.changed() => return,
        };
        let events = match pulled {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(topic = %topic.id, "event push: pulling failed: {e}");
                tokio::time::sleep(TAKE_WAIT).await;
                continue;
            }
        };
        for (i, event) in events.iter().enumerate() {
            match post_event(&gateway, &service, event).await {
                Ok(()) => {
                    failures = 0;
                    if let Err(e) = gateway.mailboxes.ack_events(&topic, &subscriber, event.seq).await {
                        tracing::warn!(topic = %topic.id, seq = event.seq, "event push: ack failed: {e}");
                    }
                }
                Err(why) => {
                    failures += 1;
                    tracing::info!(topic = %topic.id, seq = event.seq, %subscriber, "event push failed: {why}");
                    let _ = gateway.mailboxes.release(&topic, &subscriber, &events[i..]).await;
                    let delay = gateway.mailboxes.retry_delay(failures);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = halt.changed() => return,
                    }
                    break;
                }
            }
        }
    }
}

async fn post_event(gateway: &Arc<Shared>, service: &str, event: &EventDelivery) -> Result<(), String> {
    let mut headers = event.meta.headers.clone();
    headers.push((TOPIC.into(), event.topic.clone()));
    headers.push((SEQ.into(), event.seq.to_string()));
    let outgoing = Outgoing {
        service,
        message_id: &event.meta.message_id,
        client: &event.meta.publisher,
        mid: event.meta.mid,
        attempt: None,
        headers: &headers,
        path: "",
        body: event.body.clone(),
    };
    let (status, _, _) = send(gateway, outgoing).await?;
    if status >= 500 {
        return Err(format!("the subscriber answered {status}"));
    }
    Ok(())
}

async fn worker(gateway: Arc<Shared>, service: String, concurrency: usize, mut halt: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let queue = [Queue::Requests(service.clone())];
    loop {
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = halt.changed() => break,
        };
        let room = permits.available_permits() + 1;
        let taken = tokio::select! {
            t = gateway.mailboxes.take(&queue, room, TAKE_WAIT) => t,
            _ = halt.changed() => break,
        };
        let deliveries = match taken {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(%service, "push: taking work failed: {e}");
                tokio::time::sleep(TAKE_WAIT).await;
                continue;
            }
        };
        let mut first = Some(first);
        for delivery in deliveries {
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            tokio::spawn(push_one(gateway.clone(), delivery, permit));
        }
    }
    // Let deliveries in flight finish before the worker is gone.
    let _ = permits.acquire_many(concurrency.max(1) as u32).await;
}

async fn push_one(gateway: Arc<Shared>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
    let mid = delivery.envelope.mid;
    let outcome = post(&gateway, delivery).await;
    let metrics = &gateway.telemetry.metrics;
    let result = match outcome {
        Ok((provider, status, headers, body)) => {
            metrics.mailbox_events.with_label_values(&["replied"]).inc();
            gateway.mailboxes.reply(mid, &provider, status, headers, body).await
        }
        Err(why) => {
            metrics.mailbox_events.with_label_values(&["failed"]).inc();
            tracing::info!(%mid, "push delivery failed: {why}");
            gateway.mailboxes.fail(mid, why).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(%mid, "push: recording the outcome failed: {e}");
    }
}

type Answer = (String, u16, Vec<(String, String)>, Bytes);

/// Posts one request to its service's upstream; the provider's answer, or why not.
async fn post(gateway: &Arc<Shared>, delivery: Delivery) -> Result<Answer, String> {
    let e = &delivery.envelope;
    let outgoing = Outgoing {
        service: &e.service,
        message_id: &e.message_id,
        client: &e.client,
        mid: e.mid,
        attempt: Some(e.attempts),
        headers: &e.headers,
        path: &e.path,
        body: delivery.body.clone(),
    };
    let (status, headers, body) = send(gateway, outgoing).await?;
    if status >= 500 {
        return Err(format!("the provider answered {status}"));
    }
    let provider = qaqpa_routing::ServiceId::parse(&e.service).map(|s| s.system().to_string()).unwrap_or_default();
    Ok((provider, status, headers, body))
}

/// One message the gateway posts on its own initiative.
struct Outgoing<'a> {
    service: &'a str,
    message_id: &'a str,
    /// Who the message is from (X-Road-Client).
    client: &'a str,
    mid: uuid::Uuid,
    attempt: Option<u32>,
    headers: &'a [(String, String)],
    /// Path after the service's base, with query.
    path: &'a str,
    body: Bytes,
}

/// Posts through the service's pool (breakers, timeouts, the monitoring record and
/// the message log as for any exchange); the answer's status, content type and body.
async fn send(gateway: &Arc<Shared>, m: Outgoing<'_>) -> Result<(u16, Vec<(String, String)>, Bytes), String> {
    let runtime = gateway.runtime();
    let route = runtime.routes.get(m.service).ok_or("the service is no longer registered")?.clone();
    let mut exchange = ExchangeRecord::begin(gateway.telemetry.clone(), m.message_id.to_owned(), Instant::now());
    if let Some(client) = runtime.systems.get(m.client) {
        exchange.set_client(client);
    }
    exchange.set_service(&route);
    exchange.set_step(Step { message: Some(m.message_id.to_owned()), attempt: m.attempt, ..Step::new("push", m.mid) });
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header(X_ROAD_CLIENT, m.client)
        .header("x-road-service", m.service)
        .header(MESSAGE_ID, m.mid.to_string());
    let req = match m.attempt {
        Some(attempt) => req.header(ATTEMPT, attempt),
        None => req,
    };
    let (mut parts, _) = req.body(()).map_err(|err| err.to_string())?.into_parts();
    put_carried(&mut parts.headers, m.headers);
    let (rest, query) = m.path.split_once('?').map_or((m.path, None), |(p, q)| (p, Some(q)));
    let peer = Peer::gateway(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let limits = &runtime.config.limits;
    let body = Source::Buffered(Some(m.body));
    let result = crate::delivery::forward::deliver(
        &route,
        &ProviderPath::new(rest, query),
        parts,
        body,
        &peer,
        &mut exchange,
        limits,
    )
    .await;
    let response = match result {
        Ok(r) => r,
        Err(err) => {
            let status = err.code.http_status();
            exchange.response_head(status, Some(err.code), ());
            exchange.finish(0);
            return Err(err.to_string());
        }
    };
    let status = response.status().as_u16();
    let headers = pick(response.headers(), &["content-type"]);
    exchange.response_head(status, None, ());
    // The provider's answer is on the record before the store takes it (or, for
    // a 5xx, before the message is retried): no delivery off the record. A log
    // that cannot write leaves the message to be pushed again.
    if exchange.commit().await.is_err() {
        exchange.finish(0);
        return Err("the message log cannot record the delivery".into());
    }
    let limit = runtime.config.mailbox.max_message_bytes;
    let body = crate::body::collect_bounded(response.into_body(), limit)
        .await
        .map_err(|_| format!("the answer was cut off or over {limit} bytes"));
    exchange.finish(body.as_ref().map_or(0, |b| b.len() as u64));
    Ok((status, headers, body?))
}
