#![no_main]
//! XMLDSig verification and exclusive c14n on arbitrary bytes: errors, never panics;
//! a canonicalization that succeeds is valid UTF-8 when its input is.
use libfuzzer_sys::fuzz_target;
use qaqpa_certs::c14n::{canonicalize, C14nOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = qaqpa_certs::xmldsig::verify_soap(data) {
        assert!(v.body.start <= v.body.end && v.body.end <= data.len());
    }
    let start = data.iter().position(|&b| b == b'<').unwrap_or(0);
    let mut out = Vec::new();
    let options = C14nOptions { with_comments: data.len() % 2 == 0, inclusive_prefixes: vec!["#default".into()] };
    if canonicalize(data, start, None, &options, &mut out).is_ok() && std::str::from_utf8(data).is_ok() {
        assert!(std::str::from_utf8(&out).is_ok());
    }
});
