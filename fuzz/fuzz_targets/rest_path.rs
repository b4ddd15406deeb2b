#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(target) = qaqpa_routing::split_rest_path(path) {
            // Nothing that could climb out of the provider's base path gets through.
            let dot =
                |s: &str| s == "." || s == ".." || s.eq_ignore_ascii_case("%2e") || s.eq_ignore_ascii_case("%2e%2e");
            assert!(!target.key.split('/').any(dot));
            assert!(!target.tail.split('/').any(dot));
            assert!(target.tail.is_empty() || target.tail.starts_with('/'));
            // Nor anything a provider could decode into another path (issue 15).
            let lower = target.tail.to_ascii_lowercase();
            assert!(!lower.contains(';'));
            for encoded in ["%2f", "%2e", "%25", "%5c", "%c0", "%c1"] {
                assert!(!lower.contains(encoded), "{encoded} in {}", target.tail);
            }
        }
    }
});
