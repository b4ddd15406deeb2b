//! A cluster an operator can run (issue 22): gateways against NATS servers this test
//! starts itself on loopback (a node that starts before NATS, a three-server JetStream
//! cluster whose stream leader is killed mid-burst).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::async_bus::free_addr;
use crate::common::{self, TestGateway, CLIENT, PROVIDER, SERVICE};

const NOTICES: &str = "KZ/GOV/000000000001/population-register/cluster-notices/v1";

/// A nats-server process of this test; killed (SIGKILL) when dropped.
pub(crate) struct NatsServer {
    child: Child,
    pub(crate) name: String,
    pub(crate) port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nats-server is installed: in CI it must be (.ci/run installs it).
pub(crate) fn have_nats_server() -> bool {
    let found = Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: nats-server is required");
        eprintln!("SKIPPED: nats-server is not installed");
    }
    found
}

/// Starts a JetStream server on `port` (store under `dir`), in a cluster with `routes` if any.
pub(crate) fn nats_server(dir: &Path, name: &str, port: u16, cluster: Option<(u16, &[u16])>) -> NatsServer {
    let store = dir.join(name);
    let mut cmd = Command::new("nats-server");
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-n", name, "-sd", store.to_str().unwrap()]);
    if let Some((cport, routes)) = cluster {
        let routes: Vec<String> = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
        cmd.args(["--cluster_name", "qaqpa-test", "--cluster", &format!("nats://127.0.0.1:{cport}")]);
        cmd.args(["--routes", &routes.join(",")]);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("nats-server starts");
    NatsServer { child, name: name.to_owned(), port }
}

/// A gateway with one pull service on the NATS servers `urls`.
async fn node(urls: &str, prefix: &str, replicas: u32, store_retry: &str) -> TestGateway {
    TestGateway::start_with("", |_, text| {
        format!(
            r#"{text}
[[service]]
id = "{NOTICES}"
kind = "rest"
upstream = ["http://127.0.0.1:9/unused"]
mailbox = "pull"

[[access]]
service = "{NOTICES}"
clients = ["{CLIENT}"]

[mailbox]
backend = "nats"
nats_url = "{urls}"
nats_prefix = "{prefix}"
nats_replicas = {replicas}
store_retry = "{store_retry}"
visibility_timeout = "30s"
"#
        )
    })
    .await
}

pub(crate) async fn ready(gw: &TestGateway) -> u16 {
    reqwest::get(gw.admin_url("/readyz")).await.map_or(0, |r| r.status().as_u16())
}

async fn wait_ready(gw: &TestGateway, within: Duration) -> Duration {
    let start = Instant::now();
    while ready(gw).await != 200 {
        assert!(start.elapsed() < within, "the node was not ready within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// One send of the burst: (X-Road-Id, status, code, Retry-After, how long it took).
type Outcome = (String, u16, String, Option<String>, Duration);

/// (status, code, Retry-After, the stored id) of one send.
async fn send(client: &reqwest::Client, gw: &TestGateway, id: &str) -> (u16, String, Option<String>, Option<String>) {
    send_to(client, gw.running.data_addrs[0].port(), id).await
}

/// [`send`] to the node whose data listener is on `port`.
async fn send_to(client: &reqwest::Client, port: u16, id: &str) -> (u16, String, Option<String>, Option<String>) {
    let r = client
        .post(format!("https://localhost:{port}/a1/{NOTICES}"))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", id)
        .body(format!("body of {id}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
    let json: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        json["code"].as_str().unwrap_or("").to_owned(),
        retry_after,
        json["message_id"].as_str().map(str::to_owned),
    )
}

/// Everything in the provider's inbox (taken and acked), by X-Road-Id.
async fn drain(gw: &TestGateway) -> Vec<String> {
    let provider = gw.pki.client(Some("population-register")).build().unwrap();
    let mut seen = Vec::new();
    loop {
        let r = provider.get(gw.tls_url(&format!("/a1/inbox/{PROVIDER}?max=100&wait=2s"))).send().await.unwrap();
        match r.status().as_u16() {
            204 => return seen,
            200 => {}
            other => panic!("take answered {other}: {}", r.text().await.unwrap()),
        }
        for m in r.json::<Vec<Value>>().await.unwrap() {
            seen.push(m["message_id"].as_str().unwrap().to_owned());
            let ack = gw.tls_url(&format!("/a1/ack/{}", m["id"].as_str().unwrap()));
            let r = provider.post(ack).header("X-Road-Client", PROVIDER).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
}

/// `nats_url` takes a list or a comma-separated string; check-config refuses what
/// the NATS client could not connect to.
#[test]
fn nats_url_takes_several_servers_and_check_config_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let check = |mailbox: &str| {
        let path = dir.path().join("q.toml");
        std::fs::write(&path, format!("[gateway]\nnode = \"n\"\n[[listener]]\nname = \"p\"\naddress = \"127.0.0.1:0\"\ninsecure = true\n[admin]\naddress = \"127.0.0.1:0\"\ninsecure = true\n[mailbox]\nbackend = \"nats\"\n{mailbox}\n")).unwrap();
        qaqpa_gateway::config::load(&path).map(|c| c.mailbox.backend).map_err(|e| e.to_string())
    };
    for good in [
        r#"nats_url = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "tls://nats-3:4222"]"#,
        r#"nats_url = "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222""#,
    ] {
        match check(good) {
            Ok(qaqpa_gateway::config::MailboxBackend::Nats { url, .. }) => {
                assert_eq!(url.split(',').count(), 3, "{good} → {url}")
            }
            other => panic!("{good}: {other:?}"),
        }
    }
    for bad in [
        r#"nats_url = "nats://10.0.0.1:4222,,nats://10.0.0.2:4222""#,
        r#"nats_url = ["nats://10.0.0.1:4222", "http://10.0.0.2:4222"]"#,
        r#"nats_url = "nats://10.0.0.1:4222 nats://10.0.0.2:4222""#,
        r#"nats_url = []"#,
    ] {
        let e = check(bad).expect_err(bad);
        assert!(e.contains("mailbox.nats_url"), "{bad}: {e}");
    }
}

/// A node whose NATS is not up yet starts, says it is not ready, refuses sends with
/// `503 server.store_unavailable` and `Retry-After`, keeps connecting, and serves
/// once NATS comes (the first URL of its list never answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_before_nats_and_serves_once_it_comes() {
    if !have_nats_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (dead, port) = (free_addr().port(), free_addr().port());
    let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
    let urls = format!("nats://127.0.0.1:{dead},nats://127.0.0.1:{port}");
    let gw = node(&urls, &prefix, 1, "1s").await;
    let client = gw.client();
    assert_eq!(ready(&gw).await, 503, "not ready without its store");
    let (status, code, retry_after, _) = send(&client, &gw, "early-1").await;
    assert_eq!((status, code.as_str()), (503, "server.store_unavailable"));
    assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok()), "Retry-After on a 503");

    let _nats = nats_server(dir.path(), "solo", port, None);
    let waited = wait_ready(&gw, Duration::from_secs(20)).await;
    eprintln!("ready {waited:?} after NATS came up");
    let (status, code, _, _) = send(&client, &gw, "late-1").await;
    assert_eq!(status, 202, "{code}");
    // Another node that never touched the queue reports it, from the shared store.
    let two = sibling(&gw, "two", "").await;
    let url = format!("http://{}/admin/v1/mailboxes", two.admin_addr.unwrap());
    let listed: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let queue = listed["queues"].as_array().unwrap().iter().find(|q| q["queue"] == NOTICES).cloned();
    assert_eq!(queue.map(|q| q["ready"].clone()), Some(Value::from(1)), "{listed}");
    two.shutdown().await;
    assert_eq!(drain(&gw).await, vec!["late-1".to_owned()]);
}

/// A signed send the store refused (NATS not up) is not remembered by the replay
/// guard: the client's resend of the same message is accepted once the store is
/// back, and a second resend is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_send_the_store_refused_can_be_resent() {
    if !have_nats_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_addr().port();
    let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
    let gw = TestGateway::start_with("", |_, text| {
        let text = common::with_system_keys(
            &text,
            CLIENT,
            "signing_cert = \"pki/egov-portal.crt\"\nsigning_key = \"pki/egov-portal.key\"\n",
        );
        format!(
            r#"{text}
[signatures]
trust_anchors = "pki/ca.crt"
replay_window = "1h"

[[service]]
id = "{NOTICES}"
kind = "rest"
upstream = ["http://127.0.0.1:9/unused"]
mailbox = "pull"
signature = "sign-on-behalf"

[[access]]
service = "{NOTICES}"
clients = ["{CLIENT}"]

[mailbox]
backend = "nats"
nats_url = "nats://127.0.0.1:{port}"
nats_prefix = "{prefix}"
nats_replicas = 1
store_retry = "1s"
"#
        )
    })
    .await;
    let client = gw.client();
    let (status, code, _, _) = send(&client, &gw, "signed-1").await;
    assert_eq!((status, code.as_str()), (503, "server.store_unavailable"));

    let _nats = nats_server(dir.path(), "solo", port, None);
    wait_ready(&gw, Duration::from_secs(20)).await;
    let (status, code, _, _) = send(&client, &gw, "signed-1").await;
    assert_eq!(status, 202, "the resend of a refused signed send: {code}");
    let (status, code, _, _) = send(&client, &gw, "signed-1").await;
    assert_eq!((status, code.as_str()), (409, "client.replay"), "the replay guard still holds");
    assert_eq!(drain(&gw).await, vec!["signed-1".to_owned()]);
}

/// Three gateway nodes on a three-server JetStream cluster; the stream leader is
/// killed during a burst of sends spread over the nodes: no send gets a 500, a
/// refusal is 503 with Retry-After (the default `store_retry`), every accepted
/// message is delivered, and `/readyz` is back to 200 after the election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_answers_no_500_and_loses_nothing() {
    if !have_nats_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let cports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let mut servers: Vec<Option<NatsServer>> =
        (0..3).map(|i| Some(nats_server(dir.path(), &format!("n{i}"), ports[i], Some((cports[i], &cports))))).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
    let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
    let gw = Arc::new(node(&urls.join(","), &prefix, 3, "5s").await);
    let waited = wait_ready(&gw, Duration::from_secs(40)).await;
    eprintln!("node ready {waited:?} after the cluster started");
    let (two, three) = (sibling(&gw, "two", "").await, sibling(&gw, "three", "").await);
    let ports = Arc::new(vec![gw.running.data_addrs[0].port(), two.data_addrs[0].port(), three.data_addrs[0].port()]);

    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for w in 0..4 {
        let (gw, results, stop, ports) = (gw.clone(), results.clone(), stop.clone(), ports.clone());
        senders.push(tokio::spawn(async move {
            let client = gw.client();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("burst-{w}-{n}");
                let started = Instant::now();
                let (status, code, retry_after, _) = send_to(&client, ports[(w + n) % 3], &id).await;
                results.lock().unwrap().push((id, status, code, retry_after, started.elapsed()));
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = stream_leader(&urls, &format!("{prefix}_MAILBOX")).await;
    let index = servers.iter().position(|s| s.as_ref().is_some_and(|s| s.name == leader)).expect("leader is ours");
    let killed_at = Instant::now();
    let killed = servers[index].take().unwrap();
    eprintln!("killing the stream leader {} (port {})", killed.name, killed.port);
    drop(killed);
    let mut unready = None;
    while killed_at.elapsed() < Duration::from_secs(9) {
        if unready.is_none() && ready(&gw).await == 503 {
            unready = Some(killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("/readyz said 503 from {unready:?} after the kill");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let results = results.lock().unwrap().clone();
    let bad: Vec<_> = results.iter().filter(|r| !(r.1 == 202 || (r.1 == 503 && r.3.is_some()))).collect();
    assert!(bad.is_empty(), "only 202, or 503 with Retry-After: {bad:?}");
    let refused = results.iter().filter(|r| r.1 == 503).count();
    let slowest = results.iter().map(|r| r.4).max().unwrap_or_default();
    let accepted: Vec<String> = results.iter().filter(|r| r.1 == 202).map(|r| r.0.clone()).collect();
    eprintln!(
        "sends: {} accepted, {refused} refused 503; slowest send {slowest:?} (election gap); {:?} since the kill",
        accepted.len(),
        killed_at.elapsed()
    );
    assert!(accepted.len() > 20, "sends went through before and after the election");

    let back = wait_ready(&gw, Duration::from_secs(10)).await;
    eprintln!("/readyz 200 again (waited {back:?} more), {:?} after the kill", killed_at.elapsed());
    let mut delivered = drain(&gw).await;
    delivered.sort();
    delivered.dedup();
    let missing: Vec<_> = accepted.iter().filter(|id| delivered.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "{} accepted messages not delivered: {missing:?}", missing.len());
    two.shutdown().await;
    three.shutdown().await;
    drop(servers);
}

/// The name of the server leading `stream`, asked of any live server.
async fn stream_leader(urls: &[String], stream: &str) -> String {
    let addrs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let client = async_nats::connect(addrs.as_slice()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.unwrap();
    let info = s.info().await.unwrap();
    info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("a clustered stream has a leader")
}

/// Redis for the shared tests: `None` (skipped) when unreachable outside CI.
fn redis_url() -> Option<String> {
    let url = std::env::var("QAQPA_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if std::net::TcpStream::connect(url.trim_start_matches("redis://")).is_err() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: Redis at {url} is required");
        eprintln!("SKIPPED: Redis at {url} unreachable");
        return None;
    }
    Some(url)
}

/// Starts another node from `gw`'s configuration with its own data directory and
/// `[storage]` keys (same PKI, same upstreams).
pub(crate) async fn sibling(gw: &TestGateway, name: &str, storage: &str) -> qaqpa_gateway::server::Running {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let path = gw.pki.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, format!("{text}\n[storage]\ndata_dir = \"data-{name}\"\n{storage}\n")).unwrap();
    let config = qaqpa_gateway::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    qaqpa_gateway::server::start(config, Some(path)).await.unwrap()
}

/// (status, X-Road-Error) of a SOAP message posted to `node` as CLIENT.
pub(crate) async fn post_soap_to(gw: &TestGateway, node: &qaqpa_gateway::server::Running, body: &str) -> (u16, String) {
    let client = gw.pki.client(Some("egov-portal")).build().unwrap();
    let url = format!("https://localhost:{}/soap", node.data_addrs[0].port());
    let r = client.post(url).header("content-type", "text/xml; charset=utf-8").body(body.to_owned()).send().await;
    let r = r.unwrap();
    // The stable code; an X-Road SOAP fault itself is HTTP 200 with X-Road's faultcode.
    let code = r.headers().get("qaqpa-error").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status().as_u16(), code)
}

/// `[storage] replay = "redis"`: one signed SOAP message posted to two nodes that
/// share Redis is accepted once; a node whose Redis is unreachable starts, is not
/// ready, and refuses signed exchanges (fail-closed), never accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signed_message_is_accepted_once_by_nodes_sharing_redis() {
    let Some(url) = redis_url() else { return };
    let gw = crate::signatures::gateway().await;
    let prefix = format!("qaqpa-test-replay-{}", uuid::Uuid::new_v4().simple());
    let shared =
        format!("replay = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\nredis_timeout = \"300ms\"");
    let (one, two) = (sibling(&gw, "one", &shared).await, sibling(&gw, "two", &shared).await);
    let now = time::OffsetDateTime::now_utc();
    let message = crate::signatures::envelope(CLIENT, crate::signatures::SIGNED_SOAP, "cluster-replay-1", "1");
    let signed = crate::signatures::sign_with(&gw, "egov-portal", &message, now);
    assert_eq!(post_soap_to(&gw, &one, &signed).await, (200, String::new()), "first delivery, node one");
    assert_eq!(post_soap_to(&gw, &two, &signed).await, (200, "client.replay".to_owned()), "the same, node two");
    assert_eq!(post_soap_to(&gw, &one, &signed).await, (200, "client.replay".to_owned()), "again, node one");
    // The guard is per node without `replay = "redis"`: the original node takes it.
    assert_eq!(crate::signatures::post_soap(&gw, "egov-portal", signed.clone()).await.0, 200);

    let dead = free_addr();
    let down = format!("replay = \"redis\"\nredis_url = \"redis://{dead}\"\nredis_timeout = \"300ms\"");
    let three = sibling(&gw, "three", &down).await;
    let fresh = crate::signatures::envelope(CLIENT, crate::signatures::SIGNED_SOAP, "cluster-replay-2", "1");
    let fresh = crate::signatures::sign_with(&gw, "egov-portal", &fresh, now);
    assert_eq!(post_soap_to(&gw, &three, &fresh).await, (200, "server.log_unavailable".to_owned()));
    let admin = format!("http://{}/readyz", three.admin_addr.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reqwest::get(admin).await.unwrap().status(), 503, "not ready while its Redis is down");
    // Refused, not remembered: the same message is still new to the cluster.
    assert_eq!(post_soap_to(&gw, &two, &fresh).await, (200, String::new()));
    for node in [one, two, three] {
        node.shutdown().await;
    }
}

/// Redis down (unreachable from the start): the node starts; a service with
/// `limits_fail = "open"` gets this node's share of its limit (not no limit), one
/// with `closed` answers `503 server.limiter_unavailable`; no request waits out
/// `redis_timeout`; `/readyz` says not ready (a closed service cannot be served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_applies_per_node_limits_or_refuses_as_configured() {
    const CLOSED: &str = "KZ/GOV/000000000001/population-register/closed-limits/v1";
    let dead = free_addr();
    let gw = TestGateway::start_with("", |_, text| {
        let provider = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            r#"{text}
[[service]]
id = "{CLOSED}"
kind = "rest"
upstream = ["http://{provider}/base"]
limits_fail = "closed"

[[access]]
service = "{CLOSED}"
clients = ["{CLIENT}"]

[[limit]]
service = "{CLOSED}"
rate = "100/s"

[[limit]]
service = "{SERVICE}"
rate = "2/min"
burst = 2

[storage]
limits_backend = "redis"
redis_url = "redis://{dead}"
redis_timeout = "3s"
cluster_nodes = 2
"#
        )
    })
    .await;
    let client = gw.client();
    let get =
        |service: &str| client.get(gw.tls_url(&format!("/r1/{service}/x"))).header("X-Road-Client", CLIENT).send();
    let started = Instant::now();
    // Burst 2 over 2 nodes: this node admits one, then limits (no limit would admit all).
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(get(SERVICE).await.unwrap().status().as_u16());
        }
        out
    };
    // The first is admitted and forwarded (the provider answers the path as it will).
    assert!(statuses[0] != 429 && statuses[0] < 500, "open: admitted: {statuses:?}");
    assert_eq!(statuses[1..], [429, 429, 429], "open: this node's share of the limit, then 429");
    let r = get(CLOSED).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["qaqpa-error"], "server.limiter_unavailable");
    assert_eq!(r.headers()["x-road-error"], "server.clientproxy.limiter_unavailable");
    assert!(r.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(3), "no request waited out redis_timeout: {:?}", started.elapsed());
    assert_eq!(ready(&gw).await, 503, "not ready: a closed service cannot be served without Redis");
}

/// Every node says which configuration it runs: `GET /admin/v1/config` and the
/// `qaqpa_config_info{hash}` metric follow a reload; two nodes on different files
/// show two hashes (what the QaqpaConfigDrift alert counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_exposes_the_hash_of_the_configuration_it_runs() {
    use sha2::Digest;
    let gw = TestGateway::start().await;
    let version = |gw: &TestGateway| {
        let url = gw.admin_url("/admin/v1/config");
        async move { reqwest::get(url).await.unwrap().json::<Value>().await.unwrap() }
    };
    let hash_of = |path: &Path| -> String {
        sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let v = version(&gw).await;
    assert_eq!(v["hash"], hash_of(&gw.config_path), "{v}");
    assert!(v["source"].as_str().unwrap().ends_with("qaqpa.toml") && v["loaded_at"].as_str().unwrap().ends_with('Z'));
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let info = format!("qaqpa_config_info{{hash=\"{}\",source=\"file\",version=\"\"}} 1", hash_of(&gw.config_path));
    assert!(metrics.contains(&info), "{info}");

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, format!("{text}\n# revised\n")).unwrap();
    let r = reqwest::Client::new().post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let after = version(&gw).await;
    assert_eq!(after["hash"], hash_of(&gw.config_path));
    assert_ne!(after["hash"], v["hash"]);
    let metrics = reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = metrics.lines().filter(|l| l.starts_with("qaqpa_config_info{")).collect();
    assert_eq!(lines.len(), 1, "only the running version: {lines:?}");
}
