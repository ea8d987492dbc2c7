#![no_main]
// The property is documented at sack::checks::http_body.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::http_body(data));
