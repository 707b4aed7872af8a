//! Fuzz target `canonical`: see `watcher_fuzz::canonical` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::canonical(data));
