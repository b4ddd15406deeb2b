//! Prometheus metrics (served at `/metrics` on the admin listener). Label values
//! come only from registered ids, error codes and fixed words, so cardinality is
//! bounded by the registry.

use prometheus::{
    exponential_buckets, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub overload_limit: IntGauge,
    pub request_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub rejections: IntCounterVec,
    pub quota_remaining: IntGaugeVec,
    pub tls_failures: IntCounterVec,
    pub reloads: IntCounterVec,
    pub monitoring_dropped: IntCounter,
    pub sla_availability: prometheus::GaugeVec,
    pub sla_latency: prometheus::GaugeVec,
    pub sla_budget: prometheus::GaugeVec,
    pub event_loop_lag: Gauge,
    pub connections: IntGaugeVec,
    pub connections_refused: IntCounterVec,
    pub upstream_healthy: IntGaugeVec,
    pub health_checks: IntCounterVec,
    pub message_log: crate::observe::message_log::LogMetrics,
    pub replay_write_failures: IntCounter,
    /// 1 for the SHA-256 of the configuration this node runs (drift shows as
    /// several hashes across nodes: deploy/prometheus/alerts.yml).
    pub config_info: IntGaugeVec,
    pub config_published: IntCounterVec,
    pub mailbox_events: IntCounterVec,
    pub mailbox_depth: IntGaugeVec,
    pub mailbox_dead_letters: IntGauge,
}

/// Label for a client or service the gateway could not identify.
pub const UNKNOWN: &str = "unknown";

/// What the measure stage needs of one service: its name (shared, not copied
/// per exchange) and its metric series, resolved on the first exchange a route
/// serves. A reload builds new routes, so the series are resolved again there;
/// the label lookup (hashing the labels, a read lock) is no longer paid per
/// exchange (issue 20).
pub struct ServiceObs {
    pub name: std::sync::Arc<str>,
    series: std::sync::OnceLock<ServiceSeries>,
}

/// One service's series.
pub struct ServiceSeries {
    pub duration: Histogram,
    pub upstream_duration: Histogram,
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
    /// `qaqpa_requests_total{code="ok"}` by client key (the common outcome).
    ok: dashmap::DashMap<u64, IntCounter>,
}

impl ServiceObs {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), series: std::sync::OnceLock::new() }
    }

    pub fn series(&self, m: &Metrics) -> &ServiceSeries {
        self.series.get_or_init(|| {
            let labels = [&*self.name];
            ServiceSeries {
                duration: m.duration.with_label_values(&labels),
                upstream_duration: m.upstream_duration.with_label_values(&labels),
                request_bytes: m.request_bytes.with_label_values(&labels),
                response_bytes: m.response_bytes.with_label_values(&labels),
                ok: dashmap::DashMap::new(),
            }
        })
    }
}

impl ServiceSeries {
    /// Counts an exchange of `client` (its registry key and id) that ended well.
    pub fn count_ok(&self, m: &Metrics, key: u64, client: &str, service: &str) {
        if let Some(counter) = self.ok.get(&key) {
            counter.inc();
            return;
        }
        let counter = m.requests.with_label_values(&[client, service, "ok"]);
        counter.inc();
        self.ok.insert(key, counter);
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let latency_buckets = exponential_buckets(0.0005, 2.0, 16).expect("valid buckets");
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric");
                registry.register(Box::new(m.clone())).expect("unique metric");
                m
            }};
        }
        Self {
            mailbox_events: reg!(IntCounterVec::new(
                Opts::new(
                    "qaqpa_mailbox_messages_total",
                    "Asynchronous messages by event: sent, duplicate, delivered, replied, acked, failed, dead"
                ),
                &["event"]
            )),
            mailbox_depth: reg!(IntGaugeVec::new(
                Opts::new("qaqpa_mailbox_depth", "Messages in a mailbox queue by state (refreshed per scrape)"),
                &["queue", "kind", "state"]
            )),
            mailbox_dead_letters: reg!(IntGauge::new(
                "qaqpa_mailbox_dead_letters",
                "Dead letters waiting for an operator (refreshed per scrape)"
            )),
            message_log: crate::observe::message_log::LogMetrics {
                written: reg!(IntCounter::new(
                    "qaqpa_message_log_records_total",
                    "Exchange records on disk in the message log (counted after their fsync)"
                )),
                dropped: reg!(IntCounter::new(
                    "qaqpa_message_log_dropped_total",
                    "Exchange records not written: refused while the log cannot write, or in a group whose write failed"
                )),
                failures: reg!(IntCounter::new(
                    "qaqpa_message_log_write_failures_total",
                    "Failed writes and fsyncs of the message log (each turns it unavailable until a probe succeeds)"
                )),
                available: reg!(IntGauge::new(
                    "qaqpa_message_log_available",
                    "1 while the message log can write; 0 while exchanges are refused with server.log_unavailable"
                )),
                head: reg!(IntGaugeVec::new(
                    Opts::new(
                        "qaqpa_message_log_head_batch",
                        "Number of the latest seal on disk, labelled with the seal line's SHA-256 (the published head)"
                    ),
                    &["hash"]
                )),
            },
            config_info: reg!(IntGaugeVec::new(
                Opts::new("qaqpa_config_info", "The configuration this node runs, by its SHA-256 (always 1)"),
                &["hash", "version", "source"]
            )),
            config_published: reg!(IntCounterVec::new(
                Opts::new(
                    "qaqpa_config_published_total",
                    "Published cluster configurations this node read, by result (applied, refused)"
                ),
                &["result"]
            )),
            replay_write_failures: reg!(IntCounter::new(
                "qaqpa_replay_guard_write_failures_total",
                "Failed writes of the replay guard's file (the exchange is refused with server.log_unavailable)"
            )),
            connections: reg!(IntGaugeVec::new(
                Opts::new("qaqpa_connections", "Open client connections by listener"),
                &["listener"]
            )),
            connections_refused: reg!(IntCounterVec::new(
                Opts::new(
                    "qaqpa_connections_refused_total",
                    "Client connections refused by a connection limit (listener or per client system)"
                ),
                &["listener", "reason"]
            )),
            upstream_healthy: reg!(IntGaugeVec::new(
                Opts::new(
                    "qaqpa_upstream_healthy",
                    "1 while a provider endpoint passes its active health check, 0 while it is ejected"
                ),
                &["service", "endpoint"]
            )),
            health_checks: reg!(IntCounterVec::new(
                Opts::new("qaqpa_health_checks_total", "Active health checks of provider endpoints by result"),
                &["service", "result"]
            )),
            requests: reg!(IntCounterVec::new(
                Opts::new(
                    "qaqpa_requests_total",
                    "Exchanges by client, service and result code (ok or the error code)"
                ),
                &["client", "service", "code"]
            )),
            duration: reg!(HistogramVec::new(
                HistogramOpts::new("qaqpa_request_duration_seconds", "Request in to response head out")
                    .buckets(latency_buckets.clone()),
                &["service"]
            )),
            upstream_duration: reg!(HistogramVec::new(
                HistogramOpts::new("qaqpa_upstream_duration_seconds", "Request out to the provider's response head")
                    .buckets(latency_buckets),
                &["service"]
            )),
            in_flight: reg!(IntGauge::new("qaqpa_in_flight_requests", "Exchanges in progress")),
            overload_limit: reg!(IntGauge::new(
                "qaqpa_overload_limit",
                "Current adaptive limit on exchanges in flight; over it requests are shed"
            )),
            request_bytes: reg!(IntCounterVec::new(
                Opts::new("qaqpa_request_bytes_total", "Request body bytes received"),
                &["service"]
            )),
            response_bytes: reg!(IntCounterVec::new(
                Opts::new("qaqpa_response_bytes_total", "Response body bytes sent"),
                &["service"]
            )),
            rejections: reg!(IntCounterVec::new(
                Opts::new(
                    "qaqpa_limiter_rejections_total",
                    "Requests refused by a limit (rate, quota, concurrency, overload)"
                ),
                &["client", "service", "reason"]
            )),
            quota_remaining: reg!(IntGaugeVec::new(
                Opts::new("qaqpa_quota_remaining", "Requests left in the current quota period, as of the last request"),
                &["client", "service", "period"]
            )),
            tls_failures: reg!(IntCounterVec::new(
                Opts::new("qaqpa_tls_handshake_failures_total", "Failed TLS handshakes by listener and reason"),
                &["listener", "reason"]
            )),
            reloads: reg!(IntCounterVec::new(
                Opts::new("qaqpa_config_reloads_total", "Configuration reloads by result"),
                &["result"]
            )),
            monitoring_dropped: reg!(IntCounter::new(
                "qaqpa_monitoring_records_dropped_total",
                "Monitoring records dropped because the writer fell behind"
            )),
            sla_availability: reg!(prometheus::GaugeVec::new(
                Opts::new(
                    "qaqpa_sla_availability_ratio",
                    "Share of requests without a server error over the SLA window"
                ),
                &["service"]
            )),
            sla_latency: reg!(prometheus::GaugeVec::new(
                Opts::new(
                    "qaqpa_sla_latency_ratio",
                    "Share of requests under the SLA latency threshold over the window"
                ),
                &["service"]
            )),
            sla_budget: reg!(prometheus::GaugeVec::new(
                Opts::new(
                    "qaqpa_sla_error_budget_remaining_ratio",
                    "Error budget left (1 = untouched, below 0 = overspent)"
                ),
                &["service", "objective"]
            )),
            event_loop_lag: reg!(Gauge::new(
                "qaqpa_event_loop_lag_seconds",
                "Scheduling delay measured by the overload probe"
            )),
            registry,
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a TLS handshake failed, as a fixed word for the metric label.
pub fn tls_failure_reason(e: &std::io::Error) -> &'static str {
    let text = e.to_string();
    let has = |s: &str| text.contains(s);
    if has("NoCertificatesPresented") || has("peer sent no certificates") {
        "no_client_certificate"
    } else if has("UnknownIssuer") || has("unknown issuer") {
        "unknown_ca"
    } else if has("Expired") || has("expired") || has("NotValidYet") {
        "certificate_expired"
    } else if has("Revoked") {
        "certificate_revoked"
    } else if has("BadCertificate") || has("certificate") {
        "bad_certificate"
    } else if has("eof") || has("reset") || has("closed") {
        "connection_closed"
    } else {
        "protocol"
    }
}
