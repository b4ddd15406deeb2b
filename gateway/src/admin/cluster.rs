//! Cluster-wide admin views (docs/operations.md#cluster): this node and its
//! `[cluster] peers`, asked over their admin listeners. `GET /admin/v1/node` is one
//! node's identity and configuration; `GET /admin/v1/cluster` is every node's (and
//! whether they drift); `?scope=cluster` on `/admin/v1/sla` merges every node's
//! counts into one report per service (with each node's share under `nodes`), and
//! on `/admin/v1/monitoring` returns every node's records, each with its `node`.
//! Mailbox depths and dead letters need no merging: with the NATS backend every
//! node already reads them from the shared store.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{Method, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::body::GatewayBody;
use crate::gateway::Gateway;

/// How long one peer may take to answer; a slow peer is reported, not waited for.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read from a peer.
const MAX_PEER_BYTES: usize = 64 * 1024 * 1024;

/// The cluster views; `None` for every other call.
pub async fn route(
    gateway: &Gateway,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Option<Response<GatewayBody>> {
    let cluster = query.get("scope").is_some_and(|s| s == "cluster");
    Some(match (method, path) {
        (&Method::GET, "/admin/v1/node") => super::json(node(gateway)),
        (&Method::GET, "/admin/v1/cluster") => super::json(nodes(gateway).await),
        (&Method::GET, "/admin/v1/sla") if cluster => super::json(sla(gateway).await),
        (&Method::GET, "/admin/v1/monitoring") if cluster => monitoring(gateway, query).await,
        _ => return None,
    })
}

fn node(gateway: &Gateway) -> Value {
    let version = gateway.version.lock().unwrap_or_else(|e| e.into_inner()).clone();
    json!({
        "node": gateway.runtime().config.node,
        "ready": gateway.is_ready(),
        "config": version,
    })
}

/// Each node's answer to `path` (this node's from `own`), with the peer's URL, or
/// the error that kept it.
async fn ask_all(gateway: &Gateway, path: &str, own: Value) -> Vec<(String, Result<Value, String>)> {
    let config = gateway.runtime().config.clone();
    let peers = &config.cluster.peers;
    let client = match peer_client(&config.cluster) {
        Ok(c) => c,
        Err(e) => return peers.iter().map(|p| (p.clone(), Err(e.clone()))).collect(),
    };
    let asks = peers.iter().map(|peer| {
        let client = client.clone();
        let url = format!("{peer}{path}");
        async move {
            let answer = tokio::time::timeout(PEER_TIMEOUT, get_json(&client, &url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {PEER_TIMEOUT:?}")));
            (peer.clone(), answer)
        }
    });
    let mut all = vec![("self".to_owned(), Ok(own))];
    all.extend(futures_util::future::join_all(asks).await);
    all
}

type PeerClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// HTTPS to peers with `peer_ca` (and the `peer_cert` operator identity their admin
/// listeners ask for); plain HTTP to peers whose admin listener is `insecure`.
fn peer_client(cluster: &crate::config::ClusterConfig) -> Result<PeerClient, String> {
    let tls = match &cluster.peer_ca {
        Some(ca) => {
            let identity = cluster.peer_identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            crate::tls::upstream_config(ca, identity).map_err(|e| e.to_string())?
        }
        None => rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(PEER_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn get_json(client: &PeerClient, url: &str) -> Result<Value, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_PEER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{url}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// Every node's name, readiness and configuration; `drift` when their hashes differ.
async fn nodes(gateway: &Gateway) -> Value {
    let all = ask_all(gateway, "/admin/v1/node", node(gateway)).await;
    let mut hashes = std::collections::BTreeSet::new();
    let nodes: Vec<Value> = all
        .into_iter()
        .map(|(url, answer)| match answer {
            Ok(mut n) => {
                hashes.insert(n["config"]["hash"].as_str().unwrap_or("").to_owned());
                n["url"] = url.into();
                n
            }
            Err(e) => json!({ "url": url, "error": e }),
        })
        .collect();
    json!({ "nodes": nodes, "hashes": hashes.len(), "drift": hashes.len() > 1 })
}

/// Counts behind one SLA report (its shares times its total).
#[derive(Default, Clone, Copy)]
struct Counts {
    total: u64,
    errors: u64,
    slow: u64,
}

impl Counts {
    fn of(report: &Value) -> Self {
        let total = report["total"].as_u64().unwrap_or(0);
        let bad = |share: &str| ((1.0 - report[share].as_f64().unwrap_or(1.0)) * total as f64).round().max(0.0) as u64;
        Counts { total, errors: bad("availability"), slow: bad("latency_attainment") }
    }
}

/// One report per service over every node's counts; each node's under `nodes`.
async fn sla(gateway: &Gateway) -> Value {
    let own = serde_json::to_value(super::sla_reports(gateway)).unwrap_or_default();
    let all = ask_all(gateway, "/admin/v1/node", node(gateway)).await;
    let names: HashMap<String, String> = all
        .into_iter()
        .map(|(url, n)| (url, n.ok().and_then(|n| n["node"].as_str().map(str::to_owned)).unwrap_or_default()))
        .collect();
    let answers = ask_all(gateway, "/admin/v1/sla", own).await;
    let mut services: BTreeMap<String, (Value, Counts, Vec<Value>)> = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (url, answer) in answers {
        let reports = match answer {
            Ok(Value::Array(reports)) => reports,
            Ok(other) => {
                unreachable.push(json!({ "url": url, "error": format!("not a list of reports: {other}") }));
                continue;
            }
            Err(e) => {
                unreachable.push(json!({ "url": url, "error": e }));
                continue;
            }
        };
        let node = names.get(&url).cloned().unwrap_or_default();
        for report in reports {
            let Some(service) = report["service"].as_str().map(str::to_owned) else { continue };
            let counts = Counts::of(&report);
            let entry = services.entry(service).or_insert_with(|| (report.clone(), Counts::default(), Vec::new()));
            entry.1.total += counts.total;
            entry.1.errors += counts.errors;
            entry.1.slow += counts.slow;
            entry.2.push(json!({
                "node": node,
                "url": url,
                "total": counts.total,
                "availability": report["availability"],
                "latency_attainment": report["latency_attainment"],
            }));
        }
    }
    let merged: Vec<Value> = services
        .into_values()
        .map(|(mut report, c, nodes)| {
            let share = |bad: u64| if c.total == 0 { 1.0 } else { 1.0 - bad as f64 / c.total as f64 };
            let budget = |bad: u64, target: f64| {
                let allowed = (1.0 - target) * c.total as f64;
                match (c.total, allowed <= 0.0, bad) {
                    (0, _, _) | (_, true, 0) => json!(1.0),
                    (_, true, _) => json!(null), // no budget at all, and spent: -∞ is not JSON
                    _ => json!(1.0 - bad as f64 / allowed),
                }
            };
            let (a_target, l_target) = (
                report["availability_target"].as_f64().unwrap_or(1.0),
                report["latency_target"].as_f64().unwrap_or(1.0),
            );
            report["total"] = c.total.into();
            report["availability"] = share(c.errors).into();
            report["availability_budget_remaining"] = budget(c.errors, a_target);
            report["latency_attainment"] = share(c.slow).into();
            report["latency_budget_remaining"] = budget(c.slow, l_target);
            report["nodes"] = nodes.into();
            report
        })
        .collect();
    json!({ "scope": "cluster", "services": merged, "unreachable": unreachable })
}

/// Every node's monitoring records for the same query (each record names its
/// node), newest first; refused as a one-node query would be.
async fn monitoring(gateway: &Gateway, query: &HashMap<String, String>) -> Response<GatewayBody> {
    let q = match super::monitoring_query(query) {
        Ok(q) => q,
        Err(e) => return crate::error::error_response(qaqpa_adapters::ErrorCode::BadRequest, &e, None),
    };
    let own = match gateway.telemetry.monitoring.query(&q).await {
        Ok(records) => serde_json::to_value(records).unwrap_or_default(),
        Err(e) => Value::String(format!("reading monitoring records: {e}")),
    };
    let mut params: Vec<(&String, &String)> = query.iter().filter(|(k, _)| *k != "scope" && *k != "format").collect();
    params.sort();
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let qs: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let all = ask_all(gateway, &format!("/admin/v1/monitoring?{}", qs.join("&")), own).await;
    let (mut records, mut unreachable) = (Vec::new(), Vec::new());
    for (url, answer) in all {
        match answer {
            Ok(Value::Array(list)) => records.extend(list),
            Ok(other) => unreachable.push(json!({ "url": url, "error": other })),
            Err(e) => unreachable.push(json!({ "url": url, "error": e })),
        }
    }
    records.sort_by_key(|r| std::cmp::Reverse(r["request_in"].as_i64().unwrap_or(0)));
    records.truncate(q.limit);
    super::json(json!({ "scope": "cluster", "records": records, "unreachable": unreachable }))
}
