#![no_main]
use libfuzzer_sys::fuzz_target;

// The SMEV transform: no panic, and its output is a fixed point (certs/src/smev_transform.rs
// runs the same property over mutated fragments with the normal toolchain).
fuzz_target!(|data: &[u8]| {
    if let Ok(out) = qaqpa_certs::smev_transform::smev_transform(data) {
        assert_eq!(qaqpa_certs::smev_transform::smev_transform(&out).as_ref(), Ok(&out));
    }
});
