//! Fuzz target `feed`: see `watcher_fuzz::feed` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::feed(data));
