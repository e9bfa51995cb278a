#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_he::fuzzing::galois_keys(data));
