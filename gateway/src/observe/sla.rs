//! SLA attainment per service (docs/operations.md): availability (no server error) and
//! latency (under the threshold) over a rolling window, in hourly buckets, with the
//! error budget left. In memory: a restart starts the window afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::config::SlaObjective;

#[derive(Default, Clone, Copy)]
struct Bucket {
    hour: i64,
    total: u64,
    server_errors: u64,
    slow: u64,
}

#[derive(Default)]
pub struct SlaTracker {
    services: Mutex<HashMap<String, VecDeque<Bucket>>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlaReport {
    pub service: String,
    pub window_hours: i64,
    pub total: u64,
    #[serde(serialize_with = "clean_f64")]
    pub availability_target: f64,
    #[serde(serialize_with = "clean_f64")]
    pub availability: f64,
    #[serde(serialize_with = "clean_f64")]
    pub availability_budget_remaining: f64,
    pub latency_threshold_ms: u64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_target: f64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_attainment: f64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_budget_remaining: f64,
}

/// `v` rounded to 12 significant digits, so that a target written as 99.9 (%) and
/// divided by 100 reads 0.999, not 0.9990000000000001: shares are printed for
/// people, and no SLA figure means anything past the 12th digit.
pub fn clean(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    format!("{v:.11e}").parse().unwrap_or(v)
}

fn clean_f64<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(clean(*v))
}

impl SlaTracker {
    pub fn record(&self, service: &str, now_us: i64, server_error: bool, slow: bool, keep_hours: i64) {
        let hour = now_us / 3_600_000_000;
        let mut map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by `&str` first: the owned key is made once per service, not
        // per exchange.
        if !map.contains_key(service) {
            map.insert(service.to_owned(), Default::default());
        }
        let Some(buckets) = map.get_mut(service) else { return };
        if buckets.back().is_none_or(|b| b.hour != hour) {
            buckets.push_back(Bucket { hour, ..Bucket::default() });
        }
        while buckets.front().is_some_and(|b| b.hour <= hour - keep_hours) {
            buckets.pop_front();
        }
        if let Some(b) = buckets.back_mut() {
            b.total += 1;
            b.server_errors += u64::from(server_error);
            b.slow += u64::from(slow);
        }
    }

    pub fn report(&self, service: &str, objective: &SlaObjective, now_us: i64) -> SlaReport {
        let window_hours = (objective.window.as_secs() / 3600).max(1) as i64;
        let hour = now_us / 3_600_000_000;
        let map = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let (mut total, mut errors, mut slow) = (0, 0, 0);
        for b in map.get(service).into_iter().flatten().filter(|b| b.hour > hour - window_hours) {
            total += b.total;
            errors += b.server_errors;
            slow += b.slow;
        }
        let share = |bad: u64| if total == 0 { 1.0 } else { 1.0 - bad as f64 / total as f64 };
        let budget = |bad: u64, target: f64| {
            let allowed = (1.0 - target) * total as f64;
            if total == 0 {
                1.0
            } else if allowed <= 0.0 {
                if bad == 0 {
                    1.0
                } else {
                    f64::NEG_INFINITY
                }
            } else {
                1.0 - bad as f64 / allowed
            }
        };
        SlaReport {
            service: service.to_owned(),
            window_hours,
            total,
            availability_target: objective.availability,
            availability: share(errors),
            availability_budget_remaining: budget(errors, objective.availability),
            latency_threshold_ms: objective.latency.as_millis() as u64,
            latency_target: objective.latency_target,
            latency_attainment: share(slow),
            latency_budget_remaining: budget(slow, objective.latency_target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn attainment_and_budget() {
        let t = SlaTracker::default();
        let obj = SlaObjective {
            availability: 0.99,
            latency: Duration::from_millis(500),
            latency_target: 0.9,
            window: Duration::from_secs(2 * 3600),
        };
        let h = 3_600_000_000i64;
        let now = 1000 * h;
        let empty = t.report("s", &obj, now);
        assert_eq!((empty.availability, empty.availability_budget_remaining), (1.0, 1.0));
        // 1000 requests: 5 server errors (half the 1 % budget), 50 slow (half of 10 %).
        for i in 0..1000 {
            t.record("s", now, i < 5, i % 20 == 0, 2);
        }
        let r = t.report("s", &obj, now);
        assert_eq!(r.total, 1000);
        assert!((r.availability - 0.995).abs() < 1e-9);
        assert!((r.availability_budget_remaining - 0.5).abs() < 1e-9);
        assert!((r.latency_attainment - 0.95).abs() < 1e-9);
        assert!((r.latency_budget_remaining - 0.5).abs() < 1e-9);
        // Two hours later the window has moved past them.
        let later = t.report("s", &obj, now + 2 * h);
        assert_eq!(later.total, 0);
        // Overspent budgets go negative.
        for _ in 0..100 {
            t.record("s", now, true, false, 2);
        }
        assert!(t.report("s", &obj, now).availability_budget_remaining < 0.0);
    }

    #[test]
    fn figures_print_without_float_artefacts() {
        assert_eq!(99.9 / 100.0, 0.9990000000000001);
        assert_eq!(clean(99.9 / 100.0).to_string(), "0.999");
        assert_eq!(clean(1.0 - 1.0 / 3.0).to_string(), "0.666666666667");
        assert_eq!(clean(f64::NEG_INFINITY), f64::NEG_INFINITY);
        let t = SlaTracker::default();
        let obj = SlaObjective {
            availability: 99.9 / 100.0,
            latency: Duration::from_millis(500),
            latency_target: 0.99,
            window: Duration::from_secs(3600),
        };
        t.record("s", 0, false, false, 2);
        let json = serde_json::to_string(&t.report("s", &obj, 0)).unwrap();
        assert!(json.contains("\"availability_target\":0.999,"), "{json}");
    }
}
