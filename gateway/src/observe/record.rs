//! Stage: measure. Everything the gateway learns about one exchange, collected as
//! it happens and recorded once when the response has been sent: Prometheus
//! metrics, the SLA sample and the monitoring record.
//!
//! The message-log record is the exception: an answered exchange writes it at
//! [`ExchangeRecord::commit`], when the response head is known and before it goes
//! to the client, and waits until it is on disk (docs/operations.md#message-log: no answer off the
//! record). It holds what is known then (ids, parties, status, the request's
//! digest and signature); what comes later (response bytes, timings) is the
//! monitoring record's, not the log's. Refusals are logged at `finish` without
//! waiting: they promise nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qaqpa_adapters::ErrorCode;

use qaqpa_certs::msglog::{Entry, Fields};

use crate::config::{LogMode, SlaObjective};
use crate::observe::body_outcome::BodyOutcome;
use crate::observe::message_log::LogUnavailable;
use crate::observe::metrics::{Metrics, ServiceObs, UNKNOWN};
use crate::observe::monitoring::{now_us, Record};
use crate::observe::Telemetry;
use crate::runtime::{Client, Route};

pub struct ExchangeRecord {
    telemetry: Arc<Telemetry>,
    id: String,
    client: Option<Arc<Client>>,
    service: Option<(Arc<ServiceObs>, Option<SlaObjective>)>,
    started: Instant,
    request_in: i64,
    request_out: Option<i64>,
    response_in: Option<i64>,
    upstream: Option<Duration>,
    request_body: Option<Arc<BodyOutcome>>,
    status: u16,
    code: Option<ErrorCode>,
    head_out: Duration,
    /// What the exchange holds until it ends (the limit stage's admission: permits
    /// and the in-flight count); observation does not look inside.
    held: Option<Box<dyn Send + Sync>>,
    /// The request's signature value, for the message log.
    signature: Option<Vec<u8>>,
    /// The message-log record was committed (not to be appended again).
    logged: bool,
    /// The asynchronous message this exchange is a step of (send, reply, ack, push).
    step: Option<Step>,
    /// Further messages it acted on (each message a take handed out), each its own
    /// record, committed with the exchange's.
    steps: Vec<Step>,
    /// The service's `message_log` mode (sync until a route says otherwise).
    log_mode: LogMode,
}

/// One step of an asynchronous message's life, as the message log names it
/// (docs/operations.md#message-log: `qaqpa log export --id` finds every step).
#[derive(Debug, Clone)]
pub struct Step {
    /// `send`, `take`, `collect`, `push`, `reply`, `ack`, `dead_letter`, `replay`, `drop`.
    pub event: &'static str,
    /// The bus's id of the message.
    pub bus_id: uuid::Uuid,
    /// The sender's own id of the message, where known.
    pub message: Option<String>,
    /// The message's service, where it differs from the exchange's subject.
    pub service: Option<String>,
    pub attempt: Option<u32>,
}

impl Step {
    pub fn new(event: &'static str, bus_id: uuid::Uuid) -> Self {
        Self { event, bus_id, message: None, service: None, attempt: None }
    }

    /// The step of `envelope` (a delivered or dead-lettered message).
    pub fn of(event: &'static str, envelope: &qaqpa_mailbox::MessageMeta) -> Self {
        Self {
            event,
            bus_id: envelope.mid,
            message: Some(envelope.message_id.clone()),
            service: Some(envelope.service.clone()),
            attempt: (envelope.attempts > 0).then_some(envelope.attempts),
        }
    }

    /// Names the step in `fields` (`bus`: the bus id's text, from [`bus_text`]).
    fn mark<'a>(&'a self, fields: &mut Fields<'a>, bus: &'a str) {
        fields.event = Some(self.event);
        fields.bus_id = Some(bus);
        fields.message = self.message.as_deref().filter(|m| *m != fields.id);
        fields.attempt = self.attempt;
        if let Some(service) = &self.service {
            fields.service = service;
        }
    }

    /// A step that is no exchange of its own (a dead letter, an operator's
    /// replay): a record of its own, appended without waiting (nobody is answered).
    pub fn append_alone(self, telemetry: &crate::observe::Telemetry, client: &str, status: u16) {
        let Some(log) = &telemetry.message_log else { return };
        let mut text = [0u8; BUS_TEXT];
        let bus = bus_text(&self, &mut text);
        let mut fields = Fields {
            time: now_us(),
            node: &telemetry.node,
            id: self.message.as_deref().unwrap_or(bus),
            client,
            service: UNKNOWN,
            status,
            ..Fields::default()
        };
        self.mark(&mut fields, bus);
        log.append(Entry::encode(&fields));
    }
}

/// Length of a bus id's text (a hyphenated UUID).
const BUS_TEXT: usize = uuid::fmt::Hyphenated::LENGTH;

/// A step's bus id as text, on the caller's stack.
fn bus_text<'b>(step: &Step, buf: &'b mut [u8; BUS_TEXT]) -> &'b str {
    step.bus_id.hyphenated().encode_lower(buf)
}

impl ExchangeRecord {
    pub fn begin(telemetry: Arc<Telemetry>, id: String, started: Instant) -> Self {
        telemetry.metrics.in_flight.inc();
        Self {
            telemetry,
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
            held: None,
            signature: None,
            logged: false,
            step: None,
            steps: Vec::new(),
            log_mode: LogMode::Sync,
        }
    }

    /// The exchange is a step of an asynchronous message (its record names it).
    pub fn set_step(&mut self, step: Step) {
        self.step = Some(step);
    }

    /// The exchange acted on one more message (a take): one more record.
    pub fn add_step(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// The message id; empty until the face has read one (see [`Self::ensure_id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The message id the face read from the request's envelope.
    pub fn set_id(&mut self, id: String) {
        self.id = id;
    }

    /// The id to answer and record under: the request's, or a generated UUIDv7 when
    /// the request was refused before its id could be read (still an exchange:
    /// counted and recorded).
    pub fn ensure_id(&mut self) -> &str {
        if self.id.is_empty() {
            self.id = uuid::Uuid::now_v7().to_string();
        }
        &self.id
    }

    pub fn set_client(&mut self, client: &Arc<Client>) {
        self.client = Some(client.clone());
    }

    pub fn set_signature(&mut self, value: Vec<u8>) {
        self.signature = Some(value);
    }

    /// (client, message id) when this exchange's signature passed the replay guard
    /// (a signature is set only then): what to forget if the exchange is refused
    /// before anything was accepted.
    pub fn replay_claim(&self) -> Option<(&str, &str)> {
        let client = self.client.as_ref().filter(|_| self.signature.is_some())?;
        Some((client.id.as_str(), self.id.as_str()))
    }

    pub fn set_service(&mut self, route: &Route) {
        self.service = Some((route.observed.clone(), route.sla.clone()));
        self.log_mode = route.message_log;
    }

    /// Names what a gateway-level operation acted on (an async queue operation), in
    /// place of a service, outside SLA accounting.
    pub fn set_subject(&mut self, name: &str) {
        self.service = Some((Arc::new(ServiceObs::new(name)), None));
    }

    /// A request body the gateway read whole (async messages): its digest goes to the log.
    pub fn set_request_body(&mut self, body: &[u8]) {
        self.request_body = Some(crate::observe::body_outcome::BodyOutcome::complete(body));
    }

    /// SHA-512 of the request body the provider was sent, once it went through
    /// whole: a face that needs the same digest (X-Road's `requestHash`) takes it
    /// here instead of hashing the same bytes again.
    pub fn request_body_digest(&self) -> Option<[u8; 64]> {
        match self.request_body.as_ref()?.get() {
            crate::observe::body_outcome::Outcome::Complete(digest) => Some(digest),
            _ => None,
        }
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
    pub fn response_head(&mut self, status: u16, code: Option<ErrorCode>, hold: impl Send + Sync + 'static) {
        self.status = status;
        self.code = code;
        self.head_out = self.started.elapsed();
        self.held = Some(Box::new(hold));
    }

    /// The exchange's message-log fields as they stand (status from
    /// [`Self::response_head`]), marked with its step, handed to `encode`:
    /// borrowed from the exchange, the digest's base64 on the stack.
    fn with_fields<R>(&self, encode: impl FnOnce(Fields<'_>) -> R) -> R {
        use base64::Engine;
        let base64 = &base64::engine::general_purpose::STANDARD;
        // The digest exists once the request body went through whole; a provider
        // that answers before reading it all leaves it out (the record says so by
        // its absence, as for a body that was never complete).
        let mut digest_text = [0u8; 88];
        let body_sha512 = self.request_body_digest().and_then(|digest| {
            let n = base64.encode_slice(digest, &mut digest_text).ok()?;
            std::str::from_utf8(&digest_text[..n]).ok()
        });
        let signature = self.signature.as_ref().map(|s| base64.encode(s));
        let mut fields = Fields {
            time: self.request_in,
            node: &self.telemetry.node,
            id: &self.id,
            client: self.client.as_ref().map_or(UNKNOWN, |c| c.id.as_str()),
            service: self.service.as_ref().map_or(UNKNOWN, |(s, _)| &*s.name),
            status: self.status,
            code: self.code.map(|c| c.as_str()),
            body_sha512,
            signature: signature.as_deref(),
            ..Fields::default()
        };
        let mut text = [0u8; BUS_TEXT];
        if let Some(step) = &self.step {
            step.mark(&mut fields, bus_text(step, &mut text));
        }
        encode(fields)
    }

    /// The exchange's own record.
    fn log_record(&self) -> Entry {
        self.with_fields(|fields| Entry::encode(&fields))
    }

    /// The exchange's record, then one for each further message it acted on.
    fn log_records(&self) -> Vec<Entry> {
        self.with_fields(|own| {
            let mut entries = Vec::with_capacity(1 + self.steps.len());
            entries.push(Entry::encode(&own));
            for step in &self.steps {
                let mut text = [0u8; BUS_TEXT];
                let mut fields = Fields { body_sha512: None, signature: None, ..own };
                step.mark(&mut fields, bus_text(step, &mut text));
                entries.push(Entry::encode(&fields));
            }
            entries
        })
    }

    /// The request is about to leave for the provider. With `message_log = "sync"`
    /// a record of the forwarding (ids, parties, the request's signature; `event`
    /// `forward`, status 0) is on disk first, so a crash between forwarding and
    /// answering still shows what the provider was sent. `Err`: do not forward.
    pub async fn forwarding(&mut self) -> Result<(), LogUnavailable> {
        let telemetry = self.telemetry.clone();
        let (Some(log), LogMode::Sync) = (&telemetry.message_log, self.log_mode) else { return Ok(()) };
        let entry = self.with_fields(|fields| Entry::encode(&Fields { status: 0, event: Some("forward"), ..fields }));
        log.commit(entry).await
    }

    /// Writes the exchange's message-log record and waits until it is on disk;
    /// call after [`Self::response_head`], before the head goes to the client.
    /// `Err` means the answer must not go out (`server.log_unavailable`). With
    /// `message_log = "async"` the record is queued and not waited for.
    pub async fn commit(&mut self) -> Result<(), LogUnavailable> {
        let telemetry = self.telemetry.clone();
        let Some(log) = &telemetry.message_log else { return Ok(()) };
        if self.log_mode == LogMode::Async {
            for record in self.log_records() {
                log.append(record);
            }
            self.logged = true;
            return Ok(());
        }
        let result = log.commit_all(self.log_records()).await;
        // A record whose group failed was not written; the refusal that follows
        // is logged at `finish` like any other (if the log takes it by then).
        self.logged = result.is_ok();
        result
    }

    /// The response body has been sent (or abandoned): record everything once.
    pub fn finish(mut self, response_bytes: u64) {
        self.held.take();
        let t = &*self.telemetry;
        let m: &Metrics = &t.metrics;
        let client = self.client.as_ref().map_or(UNKNOWN, |c| c.id.as_str());
        let service = self.service.as_ref().map_or(UNKNOWN, |(s, _)| &*s.name);
        let request_bytes = self.request_body.as_ref().map_or(0, |b| b.received());
        let upstream = self.upstream.map(|up| up.as_secs_f64());
        match &self.service {
            Some((obs, _)) => {
                let series = obs.series(m);
                match (self.code, &self.client) {
                    (None, Some(c)) => series.count_ok(m, c.key, client, service),
                    (code, _) => {
                        m.requests.with_label_values(&[client, service, code.map_or("ok", |c| c.as_str())]).inc()
                    }
                }
                series.duration.observe(self.head_out.as_secs_f64());
                if let Some(up) = upstream {
                    series.upstream_duration.observe(up);
                }
                series.request_bytes.inc_by(request_bytes);
                series.response_bytes.inc_by(response_bytes);
            }
            None => {
                let code = self.code.map_or("ok", |c| c.as_str());
                m.requests.with_label_values(&[client, service, code]).inc();
                m.duration.with_label_values(&[service]).observe(self.head_out.as_secs_f64());
                if let Some(up) = upstream {
                    m.upstream_duration.with_label_values(&[service]).observe(up);
                }
                m.request_bytes.with_label_values(&[service]).inc_by(request_bytes);
                m.response_bytes.with_label_values(&[service]).inc_by(response_bytes);
            }
        }
        if let Some((obs, Some(sla))) = &self.service {
            let server_error = self.status >= 500;
            let slow = self.head_out > sla.latency;
            let keep = (sla.window.as_secs() / 3600).max(1) as i64 + 1;
            t.sla.record(&obs.name, self.request_in, server_error, slow, keep);
        }
        let signed = self.signature.is_some();
        if let (Some(log), false) = (&t.message_log, self.logged) {
            log.append(self.log_record());
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

impl Drop for ExchangeRecord {
    fn drop(&mut self) {
        self.telemetry.metrics.in_flight.dec();
    }
}
