//! Observation beside the request path: metrics, SLA, monitoring records, the
//! tamper-evident message log, and the per-exchange record that feeds them all.

pub mod message_log;
pub mod metrics;
pub mod monitoring;
pub mod sla;
pub mod stats;
pub mod telemetry;
