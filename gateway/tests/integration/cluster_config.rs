//! One configuration for a cluster (issue 22): three gateway nodes on a three-server
//! NATS JetStream cluster take their registry from what `qaqpa config publish`
//! writes. A revoked grant is refused by every node within a bound (measured); an
//! invalid file publishes nothing; a document badly signed or altered in the bucket
//! is refused by every node, which stays on the version it runs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{have_nats_server, nats_server, sibling, NatsServer};
use crate::common::async_bus::free_addr;
use crate::common::{qaqpa, TestGateway, CLIENT, OTHER_CLIENT, PROVIDER, SERVICE};

const NOTICES: &str = "KZ/GOV/000000000001/population-register/config-notices/v1";

/// Longest a published change may take to reach every node.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

fn hash_of(path: &Path) -> String {
    qaqpa_gateway::cluster::sha256_hex(&std::fs::read(path).unwrap())
}

async fn admin_json(admin: std::net::SocketAddr, path: &str) -> Value {
    reqwest::get(format!("http://{admin}{path}")).await.unwrap().json().await.unwrap()
}

async fn metrics(admin: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap()
}

/// The status CLIENT gets for SERVICE from the node whose data listener is `port`.
async fn status(client: &reqwest::Client, port: u16) -> u16 {
    let url = format!("https://localhost:{port}/r1/{SERVICE}/person/1");
    client.get(url).header("X-Road-Client", CLIENT).send().await.unwrap().status().as_u16()
}

/// Waits until every node answers `want` (true: refused 403); how long each took.
async fn until_every_node(client: &reqwest::Client, ports: &[u16], refused: bool, since: Instant) -> Vec<Duration> {
    let mut took = Vec::new();
    for &port in ports {
        loop {
            let s = status(client, port).await;
            if (s == 403) == refused {
                took.push(since.elapsed());
                break;
            }
            assert!(
                since.elapsed() < PROPAGATION_BOUND,
                "node on port {port} still answers {s} after {PROPAGATION_BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    took
}

async fn wait_ready(admin: std::net::SocketAddr, within: Duration) {
    let start = Instant::now();
    while reqwest::get(format!("http://{admin}/readyz")).await.map_or(0, |r| r.status().as_u16()) != 200 {
        assert!(start.elapsed() < within, "node {admin} not ready within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_configuration_reaches_every_node_and_a_bad_one_none() {
    if !have_nats_server() {
        return;
    }
    // The nodes' log (applied and refused versions) in the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("qaqpa_gateway::gateway=info,qaqpa_gateway::cluster=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let cports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let _servers: Vec<NatsServer> =
        (0..3).map(|i| nats_server(dir.path(), &format!("c{i}"), ports[i], Some((cports[i], &cports)))).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
    let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
    let cluster = format!(
        "\n[mailbox]\nbackend = \"nats\"\nnats_url = \"{}\"\nnats_prefix = \"{prefix}\"\nnats_replicas = 3\nmax_attempts = 1\nvisibility_timeout = \"1s\"\n\n[cluster]\nconfig_source = \"nats\"\nconfig_signers = \"pki/operator-ca.crt\"\n\n[[service]]\nid = \"{NOTICES}\"\nkind = \"rest\"\nupstream = [\"http://127.0.0.1:9/unused\"]\nmailbox = \"pull\"\n\n[[access]]\nservice = \"{NOTICES}\"\nclients = [\"{CLIENT}\"]\n",
        urls.join(",")
    );
    let gw = TestGateway::start_with("", |_, text| format!("{text}{cluster}")).await;
    let admin1 = gw.running.admin_addr.unwrap();
    wait_ready(admin1, Duration::from_secs(60)).await;
    let (two, three) = (sibling(&gw, "two", "").await, sibling(&gw, "three", "").await);
    let admins = [admin1, two.admin_addr.unwrap(), three.admin_addr.unwrap()];
    for admin in &admins[1..] {
        wait_ready(*admin, Duration::from_secs(30)).await;
    }
    let data = [gw.running.data_addrs[0].port(), two.data_addrs[0].port(), three.data_addrs[0].port()];
    let client = gw.client();
    let before = until_every_node(&client, &data, false, Instant::now()).await;
    eprintln!("every node serves the grant from its file ({before:?})");
    let v = admin_json(admin1, "/admin/v1/config").await;
    assert!(v["source"].as_str().unwrap().starts_with("file:") && v["version"].is_null(), "{v}");

    // The grant is revoked in the cluster's file, published once.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let grant = format!("service = \"{SERVICE}\"\nclients = [\"{CLIENT}\"]");
    assert!(text.contains(&grant));
    let revoked_text = text.replace(&grant, &format!("service = \"{SERVICE}\"\nclients = [\"{OTHER_CLIENT}\"]"));
    let revoked = gw.pki.dir.path().join("cluster.toml");
    std::fs::write(&revoked, &revoked_text).unwrap();
    let (key, cert) = (gw.pki.path("operator.key"), gw.pki.path("operator.crt"));
    let publish = |file: &Path| {
        qaqpa(&[
            "config",
            "publish",
            file.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ])
    };
    let started = Instant::now();
    let (ok, out) = publish(&revoked);
    assert!(ok, "{out}");
    assert!(out.contains("as version 1"), "{out}");
    let published_at = Instant::now();
    let took = until_every_node(&client, &data, true, published_at).await;
    eprintln!(
        "config propagation: revocation refused by all 3 nodes {:?} after publish returned ({:?} after the command started); per node {took:?}",
        took.iter().max().unwrap(),
        started.elapsed()
    );
    for admin in admins {
        let v = admin_json(admin, "/admin/v1/config").await;
        assert_eq!(v["hash"], hash_of(&revoked), "{v}");
        assert_eq!(v["version"], 1, "{v}");
        assert_eq!(v["source"], format!("nats:{prefix}_CONFIG"), "{v}");
        let m = metrics(admin).await;
        let info = format!("qaqpa_config_info{{hash=\"{}\",source=\"nats\",version=\"1\"}} 1", hash_of(&revoked));
        assert!(
            m.contains(&info),
            "{info} in {}",
            m.lines().filter(|l| l.contains("config_")).collect::<Vec<_>>().join("\n")
        );
    }
    // Node-local sections stayed each node's own: node two still writes its own data directory.
    assert!(gw.pki.dir.path().join("data-two").exists());

    // An invalid file: check-config's errors, key and line, and nothing published.
    let bad = gw.pki.dir.path().join("cluster-bad.toml");
    std::fs::write(
        &bad,
        text.replace(&grant, &format!("service = \"{SERVICE}\"\nclients = [\"KZ/GOV/000000000009/nobody\"]")),
    )
    .unwrap();
    let (ok, out) = publish(&bad);
    assert!(!ok, "{out}");
    assert!(
        out.contains("cluster-bad.toml:") && out.contains(".clients") && out.contains("nothing published"),
        "{out}"
    );

    // Documents put in the bucket by someone else: signed by a stranger's key, and
    // the operator's signature over a text altered afterwards.
    let (url, bucket) = (urls.join(","), format!("{prefix}_CONFIG"));
    let store = qaqpa_gateway::cluster::nats::open(&url, &bucket, 3).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let stranger_ca = qaqpa_certs::pki::DevCa::generate("Stranger", now).unwrap();
    let stranger = stranger_ca.issue_operator("duty-operator", now).unwrap();
    let forged =
        qaqpa_gateway::cluster::sign(&text, 2, stranger.key_pem.as_bytes(), stranger.cert_pem.as_bytes()).unwrap();
    store.put(qaqpa_gateway::cluster::KEY, forged.to_bytes().into()).await.unwrap();
    let mut altered =
        qaqpa_gateway::cluster::sign(&revoked_text, 3, &gw.pki.read("operator.key"), &gw.pki.read("operator.crt"))
            .unwrap();
    altered.toml = text.clone();
    altered.hash = qaqpa_gateway::cluster::sha256_hex(text.as_bytes());
    store.put(qaqpa_gateway::cluster::KEY, altered.to_bytes().into()).await.unwrap();
    let deadline = Instant::now() + PROPAGATION_BOUND;
    for admin in admins {
        loop {
            let m = metrics(admin).await;
            if m.contains("qaqpa_config_published_total{result=\"refused\"} 2") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {admin} did not refuse both: {}",
                m.lines().filter(|l| l.contains("published")).collect::<Vec<_>>().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let v = admin_json(admin, "/admin/v1/config").await;
        assert_eq!(
            (v["hash"].as_str(), v["version"].as_u64()),
            (Some(hash_of(&revoked).as_str()), Some(1)),
            "stays: {v}"
        );
    }
    for port in data {
        assert_eq!(status(&client, port).await, 403, "the revocation holds on port {port}");
    }

    // The grant given back by a proper publish: the next version after the bucket's.
    let restored = gw.pki.dir.path().join("cluster-restored.toml");
    std::fs::write(&restored, &text).unwrap();
    let (ok, out) = publish(&restored);
    assert!(ok && out.contains("as version 4"), "{out}");
    let took = until_every_node(&client, &data, false, Instant::now()).await;
    eprintln!("config propagation: grant restored on all 3 nodes within {:?}", took.iter().max().unwrap());
    for admin in admins {
        assert_eq!(admin_json(admin, "/admin/v1/config").await["version"], 4);
    }

    // Dead letters live in the shared store: sent on the first node, taken (never
    // acked) on the second, listed and dropped on the third.
    let r = client
        .post(format!("https://localhost:{}/a1/{NOTICES}", data[0]))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", "doomed-1")
        .body("doomed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let provider = gw.pki.client(Some("population-register")).build().unwrap();
    let take = |port: u16| provider.get(format!("https://localhost:{port}/a1/inbox/{PROVIDER}?wait=1s")).send();
    assert_eq!(take(data[1]).await.unwrap().status(), 200, "taken on node two");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(take(data[1]).await.unwrap().status(), 204, "delivered beyond max_attempts");
        let dead: Value =
            reqwest::get(format!("http://{}/admin/v1/dead-letters", admins[2])).await.unwrap().json().await.unwrap();
        if dead.as_array().unwrap().iter().any(|d| d["envelope"]["mid"] == mid.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter on node three: {dead}");
    }
    let r = reqwest::Client::new()
        .delete(format!("http://{}/admin/v1/dead-letters/{mid}", admins[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "dropped on node three");
    let dead: Value =
        reqwest::get(format!("http://{}/admin/v1/dead-letters", admins[0])).await.unwrap().json().await.unwrap();
    assert!(dead.as_array().unwrap().iter().all(|d| d["envelope"]["mid"] != mid.as_str()), "gone on node one: {dead}");
    two.shutdown().await;
    three.shutdown().await;
}
