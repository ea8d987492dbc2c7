#![no_main]
// The property is documented at sack::checks::deflate.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::deflate(data));
