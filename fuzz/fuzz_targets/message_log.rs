#![no_main]
use libfuzzer_sys::fuzz_target;
use qaqpa_certs::msglog;

// What an auditor runs on files that may come from anyone (`qaqpa log verify`,
// `qaqpa log export`, an evidence bundle received by mail): no input panics.
// The input is split into segments at 0xFF bytes (never in a JSON line), so the
// per-segment rules (sequence across segments, zeros after the written part) are
// reached too; the same bytes are also read as an evidence bundle.
fuzz_target!(|data: &[u8]| {
    let segments: Vec<(String, Vec<u8>)> = data
        .split(|&b| b == 0xFF)
        .enumerate()
        .map(|(i, s)| (format!("{:020}.log", i + 1), s.to_vec()))
        .collect();
    if let Ok(summary) = msglog::verify(&segments, None) {
        // A log that verifies holds the head it names: watched for, it checks.
        if let Some(head) = summary.head {
            let watched = msglog::verify_watching(&segments, None, Some(head.batch)).expect("verified once");
            assert_eq!(msglog::check_head(&watched, &head), Ok(()));
        }
    }
    for evidence in msglog::evidence(segments.iter().map(|(_, s)| s.as_slice()), "id-1") {
        let _ = msglog::verify_evidence(&evidence, None);
    }
    if let Ok(bundle) = serde_json::from_slice::<msglog::Bundle>(data) {
        let _ = msglog::verify_bundle(&bundle, None);
    }
});
