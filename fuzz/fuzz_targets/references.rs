#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oras_fuzz::references(data));
