//! Redis Sentinel (issue 22): two nodes given `redis_url =
//! "redis+sentinel://…/qaqpa"` share the rate limit and the replay guard through the
//! master the sentinel names; the master is killed (SIGKILL), the sentinel promotes
//! the replica, and the nodes follow it (the gap is measured and printed).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{post_soap_to, sibling};
use crate::common::async_bus::free_addr;
use crate::common::{CLIENT, SERVICE};

/// A redis-server (or sentinel) process of this test; killed when dropped.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether redis-server is installed: in CI it must be.
fn have_redis_server() -> bool {
    let found = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: redis-server is required");
        eprintln!("SKIPPED: redis-server is not installed");
    }
    found
}

fn redis_server(dir: &Path, port: u16, args: &[&str]) -> Redis {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    cmd.args(["--dir", dir.to_str().unwrap()]).args(args);
    Redis(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server starts"))
}

fn sentinel(dir: &Path, port: u16, master: u16) -> Redis {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor qaqpa 127.0.0.1 {master} 1\nsentinel down-after-milliseconds qaqpa 1000\nsentinel failover-timeout qaqpa 5000\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis sentinel starts");
    Redis(child)
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut conn).await
}

/// Waits until `check` holds (polling every 100 ms), at most `within`.
async fn until<F: std::future::Future<Output = bool>>(within: Duration, what: &str, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn master_port(sentinel: u16) -> Option<u16> {
    let addr: Vec<String> =
        query(sentinel, redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("qaqpa")).await.ok()?;
    addr.get(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_redis_through_sentinel_and_follow_a_failover() {
    if !have_redis_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, s) = (free_addr().port(), free_addr().port(), free_addr().port());
    let mut master = Some(redis_server(dir.path(), a, &[]));
    let replica_dir = dir.path().join("replica");
    std::fs::create_dir_all(&replica_dir).unwrap();
    let _replica = redis_server(&replica_dir, b, &["--replicaof", "127.0.0.1", &a.to_string()]);
    let _sentinel = sentinel(dir.path(), s, a);
    until(Duration::from_secs(20), "the sentinel knows the master", || async { master_port(s).await == Some(a) }).await;

    let gw = crate::signatures::gateway().await;
    let prefix = format!("qaqpa-test-sentinel-{}", uuid::Uuid::new_v4().simple());
    let storage = format!(
        "limits_backend = \"redis\"\nreplay = \"redis\"\nredis_url = \"redis+sentinel://127.0.0.1:{s}/qaqpa\"\nredis_prefix = \"{prefix}\"\nredis_timeout = \"500ms\"\n\n[[limit]]\nservice = \"{SERVICE}\"\nrate = \"3/min\"\nburst = 3\n"
    );
    let (one, two) = (sibling(&gw, "one", &storage).await, sibling(&gw, "two", &storage).await);

    // The limit is the cluster's: 3 a minute, whichever node is asked.
    let client = gw.client();
    let mut statuses = Vec::new();
    for port in [one.data_addrs[0].port(), two.data_addrs[0].port(), one.data_addrs[0].port(), two.data_addrs[0].port()]
    {
        let url = format!("https://localhost:{port}/r1/{SERVICE}/person/1");
        statuses.push(client.get(url).header("X-Road-Client", CLIENT).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 1, "3 admitted across both nodes: {statuses:?}");
    let keys: Vec<String> = query(a, redis::cmd("KEYS").arg(format!("{prefix}:*"))).await.unwrap();
    assert!(!keys.is_empty(), "the limiter's keys are on the master the sentinel named");

    // The replay guard is the cluster's too.
    let now = time::OffsetDateTime::now_utc();
    let signed = |id: &str| {
        let m = crate::signatures::envelope(CLIENT, crate::signatures::SIGNED_SOAP, id, "1");
        crate::signatures::sign_with(&gw, "egov-portal", &m, now)
    };
    let first = signed("sentinel-1");
    assert_eq!(post_soap_to(&gw, &one, &first).await, (200, String::new()));
    assert_eq!(post_soap_to(&gw, &two, &first).await, (200, "client.replay".to_owned()));

    // Failover: the sentinel must know the replica before the master goes.
    until(Duration::from_secs(30), "the sentinel lists the replica", || async {
        let replicas: redis::RedisResult<Vec<redis::Value>> =
            query(s, redis::cmd("SENTINEL").arg("replicas").arg("qaqpa")).await;
        replicas.is_ok_and(|r| !r.is_empty())
    })
    .await;
    let killed = Instant::now();
    drop(master.take());
    until(Duration::from_secs(30), "the replica is promoted", || async { master_port(s).await == Some(b) }).await;
    let promoted = killed.elapsed();
    // Fresh messages until one is accepted (each refusal is fail-closed, never an acceptance).
    let mut n = 0;
    let accepted = loop {
        n += 1;
        let message = signed(&format!("sentinel-after-{n}"));
        let answer = post_soap_to(&gw, &one, &message).await;
        if answer == (200, String::new()) {
            break message;
        }
        assert_eq!(answer, (200, "server.log_unavailable".to_owned()), "refused while Redis fails over");
        assert!(killed.elapsed() < Duration::from_secs(40), "no acceptance within 40 s of the kill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "sentinel failover: replica promoted {promoted:?} after the master was killed; signed exchanges accepted again {:?} after ({n} tries)",
        killed.elapsed()
    );
    // Recorded on the new master, so the other node refuses it.
    let mut replayed = (0, String::new());
    for _ in 0..50 {
        replayed = post_soap_to(&gw, &two, &accepted).await;
        if replayed.1 != "server.log_unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(replayed, (200, "client.replay".to_owned()));
    one.shutdown().await;
    two.shutdown().await;
}
