#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    if let Ok(map) = qaqpa_adapters::mapping::xml_to_json(data, &Default::default(), &limits) {
        // Whatever maps must map back without panicking.
        let _ = qaqpa_adapters::mapping::json_to_xml("Root", "urn:fuzz", &map);
    }
});
