#![no_main]
use libfuzzer_sys::fuzz_target;

// The ШЭП faces' readers (SyncChannel and AsyncChannel calls, and a SyncChannel
// provider's answer with the namespace lookups the mediated deliveries make): never
// panic, and every range they return lies inside the input. The same check runs as
// a normal test over mutated real-shaped messages (adapters/src/shep/tests.rs,
// `fuzz` module).
fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    if let Ok(m) = qaqpa_adapters::shep::read(data, None, &limits) {
        for r in [Some(m.body), m.data, m.data_element].into_iter().flatten() {
            assert!(r.start <= r.end && r.end <= data.len());
        }
    }
    if let Ok(envelope) = qaqpa_adapters::soap::read_envelope(data, None, &limits) {
        qaqpa_adapters::shep::namespaces_in_scope(data, envelope.body.start);
        if let Ok(a) = qaqpa_adapters::shep::read_sync_answer(data, &envelope) {
            for r in [a.data.clone(), a.data_element].into_iter().flatten() {
                assert!(r.start <= r.end && r.end <= data.len());
            }
            if let Some(d) = a.data {
                let inner = qaqpa_adapters::shep::response_content(data, d.clone());
                assert!(d.start <= inner.start && inner.start <= inner.end && inner.end <= d.end);
            }
        }
    }
});
