#![no_main]
//! Detached JWS verification on arbitrary tokens and payloads: errors, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let token = String::from_utf8_lossy(&data[..split]);
    let payload = data.get(split + 1..).unwrap_or_default();
    let _ = qaqpa_certs::jws::verify_detached(&token, payload);
});
