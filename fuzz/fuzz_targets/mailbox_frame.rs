#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use qaqpa_adapters::frame::{frame, unframe};
use serde_json::Value;

// A stored mailbox value (a JetStream payload comes from a shared server): no input
// panics, and whatever unframes frames again to the same body. (Metadata is
// compared only as "still readable": serde_json's default float parsing may move
// a float by one ulp.)
fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Some((meta, body)) = unframe::<Value>(&payload) {
        let again = frame(&meta, &body);
        let (_, body_again) = unframe::<Value>(&again).expect("a re-framed value unframes");
        assert_eq!(body_again, body);
    }
});
