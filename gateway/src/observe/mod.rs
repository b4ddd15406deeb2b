//! Observation beside the request path: metrics, SLA, monitoring records, the
//! tamper-evident message log, and the per-exchange record that feeds them all.
//! Nothing here knows the layers above; an exchange reaches it through
//! [`record::ExchangeRecord`], which holds only [`Telemetry`].

pub mod body_outcome;
pub mod history;
pub mod message_log;
pub mod metrics;
pub mod monitoring;
pub mod record;
pub mod sla;
pub mod sla_report;
pub mod usage;

use self::message_log::MessageLog;
use self::metrics::Metrics;
use self::monitoring::Monitoring;
use self::sla::SlaTracker;

/// The gateway's measuring instruments; they outlive configuration reloads.
pub struct Telemetry {
    pub metrics: Metrics,
    pub monitoring: Monitoring,
    pub sla: SlaTracker,
    /// The tamper-evident log of every exchange (DATA_DIR/log); `None` without a
    /// signing key.
    pub message_log: Option<MessageLog>,
    pub node: String,
}
