#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    if let Ok(env) = qaqpa_adapters::soap::read_envelope(data, None, &limits) {
        assert!(env.body.start <= env.body.end && env.body.end <= data.len());
    }
});
