//! Fuzz target `opml`: see `watcher_fuzz::opml` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::opml(data));
