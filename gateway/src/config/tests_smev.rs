use super::tests::{assert_error, line_of, pki};
use super::*;

#[test]
fn smev_kinds_are_namespace_uris_named_by_one_service_only() {
    let dir = pki();
    let src = r#"
[[system]]
id = "KZ/GOV/000000000001/register"

[[service]]
id = "KZ/GOV/000000000001/register/address/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
mailbox = "pull"
smev_kinds = ["urn://x-artefacts-example-ru/address-change/1.0.0", "not a uri"]

[[service]]
id = "KZ/GOV/000000000001/register/other/v1"
kind = "rest"
upstream = ["http://127.0.0.1:1/"]
smev_kinds = [
  "urn://x-artefacts-example-ru/address-change/1.0.0",
]
"#;
    let e = validate(src, dir.path(), &Environment { hostname: "h".into() }).expect_err("refused");
    assert_error(&e, line_of(src, "\"not a uri\""), "service[0].smev_kinds", "not a namespace URI");
    assert_error(
        &e,
        line_of(src, "  \"urn://x-artefacts-example-ru/address-change/1.0.0\","),
        "service[1].smev_kinds",
        "already the kind of service KZ/GOV/000000000001/register/address/v1",
    );
    assert_eq!(e.iter().filter(|e| e.key.ends_with("smev_kinds")).count(), 2, "{e:#?}");

    let fine = super::tests::EXAMPLE.replacen(
        "kind = \"rest\"\n",
        "kind = \"rest\"\nsmev_kinds = [\"urn://x-artefacts-example-ru/person/1.0.0\"]\n",
        1,
    );
    let c = validate(&fine, dir.path(), &Environment { hostname: "h".into() }).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.services[0].smev_kinds, ["urn://x-artefacts-example-ru/person/1.0.0"]);
    assert!(c.services[1].smev_kinds.is_empty());
}
