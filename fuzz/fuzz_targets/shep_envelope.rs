#![no_main]
use libfuzzer_sys::fuzz_target;

// The ШЭП faces' reader (SyncChannel and AsyncChannel): never panics, and every
// range it returns lies inside the input. The same check runs as a normal test over
// mutated real-shaped messages (adapters/src/shep/tests.rs, `fuzz` module).
fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    if let Ok(m) = qaqpa_adapters::shep::read(data, None, &limits) {
        for r in [Some(m.body), m.data, m.data_element].into_iter().flatten() {
            assert!(r.start <= r.end && r.end <= data.len());
        }
    }
});
