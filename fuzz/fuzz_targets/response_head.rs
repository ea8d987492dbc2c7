#![no_main]
// The property is documented at sack::checks::response_head.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::response_head(data));
