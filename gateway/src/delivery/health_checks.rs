//! Active health checks of provider endpoints: each endpoint of a service with a
//! `health_check` gets a probe loop (GET its check path through the service's own
//! pooled client, within the check's timeout); consecutive results eject it from
//! or return it to rotation (`qaqpa_routing::health::Endpoint::on_probe`). The
//! loops follow the live runtime: a reload replaces them.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::{ForwardBody, Source};
use crate::config::HealthCheck;
use crate::runtime::{Route, Runtime};
use crate::shared::Shared;

/// How often the supervisor looks for a reloaded runtime.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

pub async fn run(gateway: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut current: Option<Arc<Runtime>> = None;
    let mut probes = JoinSet::new();
    loop {
        let runtime = gateway.runtime();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &runtime)) {
            probes.abort_all();
            for service in &runtime.config.services {
                let Some(route) = runtime.routes.get(service.id.as_str()) else { continue };
                let Some(check) = route.health_check.clone() else { continue };
                for endpoint in 0..route.upstreams.len() {
                    probes.spawn(probe_loop(gateway.clone(), route.clone(), check.clone(), endpoint));
                }
            }
            current = Some(runtime);
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    probes.abort_all();
}

async fn probe_loop(gateway: Arc<Shared>, route: Arc<Route>, check: HealthCheck, endpoint: usize) {
    let upstream = &route.upstreams[endpoint];
    let label = upstream.authority.as_str();
    let metrics = &gateway.telemetry.metrics;
    let healthy = metrics.upstream_healthy.with_label_values(&[route.id.as_str(), label]);
    healthy.set(i64::from(!upstream.health.is_ejected()));
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let passed = probe(&route, endpoint, &check).await;
        let result = if passed { "pass" } else { "fail" };
        metrics.health_checks.with_label_values(&[route.id.as_str(), result]).inc();
        match upstream.health.on_probe(passed, &check.thresholds) {
            Some(true) => {
                tracing::info!(service = %route.id, endpoint = label, "endpoint passes its health check again")
            }
            Some(false) => {
                tracing::warn!(service = %route.id, endpoint = label, "endpoint ejected by its health check")
            }
            None => {}
        }
        healthy.set(i64::from(!upstream.health.is_ejected()));
    }
}

/// One check: a 2xx answer within the timeout, body read to the end.
async fn probe(route: &Route, endpoint: usize, check: &HealthCheck) -> bool {
    let upstream = &route.upstreams[endpoint];
    let Ok(uri) = http::Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{}", upstream.base_path, check.path))
        .build()
    else {
        return false;
    };
    let (body, _) = ForwardBody::new(Source::Buffered(None), 0);
    let mut req = Request::new(body);
    *req.uri_mut() = uri;
    req.headers_mut().insert(http::header::USER_AGENT, http::HeaderValue::from_static("qaqpa-health-check"));
    let exchange = async {
        let response = route.pool.request(req).await.ok()?;
        let ok = response.status().is_success();
        // Read the body so the pooled connection can be reused.
        response.into_body().collect().await.ok()?;
        Some(ok)
    };
    matches!(tokio::time::timeout(check.timeout, exchange).await, Ok(Some(true)))
}
