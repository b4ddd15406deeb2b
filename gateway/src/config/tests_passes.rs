//! The two passes apart: the text pass reads nothing, the files pass reads what the
//! config names and reports it with key and line; and every default is from
//! `defaults`.

use std::path::Path;
use std::time::Duration;

use super::tests::{assert_error, line_of, pki, EXAMPLE};
use super::*;

/// A config naming a file of every kind, none of which exists.
const NAMES_MISSING_FILES: &str = r#"
[[system]]
id = "KZ/GOV/000000000001/register"
signing_cert = "pki/missing-signing.crt"
signing_key = "pki/missing-signing.key"

[[listener]]
address = "127.0.0.1:8443"
tls = { cert = "pki/missing.crt", key = "pki/missing.key", client_ca = "pki/missing-ca.crt", crls = ["pki/missing.crl"] }

[[service]]
id = "KZ/GOV/000000000001/register/person/v1"
kind = "rest"
upstream = ["https://127.0.0.1:1/"]
upstream_ca = "pki/missing-upstream-ca.crt"
openapi = "contracts/missing.json"

[[service]]
id = "KZ/GOV/000000000001/register/tax/v1"
kind = "soap"
upstream = ["http://127.0.0.1:2/"]
wsdl = "contracts/missing.wsdl"

[signatures]
trust_anchors = "pki/missing-anchors.crt"
"#;

#[test]
fn the_text_pass_reads_no_file_and_the_files_pass_names_each_missing_one() {
    // Relative paths are resolved from a directory that does not exist: the text pass
    // cannot have read anything there, and succeeds.
    let base = Path::new("/nonexistent/qaqpa-config");
    let mut c = parse(NAMES_MISSING_FILES, base, &Environment::default()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.listeners[0].tls.as_ref().unwrap().cert, base.join("pki/missing.crt"));
    assert!(c.services[0].openapi.is_none() && c.services[1].wsdl.is_none(), "contracts are the files pass's");

    let e = check_files(&mut c).expect_err("the files do not exist");
    let src = NAMES_MISSING_FILES;
    for (needle, key) in [
        ("missing-signing.crt", "system[0].signing_cert"),
        ("missing-signing.key", "system[0].signing_key"),
        ("missing.crt", "listener[0].tls.cert"),
        ("missing.key", "listener[0].tls.key"),
        ("missing-ca.crt", "listener[0].tls.client_ca"),
        ("missing.crl", "listener[0].tls.crls[0]"),
        ("missing-upstream-ca.crt", "service[0].upstream_ca"),
        ("missing.json", "service[0].openapi"),
        ("missing.wsdl", "service[1].wsdl"),
        ("missing-anchors.crt", "signatures.trust_anchors"),
    ] {
        assert_error(&e, line_of(src, needle), key, "cannot read");
    }
    assert_eq!(e.len(), 10, "one error per file: {e:#?}");
    let lines: Vec<_> = e.iter().map(|e| e.line.unwrap_or(0)).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");

    // Both passes at once report the text's errors and the files' together.
    let both = NAMES_MISSING_FILES.replace("kind = \"soap\"", "kind = \"corba\"");
    let e = validate(&both, base, &Environment::default()).expect_err("refused");
    assert_error(&e, line_of(&both, "corba"), "service[1].kind", "unknown kind");
    assert_error(&e, line_of(&both, "missing-anchors.crt"), "signatures.trust_anchors", "cannot read");
}

#[test]
fn the_files_pass_reads_the_contracts_and_checks_the_faces_against_them() {
    let dir = pki();
    let with_contracts = EXAMPLE.replace("# openapi = ", "openapi = ").replace("# wsdl = ", "wsdl = ");
    // No contracts written yet: the text pass does not notice.
    let mut c = parse(&with_contracts, dir.path(), &Environment::default()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.services[0].openapi.is_none() && c.services[1].wsdl.is_none());
    assert!(check_files(&mut c).is_err());

    std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
    std::fs::write(dir.path().join("contracts/legacy-tax.wsdl"), crate::demo::LEGACY_TAX_WSDL).unwrap();
    std::fs::write(
        dir.path().join("contracts/person.openapi.json"),
        r#"{"openapi": "3.1.0", "paths": {"/{iin}": {"get": {}}}}"#,
    )
    .unwrap();
    check_files(&mut c).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.services[0].openapi.is_some() && c.services[1].wsdl.is_some());

    let src = with_contracts.replace("name = \"GetDebt\"", "name = \"GetDebts\"");
    let mut c = parse(&src, dir.path(), &Environment::default()).unwrap_or_else(|e| panic!("{e:#?}"));
    let e = check_files(&mut c).expect_err("the WSDL lacks the operation");
    assert_error(&e, line_of(&src, "GetDebts"), "service[1].rest.operation[0].name", "the WSDL has no operation");
}

#[test]
fn the_node_name_from_hostname_is_the_callers() {
    let src = "[gateway]\nnode = \"$HOSTNAME\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\ninsecure = true\n";
    let c = parse(src, Path::new("."), &Environment { hostname: "pod-7".into() }).unwrap();
    assert_eq!(c.node, "pod-7");
    let e = parse(src, Path::new("."), &Environment::default()).expect_err("no host name");
    assert_error(&e, 2, "gateway.node", "[A-Za-z0-9_-]");
}

#[test]
fn every_default_comes_from_the_defaults_module() {
    let src = r#"
[[system]]
id = "KZ/GOV/000000000001/register"

[[listener]]
address = "127.0.0.1:0"
insecure = true

[[service]]
id = "KZ/GOV/000000000001/register/person/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
breaker = {}
health_check = { path = "/healthz" }
sla = { availability = 99.0, latency = "1s", latency_target = 95.0 }

[[topic]]
id = "KZ/GOV/000000000001/register/changes"

[[limit]]
service = "KZ/GOV/000000000001/register/person/v1"
rate = "120/min"

[signatures]
trust_anchors = "pki/ca.crt"

[storage]
limits_backend = "redis"
redis_url = "redis://127.0.0.1"

[mailbox]
backend = "nats"
"#;
    let base = Path::new("/nonexistent/qaqpa-config");
    let c = parse(src, base, &Environment::default()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.node, defaults::NODE);
    let l = &c.listeners[0];
    assert_eq!((l.name.clone(), l.http1, l.http2, l.http3), (defaults::listener_name(0), true, true, false));
    assert_eq!((l.http1, l.http2, l.http3), defaults::HTTP_VERSIONS);
    assert_eq!(l.max_connections, defaults::MAX_CONNECTIONS);
    let limits = &c.limits;
    assert_eq!(
        (limits.max_header_bytes, limits.max_headers, limits.max_body_bytes),
        (defaults::MAX_HEADER_BYTES, defaults::MAX_HEADERS, defaults::MAX_BODY_BYTES)
    );
    assert_eq!(
        (limits.header_read_timeout, limits.drain_timeout, limits.body_idle_timeout),
        (defaults::HEADER_READ_TIMEOUT, defaults::DRAIN_TIMEOUT, defaults::BODY_IDLE_TIMEOUT)
    );
    assert_eq!(
        (limits.max_connections_per_client, limits.max_concurrent_streams, limits.max_pending_resets),
        (defaults::MAX_CONNECTIONS_PER_CLIENT, defaults::MAX_CONCURRENT_STREAMS, defaults::MAX_PENDING_RESETS)
    );
    let s = &c.services[0];
    assert_eq!(
        (s.protocol, s.signature, s.mailbox),
        (defaults::UPSTREAM_PROTOCOL, defaults::SIGNATURE, defaults::MAILBOX_MODE)
    );
    assert_eq!((s.connect_timeout, s.timeout), (defaults::CONNECT_TIMEOUT, defaults::TIMEOUT));
    assert_eq!(s.limits_fail_open, defaults::LIMITS_FAIL_OPEN);
    assert_eq!(s.breaker, defaults::breaker());
    let check = s.health_check.as_ref().unwrap();
    assert_eq!((check.interval, check.timeout), (defaults::HEALTH_CHECK_INTERVAL, defaults::HEALTH_CHECK_TIMEOUT));
    assert_eq!(
        (check.thresholds.unhealthy, check.thresholds.healthy),
        (defaults::HEALTH_CHECK_UNHEALTHY, defaults::HEALTH_CHECK_HEALTHY)
    );
    assert_eq!(s.sla.as_ref().unwrap().window, defaults::SLA_WINDOW);
    assert_eq!(c.limit_rules[0].rate.unwrap().burst, defaults::burst(120, 60));
    assert_eq!((c.topics[0].retention, c.topics[0].max_bytes), (defaults::TOPIC_RETENTION, defaults::TOPIC_BYTES));
    let sig = c.signatures.as_ref().unwrap();
    assert_eq!((sig.max_clock_skew, sig.replay_window), (defaults::MAX_CLOCK_SKEW, defaults::REPLAY_WINDOW));
    assert_eq!((sig.replay_capacity, sig.max_body_bytes), (defaults::REPLAY_CAPACITY, defaults::SIGNED_BODY_BYTES));
    assert_eq!(
        c.overload,
        Overload {
            enabled: defaults::OVERLOAD_ENABLED,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            min_in_flight: defaults::MIN_IN_FLIGHT,
            target_delay: defaults::TARGET_DELAY,
        }
    );
    assert_eq!(c.storage.data_dir, base.join(defaults::DATA_DIR));
    assert_eq!(
        c.storage.limits,
        LimitsBackend::Redis {
            url: "redis://127.0.0.1".into(),
            timeout: defaults::REDIS_TIMEOUT,
            prefix: defaults::REDIS_PREFIX.into()
        }
    );
    assert_eq!(c.monitoring, Monitoring { retention: defaults::MONITORING_RETENTION, ring: defaults::MONITORING_RING });
    assert_eq!(c.xml.max_message_bytes, defaults::XML_MESSAGE_BYTES);
    assert_eq!(c.xml.limits.max_depth, defaults::xml_limits().max_depth);
    let m = &c.mailbox;
    assert_eq!(
        m.backend,
        MailboxBackend::Nats {
            url: defaults::NATS_URL.into(),
            prefix: defaults::NATS_PREFIX.into(),
            replicas: defaults::NATS_REPLICAS
        }
    );
    assert_eq!((m.visibility_timeout, m.max_attempts), (defaults::VISIBILITY_TIMEOUT, defaults::MAX_ATTEMPTS));
    assert_eq!((m.backoff.base, m.backoff.max), (defaults::RETRY_BASE, defaults::RETRY_MAX));
    assert_eq!((m.dedupe_window, m.max_wait), (defaults::DEDUPE_WINDOW, defaults::MAX_WAIT));
    assert_eq!(
        (m.max_message_bytes, m.max_queue_depth, m.push_concurrency),
        (defaults::MAILBOX_MESSAGE_BYTES, defaults::MAX_QUEUE_DEPTH, defaults::PUSH_CONCURRENCY)
    );
    // The values the example file documents.
    assert_eq!(defaults::MAX_CONNECTIONS, 20_000);
    assert_eq!(defaults::TIMEOUT, Duration::from_secs(30));
}
