//! fuzz_replay.rs: replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the same
//! entry points the cargo-fuzz targets call (`fuzz/harness/lib.rs`, included here), on stable, so
//! CI keeps every input the fuzzer found interesting: no panic, and bounded work (the harness
//! asserts the work budget; this asserts the time).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../../fuzz/harness/lib.rs"]
mod harness;

/// One input may take this long, in a debug build on a loaded machine.
const PER_INPUT: Duration = Duration::from_secs(10);

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read `{}`: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "`{}` holds no inputs", dir.display());
    files
}

fn replay(target: &str, entry: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap();
        let started = Instant::now();
        entry(&data);
        let took = started.elapsed();
        assert!(
            took < PER_INPUT,
            "{target}: `{}` took {took:?}",
            file.display()
        );
    }
}

#[test]
fn fuzz_corpus_feed() {
    replay("feed", harness::feed);
}

#[test]
fn fuzz_corpus_sitemap() {
    replay("sitemap", harness::sitemap);
}

#[test]
fn fuzz_corpus_page() {
    replay("page", harness::page);
}

#[test]
fn fuzz_corpus_canonical() {
    replay("canonical", harness::canonical);
}

#[test]
fn fuzz_corpus_config() {
    replay("config", harness::config);
}

#[test]
fn fuzz_corpus_opml() {
    replay("opml", harness::opml);
}

#[test]
fn fuzz_corpus_chain() {
    replay("chain", harness::chain);
}
