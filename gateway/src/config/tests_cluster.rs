//! `[cluster]`: where the registry comes from, who signs it, the peers of the views.

use super::tests::{assert_error, line_of, pki, EXAMPLE};
use super::*;

fn env() -> Environment {
    Environment { hostname: "test-host".into() }
}

/// The example with the NATS mailbox backend.
fn nats() -> String {
    EXAMPLE.replacen(
        "backend = \"embedded\"\n",
        "backend = \"nats\"\nnats_url = \"nats://127.0.0.1:4222\"\nnats_prefix = \"Q\"\n",
        1,
    )
}

#[test]
fn a_published_registry_needs_nats_and_signers_and_names_its_bucket() {
    let dir = pki();
    let ok = format!("{}\n[cluster]\nconfig_source = \"nats\"\nconfig_signers = \"pki/operator-ca.crt\"\npeers = [\"http://10.0.0.2:9090/\"]\n", nats());
    let c = validate(&ok, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.cluster.source, ConfigSource::Nats { url: "nats://127.0.0.1:4222".into(), bucket: "Q_CONFIG".into() });
    assert_eq!(c.cluster.peers, vec!["http://10.0.0.2:9090".to_owned()]);
    assert!(c.cluster.signers.is_some_and(|s| s.ends_with("pki/operator-ca.crt")));
    assert_eq!(validate(EXAMPLE, dir.path(), &env()).unwrap().cluster.source, ConfigSource::File, "the default");

    let embedded =
        format!("{EXAMPLE}\n[cluster]\nconfig_source = \"nats\"\nconfig_signers = \"pki/operator-ca.crt\"\n");
    let e = validate(&embedded, dir.path(), &env()).unwrap_err();
    assert_error(
        &e,
        line_of(&embedded, "config_source = \"nats\""),
        "cluster.config_source",
        "needs [mailbox] backend = \"nats\"",
    );

    let unsigned = format!("{}\n[cluster]\nconfig_source = \"nats\"\n", nats());
    let e = validate(&unsigned, dir.path(), &env()).unwrap_err();
    assert_error(&e, line_of(&unsigned, "config_source = \"nats\""), "cluster.config_signers", "missing");

    let bad = format!("{}\n[cluster]\nconfig_source = \"git\"\nconfig_signers = \"pki/nope.crt\"\npeers = [\"ftp://x\", \"https://node-2:9090\"]\n", nats());
    let e = validate(&bad, dir.path(), &env()).unwrap_err();
    assert_error(&e, line_of(&bad, "config_source = \"git\""), "cluster.config_source", "unknown \"git\"");
    assert_error(&e, line_of(&bad, "config_signers = \"pki/nope.crt\""), "cluster.config_signers", "cannot read");
    assert_error(&e, line_of(&bad, "peers = [\"ftp"), "cluster.peers", "\"ftp://x\" is not an http(s) URL");
    assert_error(&e, line_of(&bad, "peers = [\"ftp"), "cluster.peer_ca", "an https peer needs peer_ca");
}

#[test]
fn redis_urls_may_name_sentinels() {
    let dir = pki();
    let with = |url: &str| {
        EXAMPLE.replacen(
            "limits_backend = \"local\"\n",
            &format!("limits_backend = \"redis\"\nreplay = \"redis\"\nredis_url = \"{url}\"\n"),
            1,
        )
    };
    let ok = with("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/qaqpa");
    let c = validate(&ok, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(matches!(&c.storage.limits, LimitsBackend::Redis { url, .. } if url.starts_with("redis+sentinel://")));
    assert!(c.storage.replay_redis.is_some());
    let bad = with("redis+sentinel://10.0.0.1/qaqpa");
    let e = validate(&bad, dir.path(), &env()).unwrap_err();
    assert_error(&e, line_of(&bad, "redis_url = "), "storage.redis_url", "HOST:PORT");
}
