//! `[[service]]`: upstreams, timeouts, breaker and health checks, SLA, signatures,
//! mailbox mode, contracts (WSDL, OpenAPI) and mediation faces; and what a service
//! demands of other sections (`[signatures]`, `[mailbox]`).

use std::collections::HashSet;

use qaqpa_routing::{RouteTable, ServiceId, SystemId};

use super::checker::Checker;
use super::files::{ContractOperation, FileKind, PemKind};
use super::raw::{RawBreaker, RawHealthCheck, RawService, RawSla};
use super::*;

/// The services, and their route table for the sections that name services.
pub(super) fn check(
    c: &mut Checker,
    raw: &[RawService],
    systems: &HashSet<SystemId>,
    signatures: Option<&Signatures>,
    mailbox: &MailboxConfig,
) -> (Vec<ServiceConfig>, RouteTable<()>) {
    let mut services = Vec::new();
    let mut table = RouteTable::builder();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("service[{i}]");
        let Some(service) = service(c, s, &key, systems) else {
            continue;
        };
        if (service.signature != SignaturePolicy::None || service.sign_responses) && signatures.is_none() {
            let span = s.signature.as_ref().map_or(s.id.span(), |v| v.span());
            c.error(span, format!("{key}.signature"), "needs a [signatures] table (trust anchors)");
        }
        if service.sign_responses && signatures.is_some_and(|s| s.gateway_key.is_none()) {
            c.error(s.id.span(), format!("{key}.sign_responses"), "needs signatures.cert and signatures.key");
        }
        // A push must end before its lease does, or the message is handed out twice.
        if service.mailbox == MailboxMode::Push && service.timeout >= mailbox.visibility_timeout {
            c.error(
                s.timeout.as_ref().map_or(s.id.span(), |t| t.span()),
                format!("{key}.timeout"),
                format!(
                    "a push service must time out before mailbox.visibility_timeout ({:?})",
                    mailbox.visibility_timeout
                ),
            );
        }
        // A signed exchange is evidence: its record is never left behind the answer.
        if service.message_log == LogMode::Async
            && (service.signature != SignaturePolicy::None || service.sign_responses)
        {
            c.error(
                s.message_log.as_ref().map_or(s.id.span(), |v| v.span()),
                format!("{key}.message_log"),
                "a signed service keeps message_log = \"sync\" (its records are evidence)",
            );
        }
        if service.ordered && service.mailbox == MailboxMode::None {
            c.error(
                s.id.span(),
                format!("{key}.ordered"),
                "orders asynchronous requests: needs mailbox = \"pull\" or \"push\"",
            );
        }
        if let Err(e) = table.insert(&service.id, ()) {
            c.error(s.id.span(), format!("{key}.id"), e.to_string());
            continue;
        }
        services.push(service);
    }
    (services, table.build())
}

fn service(c: &mut Checker, raw: &RawService, key: &str, systems: &HashSet<SystemId>) -> Option<ServiceConfig> {
    let id = ServiceId::parse(raw.id.get_ref())
        .map_err(|e| c.error(raw.id.span(), format!("{key}.id"), format!("bad service id {:?}: {e}", raw.id.get_ref())))
        .ok();
    if let Some(id) = id.as_ref().filter(|id| !systems.contains(&id.system())) {
        c.error(
            raw.id.span(),
            format!("{key}.id"),
            format!("providing system {} is not registered in a [[system]] table", id.system()),
        );
    }
    let kind = match raw.kind.get_ref().as_str() {
        "rest" => Some(ServiceKind::Rest),
        "soap" => Some(ServiceKind::Soap),
        other => {
            c.error(
                raw.kind.span(),
                format!("{key}.kind"),
                format!("unknown kind {other:?}; use \"rest\" or \"soap\""),
            );
            None
        }
    };
    let (upstreams, upstream_ca) = upstreams(c, raw, key);
    let upstream_client_cert = match (&raw.upstream_client_cert, &raw.upstream_client_key) {
        (Some(cert), Some(k)) => Some((
            c.pem_file(cert, format!("{key}.upstream_client_cert"), PemKind::Certificates),
            c.pem_file(k, format!("{key}.upstream_client_key"), PemKind::PrivateKey),
        )),
        (None, None) => None,
        (Some(v), None) | (None, Some(v)) => {
            let message = "upstream_client_cert and upstream_client_key go together";
            c.error(v.span(), format!("{key}.upstream_client_cert"), message);
            None
        }
    };
    let protocol = c.choice(
        raw.upstream_protocol.as_ref(),
        &format!("{key}.upstream_protocol"),
        &[("auto", UpstreamProtocol::Auto), ("h1", UpstreamProtocol::Http1), ("h2", UpstreamProtocol::Http2)],
        defaults::UPSTREAM_PROTOCOL,
    );
    let connect_timeout =
        c.duration(raw.connect_timeout.as_ref(), defaults::CONNECT_TIMEOUT, &format!("{key}.connect_timeout"));
    let timeout = c.duration(raw.timeout.as_ref(), defaults::TIMEOUT, &format!("{key}.timeout"));
    let limits_fail_open = c.choice(
        raw.limits_fail.as_ref(),
        &format!("{key}.limits_fail"),
        &[("open", true), ("closed", false)],
        defaults::LIMITS_FAIL_OPEN,
    );
    if let Some(v) = raw.max_concurrency.as_ref().filter(|v| *v.get_ref() == 0) {
        c.error(v.span(), format!("{key}.max_concurrency"), "must be at least 1");
    }
    let signature = c.choice(
        raw.signature.as_ref(),
        &format!("{key}.signature"),
        &[
            ("none", SignaturePolicy::None),
            ("verify", SignaturePolicy::Verify),
            ("sign-on-behalf", SignaturePolicy::SignOnBehalf),
        ],
        defaults::SIGNATURE,
    );
    let mediation = contracts(c, raw, key, id.as_ref());
    Some(ServiceConfig {
        id: id?,
        kind: kind?,
        upstreams,
        upstream_ca,
        upstream_client_cert,
        protocol,
        connect_timeout,
        timeout,
        max_concurrency: raw.max_concurrency.as_ref().map(|c| *c.get_ref()),
        breaker: raw.breaker.as_ref().map_or_else(defaults::breaker, |b| breaker(c, b, &format!("{key}.breaker"))),
        health_check: raw.health_check.as_ref().map(|h| health_check(c, h, &format!("{key}.health_check"))),
        signature,
        sign_responses: raw.sign_responses,
        mailbox: c.choice(
            raw.mailbox.as_ref(),
            &format!("{key}.mailbox"),
            &[("none", MailboxMode::None), ("pull", MailboxMode::Pull), ("push", MailboxMode::Push)],
            defaults::MAILBOX_MODE,
        ),
        ordered: raw.ordered,
        message_log: c.choice(
            raw.message_log.as_ref(),
            &format!("{key}.message_log"),
            &[("sync", LogMode::Sync), ("async", LogMode::Async)],
            defaults::MESSAGE_LOG,
        ),
        idempotent: raw.idempotent,
        // Filled in by the files pass.
        wsdl: None,
        openapi: None,
        mediation: mediation.map(std::sync::Arc::new),
        limits_fail_open,
        sla: raw.sla.as_ref().and_then(|sla| sla_objective(c, sla, &format!("{key}.sla"))),
    })
}

/// The upstream URLs, and the CA bundle that https ones need.
fn upstreams(c: &mut Checker, raw: &RawService, key: &str) -> (Vec<http::Uri>, Option<std::path::PathBuf>) {
    let mut upstreams = Vec::new();
    let mut needs_ca = false;
    for url in raw.upstream.get_ref() {
        match parse_upstream(url.get_ref()) {
            Ok(uri) => {
                needs_ca |= uri.scheme_str() == Some("https");
                upstreams.push(uri);
            }
            Err(message) => c.error(url.span(), format!("{key}.upstream"), message),
        }
    }
    if raw.upstream.get_ref().is_empty() {
        c.error(raw.upstream.span(), format!("{key}.upstream"), "must list at least one URL");
    }
    let upstream_ca =
        raw.upstream_ca.as_ref().map(|ca| c.pem_file(ca, format!("{key}.upstream_ca"), PemKind::Certificates));
    if needs_ca && upstream_ca.is_none() {
        c.error(
            raw.upstream.span(),
            format!("{key}.upstream_ca"),
            "missing: an https upstream needs the CA bundle to verify it",
        );
    }
    (upstreams, upstream_ca)
}

/// The provider's contracts (WSDL, OpenAPI), named for the files pass with the
/// operations of the service's mediation face to find in them; and that face.
fn contracts(c: &mut Checker, raw: &RawService, key: &str, id: Option<&ServiceId>) -> Option<Mediation> {
    let kind = raw.kind.get_ref().as_str();
    let (mut wsdl_operations, mut openapi_operations) = (Vec::new(), Vec::new());
    let mediation = match (kind, &raw.soap, &raw.rest) {
        (_, Some(_), Some(r)) => {
            c.error(r.namespace.span(), format!("{key}.rest"), "a service has either a soap or a rest face, not both");
            None
        }
        ("rest", Some(m), None) => Some(face(c, m, &format!("{key}.soap"), &mut openapi_operations)),
        ("soap", None, Some(m)) => Some(face(c, m, &format!("{key}.rest"), &mut wsdl_operations)),
        (_, Some(m), None) => {
            c.error(m.namespace.span(), format!("{key}.soap"), "a SOAP face belongs to a kind = \"rest\" service");
            None
        }
        (_, None, Some(m)) => {
            c.error(m.namespace.span(), format!("{key}.rest"), "a REST face belongs to a kind = \"soap\" service");
            None
        }
        _ => None,
    };
    if let Some(o) = &raw.openapi {
        let operations = openapi_operations;
        c.file(o, format!("{key}.openapi"), FileKind::OpenApi { service: id.cloned(), operations });
        if kind != "rest" {
            let message = "an OpenAPI document belongs to a kind = \"rest\" service";
            c.error(raw.kind.span(), format!("{key}.openapi"), message);
        }
    }
    if let Some(w) = &raw.wsdl {
        let operations = wsdl_operations;
        c.file(w, format!("{key}.wsdl"), FileKind::Wsdl { service: id.cloned(), operations });
        if kind != "soap" {
            c.error(raw.kind.span(), format!("{key}.wsdl"), "a WSDL belongs to a kind = \"soap\" service");
        }
    }
    mediation
}

fn face(
    c: &mut Checker,
    raw: &super::raw::RawMediation,
    key: &str,
    contract: &mut Vec<ContractOperation>,
) -> Mediation {
    let (mediation, operations) = super::mediation::check(c, raw, key);
    *contract = operations;
    mediation
}

fn breaker(c: &mut Checker, raw: &RawBreaker, key: &str) -> qaqpa_routing::health::BreakerConfig {
    let mut breaker = defaults::breaker();
    if let Some(f) = &raw.failures {
        if *f.get_ref() == 0 {
            c.error(f.span(), format!("{key}.failures"), "must be at least 1");
        }
        breaker.failures_to_open = (*f.get_ref()).max(1);
    }
    let default_open_for = Duration::from_nanos(breaker.open_for_ns);
    breaker.open_for_ns =
        c.duration(raw.open_for.as_ref(), default_open_for, &format!("{key}.open_for")).as_nanos() as u64;
    breaker
}

fn health_check(c: &mut Checker, raw: &RawHealthCheck, key: &str) -> HealthCheck {
    let path = raw.path.get_ref();
    if !path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()) {
        c.error(raw.path.span(), format!("{key}.path"), "must be an absolute path like \"/healthz\"");
    }
    let interval = c.duration(raw.interval.as_ref(), defaults::HEALTH_CHECK_INTERVAL, &format!("{key}.interval"));
    let timeout = c.duration(raw.timeout.as_ref(), defaults::HEALTH_CHECK_TIMEOUT, &format!("{key}.timeout"));
    if timeout > interval {
        let span = raw.timeout.as_ref().map_or(raw.path.span(), |t| t.span());
        c.error(span, format!("{key}.timeout"), "must not be longer than the interval");
    }
    let thresholds = qaqpa_routing::health::ProbeThresholds {
        unhealthy: c.positive(raw.unhealthy.as_ref(), defaults::HEALTH_CHECK_UNHEALTHY, &format!("{key}.unhealthy")),
        healthy: c.positive(raw.healthy.as_ref(), defaults::HEALTH_CHECK_HEALTHY, &format!("{key}.healthy")),
    };
    HealthCheck { path: path.clone(), interval, timeout, thresholds }
}

fn percent(c: &mut Checker, value: &toml::Spanned<f64>, key: &str) -> Option<f64> {
    let v = *value.get_ref();
    if v > 0.0 && v < 100.0 {
        Some(v / 100.0)
    } else {
        c.error(value.span(), key, "a percentage above 0 and below 100, e.g. 99.9");
        None
    }
}

fn sla_objective(c: &mut Checker, raw: &RawSla, key: &str) -> Option<SlaObjective> {
    let availability = percent(c, &raw.availability, &format!("{key}.availability"));
    let latency_target = percent(c, &raw.latency_target, &format!("{key}.latency_target"));
    let latency = c.duration_of(&raw.latency, &format!("{key}.latency"));
    let window = c.duration(raw.window.as_ref(), defaults::SLA_WINDOW, &format!("{key}.window"));
    Some(SlaObjective { availability: availability?, latency: latency?, latency_target: latency_target?, window })
}

fn parse_upstream(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{url:?} must not have a query; the client's query is forwarded"));
    }
    Ok(uri)
}
