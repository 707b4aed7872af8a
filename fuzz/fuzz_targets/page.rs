//! Fuzz target `page`: see `watcher_fuzz::page` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::page(data));
