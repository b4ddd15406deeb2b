//! `[monitoring]`: how long request records are kept, and the in-memory ring.

use super::checker::Checker;
use super::defaults;
use super::raw::RawMonitoring;
use super::Monitoring;

pub(super) fn check(c: &mut Checker, raw: Option<&RawMonitoring>) -> Monitoring {
    Monitoring {
        retention: c.duration(
            raw.and_then(|m| m.retention.as_ref()),
            defaults::MONITORING_RETENTION,
            "monitoring.retention",
        ),
        // A ring of 0 holds one record.
        ring: raw.and_then(|m| m.ring.as_ref()).map_or(defaults::MONITORING_RING, |r| *r.get_ref()).max(1),
    }
}
