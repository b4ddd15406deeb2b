//! The SLA report for a period (docs/operations.md#sla-report): per service with an
//! objective, its attainment, the share of the error budget spent, each day's
//! figures and the incidents, the 5-minute windows in which the budget burned at
//! least [`FAST_BURN`] times faster than the objective allows (adjacent ones merged).
//! Counted from the monitoring records on disk, like the usage report.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::monitoring::{scan, Record};
use super::sla::clean;
use crate::config::SlaObjective;

/// A window whose bad share is this many times the allowed one is an incident: at
/// that rate a 30-day budget is gone in 3 days.
pub const FAST_BURN: f64 = 10.0;
const WINDOW_US: i64 = 300 * 1_000_000;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    /// Answered with a 5xx status (the gateway's or the provider's).
    pub unavailable: u64,
    /// Response head later than the latency threshold.
    pub slow: u64,
}

impl Counts {
    fn add(&mut self, r: &Record, threshold_us: u64) {
        self.total += 1;
        self.unavailable += u64::from(r.status >= 500);
        self.slow += u64::from(r.duration_us > threshold_us);
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attainment {
    #[serde(flatten)]
    pub counts: Counts,
    /// Share of exchanges not unavailable (1 when there were none).
    #[serde(serialize_with = "clean_f64")]
    pub availability: f64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_attainment: f64,
    /// Share of the allowed failures used: above 1 the objective was missed.
    #[serde(serialize_with = "clean_f64")]
    pub availability_budget_spent: f64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_budget_spent: f64,
}

fn clean_f64<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(clean(*v))
}

impl Attainment {
    fn of(c: &Counts, o: &SlaObjective) -> Self {
        let share = |bad: u64| if c.total == 0 { 1.0 } else { 1.0 - bad as f64 / c.total as f64 };
        let spent = |bad: u64, target: f64| {
            let allowed = (1.0 - target) * c.total as f64;
            match (bad, allowed > 0.0) {
                (0, _) => 0.0,
                (_, true) => bad as f64 / allowed,
                // No failure allowed and one happened: spent beyond measure, shown as such.
                (_, false) => f64::INFINITY,
            }
        };
        Self {
            counts: c.clone(),
            availability: share(c.unavailable),
            latency_attainment: share(c.slow),
            availability_budget_spent: spent(c.unavailable, o.availability),
            latency_budget_spent: spent(c.slow, o.latency_target),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    /// µs since the epoch: the window's start and end.
    pub from: i64,
    pub to: i64,
    pub total: u64,
    pub unavailable: u64,
    /// The bad share over the allowed one, at the worst window.
    #[serde(serialize_with = "clean_f64")]
    pub burn_rate: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceReport {
    pub service: String,
    #[serde(serialize_with = "clean_f64")]
    pub availability_target: f64,
    pub latency_threshold_ms: u64,
    #[serde(serialize_with = "clean_f64")]
    pub latency_target: f64,
    pub period: Attainment,
    /// Per UTC day (YYYY-MM-DD).
    pub days: Vec<(String, Attainment)>,
    pub incidents: Vec<Incident>,
}

struct Acc {
    objective: SlaObjective,
    whole: Counts,
    days: BTreeMap<String, Counts>,
    windows: BTreeMap<i64, Counts>,
}

/// The report for requests in `[from, to)` µs over the monitoring directories `dirs`,
/// for each `(service, objective)`.
pub fn report(
    dirs: &[&Path],
    from: i64,
    to: i64,
    services: &[(String, SlaObjective)],
) -> std::io::Result<Vec<ServiceReport>> {
    let mut acc: BTreeMap<&str, Acc> = services
        .iter()
        .map(|(s, o)| {
            let acc =
                Acc { objective: o.clone(), whole: Counts::default(), days: BTreeMap::new(), windows: BTreeMap::new() };
            (s.as_str(), acc)
        })
        .collect();
    for dir in dirs {
        scan(dir, Some(from), Some(to), |r| {
            if let Some(a) = acc.get_mut(r.service.as_str()) {
                let threshold = a.objective.latency.as_micros() as u64;
                a.whole.add(&r, threshold);
                a.days.entry(day(r.request_in)).or_default().add(&r, threshold);
                a.windows.entry(r.request_in.div_euclid(WINDOW_US) * WINDOW_US).or_default().add(&r, threshold);
            }
            true
        })?;
    }
    Ok(services
        .iter()
        .filter_map(|(s, _)| acc.remove(s.as_str()).map(|a| (s, a)))
        .map(|(service, a)| ServiceReport {
            service: service.clone(),
            availability_target: a.objective.availability,
            latency_threshold_ms: a.objective.latency.as_millis() as u64,
            latency_target: a.objective.latency_target,
            period: Attainment::of(&a.whole, &a.objective),
            days: a.days.iter().map(|(d, c)| (d.clone(), Attainment::of(c, &a.objective))).collect(),
            incidents: incidents(&a.windows, a.objective.availability),
        })
        .collect())
}

fn incidents(windows: &BTreeMap<i64, Counts>, target: f64) -> Vec<Incident> {
    let allowed = (1.0 - target).max(f64::MIN_POSITIVE);
    let mut out: Vec<Incident> = Vec::new();
    for (start, c) in windows {
        if c.unavailable == 0 {
            continue;
        }
        let burn = c.unavailable as f64 / c.total as f64 / allowed;
        if burn < FAST_BURN {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.to == *start => {
                last.to = start + WINDOW_US;
                last.total += c.total;
                last.unavailable += c.unavailable;
                last.burn_rate = last.burn_rate.max(burn);
            }
            _ => out.push(Incident {
                from: *start,
                to: start + WINDOW_US,
                total: c.total,
                unavailable: c.unavailable,
                burn_rate: burn,
            }),
        }
    }
    out
}

fn day(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fast_burning_windows_are_incidents() {
        let c = |total, unavailable| Counts { total, unavailable, slow: 0 };
        let w = WINDOW_US;
        let windows: BTreeMap<i64, Counts> =
            [(0, c(1000, 0)), (w, c(1000, 5)), (2 * w, c(1000, 20)), (3 * w, c(100, 100)), (5 * w, c(10, 1))].into();
        // Target 99.9 %: 5 in 1000 burns at 5×, 20 in 1000 at 20×.
        let found = incidents(&windows, 0.999);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].from, found[0].to, found[0].unavailable), (2 * w, 4 * w, 120));
        assert!((found[0].burn_rate - 1000.0).abs() < 1e-6);
        assert_eq!(found[1].from, 5 * w);
        let o = SlaObjective {
            availability: 0.999,
            latency: Duration::from_millis(500),
            latency_target: 0.99,
            window: Duration::from_secs(3600),
        };
        let a = Attainment::of(&Counts { total: 2000, unavailable: 1, slow: 10 }, &o);
        assert!((a.availability_budget_spent - 0.5).abs() < 1e-9);
        assert!((a.latency_budget_spent - 0.5).abs() < 1e-9);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"availability\":0.9995,"), "{json}");
    }
}
