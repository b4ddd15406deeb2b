//! What the operator reads back from the running configuration (docs/protocol.md): the
//! registered systems, services, access lists, limits and topics, as the gateway
//! enforces them right now (after the last reload), not as a file on disk says.
//! Pure functions of [`Config`]; the admin router serves them.
//!
//! Nothing here carries a secret: key and certificate paths stay out, and upstream
//! addresses lose any user-info.

use serde_json::{json, Value};

use crate::config::{Config, LimitsBackend, MailboxMode, ServiceKind, SignaturePolicy, UpstreamProtocol};

pub fn systems(config: &Config) -> Value {
    let list: Vec<Value> = config
        .systems
        .iter()
        .map(|system| {
            let id = system.id.as_str();
            let provides: Vec<&str> =
                config.services.iter().filter(|s| s.id.system() == system.id).map(|s| s.id.as_str()).collect();
            let may_call: Vec<&str> = config
                .services
                .iter()
                .filter(|s| config.access.get(&s.id).is_some_and(|a| a.allows(id)))
                .map(|s| s.id.as_str())
                .collect();
            let topics: Vec<&str> =
                config.topics.iter().filter(|t| t.id.system() == system.id).map(|t| t.id.as_str()).collect();
            json!({
                "id": id,
                "certificate_sha256": system.cert_sha256.as_ref().map(qaqpa_certs::identity::fingerprint_hex),
                "signs_on_behalf": system.signing.is_some(),
                "provides": provides,
                "may_call": may_call,
                "topics": topics,
            })
        })
        .collect();
    Value::Array(list)
}

pub fn services(config: &Config) -> Value {
    let list: Vec<Value> = config
        .services
        .iter()
        .map(|s| {
            let access: Vec<&str> =
                config.access.get(&s.id).map(|a| a.clients().iter().map(|c| c.as_str()).collect()).unwrap_or_default();
            json!({
                "id": s.id.as_str(),
                "provider": s.id.system().as_str(),
                "kind": match s.kind { ServiceKind::Rest => "rest", ServiceKind::Soap => "soap" },
                "upstreams": s.upstreams.iter().map(without_userinfo).collect::<Vec<_>>(),
                "protocol": match s.protocol {
                    UpstreamProtocol::Auto => "auto",
                    UpstreamProtocol::Http1 => "http1",
                    UpstreamProtocol::Http2 => "http2",
                },
                "connect_timeout_ms": s.connect_timeout.as_millis() as u64,
                "timeout_ms": s.timeout.as_millis() as u64,
                "idempotent": s.idempotent,
                "max_concurrency": s.max_concurrency,
                "limits_fail_open": s.limits_fail_open,
                "signature": match s.signature {
                    SignaturePolicy::None => "none",
                    SignaturePolicy::Verify => "verify",
                    SignaturePolicy::SignOnBehalf => "sign-on-behalf",
                },
                "sign_responses": s.sign_responses,
                "mailbox": match s.mailbox { MailboxMode::None => "none", MailboxMode::Pull => "pull", MailboxMode::Push => "push" },
                "ordered": s.ordered,
                "health_check": s.health_check.as_ref().map(|h| h.path.as_str()),
                "sla": s.sla.as_ref().map(|o| json!({
                    "availability": o.availability,
                    "latency_ms": o.latency.as_millis() as u64,
                    "latency_target": o.latency_target,
                    "window_hours": o.window.as_secs() / 3600,
                })),
                "access": access,
            })
        })
        .collect();
    Value::Array(list)
}

/// Every grant as a (client, service) pair, optionally only one client's or one
/// service's: "what may this system call" and "who may call this service".
pub fn access(config: &Config, client: Option<&str>, service: Option<&str>) -> Value {
    let mut grants = Vec::new();
    for s in &config.services {
        if service.is_some_and(|wanted| wanted != s.id.as_str()) {
            continue;
        }
        let Some(list) = config.access.get(&s.id) else { continue };
        for c in list.clients() {
            if client.is_none_or(|wanted| wanted == c.as_str()) {
                grants.push(json!({ "client": c.as_str(), "service": s.id.as_str() }));
            }
        }
    }
    Value::Array(grants)
}

pub fn limits(config: &Config) -> Value {
    let rules: Vec<Value> = config
        .limit_rules
        .iter()
        .map(|r| {
            json!({
                "client": r.client.as_ref().map(|c| c.as_str()),
                "service": r.service.as_ref().map(|s| s.as_str()),
                "rate": r.rate_window.map(|(requests, per_seconds)| json!({ "requests": requests, "per_seconds": per_seconds })),
                "quota_day": r.quota_day,
                "quota_month": r.quota_month,
            })
        })
        .collect();
    let o = &config.overload;
    json!({
        "backend": match config.storage.limits { LimitsBackend::Local => "local", LimitsBackend::Redis { .. } => "redis" },
        "rules": rules,
        "overload": {
            "enabled": o.enabled,
            "max_in_flight": o.max_in_flight,
            "min_in_flight": o.min_in_flight,
            "target_delay_ms": o.target_delay.as_millis() as u64,
        },
        "max_body_bytes": config.limits.max_body_bytes,
        "max_connections_per_client": config.limits.max_connections_per_client,
    })
}

pub fn topics(config: &Config) -> Value {
    let list: Vec<Value> = config
        .topics
        .iter()
        .map(|t| {
            json!({
                "id": t.id.as_str(),
                "owner": t.id.system().as_str(),
                "subscribers": t.subscribers.clients().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "retention_s": t.retention.as_secs(),
                "max_bytes": t.max_bytes,
                "push": t.push.iter().map(|(subscriber, service)| json!({
                    "subscriber": subscriber.as_str(),
                    "service": service.as_str(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(list)
}

/// An upstream address as an operator may see it: `user:password@` never leaves.
fn without_userinfo(uri: &http::Uri) -> String {
    let authority = uri.authority().map(|a| a.as_str().rsplit('@').next().unwrap_or_default()).unwrap_or_default();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
    format!("{}://{authority}{path}", uri.scheme_str().unwrap_or("http"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_user_info_is_dropped() {
        let uri: http::Uri = "https://user:secret@provider.example:8443/api?x=1".parse().unwrap();
        assert_eq!(without_userinfo(&uri), "https://provider.example:8443/api?x=1");
        let uri: http::Uri = "http://10.0.0.1:80".parse().unwrap();
        assert_eq!(without_userinfo(&uri), "http://10.0.0.1:80/");
    }
}
