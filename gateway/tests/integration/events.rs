//! Events (register-change notifications) over real mTLS connections, against the
//! embedded store and a real nats-server: the owner publishes, subscribers on its
//! list pull in order and acknowledge, unacknowledged events come back, a pushed
//! subscriber gets every event in order once it is reachable, and retention deletes
//! by age and by size.

use crate::common;

use std::time::{Duration, Instant};

use common::async_bus::{free_addr, start_push_provider, store_keys, Backend};
use common::*;
use serde_json::Value;

const CHANGES: &str = "KZ/GOV/000000000001/population-register/person-changed/v1";
const SMALL: &str = "KZ/GOV/000000000001/population-register/small/v1";
const BRIEF: &str = "KZ/GOV/000000000001/population-register/brief/v1";
const HOOK: &str = "KZ/GOV/000000000004/akimat/events/v1";

struct Topics {
    gw: TestGateway,
    owner: reqwest::Client,
    subscriber: reqwest::Client,
    stranger: reqwest::Client,
}

async fn topics(backend: Backend, hook: std::net::SocketAddr) -> Option<Topics> {
    let store = store_keys(backend)?;
    let gw = TestGateway::start_with("", |_, text| {
        format!(
            r#"{text}
[[service]]
id = "{HOOK}"
kind = "rest"
upstream = ["http://{hook}/hook"]
breaker = {{ failures = 1000 }}

[[topic]]
id = "{CHANGES}"
subscribers = ["{CLIENT}", "{OTHER_CLIENT}"]
push = [{{ subscriber = "{OTHER_CLIENT}", service = "{HOOK}" }}]

[[topic]]
id = "{SMALL}"
subscribers = ["{CLIENT}"]
max_bytes = 2000

[[topic]]
id = "{BRIEF}"
subscribers = ["{CLIENT}"]
retention = "1s"

[mailbox]
visibility_timeout = "1s"
retry_base = "200ms"
retry_max = "1s"
{store}"#
        )
    })
    .await;
    let owner = gw.pki.client(Some("population-register")).build().unwrap();
    let subscriber = gw.client();
    // Not on SMALL's list; its own service may not subscribe to anything either.
    let stranger = gw.pki.client(Some("akimat")).build().unwrap();
    Some(Topics { gw, owner, subscriber, stranger })
}

impl Topics {
    async fn publish_as(&self, who: &reqwest::Client, system: &str, topic: &str, id: &str, body: &str) -> (u16, Value) {
        let r = who
            .post(self.gw.tls_url(&format!("/e1/{topic}")))
            .header("X-Road-Client", system)
            .header("X-Road-Id", id)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn publish(&self, topic: &str, id: &str, body: &str) -> u64 {
        let (status, json) = self.publish_as(&self.owner, PROVIDER, topic, id, body).await;
        assert_eq!(status, 202, "{json}");
        json["seq"].as_u64().unwrap()
    }

    /// (seq, message id, body) of the events a pull returns.
    async fn pull(&self, topic: &str, max: usize, wait: &str) -> Vec<(u64, String, String)> {
        let url = self.gw.tls_url(&format!("/e1/{topic}?max={max}&wait={wait}"));
        let r = self.subscriber.get(url).header("X-Road-Client", CLIENT).send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.headers().get("qaqpa-error"));
        let list: Vec<Value> = r.json().await.unwrap();
        list.iter()
            .map(|e| {
                let body = base64_decode(e["body"].as_str().unwrap());
                (e["seq"].as_u64().unwrap(), e["message_id"].as_str().unwrap().to_owned(), body)
            })
            .collect()
    }

    async fn ack(&self, topic: &str, seq: u64) -> u16 {
        let url = self.gw.tls_url(&format!("/e1/ack/{topic}?seq={seq}"));
        self.subscriber.post(url).header("X-Road-Client", CLIENT).send().await.unwrap().status().as_u16()
    }
}

fn base64_decode(text: &str) -> String {
    use base64::Engine;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
}

both_backends!(publish_pull_ack, unacked_events_come_back, push_in_order_once_reachable, retention_by_size_and_age);

async fn publish_pull_ack(backend: Backend) {
    let Some(t) = topics(backend, free_addr()).await else { return };
    assert_eq!(t.publish(CHANGES, "e-1", r#"{"iin":"900101300123"}"#).await, 1);
    let (status, again) = t.publish_as(&t.owner, PROVIDER, CHANGES, "e-1", "{}").await;
    assert_eq!((status, again["seq"].as_u64(), again["duplicate"].as_bool()), (202, Some(1), Some(true)));
    let (status, refused) = t.publish_as(&t.subscriber, CLIENT, CHANGES, "e-x", "{}").await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("client.access_denied")), "only the owner publishes");

    // One event as itself.
    let r = t
        .subscriber
        .get(t.gw.tls_url(&format!("/e1/{CHANGES}?wait=5s")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["qaqpa-event-seq"], "1");
    assert_eq!(h["qaqpa-topic"], CHANGES);
    assert_eq!(h["x-road-client"], PROVIDER);
    assert_eq!(h["x-road-id"], "e-1");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), r#"{"iin":"900101300123"}"#);

    for n in 2..=4 {
        assert_eq!(t.publish(CHANGES, &format!("e-{n}"), &format!("change {n}")).await, n);
    }
    let events = t.pull(CHANGES, 10, "2s").await;
    let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(seqs, vec![2, 3, 4], "after the leased first, in order");
    assert_eq!(events[2].1, "e-4");
    assert_eq!(events[2].2, "change 4");
    assert_eq!(t.ack(CHANGES, 4).await, 200, "acknowledges 1 to 4 at once");
    assert!(t.pull(CHANGES, 10, "1500ms").await.is_empty(), "nothing comes back after the ack");
    assert_eq!(t.ack(CHANGES, 99).await, 404, "an event never delivered cannot be acknowledged");

    let r = t.stranger.get(t.gw.tls_url(&format!("/e1/{SMALL}"))).header("X-Road-Client", OTHER_CLIENT).send().await;
    assert_eq!(r.unwrap().headers()["qaqpa-error"], "client.access_denied", "not on the owner's list");
    let r = t
        .subscriber
        .get(t.gw.tls_url("/e1/KZ/GOV/000000000001/population-register/none/v1"))
        .header("X-Road-Client", CLIENT);
    assert_eq!(r.send().await.unwrap().status(), 404);
}

async fn unacked_events_come_back(backend: Backend) {
    let Some(t) = topics(backend, free_addr()).await else { return };
    t.publish(CHANGES, "u-1", "first").await;
    t.publish(CHANGES, "u-2", "second").await;
    let first = t.pull(CHANGES, 10, "2s").await;
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(t.pull(CHANGES, 10, "0s").await.is_empty(), "leased events are not handed out twice at once");
    let started = Instant::now();
    let again = t.pull(CHANGES, 10, "5s").await;
    assert!(started.elapsed() >= Duration::from_millis(500), "not before the visibility timeout");
    assert_eq!(again.iter().map(|e| (e.0, e.2.as_str())).collect::<Vec<_>>(), vec![(1, "first"), (2, "second")]);
    assert_eq!(t.ack(CHANGES, 2).await, 200);
    assert!(t.pull(CHANGES, 10, "2s").await.is_empty());
}

async fn push_in_order_once_reachable(backend: Backend) {
    let hook = free_addr();
    let Some(t) = topics(backend, hook).await else { return };
    for n in 1..=5 {
        t.publish(CHANGES, &format!("p-{n}"), &format!("change {n}")).await;
    }
    // The subscriber's service is down for a while: nothing is lost, order is kept.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = start_push_provider(hook).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "pushed only {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.publish(CHANGES, "p-6", "change 6").await;
    while seen.lock().unwrap().len() < 6 {
        assert!(Instant::now() < deadline, "the sixth was not pushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let ids: Vec<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["p-1", "p-2", "p-3", "p-4", "p-5", "p-6"], "each event once, in order");
    assert_eq!(seen[5].2, "change 6");
}

async fn retention_by_size_and_age(backend: Backend) {
    let Some(t) = topics(backend, free_addr()).await else { return };
    let body = "x".repeat(200);
    for n in 1..=20 {
        t.publish(SMALL, &format!("s-{n}"), &body).await;
    }
    t.publish(BRIEF, "b-1", "short-lived").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kept = t.pull(SMALL, 100, "1s").await;
    let seqs: Vec<u64> = kept.iter().map(|e| e.0).collect();
    assert!(!seqs.is_empty() && seqs.len() < 20, "size retention kept {seqs:?}");
    assert_eq!(seqs.last(), Some(&20), "the newest events stay");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "a contiguous tail: {seqs:?}");
    assert!(t.pull(BRIEF, 10, "0s").await.is_empty(), "events older than the retention are gone");
}
