use std::path::Path;

use super::*;

pub(super) const EXAMPLE: &str = include_str!("../../../deploy/qaqpa.example.toml");

pub(super) fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let systems = [SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap()];
    crate::cli::pki_files::init(&dir.path().join("pki"), &systems, &["localhost".into()], false).unwrap();
    dir
}

/// The text and files passes, as `load` runs them.
fn both_passes(source: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
    validate(source, base, &Environment { hostname: "test-host".into() })
}

fn errors(source: &str, base: &Path) -> Vec<ConfigError> {
    both_passes(source, base).expect_err("config should be refused")
}

/// Asserts one error names `key` on `line` and says `fragment`.
pub(super) fn assert_error(errors: &[ConfigError], line: usize, key: &str, fragment: &str) {
    assert!(
        errors.iter().any(|e| e.line == Some(line) && e.key == key && e.message.contains(fragment)),
        "no error at line {line} for {key} containing {fragment:?} in {errors:#?}"
    );
}

pub(super) fn line_of(source: &str, needle: &str) -> usize {
    let at = source.find(needle).unwrap_or_else(|| panic!("{needle:?} not in source"));
    source[..at].matches('\n').count() + 1
}

#[test]
fn the_documented_example_is_valid() {
    let dir = pki();
    let c = both_passes(EXAMPLE, dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.node, "node-1");
    assert_eq!(c.listeners.len(), 1);
    assert!(c.listeners[0].http1 && c.listeners[0].http2 && c.listeners[0].http3);
    assert_eq!(c.listeners[0].max_connections, 20_000);
    assert_eq!(c.limits.body_idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(c.limits.max_connections_per_client, 2_000);
    assert_eq!((c.limits.max_concurrent_streams, c.limits.max_pending_resets), (256, 20));
    let signatures = c.signatures.as_ref().expect("the example has a [signatures] table");
    assert_eq!((signatures.max_clock_skew.as_secs(), signatures.replay_window.as_secs()), (300, 86_400));
    assert!(signatures.gateway_key.is_some());
    assert_eq!(c.services[0].signature, SignaturePolicy::Verify);
    assert!(c.services[0].sign_responses);
    let check = c.services[0].health_check.as_ref().expect("the example has a health check");
    assert_eq!(
        (check.path.as_str(), check.interval, check.thresholds.unhealthy),
        ("/healthz", std::time::Duration::from_secs(5), 2)
    );
    assert!(c.admin.as_ref().unwrap().tls.is_some());
    assert_eq!(c.systems.len(), 3);
    assert_eq!(c.services.len(), 2);
    assert_eq!(c.services[1].upstreams.len(), 2);
    assert_eq!(c.services[1].timeout, Duration::from_secs(10));
    assert_eq!(c.services[0].connect_timeout, Duration::from_secs(2));
    assert_eq!((c.services[1].mailbox, c.services[1].ordered), (MailboxMode::Push, true));
    assert_eq!((c.mailbox.backend.clone(), c.mailbox.max_attempts), (MailboxBackend::Embedded, 5));
    assert_eq!(c.mailbox.visibility_timeout, Duration::from_secs(30));
    assert_eq!(c.topics.len(), 1);
    assert_eq!(c.topics[0].push.len(), 1);
    assert!(c.topics[0].subscribers.allows("KZ/GOV/000000000003/egov-portal"));
    assert_eq!(c.limits.max_headers, 100);
    let tax = ServiceId::parse("KZ/GOV/000000000002/legacy-tax/debt/v1").unwrap();
    assert!(c.access[&tax].allows("KZ/GOV/000000000001/population-register"));
}

#[test]
fn unknown_keys_and_type_errors_name_key_and_line() {
    let dir = pki();
    let src = EXAMPLE.replace("timeout = \"10s\"", "timeout = \"10s\"\ntimeot = \"5s\"");
    let e = errors(&src, dir.path());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, Some(line_of(&src, "timeot")));
    assert!(e[0].message.contains("unknown field `timeot`"), "{e:?}");

    let src = EXAMPLE.replace("max_headers = 100", "max_headers = \"many\"");
    let e = errors(&src, dir.path());
    assert_eq!(e[0].line, Some(line_of(&src, "\"many\"")));
    assert!(e[0].message.contains("invalid type"), "{e:?}");

    let e = errors("[listener\n", dir.path());
    assert_eq!(e[0].line, Some(1));
}

#[test]
fn semantic_errors_are_all_reported_with_key_and_line() {
    let dir = pki();
    let src = EXAMPLE
        .replace("node = \"node-1\"", "node = \"node 1\"")
        .replace("client_ca = \"pki/ca.crt\", crls = [] }", "client_ca = \"pki/missing-ca.crt\", crls = [] }")
        .replace("http = [\"h1\", \"h2\", \"h3\"]", "http = [\"h1\", \"h4\"]")
        .replace("id = \"KZ/GOV/000000000002/legacy-tax\"", "id = \"KZ/GOV/000000000002/legacy tax\"")
        .replace("kind = \"soap\"", "kind = \"corba\"")
        .replace("connect_timeout = \"2s\"", "connect_timeout = \"soon\"")
        .replace("clients = [\"KZ/GOV/000000000003/egov-portal\"]", "clients = [\"KZ/GOV/000000000009/stranger\"]")
        .replace("upstream_protocol = \"auto\"", "upstream_protocol = \"h3\"");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "node = "), "gateway.node", "[A-Za-z0-9_-]");
    assert_error(&e, line_of(&src, "missing-ca"), "listener[0].tls.client_ca", "cannot read");
    assert_error(&e, line_of(&src, "\"h4\"]"), "listener[0].http", "unknown HTTP version");
    assert_error(&e, line_of(&src, "legacy tax"), "system[2].id", "outside [A-Za-z0-9._-]");
    assert_error(&e, line_of(&src, "corba"), "service[1].kind", "unknown kind");
    assert_error(&e, line_of(&src, "soon"), "service[0].connect_timeout", "not a duration");
    assert_error(&e, line_of(&src, "stranger"), "access[0].clients", "not registered");
    assert_error(&e, line_of(&src, "upstream_protocol = \"h3\""), "service[0].upstream_protocol", "unknown");
    // The tax service's provider is now an invalid id, so it is unregistered too.
    assert_error(
        &e,
        line_of(&src, "id = \"KZ/GOV/000000000002/legacy-tax/debt/v1\""),
        "service[1].id",
        "not registered",
    );
    // Sorted by line, so operators read them top to bottom.
    let lines: Vec<_> = e.iter().map(|e| e.line.unwrap_or(0)).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn structural_rules() {
    let dir = pki();
    let https_without_ca = EXAMPLE.replace("upstream_ca = \"pki/ca.crt\"\n", "");
    assert_error(
        &errors(&https_without_ca, dir.path()),
        line_of(&https_without_ca, "upstream = [\"https"),
        "service[0].upstream_ca",
        "missing",
    );

    let duplicate = EXAMPLE.replace(
        "id = \"KZ/GOV/000000000002/legacy-tax/debt/v1\"",
        "id = \"KZ/GOV/000000000001/population-register/person/v1\"",
    );
    let e = errors(&duplicate, dir.path());
    assert!(e.iter().any(|e| e.key == "service[1].id" && e.message.contains("registered twice")), "{e:#?}");

    let no_tls = EXAMPLE.replace(
        "tls = { cert = \"pki/gateway.crt\", key = \"pki/gateway.key\", client_ca = \"pki/ca.crt\", crls = [] }\n# HTTP",
        "# HTTP",
    );
    assert_error(
        &errors(&no_tls, dir.path()),
        line_of(&no_tls, "address = \"0.0.0.0:8443\""),
        "listener[0].tls",
        "unless insecure",
    );

    let insecure_with_tls =
        EXAMPLE.replace("address = \"0.0.0.0:8443\"", "address = \"0.0.0.0:8443\"\ninsecure = true");
    assert_error(
        &errors(&insecure_with_tls, dir.path()),
        line_of(&insecure_with_tls, "tls = { cert"),
        "listener[0].tls",
        "insecure",
    );

    let same_port = EXAMPLE.replace("address = \"127.0.0.1:9443\"", "address = \"0.0.0.0:8443\"");
    assert_error(&errors(&same_port, dir.path()), line_of(&same_port, "address = \"0.0.0.0:8443\"\ntls = { cert = \"pki/gateway.crt\", key = \"pki/gateway.key\", client_ca = \"pki/operator-ca.crt\" }"), "admin.address", "two listeners");

    let key_is_cert = EXAMPLE.replacen("key = \"pki/gateway.key\"", "key = \"pki/gateway.crt\"", 1);
    assert_error(
        &errors(&key_is_cert, dir.path()),
        line_of(&key_is_cert, "key = \"pki/gateway.crt\""),
        "listener[0].tls.key",
        "private key",
    );

    let bad_fingerprint =
        EXAMPLE.replace("# cert_sha256 = \"64 hex digits, as `qaqpa certs issue` prints\"", "cert_sha256 = \"abcd\"");
    assert_error(
        &errors(&bad_fingerprint, dir.path()),
        line_of(&bad_fingerprint, "cert_sha256"),
        "system[1].cert_sha256",
        "64 hex",
    );

    let query_upstream = EXAMPLE.replace("http://127.0.0.1:8081/tax", "http://127.0.0.1:8081/tax?x=1");
    assert_error(
        &errors(&query_upstream, dir.path()),
        line_of(&query_upstream, "?x=1"),
        "service[1].upstream",
        "query",
    );

    let ftp = EXAMPLE.replace("http://127.0.0.1:8081/tax", "ftp://127.0.0.1/tax");
    assert_error(&errors(&ftp, dir.path()), line_of(&ftp, "ftp://"), "service[1].upstream", "http://");

    let twice = format!("{EXAMPLE}\n[[access]]\nservice = \"KZ/GOV/000000000002/legacy-tax/debt/v1\"\nclients = []\n");
    let e = errors(&twice, dir.path());
    assert!(e.iter().any(|e| e.key == "access[2].service" && e.message.contains("twice")), "{e:#?}");

    let unknown_service = EXAMPLE.replace(
        "service = \"KZ/GOV/000000000001/population-register/person/v1\"",
        "service = \"KZ/GOV/000000000001/population-register/person/v7\"",
    );
    assert_error(
        &errors(&unknown_service, dir.path()),
        line_of(&unknown_service, "person/v7"),
        "access[0].service",
        "not registered",
    );

    let e = errors("", dir.path());
    assert!(e.iter().any(|e| e.key == "listener" && e.line.is_none()), "{e:#?}");
}

#[test]
fn limits_sla_and_storage_keys() {
    let dir = pki();
    let c = both_passes(EXAMPLE, dir.path()).unwrap();
    assert_eq!(c.limit_rules.len(), 3);
    let pair = &c.limit_rules[1];
    assert_eq!(pair.rate.unwrap().burst, 500, "default burst is one second's worth");
    assert_eq!(pair.rate_window, Some((500, 1)));
    assert_eq!(pair.quota_month, Some(50_000_000));
    assert_eq!(c.limit_rules[0].rate.unwrap().burst, 200);
    let sla = c.services[0].sla.as_ref().unwrap();
    assert!((sla.availability - 0.999).abs() < 1e-12);
    assert_eq!(sla.window, Duration::from_secs(30 * 86_400));
    assert_eq!(c.services[0].max_concurrency, Some(256));
    assert!(c.services[0].limits_fail_open);
    assert_eq!(c.storage.limits, LimitsBackend::Local);
    assert_eq!(c.storage.data_dir, dir.path().join("data"));
    assert_eq!(c.overload.target_delay, Duration::from_millis(50));
    assert_eq!(c.monitoring.retention, Duration::from_secs(30 * 86_400));

    let src = EXAMPLE
        .replace("rate = \"100/s\"", "rate = \"100 per second\"")
        .replace("availability = 99.9,", "availability = 100.0,")
        .replace("limits_fail = \"open\"", "limits_fail = \"ajar\"")
        .replace("limits_backend = \"local\"", "limits_backend = \"redis\"")
        .replace(
            "[[limit]]\nclient = \"KZ/GOV/000000000003/egov-portal\"\nrate = \"1000/s\"",
            "[[limit]]\nrate = \"1000/s\"",
        )
        .replace("max_concurrency = 256", "max_concurrency = 0");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "100 per second"), "limit[0].rate", "not a rate");
    assert_error(&e, line_of(&src, "availability = 100.0"), "service[0].sla.availability", "percentage");
    assert_error(&e, line_of(&src, "ajar"), "service[0].limits_fail", "unknown");
    assert_error(&e, line_of(&src, "limits_backend = \"redis\""), "storage.redis_url", "missing");
    assert_error(&e, line_of(&src, "max_concurrency = 0"), "service[0].max_concurrency", "at least 1");
    assert!(e.iter().any(|e| e.key == "limit[2]" && e.message.contains("names a client, a service")), "{e:#?}");

    let dup = format!("{EXAMPLE}\n[[limit]]\nclient = \"KZ/GOV/000000000003/egov-portal\"\nrate = \"1/s\"\n");
    assert!(errors(&dup, dir.path()).iter().any(|e| e.message.contains("same client and service")));
    let quota_without_service =
        format!("{EXAMPLE}\n[[limit]]\nclient = \"KZ/GOV/000000000001/population-register\"\nquota_day = 5\n");
    assert!(errors(&quota_without_service, dir.path()).iter().any(|e| e.message.contains("name the service")));
}

#[test]
fn mediation_faces_are_checked_against_the_contracts() {
    let dir = pki();
    let c = both_passes(EXAMPLE, dir.path()).unwrap();
    let person = c.services[0].mediation.as_ref().unwrap();
    assert_eq!(person.operations[0].template(), "/{iin}");
    assert!(person.rules.arrays.contains("phone"));
    assert_eq!(c.xml.max_message_bytes, 10 * 1024 * 1024);
    assert_eq!(c.xml.limits.max_depth, 64);

    std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
    std::fs::write(dir.path().join("contracts/legacy-tax.wsdl"), crate::demo::LEGACY_TAX_WSDL).unwrap();
    std::fs::write(
        dir.path().join("contracts/person.openapi.json"),
        r#"{"openapi": "3.1.0", "paths": {"/{iin}": {"get": {}}}}"#,
    )
    .unwrap();
    let with_contracts = EXAMPLE.replace("# openapi = ", "openapi = ").replace("# wsdl = ", "wsdl = ");
    let c = both_passes(&with_contracts, dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.services[0].openapi.is_some() && c.services[1].wsdl.is_some());

    let src = with_contracts
        .replace("name = \"GetDebt\"", "name = \"GetDebts\"")
        .replace("path = \"/{iin}\"\n\n[[limit]]", "path = \"/people/{iin}\"\n\n[[limit]]");
    let e = errors(&src, dir.path());
    assert_error(
        &e,
        line_of(&src, "GetDebts"),
        "service[1].rest.operation[0].name",
        "the WSDL has no operation GetDebts",
    );
    let src = with_contracts.replacen("path = \"/{iin}\"", "path = \"/people/{iin}\"", 1);
    assert_error(
        &errors(&src, dir.path()),
        line_of(&src, "/people/{iin}"),
        "service[0].soap.operation[0].path",
        "the OpenAPI document has no GET /people/{iin}",
    );

    let src = EXAMPLE
        .replacen("method = \"GET\"", "method = \"FETCH\"", 1)
        .replacen("path = \"/{iin}\"", "path = \"/{iin}/{iin}\"", 1)
        .replace("types = { amount = \"number\" }", "types = { amount = \"money\" }");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "FETCH"), "service[0].soap.operation[0].method", "one of GET");
    assert_error(&e, line_of(&src, "/{iin}/{iin}"), "service[0].soap.operation[0].path", "appears twice");
    assert_error(&e, line_of(&src, "money"), "service[1].rest.types", "unknown type");

    let wrong_kind = EXAMPLE
        .replacen("[service.soap]", "[service.rest]", 1)
        .replace("[[service.soap.operation]]", "[[service.rest.operation]]");
    let e = errors(&wrong_kind, dir.path());
    assert!(e.iter().any(|e| e.key == "service[0].rest" && e.message.contains("kind = \"soap\"")), "{e:#?}");
}

#[test]
fn operations_keys_are_checked() {
    let dir = pki();
    std::fs::write(dir.path().join("pki/not-a-crl.pem"), "hello").unwrap();
    let src = EXAMPLE
        .replace("crls = [] }", "crls = [\"pki/not-a-crl.pem\"] }")
        .replace("max_connections = 20000", "max_connections = 0")
        .replace("max_pending_resets = 20", "max_pending_resets = 0")
        .replace("interval = \"5s\", timeout = \"1s\"", "interval = \"1s\", timeout = \"5s\"")
        .replace("path = \"/healthz\"", "path = \"healthz\"")
        .replace("body_idle_timeout = \"30s\"", "body_idle_timeout = \"0s\"");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "not-a-crl"), "listener[0].tls.crls[0]", "certificate revocation list");
    assert_error(&e, line_of(&src, "max_connections = 0"), "listener[0].max_connections", "at least 1");
    assert_error(&e, line_of(&src, "max_pending_resets = 0"), "limits.max_pending_resets", "at least 1");
    assert_error(&e, line_of(&src, "timeout = \"5s\""), "service[0].health_check.timeout", "not be longer");
    assert_error(&e, line_of(&src, "path = \"healthz\""), "service[0].health_check.path", "absolute path");
    assert_error(&e, line_of(&src, "body_idle_timeout"), "limits.body_idle_timeout", "longer than zero");

    let h3_plain = "[[listener]]\naddress = \"127.0.0.1:8080\"\ninsecure = true\nhttp = [\"h1\", \"h3\"]\n";
    assert_error(&errors(h3_plain, dir.path()), 4, "listener[0].http", "HTTP/3 needs TLS");
}

#[test]
fn signature_keys_are_checked() {
    let dir = pki();
    let src = EXAMPLE
        .replace("signature = \"verify\"", "signature = \"maybe\"")
        .replace("max_clock_skew = \"5m\"", "max_clock_skew = \"13h\"")
        .replace("key = \"pki/gateway.key\"\n\n[storage]", "key = \"pki/egov-portal.key\"\n\n[storage]");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "\"maybe\""), "service[0].signature", "unknown");
    assert_error(&e, line_of(&src, "replay_window = "), "signatures.replay_window", "twice max_clock_skew");
    assert_error(&e, line_of(&src, "key = \"pki/egov-portal.key\""), "signatures.key", "is not the key of cert");

    let without_table = EXAMPLE.split("# Trust for message signatures").next().unwrap().to_owned()
        + "[storage]"
        + EXAMPLE.split("\n[storage]").nth(1).unwrap();
    let e = errors(&without_table, dir.path());
    assert_error(
        &e,
        line_of(&without_table, "signature = \"verify\""),
        "service[0].signature",
        "needs a [signatures] table",
    );

    let half =
        EXAMPLE.replace("# signing_cert = \"pki/legacy-tax-signing.crt\"", "signing_cert = \"pki/egov-portal.crt\"");
    assert_error(
        &errors(&half, dir.path()),
        line_of(&half, "signing_cert = \"pki/egov-portal.crt\""),
        "system[2].signing_key",
        "missing",
    );
}

#[test]
fn mailbox_and_topic_mistakes_name_key_and_line() {
    let dir = pki();
    let src = r#"
[[system]]
id = "KZ/GOV/000000000001/register"

[[system]]
id = "KZ/GOV/000000000003/portal"

[[service]]
id = "KZ/GOV/000000000001/register/person/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
mailbox = "later"

[[service]]
id = "KZ/GOV/000000000001/register/sync/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
ordered = true

[[service]]
id = "KZ/GOV/000000000001/register/pushed/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
mailbox = "push"
timeout = "45s"

[[service]]
id = "KZ/GOV/000000000001/register/signed/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
signature = "verify"
message_log = "async"

[[service]]
id = "KZ/GOV/000000000001/register/bulk/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
message_log = "sometimes"

[[topic]]
id = "KZ/GOV/000000000009/stranger/changes"
subscribers = ["KZ/GOV/000000000003/nobody"]
retention = "soon"
push = [{ subscriber = "KZ/GOV/000000000003/portal", service = "KZ/GOV/000000000001/register/person/v1" }]

[mailbox]
backend = "kafka"
max_attempts = 0
retry_base = "10s"
retry_max = "1s"
"#;
    let e = errors(src, dir.path());
    assert_error(&e, line_of(src, "\"later\""), "service[0].mailbox", "use \"none\", \"pull\" or \"push\"");
    assert_error(&e, line_of(src, "register/sync/v1"), "service[1].ordered", "needs mailbox");
    assert_error(&e, line_of(src, "\"async\""), "service[3].message_log", "a signed service keeps");
    assert_error(&e, line_of(src, "\"sometimes\""), "service[4].message_log", "use \"sync\" or \"async\"");
    assert_error(&e, line_of(src, "stranger/changes"), "topic[0].id", "not registered");
    assert_error(&e, line_of(src, "nobody"), "topic[0].subscribers", "not registered");
    assert_error(&e, line_of(src, "\"soon\""), "topic[0].retention", "not a duration");
    assert_error(
        &e,
        line_of(src, "push = [{ subscriber"),
        "topic[0].push[0].subscriber",
        "not among the topic's subscribers",
    );
    assert_error(&e, line_of(src, "push = [{ subscriber"), "topic[0].push[0].service", "not a service of");
    assert_error(&e, line_of(src, "\"45s\""), "service[2].timeout", "before mailbox.visibility_timeout");
    assert_error(&e, line_of(src, "\"kafka\""), "mailbox.backend", "use \"embedded\" or \"nats\"");
    assert_error(&e, line_of(src, "max_attempts = 0"), "mailbox.max_attempts", "at least 1");
    assert_error(&e, line_of(src, "retry_max"), "mailbox.retry_max", "at least retry_base");
}

#[test]
fn a_reload_names_exactly_the_changed_keys_read_at_start() {
    let dir = pki();
    let started = both_passes(EXAMPLE, dir.path()).unwrap();
    let changed = |from: &str, to: &str| {
        assert!(EXAMPLE.contains(from), "{from:?} not in the example");
        restart_needed(&started, &both_passes(&EXAMPLE.replacen(from, to, 1), dir.path()).unwrap())
    };
    assert!(restart_needed(&started, &started.clone()).is_empty());
    // Read per request: reloads.
    assert!(changed("max_body_bytes = 134217728", "max_body_bytes = 1048576").is_empty());
    assert!(changed("max_wait = \"60s\"", "max_wait = \"5s\"").is_empty());
    // Read at start: named.
    assert_eq!(changed("node = \"node-1\"", "node = \"node-2\""), ["gateway.node"]);
    assert_eq!(
        changed("header_read_timeout = \"10s\"", "header_read_timeout = \"3s\""),
        ["limits (all but max_body_bytes, max_connections_per_client)"]
    );
    assert_eq!(changed("visibility_timeout = \"30s\"", "visibility_timeout = \"45s\""), ["mailbox.visibility_timeout"]);
}

#[test]
fn json_styles_are_checked_with_key_and_line() {
    use qaqpa_adapters::mapping::JsonStyle;
    let dir = pki();
    let named = EXAMPLE.replace("# json_style = \"named\"", "json_style = \"named\"").replace(
        "# attributes = [\"currency\"]",
        "attributes = [\"currency\"]\ntext_field = \"amountText\"\nattribute_prefix = \"\"",
    );
    let c = both_passes(&named, dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let rules = &c.services[1].mediation.as_ref().unwrap().rules;
    assert_eq!(rules.style, JsonStyle::Named { text_field: "amountText".into(), attribute_prefix: String::new() });
    assert!(rules.attributes.contains("currency"));
    assert_eq!(c.services[0].mediation.as_ref().unwrap().rules.style, JsonStyle::Plain, "the default");

    let src = named.replace("json_style = \"named\"", "json_style = \"pretty\"");
    assert_error(
        &errors(&src, dir.path()),
        line_of(&src, "pretty"),
        "service[1].rest.json_style",
        "use \"plain\" or \"named\"",
    );
    let src = named.replace("json_style = \"named\"", "json_style = \"plain\"");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "amountText"), "service[1].rest.text_field", "only with json_style = \"named\"");
    assert_error(&e, line_of(&src, "[\"currency\"]"), "service[1].rest.attributes", "only with json_style = \"named\"");
    let src = named
        .replace("text_field = \"amountText\"", "text_field = \"1 bad\"")
        .replace("attributes = [\"currency\"]", "attributes = [\"currency\", \"xmlns\"]");
    let e = errors(&src, dir.path());
    assert_error(&e, line_of(&src, "1 bad"), "service[1].rest.text_field", "letters, digits");
    assert_error(&e, line_of(&src, "\"xmlns\""), "service[1].rest.attributes[1]", "an XML name");
}
