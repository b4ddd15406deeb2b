#![no_main]
use libfuzzer_sys::fuzz_target;

// The SMEV 3 face's reader; `adapters/src/smev3/tests.rs` runs the same property
// over mutated samples with the normal toolchain.
fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    if let Ok(call) = qaqpa_adapters::smev3::read(data, None, &limits) {
        for part in [&call.signed, &call.signature, &call.attachments, &call.content].into_iter().flatten() {
            assert!(part.range.start <= part.range.end && part.range.end <= data.len());
            let _ = part.detached(data);
        }
    }
});
