#![no_main]
// The property is documented at sack::checks::ws_frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sack::checks::ws_frames(data));
