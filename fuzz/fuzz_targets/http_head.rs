#![no_main]
// The property is documented at sack::checks::http_head.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::http_head(data));
