//! Stage: measure. Everything the gateway learns about one exchange, collected as
//! it happens and recorded once when the response has been sent: Prometheus
//! metrics, the SLA sample and the monitoring record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qaqpa_adapters::ErrorCode;

use crate::config::SlaObjective;
use crate::delivery::body::BodyOutcome;
use crate::exchange::limits::stage::Admission;
use crate::gateway::Gateway;
use crate::observe::metrics::{Metrics, UNKNOWN};
use crate::observe::monitoring::{now_us, Monitoring, Record};
use crate::observe::sla::SlaTracker;
use crate::runtime::{Client, Route};

/// The gateway's measuring instruments; they outlive configuration reloads.
pub struct Telemetry {
    pub metrics: Metrics,
    pub monitoring: Monitoring,
    pub sla: SlaTracker,
    pub node: String,
}

pub struct Exchange {
    gateway: Arc<Gateway>,
    id: String,
    client: Option<Arc<Client>>,
    service: Option<(String, Option<SlaObjective>)>,
    started: Instant,
    request_in: i64,
    request_out: Option<i64>,
    response_in: Option<i64>,
    upstream: Option<Duration>,
    request_body: Option<Arc<BodyOutcome>>,
    status: u16,
    code: Option<ErrorCode>,
    head_out: Duration,
    admission: Option<Admission>,
    /// Whether this value owns the in-flight count (a `take`n-from shell does not).
    counted: bool,
    /// The request's signature value, for the message log.
    signature: Option<Vec<u8>>,
}

impl Exchange {
    pub fn begin(gateway: Arc<Gateway>, id: String, started: Instant) -> Self {
        gateway.telemetry.metrics.in_flight.inc();
        Self {
            gateway,
            id,
            client: None,
            service: None,
            started,
            request_in: now_us(),
            request_out: None,
            response_in: None,
            upstream: None,
            request_body: None,
            status: 0,
            code: None,
            head_out: Duration::ZERO,
            admission: None,
            counted: true,
            signature: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn set_client(&mut self, client: &Arc<Client>) {
        self.client = Some(client.clone());
    }

    pub fn set_signature(&mut self, value: Vec<u8>) {
        self.signature = Some(value);
    }

    pub fn set_service(&mut self, route: &Route) {
        self.service = Some((route.id.to_string(), route.sla.clone()));
    }

    /// Names what a gateway-level operation acted on (an async queue operation), in
    /// place of a service, outside SLA accounting.
    pub fn set_subject(&mut self, name: &str) {
        self.service = Some((name.to_owned(), None));
    }

    /// A request body the gateway read whole (async messages): its digest goes to the log.
    pub fn set_request_body(&mut self, body: &[u8]) {
        self.request_body = Some(crate::delivery::body::BodyOutcome::complete(body));
    }

    /// The request is leaving for the provider.
    pub fn request_out(&mut self, body: Arc<BodyOutcome>) -> Instant {
        self.request_out = Some(now_us());
        self.request_body = Some(body);
        Instant::now()
    }

    /// The provider's response head arrived.
    pub fn response_in(&mut self, sent: Instant) {
        self.response_in = Some(now_us());
        self.upstream = Some(sent.elapsed());
    }

    /// The response head is going back to the client; holds the admission (permits,
    /// in-flight count) until [`finish`](Self::finish).
    pub fn response_head(&mut self, status: u16, code: Option<ErrorCode>, admission: Admission) {
        self.status = status;
        self.code = code;
        self.head_out = self.started.elapsed();
        self.admission = Some(admission);
    }

    /// Moves the exchange out of a `&mut` (for paths that finish it early).
    pub fn take(&mut self) -> Exchange {
        Exchange {
            gateway: self.gateway.clone(),
            id: std::mem::take(&mut self.id),
            client: self.client.take(),
            service: self.service.take(),
            started: self.started,
            request_in: self.request_in,
            request_out: self.request_out.take(),
            response_in: self.response_in.take(),
            upstream: self.upstream.take(),
            request_body: self.request_body.take(),
            status: self.status,
            code: self.code,
            head_out: self.head_out,
            admission: self.admission.take(),
            counted: std::mem::replace(&mut self.counted, false),
            signature: self.signature.take(),
        }
    }

    /// The response body has been sent (or abandoned): record everything once.
    pub fn finish(mut self, response_bytes: u64) {
        self.admission.take();
        let t = &self.gateway.telemetry;
        let m: &Metrics = &t.metrics;
        let client = self.client.as_ref().map_or(UNKNOWN, |c| c.id.as_str());
        let service = self.service.as_ref().map_or(UNKNOWN, |(s, _)| s.as_str());
        let code = self.code.map_or("ok", |c| c.as_str());
        let request_bytes = self.request_body.as_ref().map_or(0, |b| b.received());
        m.requests.with_label_values(&[client, service, code]).inc();
        m.duration.with_label_values(&[service]).observe(self.head_out.as_secs_f64());
        if let Some(up) = self.upstream {
            m.upstream_duration.with_label_values(&[service]).observe(up.as_secs_f64());
        }
        m.request_bytes.with_label_values(&[service]).inc_by(request_bytes);
        m.response_bytes.with_label_values(&[service]).inc_by(response_bytes);
        if let Some((id, Some(sla))) = &self.service {
            let server_error = self.status >= 500;
            let slow = self.head_out > sla.latency;
            let keep = (sla.window.as_secs() / 3600).max(1) as i64 + 1;
            t.sla.record(id.as_str(), self.request_in, server_error, slow, keep);
        }
        let signed = self.signature.is_some();
        if let Some(log) = &self.gateway.message_log {
            use base64::Engine;
            let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
            let body_sha512 = match self.request_body.as_ref().map(|b| b.get()) {
                Some(crate::delivery::body::Outcome::Complete(digest)) => Some(b64(&digest)),
                _ => None,
            };
            log.append(qaqpa_certs::msglog::Record {
                seq: 0,
                prev: String::new(),
                time: self.request_in,
                node: t.node.clone(),
                id: self.id.clone(),
                client: client.to_owned(),
                service: service.to_owned(),
                status: self.status,
                code: self.code.map(|c| c.as_str().to_owned()),
                body_sha512,
                signature: self.signature.take().map(|s| b64(&s)),
            });
        }
        let record = Record {
            id: std::mem::take(&mut self.id),
            client: client.to_owned(),
            service: service.to_owned(),
            node: t.node.clone(),
            request_in: self.request_in,
            request_out: self.request_out,
            response_in: self.response_in,
            response_out: now_us(),
            request_bytes,
            response_bytes,
            status: self.status,
            code: self.code.map(|c| c.as_str().to_owned()),
            duration_us: self.head_out.as_micros() as u64,
            signed,
        };
        if !t.monitoring.record(record) {
            m.monitoring_dropped.inc();
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.counted {
            self.gateway.telemetry.metrics.in_flight.dec();
        }
    }
}
