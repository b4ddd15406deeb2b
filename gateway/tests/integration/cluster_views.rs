//! Cluster-wide views (issue 22): a node with `[cluster] peers` answers
//! `/admin/v1/cluster`, `/admin/v1/sla?scope=cluster` and
//! `/admin/v1/monitoring?scope=cluster` for every node, by asking the peers' admin
//! listeners; a peer that does not answer is reported, not waited for.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::async_bus::free_addr;
use crate::common::{TestGateway, CLIENT, SERVICE};

/// Starts a node from `gw`'s file named `name`, its admin listener on `admin`, with `peers`.
async fn node(gw: &TestGateway, name: &str, admin: SocketAddr, peers: &[String]) -> qaqpa_gateway::server::Running {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let text = text.replace("node = \"test\"", &format!("node = \"{name}\"")).replacen(
        "[admin]\naddress = \"127.0.0.1:0\"",
        &format!("[admin]\naddress = \"{admin}\""),
        1,
    );
    let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
    let path = gw.pki.dir.path().join(format!("{name}.toml"));
    let extra = format!("\n[storage]\ndata_dir = \"data-{name}\"\n\n[cluster]\npeers = [{}]\n", peers.join(", "));
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    let config = qaqpa_gateway::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    qaqpa_gateway::server::start(config, Some(path)).await.unwrap()
}

async fn get(admin: SocketAddr, path: &str) -> Value {
    let r = reqwest::get(format!("http://{admin}{path}")).await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_for_the_cluster_by_asking_its_peers() {
    let gw = TestGateway::start().await;
    let one = gw.running.admin_addr.unwrap();
    let (two_admin, three_admin, dead) = (free_addr(), free_addr(), free_addr());
    let two = node(
        &gw,
        "two",
        two_admin,
        &[format!("http://{one}"), format!("http://{three_admin}"), format!("http://{dead}")],
    )
    .await;
    let three = node(&gw, "three", three_admin, &[]).await;

    // Exchanges on every node: 3 on the first, 2 on two, 1 on three.
    let client = gw.client();
    let ports = [gw.running.data_addrs[0].port(), two.data_addrs[0].port(), three.data_addrs[0].port()];
    for (port, n) in ports.iter().zip([3, 2, 1]) {
        for _ in 0..n {
            let url = format!("https://localhost:{port}/r1/{SERVICE}/person/1");
            let r = client.get(url).header("X-Road-Client", CLIENT).send().await.unwrap();
            assert!(r.status().as_u16() < 500, "{}", r.status());
        }
    }

    let cluster = get(two_admin, "/admin/v1/cluster").await;
    let nodes = cluster["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, ["two", "test", "three"], "{cluster}");
    assert!(nodes.iter().take(3).all(|n| n["config"]["hash"].as_str().is_some_and(|h| h.len() == 64)));
    assert_eq!(nodes[3]["url"], format!("http://{dead}"));
    assert!(nodes[3]["error"].is_string(), "the dead peer is reported: {cluster}");
    // Three files, three hashes: drift, as the alert would say.
    assert_eq!((cluster["hashes"].as_u64(), cluster["drift"].as_bool()), (Some(3), Some(true)), "{cluster}");

    // SLA counts are taken as each exchange ends: wait for all six.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (sla, service) = loop {
        let sla = get(two_admin, "/admin/v1/sla?scope=cluster").await;
        let service = sla["services"].as_array().unwrap().iter().find(|s| s["service"] == SERVICE).unwrap().clone();
        if service["total"] == 6 {
            break (sla, service);
        }
        assert!(Instant::now() < deadline, "every node's exchanges, counted once: {service}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut per_node: Vec<(String, u64)> = service["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_owned(), n["total"].as_u64().unwrap()))
        .collect();
    per_node.sort();
    assert_eq!(per_node, [("test".to_owned(), 3), ("three".to_owned(), 1), ("two".to_owned(), 2)]);
    assert_eq!(sla["unreachable"].as_array().unwrap().len(), 1, "{sla}");
    // Without scope, the node's own.
    let own = get(two_admin, "/admin/v1/sla").await;
    let own_total = own.as_array().unwrap().iter().find(|s| s["service"] == SERVICE).unwrap()["total"].clone();
    assert_eq!(own_total, 2);

    // Monitoring records are written behind the answer: wait for all six.
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let m = get(two_admin, &format!("/admin/v1/monitoring?scope=cluster&service={SERVICE}")).await;
        let records = m["records"].as_array().unwrap().clone();
        if records.len() >= 6 {
            break records;
        }
        assert!(Instant::now() < deadline, "records of every node: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut by_node: Vec<&str> = records.iter().map(|r| r["node"].as_str().unwrap()).collect();
    by_node.sort();
    assert_eq!(by_node, ["test", "test", "test", "three", "two", "two"]);
    let times: Vec<i64> = records.iter().map(|r| r["request_in"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let r = reqwest::get(format!("http://{two_admin}/admin/v1/monitoring?scope=cluster&limit=0")).await.unwrap();
    assert_eq!(r.status(), 400, "refused as a one-node query would be");
    two.shutdown().await;
    three.shutdown().await;
}
