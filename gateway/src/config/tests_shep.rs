//! The ШЭП keys (docs/shep.md#configuration): senders and serviceIds are unique,
//! the password is only ever a hash, each mistake named with its key and line.

use super::tests::{assert_error, line_of, pki, EXAMPLE};
use super::*;

fn with_shep(portal: &str, register: &str, person: &str, tax: &str) -> String {
    EXAMPLE
        .replacen(
            "id = \"KZ/GOV/000000000003/egov-portal\"\n",
            &format!("id = \"KZ/GOV/000000000003/egov-portal\"\n{portal}\n"),
            1,
        )
        .replacen(
            "id = \"KZ/GOV/000000000001/population-register\"\n",
            &format!("id = \"KZ/GOV/000000000001/population-register\"\n{register}\n"),
            1,
        )
        .replacen("kind = \"rest\"\n", &format!("kind = \"rest\"\n{person}\n"), 1)
        .replacen("kind = \"soap\"\n", &format!("kind = \"soap\"\n{tax}\n"), 1)
}

fn validate_text(src: &str, dir: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    validate(src, dir, &Environment { hostname: "test-host".into() })
}

#[test]
fn shep_keys_are_read() {
    let dir = pki();
    let hash = crate::cli::shep_password_hash("pw").unwrap();
    let src = with_shep(
        &format!("shep_sender = \"portal\"\nshep_password_hash = \"{hash}\""),
        "shep_sender = \"register\"",
        "shep_service_id = \"PopulationRegister_Person\"",
        "shep_service_id = \"LegacyTax_Debt\"\nshep_provider = true",
    );
    let c = validate_text(&src, dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.systems[0].shep_sender.as_deref(), Some("portal"));
    assert_eq!(c.systems[0].shep_password_hash.as_deref(), Some(hash.as_str()));
    assert!(crate::faces::shep_sync::check_password(&hash, "pw"));
    assert!(!crate::faces::shep_sync::check_password(&hash, "pW"));
    assert_eq!(c.services[0].shep_service_id.as_deref(), Some("PopulationRegister_Person"));
    assert!(!c.services[0].shep_provider && c.services[1].shep_provider);
}

#[test]
fn shep_mistakes_name_key_and_line() {
    let dir = pki();
    let src = with_shep(
        "shep_sender = \"same\"\nshep_password_hash = \"plain-text-password\"",
        "shep_sender = \"same\"",
        "shep_service_id = \"Twice\"\nshep_provider = true",
        "shep_service_id = \"Twice\"",
    );
    let e = validate_text(&src, dir.path()).expect_err("refused");
    let second_sender = src.match_indices("shep_sender = \"same\"").nth(1).unwrap().0;
    let second_line = src[..second_sender].matches('\n').count() + 1;
    assert_error(&e, second_line, "system[1].shep_sender", "another system");
    assert_error(&e, line_of(&src, "plain-text-password"), "system[0].shep_password_hash", "Argon2 PHC");
    let second_id = src.match_indices("shep_service_id = \"Twice\"").nth(1).unwrap().0;
    assert_error(&e, src[..second_id].matches('\n').count() + 1, "service[1].shep_service_id", "another service");
    assert_error(&e, line_of(&src, "kind = \"rest\""), "service[0].shep_provider", "kind = \"soap\"");
    // A password hash needs a sender to belong to; a misspelt key is refused as always.
    let hash = crate::cli::shep_password_hash("pw").unwrap();
    let src = with_shep(&format!("shep_password_hash = \"{hash}\""), "", "", "");
    let e = validate_text(&src, dir.path()).expect_err("refused");
    assert_error(&e, line_of(&src, "shep_password_hash"), "system[0].shep_password_hash", "needs shep_sender");
    let src = with_shep("", "", "shep_serviceid = \"x\"", "");
    let e = validate_text(&src, dir.path()).expect_err("refused");
    assert_error(&e, line_of(&src, "shep_serviceid"), "shep_serviceid", "unknown field");
}
