//! The admin listener's configuration: operators, the warnings `check-config` gives
//! about who can reach the admin API, and insecure listeners off loopback.

use super::tests::{assert_error, line_of, pki, EXAMPLE};
use super::*;

fn env() -> Environment {
    Environment { hostname: "test-host".into() }
}

/// The admin table's client_ca line in `source`.
fn admin_ca_line(source: &str) -> usize {
    let admin = source.find("[admin]").unwrap();
    source[..admin + source[admin..].find("client_ca").unwrap()].matches('\n').count() + 1
}

#[test]
fn the_example_lists_an_admin_operator_and_draws_no_warning() {
    let dir = pki();
    let c = validate(EXAMPLE, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        c.operators,
        vec![OperatorConfig { name: "duty-operator".into(), fingerprint: None, role: OperatorRole::Admin }]
    );
    assert_eq!(warnings(&c), vec![], "operators have their own CA in the example");
}

#[test]
fn an_admin_client_ca_shared_with_a_data_listener_is_warned_with_key_and_line() {
    let dir = pki();
    let same_file = EXAMPLE.replace("client_ca = \"pki/operator-ca.crt\"", "client_ca = \"pki/ca.crt\"");
    let c = validate(&same_file, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    let w = warnings(&c);
    assert_error(&w, admin_ca_line(&same_file), "admin.tls.client_ca", "is the same file as listener[0].tls.client_ca");
    assert_eq!(w.len(), 1, "{w:#?}");

    // The same certificates under another name, or inside a bundle with the
    // operators' CA: the data clients still chain to it.
    let pki_dir = dir.path().join("pki");
    let ca = std::fs::read_to_string(pki_dir.join("ca.crt")).unwrap();
    let operator_ca = std::fs::read_to_string(pki_dir.join("operator-ca.crt")).unwrap();
    std::fs::write(pki_dir.join("copy-of-ca.crt"), &ca).unwrap();
    std::fs::write(pki_dir.join("bundle.crt"), operator_ca + &ca).unwrap();
    for file in ["copy-of-ca.crt", "bundle.crt"] {
        let src = EXAMPLE.replace("client_ca = \"pki/operator-ca.crt\"", &format!("client_ca = \"pki/{file}\""));
        let c = validate(&src, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_error(&warnings(&c), admin_ca_line(&src), "admin.tls.client_ca", "shares certificates with listener[0]");
    }
}

#[test]
fn no_operator_list_with_an_admin_tls_listener_is_warned() {
    let dir = pki();
    let src = EXAMPLE.replace("[[operator]]\nname = \"duty-operator\"\nrole = \"admin\"\n", "");
    let c = validate(&src, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.operators.is_empty());
    let w = warnings(&c);
    assert!(w.iter().any(|w| w.key == "operator" && w.message.contains("read-only")), "{w:#?}");
}

#[test]
fn an_insecure_listener_off_loopback_is_refused_unless_explicitly_allowed() {
    let dir = pki();
    let local = "# [[listener]]\n# name = \"local\"\n# address = \"127.0.0.1:8080\"\n# insecure = true\n";
    let open = |address: &str, extra: &str| {
        EXAMPLE.replace(
            local,
            &format!("[[listener]]\nname = \"local\"\naddress = \"{address}\"\ninsecure = true\n{extra}"),
        )
    };
    for address in ["0.0.0.0:8080", "10.0.0.5:8080", "[::]:8080"] {
        let src = open(address, "");
        let e = validate(&src, dir.path(), &env()).expect_err("refused");
        assert_error(&e, line_of(&src, &format!("address = \"{address}\"")), "listener[1].address", "not loopback");
        assert!(e[0].message.contains("allow_insecure_non_loopback"), "{e:#?}");
        assert!(validate(&open(address, "allow_insecure_non_loopback = true\n"), dir.path(), &env()).is_ok());
        let still_refused = open(address, "allow_insecure_non_loopback = false\n");
        assert!(validate(&still_refused, dir.path(), &env()).is_err());
    }
    for address in ["127.0.0.1:8080", "[::1]:8080"] {
        assert!(validate(&open(address, ""), dir.path(), &env()).is_ok(), "{address} is loopback");
    }

    // The admin listener too: insecure, it serves reload to whoever connects.
    let tls_line =
        "tls = { cert = \"pki/gateway.crt\", key = \"pki/gateway.key\", client_ca = \"pki/operator-ca.crt\" }";
    let src = EXAMPLE
        .replace("address = \"127.0.0.1:9443\"", "address = \"0.0.0.0:9443\"")
        .replace(tls_line, "insecure = true");
    let e = validate(&src, dir.path(), &env()).expect_err("refused");
    assert_error(&e, line_of(&src, "address = \"0.0.0.0:9443\""), "admin.address", "not loopback");

    // The override means nothing on a TLS listener: said so, not ignored.
    let src = EXAMPLE.replace("max_connections = 20000", "max_connections = 20000\nallow_insecure_non_loopback = true");
    let e = validate(&src, dir.path(), &env()).expect_err("refused");
    assert_error(
        &e,
        line_of(&src, "allow_insecure_non_loopback"),
        "listener[0].allow_insecure_non_loopback",
        "only an insecure",
    );
}

#[test]
fn each_bad_operator_entry_is_named_with_its_line() {
    let dir = pki();
    let entries = r#"
[[operator]]
name = "has space"
role = "admin"

[[operator]]
name = "pinned"
fingerprint = "abcd"
role = "read"

[[operator]]
name = "duty-operator"
role = "admin"

[[operator]]
name = "superuser"
role = "root"

[[operator]]
name = "no-role"
"#;
    let src = format!("{EXAMPLE}{entries}");
    let e = validate(&src, dir.path(), &env()).expect_err("refused");
    assert_error(&e, line_of(&src, "\"has space\""), "operator[1].name", "A-Za-z0-9");
    assert_error(&e, line_of(&src, "\"abcd\""), "operator[2].fingerprint", "64 hex digits");
    let second = src.rfind("name = \"duty-operator\"").unwrap();
    let line = src[..second].matches('\n').count() + 1;
    assert_error(&e, line, "operator[3].name", "listed twice");
    assert_error(&e, line_of(&src, "\"root\""), "operator[4].role", "unknown \"root\"");
    assert_error(&e, line_of(&src, "\"no-role\""), "operator[5].role", "missing");

    let fp = "ab".repeat(32);
    let pinned = format!("{EXAMPLE}\n[[operator]]\nname = \"auditor\"\nfingerprint = \"{fp}\"\nrole = \"read\"\n");
    let c = validate(&pinned, dir.path(), &env()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.operators[1].fingerprint, Some([0xab; 32]));
    assert_eq!(c.operators[1].role, OperatorRole::Read);
}
