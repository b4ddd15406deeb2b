//! The admin listener (docs/protocol.md): health, readiness, reload, Prometheus metrics,
//! SLA, monitoring records, the registry as enforced (systems, services, access,
//! limits, topics), mailboxes and dead letters, message-log evidence, the operator
//! dashboard and the API's OpenAPI document. Kept apart from the data
//! listeners so operators' endpoints are never reachable by exchange clients.

mod cluster;
mod console;
pub mod live;
mod operators;
mod sla_page;
pub mod views;

use std::collections::HashMap;

use http::{Method, Request, Response, StatusCode};
use qaqpa_adapters::ErrorCode;

use crate::body::{full_body, GatewayBody};
use crate::error::error_response;
use crate::gateway::Gateway;
use crate::observe::message_log::EvidenceError;
use crate::observe::monitoring::{now_us, Query, CSV_HEADER};
use crate::peer::Peer;

const DASHBOARD: &str = include_str!("dashboard.html");
/// The admin API's own description (OpenAPI 3.1); `tests/admin_api.rs` checks every
/// documented path answers and every answer matches it.
const ADMIN_OPENAPI: &str = include_str!("admin-openapi.json");
/// Most records one monitoring query returns.
pub const MAX_QUERY_RECORDS: usize = 100_000;

/// Answers one admin call from `peer`, once its certificate is found to be an
/// operator allowed to make it (see [`operators`]).
pub async fn serve<B>(gateway: &Gateway, peer: &Peer, req: Request<B>) -> Response<GatewayBody> {
    let caller = match operators::authorize(&gateway.runtime().config, peer, req.method(), req.uri().path()) {
        Ok(caller) => caller,
        Err(reason) => {
            tracing::warn!(peer = %peer.addr, method = %req.method(), path = req.uri().path(), "admin call refused: {reason}");
            return operators::denied(&reason);
        }
    };
    if operators::is_mutating(req.method()) {
        tracing::info!(%caller, method = %req.method(), path = req.uri().path(), "admin call");
    }
    route(gateway, req).await
}

async fn route<B>(gateway: &Gateway, req: Request<B>) -> Response<GatewayBody> {
    let query = crate::faces::query_params(req.uri().query().unwrap_or(""));
    if let Some(answer) = cluster::route(gateway, req.method(), req.uri().path(), &query).await {
        return answer;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") if gateway.is_ready() => text(StatusCode::OK, "text/plain", "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n"),
        (&Method::POST, "/admin/v1/reload") => match gateway.reload().await {
            Ok(r) => json(serde_json::json!({
                "reloaded": true,
                "services": r.services,
                "restart_needed": r.restart_needed,
                "connections_revoked": r.connections_revoked,
            })),
            Err(e) => error_response(ErrorCode::BadRequest, &e.to_string(), None),
        },
        (&Method::GET, "/metrics") => {
            refresh_sla_gauges(gateway);
            refresh_mailbox_gauges(gateway).await;
            text(StatusCode::OK, "text/plain; version=0.0.4", gateway.telemetry.metrics.render())
        }
        (&Method::GET, "/admin/v1/config") => json(
            serde_json::to_value(gateway.version.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default(),
        ),
        (&Method::GET, "/admin/v1/sla") => json(serde_json::to_value(sla_reports(gateway)).unwrap_or_default()),
        (&Method::GET, "/admin/v1/stats") => json(crate::admin::live::live(gateway)),
        (&Method::GET, "/admin/v1/monitoring") => monitoring(gateway, &query, &req).await,
        (&Method::GET, "/ui" | "/ui/") => text(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD),
        (&Method::GET, "/ui/sla-report") => console::sla_report(gateway, &query).await,
        (&Method::GET, "/admin/v1/history") => console::history(gateway, &query),
        (&Method::GET, "/admin/v1/usage") => console::usage(gateway, &query, &req).await,
        (&Method::GET, "/admin/v1/openapi.json") => text(StatusCode::OK, "application/json", ADMIN_OPENAPI),
        (&Method::GET, "/admin/v1/systems") => json(views::systems(&gateway.runtime().config)),
        (&Method::GET, "/admin/v1/services") => json(views::services(&gateway.runtime().config)),
        (&Method::GET, "/admin/v1/access") => json(views::access(
            &gateway.runtime().config,
            query.get("client").map(String::as_str),
            query.get("service").map(String::as_str),
        )),
        (&Method::GET, "/admin/v1/limits") => json(views::limits(&gateway.runtime().config)),
        (&Method::GET, "/admin/v1/topics") => json(views::topics(&gateway.runtime().config)),
        (&Method::GET, "/admin/v1/log/evidence") => evidence(gateway, query.get("id"), query.get("client")).await,
        (&Method::GET, "/admin/v1/log/head") => log_head(gateway),
        (&Method::GET, "/admin/v1/mailboxes") => {
            match (gateway.mailboxes.depths().await, gateway.mailboxes.dead_count().await) {
                (Ok(depths), Ok(dead)) => json(serde_json::json!({
                    "backend": gateway.mailboxes.backend(),
                    "queues": depths,
                    "dead_letters": dead,
                })),
                (Err(e), _) | (_, Err(e)) => mailbox_error(e),
            }
        }
        (&Method::GET, "/admin/v1/dead-letters") => {
            let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) if (1..=10_000).contains(&n) => n,
                Some(_) => return error_response(ErrorCode::BadRequest, "limit must be 1..=10000", None),
            };
            match gateway.mailboxes.dead_letters(limit).await {
                Ok(list) => json(serde_json::to_value(list).unwrap_or_default()),
                Err(e) => mailbox_error(e),
            }
        }
        (method, path) if path.starts_with(DEAD_LETTERS) => {
            dead_letter(gateway, method, &path[DEAD_LETTERS.len()..]).await
        }
        _ => error_response(ErrorCode::BadRequest, "no such admin endpoint", None),
    }
}

const DEAD_LETTERS: &str = "/admin/v1/dead-letters/";

/// `POST …/{id}/replay` puts a dead letter back in its queue; `DELETE …/{id}` drops it.
async fn dead_letter(gateway: &Gateway, method: &Method, rest: &str) -> Response<GatewayBody> {
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mid) = uuid::Uuid::parse_str(id) else {
        return error_response(ErrorCode::BadRequest, "the message id must be a UUID", None);
    };
    let result = match (method, action) {
        (&Method::POST, "replay") => gateway.mailboxes.replay(mid).await.map(|_| "replayed"),
        (&Method::DELETE, "") => gateway.mailboxes.drop_dead(mid).await.map(|_| "dropped"),
        _ => return error_response(ErrorCode::BadRequest, "use POST …/{id}/replay or DELETE …/{id}", None),
    };
    match result {
        Ok(done) => {
            tracing::info!(%mid, done, "dead letter handled by an operator");
            let event = if done == "replayed" { "replay" } else { "drop" };
            crate::observe::record::Step::new(event, mid).append_alone(&gateway.telemetry, "operator", 200);
            json(serde_json::json!({ "id": mid, done: true }))
        }
        Err(e) => mailbox_error(e),
    }
}

/// `GET /admin/v1/log/evidence?id=…[&client=…]`: what `qaqpa log export` writes, for an
/// auditor who asks the running gateway rather than reading its disk.
async fn evidence(gateway: &Gateway, id: Option<&String>, client: Option<&String>) -> Response<GatewayBody> {
    let Some(id) = id.filter(|id| !id.is_empty()).cloned() else {
        return error_response(ErrorCode::BadRequest, "the query parameter id (the message id) is required", None);
    };
    if gateway.telemetry.message_log.is_none() {
        return error_response(ErrorCode::UnknownMessage, "the message log is off (no signing key)", None);
    }
    let dir = gateway.runtime().config.storage.data_dir.join("log");
    let client = client.filter(|c| !c.is_empty()).cloned();
    let found =
        tokio::task::spawn_blocking(move || crate::observe::message_log::find_evidence(&[dir], &id, client.as_deref()))
            .await
            .map_err(|e| EvidenceError::Io(std::io::Error::other(e)))
            .and_then(|found| found);
    match found {
        Ok(bundle) if !bundle.evidence.is_empty() => json(serde_json::to_value(bundle).unwrap_or_default()),
        Ok(_) => error_response(
            ErrorCode::UnknownMessage,
            "no sealed record of this message id (yet: seals come every 100 ms)",
            None,
        ),
        Err(e @ EvidenceError::Ambiguous { .. }) => error_response(ErrorCode::BadRequest, &e.to_string(), None),
        Err(e) => error_response(ErrorCode::Internal, &e.to_string(), None),
    }
}

/// `GET /admin/v1/log/head`: the latest seal on disk (its number and line hash),
/// for an auditor to keep and later pass to `qaqpa log verify --expect-head`, and
/// whether the log writes now.
fn log_head(gateway: &Gateway) -> Response<GatewayBody> {
    let Some(log) = &gateway.telemetry.message_log else {
        return error_response(ErrorCode::UnknownMessage, "the message log is off (no signing key)", None);
    };
    let head = log.head();
    json(serde_json::json!({
        "batch": head.as_ref().map_or(0, |h| h.batch),
        "hash": head.as_ref().map(|h| h.hash.clone()),
        "head": head.as_ref().map(|h| h.to_string()),
        "available": log.is_available(),
    }))
}

fn mailbox_error(e: crate::mailbox::MailboxError) -> Response<GatewayBody> {
    crate::error::GatewayError::from(e).into_response(None)
}

fn sla_reports(gateway: &Gateway) -> Vec<crate::observe::sla::SlaReport> {
    let runtime = gateway.runtime();
    let now = now_us();
    runtime
        .config
        .services
        .iter()
        .filter_map(|s| Some(gateway.telemetry.sla.report(s.id.as_str(), s.sla.as_ref()?, now)))
        .collect()
}

/// Mailbox depths as gauges, read at scrape time.
async fn refresh_mailbox_gauges(gateway: &Gateway) {
    let m = &gateway.telemetry.metrics;
    if let Ok(depths) = gateway.mailboxes.depths().await {
        m.mailbox_depth.reset();
        for d in depths {
            for (state, n) in [("ready", d.ready), ("in_flight", d.in_flight), ("waiting", d.waiting)] {
                m.mailbox_depth.with_label_values(&[&d.queue, d.kind, state]).set(n as i64);
            }
        }
    }
    if let Ok(dead) = gateway.mailboxes.dead_count().await {
        m.mailbox_dead_letters.set(dead as i64);
    }
}

fn refresh_sla_gauges(gateway: &Gateway) {
    let m = &gateway.telemetry.metrics;
    for r in sla_reports(gateway) {
        m.sla_availability.with_label_values(&[&r.service]).set(r.availability);
        m.sla_latency.with_label_values(&[&r.service]).set(r.latency_attainment);
        m.sla_budget.with_label_values(&[&r.service, "availability"]).set(r.availability_budget_remaining);
        m.sla_budget.with_label_values(&[&r.service, "latency"]).set(r.latency_budget_remaining);
    }
}

/// The query of `/admin/v1/monitoring` (one node's or the cluster's): `from`/`to`
/// RFC 3339 or Unix seconds, `client`, `service`, `code`, `id`, `status`, `limit`.
fn monitoring_query(params: &HashMap<String, String>) -> Result<Query, String> {
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) if (1..=MAX_QUERY_RECORDS).contains(&n) => n,
        Some(_) => return Err("limit must be 1..=100000".into()),
    };
    let status = match params.get("status").map(|s| console::parse_status(s)) {
        None => None,
        Some(Some(range)) => Some(range),
        Some(None) => return Err("status must be 100..599 or 1xx..5xx".into()),
    };
    Ok(Query {
        from: console::parse_time(params, "from")?,
        to: console::parse_time(params, "to")?,
        client: params.get("client").cloned(),
        service: params.get("service").cloned(),
        code: params.get("code").cloned(),
        id: params.get("id").cloned(),
        status,
        limit,
    })
}

/// `format=csv` (or `Accept: text/csv`) for CSV.
async fn monitoring<B>(gateway: &Gateway, params: &HashMap<String, String>, req: &Request<B>) -> Response<GatewayBody> {
    let q = match monitoring_query(params) {
        Ok(q) => q,
        Err(e) => return error_response(ErrorCode::BadRequest, &e, None),
    };
    let records = match gateway.telemetry.monitoring.query(&q).await {
        Ok(r) => r,
        Err(e) => return error_response(ErrorCode::Internal, &format!("reading monitoring records: {e}"), None),
    };
    let asked_csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return error_response(ErrorCode::BadRequest, "format must be csv or json", None),
    };
    let wants_csv = asked_csv
        || req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in &records {
            out.push_str(&r.csv_line());
            out.push('\n');
        }
        text(StatusCode::OK, "text/csv; charset=utf-8", out)
    } else {
        json(serde_json::to_value(records).unwrap_or_default())
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<bytes::Bytes>) -> Response<GatewayBody> {
    let mut r = Response::new(full_body(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

fn json(value: serde_json::Value) -> Response<GatewayBody> {
    text(StatusCode::OK, "application/json", value.to_string())
}
