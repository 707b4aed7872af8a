//! Fuzz target `sitemap`: see `watcher_fuzz::sitemap` (fuzz/harness/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| watcher_fuzz::sitemap(data));
