#![no_main]
// The property is documented at sack::checks::mask.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::mask(data));
