//! Live figures for the dashboard, from the newest monitoring records in memory:
//! per service the rate over the last 10 s, p50/p99 latency and error share over the
//! last 60 s, top consumers and limiter rejections, next to SLA attainment.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::observe::monitoring::now_us;
use crate::shared::Shared;

pub fn live(gateway: &Shared) -> Value {
    let now = now_us();
    let records = gateway.telemetry.monitoring.recent(now - 60_000_000);
    let runtime = gateway.runtime();
    let mut services = Vec::new();
    for service in &runtime.config.services {
        let id = service.id.as_str();
        let mine: Vec<_> = records.iter().filter(|r| r.service == id).collect();
        let last10 = mine.iter().filter(|r| r.request_in >= now - 10_000_000).count();
        let mut durations: Vec<u64> = mine.iter().map(|r| r.duration_us).collect();
        durations.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            let i = ((durations.len() as f64 * p).ceil() as usize).checked_sub(1)?;
            durations.get(i).map(|us| *us as f64 / 1000.0)
        };
        let errors = mine.iter().filter(|r| r.code.is_some() || r.status >= 500).count();
        let rejected = mine
            .iter()
            .filter(|r| {
                matches!(
                    r.code.as_deref(),
                    Some("client.rate_limited" | "client.quota_exhausted" | "server.overloaded")
                )
            })
            .count();
        let mut consumers: HashMap<&str, usize> = HashMap::new();
        for r in &mine {
            *consumers.entry(r.client.as_str()).or_default() += 1;
        }
        let mut top: Vec<_> = consumers.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(5);
        let sla = service.sla.as_ref().map(|o| gateway.telemetry.sla.report(id, o, now));
        services.push(json!({
            "service": id,
            "kind": match service.kind { crate::config::ServiceKind::Rest => "rest", crate::config::ServiceKind::Soap => "soap" },
            "rate_per_s": last10 as f64 / 10.0,
            "requests_60s": mine.len(),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "error_share": if mine.is_empty() { 0.0 } else { errors as f64 / mine.len() as f64 },
            "rejections_60s": rejected,
            "top_consumers": top.iter().map(|(c, n)| json!({"client": c, "requests": n})).collect::<Vec<_>>(),
            "sla": sla,
        }));
    }
    json!({
        "node": gateway.telemetry.node,
        "generated_at_us": now,
        "in_flight": gateway.overload.in_flight.load(std::sync::atomic::Ordering::Relaxed),
        "overload_limit": gateway.overload.limit.load(std::sync::atomic::Ordering::Relaxed),
        "services": services,
    })
}
