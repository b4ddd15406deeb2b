//! `[[operator]]`: who may use the admin API, and how much. An operator is named by
//! the SAN URI `urn:qaqpa:operator:{name}` of the certificate presented to the
//! admin listener, or pinned by that certificate's SHA-256 fingerprint.

use std::collections::HashSet;

use super::checker::Checker;
use super::raw::RawOperator;
use super::systems::fingerprint;
use super::{OperatorConfig, OperatorRole};

pub(super) fn check(c: &mut Checker, raw: &[RawOperator]) -> Vec<OperatorConfig> {
    let mut operators = Vec::new();
    let mut names = HashSet::new();
    let mut fingerprints = HashSet::new();
    for (i, o) in raw.iter().enumerate() {
        let key = format!("operator[{i}]");
        let name = o.name.get_ref();
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !well_formed {
            c.error(o.name.span(), format!("{key}.name"), "1–64 characters of [A-Za-z0-9._-]");
            continue;
        }
        if !names.insert(name.clone()) {
            c.error(o.name.span(), format!("{key}.name"), format!("operator {name} is listed twice"));
        }
        let pinned = match &o.fingerprint {
            None => None,
            Some(f) => match fingerprint(f.get_ref()) {
                None => {
                    let message = "must be 64 hex digits (SHA-256 of the DER certificate)";
                    c.error(f.span(), format!("{key}.fingerprint"), message);
                    continue;
                }
                Some(fp) if !fingerprints.insert(fp) => {
                    c.error(f.span(), format!("{key}.fingerprint"), "this fingerprint is given to another operator");
                    continue;
                }
                Some(fp) => Some(fp),
            },
        };
        let options = [("read", OperatorRole::Read), ("admin", OperatorRole::Admin)];
        // No default role to widen by accident: an operator says what it may do.
        let Some(role_value) = &o.role else {
            c.error(o.name.span(), format!("{key}.role"), "missing: \"read\" or \"admin\"");
            continue;
        };
        let role = c.choice(Some(role_value), &format!("{key}.role"), &options, OperatorRole::Read);
        operators.push(OperatorConfig { name: name.clone(), fingerprint: pinned, role });
    }
    operators
}
