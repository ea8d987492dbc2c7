#![no_main]
// The property is documented at sack::checks::utf8.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::utf8(data));
