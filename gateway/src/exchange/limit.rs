//! The limit stage of the pipeline: global overload shedding, then the service's
//! upstream concurrency, then rates and quotas from the backend. Its [`Admission`]
//! holds what must stay reserved until the exchange ends and the headers that tell
//! clients where they stand.

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use qaqpa_adapters::ErrorCode;
use qaqpa_routing::limit::QuotaPeriod;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::GatewayError;
use crate::limits::overload::{InFlight, Overload};
use crate::limits::Limiter;
use crate::limits::{now_ns, retry_after_secs, Check, Decision};
use crate::observe::metrics::Metrics;
use crate::runtime::{Client, Route};
use crate::shared::Param;

pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
pub const RATELIMIT: &str = "ratelimit";

/// What an admitted request holds until its exchange ends.
pub struct Admission {
    _in_flight: Option<InFlight>,
    _permit: Option<OwnedSemaphorePermit>,
    /// `RateLimit-Policy` and `RateLimit` values (IETF httpapi draft), if a rate applies.
    headers: Option<(HeaderValue, HeaderValue)>,
}

impl Admission {
    pub fn none() -> Self {
        Self { _in_flight: None, _permit: None, headers: None }
    }

    pub fn add_headers(&self, headers: &mut HeaderMap) {
        if let Some((policy, state)) = &self.headers {
            headers.insert(HeaderName::from_static(RATELIMIT_POLICY), policy.clone());
            headers.insert(HeaderName::from_static(RATELIMIT), state.clone());
        }
    }
}

fn state_value(remaining: u32, reset_ns: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"pair\";r={remaining};t={}", retry_after_secs(reset_ns))).expect("ascii")
}

/// Asks for the limiter, the overload gate and the metrics, nothing else.
pub async fn admit(
    handles: &(impl Param<Limiter> + Param<Overload> + Param<Metrics> + Sync),
    route: &Route,
    client: &Client,
) -> Result<Admission, GatewayError> {
    let metrics: &Metrics = handles.param();
    let overload: &Overload = handles.param();
    let limiter: &Limiter = handles.param();
    let reject =
        |reason: &str| metrics.rejections.with_label_values(&[client.id.as_str(), route.id.as_str(), reason]).inc();

    let in_flight = match overload.try_enter() {
        Some(guard) => guard,
        None => {
            reject("overload");
            return Err(GatewayError::new(ErrorCode::Overloaded, "the gateway is shedding load; retry shortly")
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
        }
    };
    let permit = match &route.concurrency {
        None => None,
        Some(semaphore) => match semaphore.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                reject("concurrency");
                return Err(GatewayError::new(
                    ErrorCode::Overloaded,
                    format!("{} has its maximum of requests in flight", route.id),
                )
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
            }
        },
    };

    let (limits, pair_key) = route.limits_for(client);
    if limits.is_empty() && client.rate.is_none() {
        return Ok(Admission { _in_flight: Some(in_flight), _permit: permit, headers: None });
    }
    let check = Check {
        pair_key,
        pair_rate: limits.rate,
        consumer_key: client.key,
        consumer_rate: client.rate,
        quota_day: limits.quota_day,
        quota_month: limits.quota_month,
        now_ns: now_ns(),
    };
    let decision = match limiter.check(&check).await {
        Ok(d) => d,
        Err(e) if route.limits_fail_open => {
            // This node's share of the limits, not no limit at all (issue 22).
            tracing::debug!("{e}; per-node limits (limits_fail = \"open\")");
            limiter.check_fallback(&check)
        }
        Err(e) => {
            tracing::debug!("{e}; refusing (limits_fail = \"closed\")");
            reject("limiter_unavailable");
            return Err(GatewayError::new(ErrorCode::LimiterUnavailable, "limits cannot be checked right now")
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
        }
    };
    let policy = limits.policy.clone();
    match decision {
        Decision::Allow { remaining, reset_ns, quota_left } => {
            if let Some((period, left)) = quota_left {
                // The gauge's handle is cached per (pair, period): the labelled lookup
                // hashes three strings under a lock, too much for every request.
                let key = (pair_key, period);
                let gauge = match route.quota_gauges.get(&key) {
                    Some(g) => g.clone(),
                    None => {
                        let labels = [client.id.as_str(), route.id.as_str(), period.as_str()];
                        let g = metrics.quota_remaining.with_label_values(&labels);
                        route.quota_gauges.insert(key, g.clone());
                        g
                    }
                };
                gauge.set(left as i64);
            }
            let headers = match (policy, remaining) {
                (Some(p), Some(r)) => Some((p, state_value(r, reset_ns))),
                _ => None,
            };
            Ok(Admission { _in_flight: Some(in_flight), _permit: permit, headers })
        }
        Decision::RateLimited { retry_after_ns } => {
            reject("rate");
            let secs = retry_after_secs(retry_after_ns);
            let mut e = GatewayError::new(
                ErrorCode::RateLimited,
                format!("{} is over its rate for {}; retry in {secs} s", client.id, route.id),
            )
            .with_header(RETRY_AFTER, HeaderValue::from(secs));
            if let Some(p) = policy {
                e = e
                    .with_header(HeaderName::from_static(RATELIMIT_POLICY), p)
                    .with_header(HeaderName::from_static(RATELIMIT), state_value(0, retry_after_ns));
            }
            Err(e)
        }
        Decision::QuotaExhausted { period, retry_after_ns } => {
            reject("quota");
            metrics.quota_remaining.with_label_values(&[client.id.as_str(), route.id.as_str(), period.as_str()]).set(0);
            let which = match period {
                QuotaPeriod::Day => "daily",
                QuotaPeriod::Month => "monthly",
            };
            Err(GatewayError::new(
                ErrorCode::QuotaExhausted,
                format!("{} has used its {which} quota for {}", client.id, route.id),
            )
            .with_header(RETRY_AFTER, HeaderValue::from(retry_after_secs(retry_after_ns))))
        }
    }
}
