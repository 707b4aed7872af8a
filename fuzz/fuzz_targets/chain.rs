//! Fuzz target `chain`: see `watcher_fuzz::chain` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::chain(data));
