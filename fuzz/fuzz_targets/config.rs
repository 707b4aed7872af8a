//! Fuzz target `config`: see `watcher_fuzz::config` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::config(data));
