//! The operator console's own endpoints (docs/operations.md#console): the history the
//! charts draw, the usage report (the tariff basis) and the printable SLA report.
//! Same listener and authorization as the rest of the admin API.

use std::collections::HashMap;

use http::{Request, Response, StatusCode};
use qaqpa_adapters::ErrorCode;
use serde_json::{json, Value};

use crate::body::{full_body, GatewayBody};
use crate::error::error_response;
use crate::gateway::Gateway;
use crate::observe::history::{Range, COARSE_STEP_S};
use crate::observe::monitoring::now_us;
use crate::observe::sla::clean;
use crate::observe::usage::Group;

/// A time parameter: RFC 3339 or Unix seconds, in µs since the epoch.
pub(super) fn parse_time(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    let Some(v) = params.get(key) else { return Ok(None) };
    if let Ok(secs) = v.parse::<i64>() {
        return secs.checked_mul(1_000_000).map(Some).ok_or_else(|| format!("{key} is out of range"));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1000) as i64))
        .map_err(|_| format!("{key} must be RFC 3339 or Unix seconds"))
}

/// A `status` filter: one status (`404`) or a class (`5xx`), as an inclusive range.
pub(super) fn parse_status(s: &str) -> Option<(u16, u16)> {
    // Exactly as documented (`^([1-5]xx|[1-5][0-9][0-9])$`): `u16::from_str` would take "+404".
    let b = s.as_bytes();
    if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
        return None;
    }
    let class = u16::from(b[0] - b'0') * 100;
    match (b[1], b[2]) {
        (b'x', b'x') => Some((class, class + 99)),
        (t, u) if t.is_ascii_digit() && u.is_ascii_digit() => {
            let n = class + u16::from(t - b'0') * 10 + u16::from(u - b'0');
            Some((n, n))
        }
        _ => None,
    }
}

fn bad(message: &str) -> Response<GatewayBody> {
    error_response(ErrorCode::BadRequest, message, None)
}

/// `GET /admin/v1/history?service=&range=1h|7d`: one point per interval (10 s over
/// the last hour, 5 min over the last 7 days), all services merged without `service`;
/// with the service's SLA, its availability budget left over the window ending at
/// each 5-minute mark.
pub(super) fn history(gateway: &Gateway, params: &HashMap<String, String>) -> Response<GatewayBody> {
    let range = match params.get("range").map(String::as_str) {
        None => Range::Hour,
        Some(r) => match Range::parse(r) {
            Some(r) => r,
            None => return bad("range must be 1h or 7d"),
        },
    };
    let service = params.get("service").filter(|s| !s.is_empty()).cloned();
    let now_s = now_us() / 1_000_000;
    let monitoring = &gateway.telemetry.monitoring;
    let (step, series) = monitoring.history(|h| h.series(service.as_deref(), range, now_s));
    let points: Vec<Value> = series
        .iter()
        .map(|(t, a)| {
            let errors = a.client_errors + a.server_errors;
            json!({
                "t": t,
                "count": a.count,
                "rate": clean(a.count as f64 / step as f64),
                "p50_ms": a.percentile_ms(0.5).map(clean),
                "p99_ms": a.percentile_ms(0.99).map(clean),
                "error_share": if a.count == 0 { 0.0 } else { clean(errors as f64 / a.count as f64) },
                "client_errors": a.client_errors,
                "server_errors": a.server_errors,
                "refused": a.refused,
                "shed": a.shed,
            })
        })
        .collect();
    let runtime = gateway.runtime();
    let objective = service
        .as_deref()
        .and_then(|s| runtime.config.services.iter().find(|c| c.id.as_str() == s))
        .and_then(|c| c.sla.clone());
    let sla = match (&service, objective) {
        (Some(s), Some(o)) => {
            let first = series.first().map_or(now_s, |(t, _)| *t);
            let window_s = o.window.as_secs() as i64;
            let slots = monitoring.history(|h| h.coarse_since(s, first - window_s));
            let allowed = 1.0 - o.availability;
            let mut budget = Vec::new();
            // The budget at the end of each 5-minute interval in the range, over the
            // SLA window ending there (as far back as the 7-day history reaches).
            let mut end = (first.div_euclid(COARSE_STEP_S) + 1) * COARSE_STEP_S;
            while end <= now_s + COARSE_STEP_S {
                let (mut total, mut bad) = (0u64, 0u64);
                for (_, a) in slots.iter().filter(|(t, _)| *t >= end - window_s && *t < end) {
                    total += a.count;
                    bad += a.status_5xx;
                }
                let remaining = match (total, bad) {
                    (0, _) | (_, 0) => 1.0,
                    _ if allowed <= 0.0 => -1.0,
                    _ => 1.0 - bad as f64 / (allowed * total as f64),
                };
                budget.push(json!({ "t": end.min(now_s), "remaining": clean(remaining) }));
                end += COARSE_STEP_S;
            }
            json!({
                "availability_target": clean(o.availability),
                "window_hours": (window_s / 3600).max(1),
                "budget": budget,
            })
        }
        _ => Value::Null,
    };
    super::json(json!({
        "service": service,
        "range": match range { Range::Hour => "1h", Range::Week => "7d" },
        "step_s": step,
        "now": now_s,
        "points": points,
        "sla": sla,
    }))
}

/// The `[from, to)` of a report, in µs; `default_span_s` back from now without `from`.
fn period(params: &HashMap<String, String>, default_span_s: i64) -> Result<(i64, i64), String> {
    let to = parse_time(params, "to")?.unwrap_or_else(now_us);
    let from = parse_time(params, "from")?.unwrap_or(to.saturating_sub(default_span_s * 1_000_000));
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

/// `GET /admin/v1/usage?from=&to=&group=day|month[&format=csv]`.
pub(super) async fn usage<B>(
    gateway: &Gateway,
    params: &HashMap<String, String>,
    req: &Request<B>,
) -> Response<GatewayBody> {
    let (from, to) = match period(params, 31 * 24 * 3600) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let group = match params.get("group").map(String::as_str) {
        None => Group::Day,
        Some(g) => match Group::parse(g) {
            Some(g) => g,
            None => return bad("group must be day or month"),
        },
    };
    let csv = match params.get("format").map(String::as_str) {
        None => req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
        Some("json") => false,
        Some("csv") => true,
        Some(_) => return bad("format must be csv or json"),
    };
    let monitoring = &gateway.telemetry.monitoring;
    monitoring.flush().await;
    let dir = monitoring.dir().to_owned();
    let rows = tokio::task::spawn_blocking(move || crate::observe::usage::report(&[&dir], Some(from), Some(to), group))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return error_response(ErrorCode::Internal, &format!("reading monitoring records: {e}"), None),
    };
    if csv {
        let mut r = Response::new(full_body(crate::observe::usage::csv(&rows)));
        let h = r.headers_mut();
        h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/csv; charset=utf-8"));
        h.insert(
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_static("attachment; filename=\"qaqpa-usage.csv\""),
        );
        return r;
    }
    super::json(json!({
        "from": from / 1_000_000,
        "to": to / 1_000_000,
        "group": match group { Group::Day => "day", Group::Month => "month" },
        "node": gateway.telemetry.node,
        "rows": rows,
    }))
}

/// `GET /ui/sla-report?from=&to=`: the printable SLA report (default: the last 7 days).
pub(super) async fn sla_report(gateway: &Gateway, params: &HashMap<String, String>) -> Response<GatewayBody> {
    let (from, to) = match period(params, 7 * 24 * 3600) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let services: Vec<_> =
        gateway.runtime().config.services.iter().filter_map(|s| Some((s.id.to_string(), s.sla.clone()?))).collect();
    let monitoring = &gateway.telemetry.monitoring;
    monitoring.flush().await;
    let dir = monitoring.dir().to_owned();
    let report = tokio::task::spawn_blocking(move || crate::observe::sla_report::report(&[&dir], from, to, &services))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
    match report {
        Ok(report) => {
            let html = super::sla_page::render(&gateway.telemetry.node, from, to, now_us(), &report);
            super::text(StatusCode::OK, "text/html; charset=utf-8", html)
        }
        Err(e) => error_response(ErrorCode::Internal, &format!("reading monitoring records: {e}"), None),
    }
}
