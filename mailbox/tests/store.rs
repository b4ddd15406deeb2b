//! One behavioural suite for every store, through the [`Store`] trait: each scenario
//! is a function of `&dyn Store`, run once against a fresh embedded store (a temp
//! dir) and once against a real nats-server (JetStream at `QAQPA_TEST_NATS`, default
//! nats://127.0.0.1:4222), with a fresh stream prefix per test so runs never share
//! streams. An unreachable NATS skips its half (prints SKIPPED), except with
//! `CI=true`, where it fails.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use qaqpa_mailbox::{
    mailbox_id, now_ms, Backend, Backoff, DeadLetterHook, Delivery, EventMeta, Kind, MailboxError, MessageMeta,
    Options, Published, Queue, Sent, Store, TopicRules,
};

const CLIENT: &str = "KZ/GOV/000000000003/egov-portal";
const OTHER: &str = "KZ/GOV/000000000004/intruder";
const SERVICE: &str = "KZ/GOV/000000000001/population-register/notices/v1";
const ORDERED: &str = "KZ/GOV/000000000001/population-register/ordered/v1";

const VISIBILITY: Duration = Duration::from_secs(1);
const MAX_ATTEMPTS: u32 = 2;
const MAX_QUEUE_DEPTH: u32 = 3;

/// (node, message) of every dead letter any store under test reported.
static BURIED: std::sync::Mutex<Vec<(String, uuid::Uuid)>> = std::sync::Mutex::new(Vec::new());

/// How often `store` reported `mid` dead-lettered.
fn reported_dead(store: &dyn Store, mid: uuid::Uuid) -> usize {
    let node = &store.policy().node;
    BURIED.lock().unwrap().iter().filter(|(n, m)| n == node && *m == mid).count()
}

fn options(backend: Backend) -> Options {
    // Each store its own node name, so the dead-letter reports of parallel tests
    // (which share message ids) stay apart.
    let node = format!("test-node-{}", uuid::Uuid::new_v4().simple());
    let told = node.clone();
    Options {
        backend,
        visibility_timeout: VISIBILITY,
        max_attempts: MAX_ATTEMPTS,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(200) },
        dedupe_window: Duration::from_secs(3600),
        max_queue_depth: MAX_QUEUE_DEPTH,
        node,
        on_dead_letter: DeadLetterHook::new(move |m: &MessageMeta| BURIED.lock().unwrap().push((told.clone(), m.mid))),
    }
}

/// A store under test and what to clean up after it.
struct Harness {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    /// (url, prefix) of the NATS streams to delete afterwards.
    nats: Option<(String, String)>,
}

impl Harness {
    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailbox.redb");
        let store = qaqpa_mailbox::open(&options(Backend::Embedded { path })).await.unwrap();
        Harness { store, _dir: Some(dir), nats: None }
    }

    async fn nats() -> Option<Self> {
        let url = nats_url()?;
        // `T` and 32 hex digits: the pattern the gateway's suites purge when stale.
        let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
        let backend = Backend::Nats { url: url.clone(), prefix: prefix.clone(), replicas: 1 };
        let store = qaqpa_mailbox::open(&options(backend)).await.unwrap();
        Some(Harness { store, _dir: None, nats: Some((url, prefix)) })
    }
}

/// Leaves nothing behind on the shared server, even when the test failed.
impl Drop for Harness {
    fn drop(&mut self) {
        let Some((url, prefix)) = self.nats.take() else { return };
        let cleanup = async move {
            use futures_util::StreamExt;
            let client = async_nats::connect(&url).await.ok()?;
            let js = async_nats::jetstream::new(client);
            let mut names = js.stream_names();
            let mut ours = Vec::new();
            while let Some(Ok(name)) = names.next().await {
                if name.starts_with(&format!("{prefix}_")) {
                    ours.push(name);
                }
            }
            for name in ours {
                let _ = js.delete_stream(&name).await;
            }
            Some(())
        };
        // Its own thread and runtime: drop runs inside the test's runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(cleanup))
        })
        .join();
    }
}

fn nats_url() -> Option<String> {
    let url = std::env::var("QAQPA_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let addr = url.trim_start_matches("nats://").to_owned();
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("NATS JetStream is not reachable at {url}: CI requires it");
    }
    eprintln!("SKIPPED: NATS is not reachable at {url} (set QAQPA_TEST_NATS); the embedded half still ran");
    None
}

/// Each scenario as two tests: `embedded::name` and `nats::name`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::Harness::embedded().await;
                    super::$name(&*h.store).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::Harness::nats().await else { return };
                    super::$name(&*h.store).await;
                }
            )*
        }
    };
}

suite!(
    the_store_names_itself_and_its_policy,
    a_resend_is_a_duplicate_of_the_first,
    a_request_is_taken_answered_and_collected,
    only_the_owner_may_answer_or_acknowledge,
    an_unacknowledged_message_comes_back_after_the_visibility_timeout,
    failed_pushes_retry_then_become_dead_letters_an_operator_replays_or_drops,
    a_full_queue_refuses_more,
    ordered_requests_are_taken_one_at_a_time,
    depths_count_messages_by_state,
    events_are_pulled_in_order_and_acknowledged_cumulatively,
    released_events_come_back_in_order,
    each_subscriber_has_its_own_cursor,
    state_follows_a_request,
    a_provider_refuses_a_request_for_a_resend_or_for_good,
);

// ---- helpers ----------------------------------------------------------------------

fn request(message_id: &str) -> MessageMeta {
    request_to(SERVICE, message_id, false)
}

fn request_to(service: &str, message_id: &str, ordered: bool) -> MessageMeta {
    MessageMeta::request(
        CLIENT,
        service,
        message_id,
        "/path?x=1".into(),
        vec![("content-type".into(), "application/json".into())],
        ordered,
    )
}

fn requests() -> Queue {
    Queue::Requests(SERVICE.into())
}

fn responses() -> Queue {
    Queue::Responses(CLIENT.into())
}

/// The system that provides `SERVICE`: it takes and answers its requests.
fn provider() -> String {
    request("x").owner()
}

/// Runs the store's housekeeping where it has some (what the gateway does every 100 ms).
async fn housekeep(store: &dyn Store) {
    if store.needs_housekeeping() {
        store.tick().await.unwrap();
    }
}

/// Takes from `queue` until something comes or `within` is over, housekeeping between.
async fn take_within(store: &dyn Store, queue: &Queue, max: usize, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    loop {
        housekeep(store).await;
        let got = store.take(std::slice::from_ref(queue), max, Duration::from_millis(100)).await.unwrap();
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
    }
}

async fn take_one(store: &dyn Store, queue: &Queue) -> Delivery {
    let mut got = take_within(store, queue, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "one message from {queue:?}");
    got.remove(0)
}

async fn nothing_in(store: &dyn Store, queue: &Queue) {
    housekeep(store).await;
    let got = store.take(std::slice::from_ref(queue), 10, Duration::from_millis(200)).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|d| d.envelope.message_id.as_str()).collect();
    assert!(got.is_empty(), "nothing should be ready in {queue:?}, got {ids:?}");
}

fn topic(name: &str) -> TopicRules {
    TopicRules {
        id: format!("KZ/GOV/000000000001/population-register/{name}"),
        retention: Duration::from_secs(3600),
        max_bytes: 1 << 20,
    }
}

fn event(message_id: &str) -> EventMeta {
    EventMeta {
        mid: mailbox_id(CLIENT, message_id),
        message_id: message_id.into(),
        publisher: CLIENT.into(),
        published: now_ms(),
        headers: vec![("content-type".into(), "application/json".into())],
    }
}

async fn pull(store: &dyn Store, topic: &TopicRules, subscriber: &str, wait: Duration) -> Vec<(u64, String)> {
    let got = store.pull(topic, subscriber, 10, wait).await.unwrap();
    got.into_iter().map(|e| (e.seq, String::from_utf8_lossy(&e.body).into_owned())).collect()
}

// ---- mailboxes --------------------------------------------------------------------

async fn the_store_names_itself_and_its_policy(store: &dyn Store) {
    assert!(["embedded", "nats"].contains(&store.backend()));
    assert_eq!((store.policy().max_attempts, store.policy().visibility), (MAX_ATTEMPTS, VISIBILITY));
    for failed in 1..5 {
        let d = store.retry_delay(failed);
        assert!(d >= Duration::from_millis(25) && d <= Duration::from_millis(200), "{failed}: {d:?}");
    }
    assert_eq!(store.depths().await.unwrap(), vec![], "a new store is empty");
    assert_eq!(store.dead_count().await.unwrap(), 0);
}

async fn a_resend_is_a_duplicate_of_the_first(store: &dyn Store) {
    let first = store.send(request("m-1"), Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(first, Sent::New(mailbox_id(CLIENT, "m-1")));
    let again = store.send(request("m-1"), Bytes::from_static(b"one, again")).await.unwrap();
    assert_eq!(again, Sent::Duplicate(first.mid()), "same client and message id: the same message");
    let got = take_one(store, &requests()).await;
    assert_eq!(got.body.as_ref(), b"one", "the first body is the one kept");
    nothing_in(store, &requests()).await;
    store.ack(got.envelope.mid, &provider()).await.unwrap();
    let late = store.send(request("m-1"), Bytes::from_static(b"one, late")).await.unwrap();
    assert_eq!(late, Sent::Duplicate(first.mid()), "a finished id is remembered within the dedupe window");
    nothing_in(store, &requests()).await;
}

async fn a_request_is_taken_answered_and_collected(store: &dyn Store) {
    let mid = store.send(request("m-1"), Bytes::from_static(b"{\"q\":1}")).await.unwrap().mid();
    let taken = take_one(store, &requests()).await;
    let e = &taken.envelope;
    assert_eq!((e.mid, e.kind, e.attempts), (mid, Kind::Request, 1));
    assert_eq!((e.client.as_str(), e.service.as_str(), e.message_id.as_str()), (CLIENT, SERVICE, "m-1"));
    assert_eq!((e.path.as_str(), taken.body.as_ref()), ("/path?x=1", &b"{\"q\":1}"[..]));
    assert!(
        e.history.iter().any(|a| a.event.starts_with("delivered") && a.node == store.policy().node),
        "{:?}",
        e.history
    );

    let headers = vec![("content-type".to_owned(), "text/plain".to_owned())];
    store.reply(mid, &provider(), 201, headers.clone(), Bytes::from_static(b"answer")).await.unwrap();
    nothing_in(store, &requests()).await;
    let answer = take_one(store, &responses()).await;
    let e = &answer.envelope;
    assert_eq!((e.mid, e.kind, e.status, e.message_id.as_str()), (mid, Kind::Response, Some(201), "m-1"));
    assert_eq!((&e.headers, answer.body.as_ref()), (&headers, &b"answer"[..]));
    store.ack(mid, CLIENT).await.unwrap();
    assert!(matches!(store.ack(mid, CLIENT).await, Err(MailboxError::Unknown(m)) if m == mid), "acked once");
    nothing_in(store, &responses()).await;
}

async fn only_the_owner_may_answer_or_acknowledge(store: &dyn Store) {
    let mid = store.send(request("m-1"), Bytes::from_static(b"x")).await.unwrap().mid();
    let unknown = |r: Result<(), MailboxError>| matches!(r, Err(MailboxError::Unknown(m)) if m == mid);
    take_one(store, &requests()).await;
    assert!(unknown(store.ack(mid, OTHER).await), "another system");
    assert!(unknown(store.ack(mid, CLIENT).await), "the client does not own its request");
    assert!(unknown(store.reply(mid, OTHER, 200, vec![], Bytes::new()).await));
    let stranger = uuid::Uuid::new_v4();
    assert!(matches!(store.ack(stranger, &provider()).await, Err(MailboxError::Unknown(m)) if m == stranger));
    store.ack(mid, &provider()).await.unwrap();
    nothing_in(store, &requests()).await;
    nothing_in(store, &responses()).await;
}

async fn an_unacknowledged_message_comes_back_after_the_visibility_timeout(store: &dyn Store) {
    let mid = store.send(request("m-1"), Bytes::from_static(b"x")).await.unwrap().mid();
    let first = take_one(store, &requests()).await;
    assert_eq!(first.envelope.attempts, 1);
    nothing_in(store, &requests()).await;
    let started = Instant::now();
    let again = take_one(store, &requests()).await;
    assert!(started.elapsed() >= VISIBILITY / 2, "not before the lease ends ({:?})", started.elapsed());
    assert_eq!((again.envelope.mid, again.envelope.attempts), (mid, 2), "the same message, second delivery");
    store.ack(mid, &provider()).await.unwrap();
    nothing_in(store, &requests()).await;
}

async fn failed_pushes_retry_then_become_dead_letters_an_operator_replays_or_drops(store: &dyn Store) {
    let mid = store.send(request("m-1"), Bytes::from_static(b"body")).await.unwrap().mid();
    let first = take_one(store, &requests()).await;
    assert_eq!(first.envelope.attempts, 1);
    store.fail(mid, "upstream said 503".into()).await.unwrap();
    let second = take_one(store, &requests()).await;
    assert_eq!(second.envelope.attempts, 2, "retried after the backoff");
    store.fail(mid, "upstream said 503 again".into()).await.unwrap();

    // Out of attempts: the next housekeeping pass or fetch buries it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.dead_count().await.unwrap() == 0 && Instant::now() < deadline {
        nothing_in(store, &requests()).await;
    }
    assert_eq!(store.dead_count().await.unwrap(), 1);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].envelope.mid, dead[0].body_bytes), (mid, 4));
    let events: Vec<&str> = dead[0].envelope.history.iter().map(|a| a.event.as_str()).collect();
    assert!(events.iter().any(|e| e.starts_with("failed: upstream said 503")), "{events:?}");
    assert!(events.last().is_some_and(|e| e.starts_with("dead letter after 2 attempts")), "{events:?}");
    assert_eq!(reported_dead(store, mid), 1, "the hook is told of the dead letter once");

    store.replay(mid).await.unwrap();
    assert_eq!(store.dead_count().await.unwrap(), 0);
    let replayed = take_one(store, &requests()).await;
    assert_eq!((replayed.envelope.mid, replayed.envelope.attempts), (mid, 1), "a fresh attempt count");
    assert_eq!(replayed.body.as_ref(), b"body");
    // Out of attempts again, then dropped for good.
    store.fail(mid, "still down".into()).await.unwrap();
    take_one(store, &requests()).await;
    store.fail(mid, "still down".into()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.dead_count().await.unwrap() == 0 && Instant::now() < deadline {
        nothing_in(store, &requests()).await;
    }
    assert_eq!(store.dead_count().await.unwrap(), 1);
    assert_eq!(reported_dead(store, mid), 2, "and of the second burial");
    store.drop_dead(mid).await.unwrap();
    assert_eq!(store.dead_count().await.unwrap(), 0);
    assert!(store.dead_letters(10).await.unwrap().is_empty());
    assert!(matches!(store.drop_dead(mid).await, Err(MailboxError::Unknown(_))), "dropped once");
    assert!(matches!(store.replay(mid).await, Err(MailboxError::Unknown(_))));
    let resent = store.send(request("m-1"), Bytes::from_static(b"body")).await.unwrap();
    assert_eq!(resent, Sent::Duplicate(mid), "a dropped id is still remembered");
}

async fn a_full_queue_refuses_more(store: &dyn Store) {
    for n in 0..MAX_QUEUE_DEPTH {
        store.send(request(&format!("m-{n}")), Bytes::from_static(b"x")).await.unwrap();
    }
    let refused = store.send(request("one-too-many"), Bytes::from_static(b"x")).await;
    assert!(matches!(&refused, Err(MailboxError::Full(q)) if q == SERVICE), "{refused:?}");
    let other = store.send(request_to(ORDERED, "elsewhere", false), Bytes::from_static(b"x")).await;
    assert!(other.is_ok(), "other queues are not affected: {other:?}");
    let taken = take_one(store, &requests()).await;
    store.ack(taken.envelope.mid, &provider()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.send(request("one-too-many"), Bytes::from_static(b"x")).await {
            Ok(sent) => break assert!(matches!(sent, Sent::New(_))),
            Err(MailboxError::Full(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("room after an ack: {e}"),
        }
    }
}

async fn ordered_requests_are_taken_one_at_a_time(store: &dyn Store) {
    store.set_ordered(&[ORDERED.to_owned()]);
    let queue = Queue::Requests(ORDERED.into());
    let first = store.send(request_to(ORDERED, "o-1", true), Bytes::from_static(b"1")).await.unwrap().mid();
    let second = store.send(request_to(ORDERED, "o-2", true), Bytes::from_static(b"2")).await.unwrap().mid();
    let got = take_within(store, &queue, 10, Duration::from_secs(5)).await;
    let ids: Vec<uuid::Uuid> = got.iter().map(|d| d.envelope.mid).collect();
    assert_eq!(ids, vec![first], "the second waits behind the first");
    nothing_in(store, &queue).await;
    store.ack(first, &provider()).await.unwrap();
    let next = take_one(store, &queue).await;
    assert_eq!(next.envelope.mid, second);
    store.ack(second, &provider()).await.unwrap();
}

async fn depths_count_messages_by_state(store: &dyn Store) {
    for n in 0..3 {
        store.send(request(&format!("m-{n}")), Bytes::from_static(b"x")).await.unwrap();
    }
    take_one(store, &requests()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let depth = loop {
        let depths = store.depths().await.unwrap();
        let depth = depths.into_iter().find(|d| d.queue == SERVICE && d.kind == "requests");
        match depth {
            Some(d) if (d.ready, d.in_flight) == (2, 1) => break d,
            other if Instant::now() >= deadline => panic!("depth: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(depth.waiting, 0);
}

// ---- events -----------------------------------------------------------------------

async fn events_are_pulled_in_order_and_acknowledged_cumulatively(store: &dyn Store) {
    let t = topic("births");
    let mut seqs = Vec::new();
    for n in 1..=3 {
        match store.publish(&t, event(&format!("e-{n}")), Bytes::from(format!("event {n}"))).await.unwrap() {
            Published::New(seq) => seqs.push(seq),
            Published::Duplicate(seq) => panic!("a new event reported as duplicate of {seq}"),
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let again = store.publish(&t, event("e-1"), Bytes::from_static(b"event 1, again")).await.unwrap();
    assert_eq!(again, Published::Duplicate(seqs[0]), "same publisher and message id");

    let wait = Duration::from_secs(2);
    let got = pull(store, &t, "sub-a", wait).await;
    let want: Vec<(u64, String)> = seqs.iter().zip(1..).map(|(s, n)| (*s, format!("event {n}"))).collect();
    assert_eq!(got, want, "every event once, in order");
    assert!(pull(store, &t, "sub-a", Duration::from_millis(200)).await.is_empty(), "leased: not handed out twice");
    assert!(
        matches!(store.ack_events(&t, "sub-a", seqs[2] + 100).await, Err(MailboxError::NotDelivered(_))),
        "an event never delivered cannot be acknowledged"
    );
    store.ack_events(&t, "sub-a", seqs[1]).await.unwrap();
    // The lease of the last ends unacknowledged: it alone comes back.
    let deadline = Instant::now() + Duration::from_secs(5);
    let back = loop {
        let got = pull(store, &t, "sub-a", Duration::from_millis(200)).await;
        if !got.is_empty() || Instant::now() >= deadline {
            break got;
        }
    };
    assert_eq!(back, vec![(seqs[2], "event 3".to_owned())], "acknowledged through the second");
    store.ack_events(&t, "sub-a", seqs[2]).await.unwrap();
    assert!(pull(store, &t, "sub-a", VISIBILITY + Duration::from_millis(500)).await.is_empty(), "all done");
}

async fn released_events_come_back_in_order(store: &dyn Store) {
    let t = topic("deaths");
    for n in 1..=2 {
        store.publish(&t, event(&format!("e-{n}")), Bytes::from(format!("event {n}"))).await.unwrap();
    }
    let leased = store.pull(&t, "sub-a", 10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(leased.len(), 2);
    let started = Instant::now();
    store.release(&t, "sub-a", &leased).await.unwrap();
    let again = pull(store, &t, "sub-a", Duration::from_secs(2)).await;
    assert!(started.elapsed() < VISIBILITY, "at once, not after the lease: {:?}", started.elapsed());
    let bodies: Vec<&str> = again.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, ["event 1", "event 2"]);
    store.ack_events(&t, "sub-a", again[1].0).await.unwrap();
}

async fn each_subscriber_has_its_own_cursor(store: &dyn Store) {
    let t = topic("marriages");
    store.publish(&t, event("e-1"), Bytes::from_static(b"event 1")).await.unwrap();
    let a = pull(store, &t, "sub-a", Duration::from_secs(2)).await;
    store.ack_events(&t, "sub-a", a[0].0).await.unwrap();
    let b = pull(store, &t, "sub-b", Duration::from_secs(2)).await;
    assert_eq!(a, b, "b gets what a already acknowledged");
    store.publish(&t, event("e-2"), Bytes::from_static(b"event 2")).await.unwrap();
    let a2 = pull(store, &t, "sub-a", Duration::from_secs(2)).await;
    assert_eq!(a2.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(), ["event 2"]);
}

// ---- the embedded store alone -----------------------------------------------------

/// Leases live in memory: after a restart every message not acknowledged is ready
/// again, with the attempts it had; dead letters and finished ids survive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_embedded_store_has_every_unfinished_message_ready_again() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(Backend::Embedded { path: dir.path().join("mailbox.redb") });
    let store = qaqpa_mailbox::open(&opts).await.unwrap();
    let leased = store.send(request("m-1"), Bytes::from_static(b"1")).await.unwrap().mid();
    let done = store.send(request("m-2"), Bytes::from_static(b"2")).await.unwrap().mid();
    let waiting = store.send(request("m-3"), Bytes::from_static(b"3")).await.unwrap().mid();
    let taken = take_within(&*store, &requests(), 2, Duration::from_secs(5)).await;
    assert_eq!(taken.iter().map(|d| d.envelope.mid).collect::<Vec<_>>(), [leased, done]);
    store.ack(done, &provider()).await.unwrap();
    drop(store);

    let store = qaqpa_mailbox::open(&opts).await.unwrap();
    let back = take_within(&*store, &requests(), 10, Duration::from_secs(5)).await;
    let back: Vec<(uuid::Uuid, u32)> = back.iter().map(|d| (d.envelope.mid, d.envelope.attempts)).collect();
    assert_eq!(back, [(leased, 2), (waiting, 1)], "in order, the leased one on its second delivery");
    assert_eq!(store.send(request("m-2"), Bytes::new()).await.unwrap(), Sent::Duplicate(done), "still remembered");
}

/// `Store::state` (ШЭП getMessageStatus) through a request's life: waiting, taken,
/// failed, answered, collected; a resend does not reset it; a dead letter is dead.
async fn state_follows_a_request(store: &dyn Store) {
    use qaqpa_mailbox::MessageState;
    let provider = "KZ/GOV/000000000001/population-register";
    assert_eq!(store.state(mailbox_id(CLIENT, "never")).await.unwrap(), None);
    let send = |id: &str| MessageMeta::request(CLIENT, SERVICE, id, String::new(), Vec::new(), false);
    let first = store.send(send("state-1"), Bytes::from_static(b"one")).await.unwrap().mid();
    assert_eq!(store.state(first).await.unwrap(), Some(MessageState::Waiting));
    let taken = store.take(&[Queue::Requests(SERVICE.into())], 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(taken[0].envelope.mid, first);
    assert_eq!(store.state(first).await.unwrap(), Some(MessageState::Waiting), "taken is still on delivery");
    store.fail(first, "push refused".into()).await.unwrap();
    assert_eq!(store.state(first).await.unwrap(), Some(MessageState::Retrying));

    let second = store.send(send("state-2"), Bytes::from_static(b"two")).await.unwrap().mid();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let taken = store.take(&[Queue::Requests(SERVICE.into())], 1, Duration::from_millis(200)).await.unwrap();
        if taken.iter().any(|d| d.envelope.mid == second) || Instant::now() > deadline {
            break;
        }
    }
    store.reply(second, provider, 200, Vec::new(), Bytes::from_static(b"answer")).await.unwrap();
    assert_eq!(store.state(second).await.unwrap(), Some(MessageState::Answered));
    let answer = store.take(&[Queue::Responses(CLIENT.into())], 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(answer[0].envelope.mid, second);
    let resent = store.send(send("state-2"), Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(resent, Sent::Duplicate(second));
    assert_eq!(store.state(second).await.unwrap(), Some(MessageState::Answered), "a resend changes nothing");
    store.ack(second, CLIENT).await.unwrap();
    assert_eq!(store.state(second).await.unwrap(), Some(MessageState::Done));

    // The first one, out of attempts: dead; replayed, on delivery again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.state(first).await.unwrap() != Some(MessageState::Dead) && Instant::now() < deadline {
        housekeep(store).await;
        for d in store.take(&[Queue::Requests(SERVICE.into())], 1, Duration::from_millis(200)).await.unwrap() {
            store.fail(d.envelope.mid, "push refused again".into()).await.unwrap();
        }
    }
    assert_eq!(store.state(first).await.unwrap(), Some(MessageState::Dead));
    store.replay(first).await.unwrap();
    assert_eq!(store.state(first).await.unwrap(), Some(MessageState::Waiting), "replayed: on delivery again");
}

/// `Store::refuse` (ШЭП sendDeliveryNotification, not accepted): only the provider
/// that holds the request may refuse it; with a resend it comes back like a failed
/// push, without one it is a dead letter at once, body and history kept.
async fn a_provider_refuses_a_request_for_a_resend_or_for_good(store: &dyn Store) {
    use qaqpa_mailbox::MessageState;
    let mid = store.send(request("m-1"), Bytes::from_static(b"body")).await.unwrap().mid();
    take_one(store, &requests()).await;
    let stranger = store.refuse(mid, OTHER, "not mine".into(), false).await;
    assert!(matches!(stranger, Err(MailboxError::Unknown(_))), "{stranger:?}");
    store.refuse(mid, &provider(), "busy".into(), true).await.unwrap();
    assert_eq!(store.state(mid).await.unwrap(), Some(MessageState::Retrying));
    let again = take_one(store, &requests()).await;
    assert_eq!((again.envelope.mid, again.envelope.attempts), (mid, 2), "delivered again");
    store.refuse(mid, &provider(), "bad data".into(), false).await.unwrap();
    assert_eq!(store.state(mid).await.unwrap(), Some(MessageState::Dead));
    assert_eq!(store.dead_count().await.unwrap(), 1);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!((dead[0].envelope.mid, dead[0].body_bytes), (mid, 4));
    let events: Vec<&str> = dead[0].envelope.history.iter().map(|a| a.event.as_str()).collect();
    assert!(events.iter().any(|e| e.contains("refused by") && e.contains("bad data")), "{events:?}");
    assert!(events.last().is_some_and(|e| e.starts_with("dead letter: stopped by")), "{events:?}");
    assert_eq!(reported_dead(store, mid), 1);
    nothing_in(store, &requests()).await;
}
