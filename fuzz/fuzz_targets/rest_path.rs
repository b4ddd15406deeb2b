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
        }
    }
});
