#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fusion_gc::fuzzing::garbled_material(data);
});
