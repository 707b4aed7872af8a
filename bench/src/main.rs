//! main.rs: the `bench` tool behind `scripts/bench-*.sh` (see the README's "Performance"
//! section): the parse benchmark, the scale benchmark's feeds and config, synthetic store growth
//! through the watcher's own commit path, and the store's bytes (disk and logical).

mod bytes;
mod feeds;
mod parse;
mod seed;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tools for the watcher's benchmarks. Run through `scripts/bench-*.sh`, in release.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Our parse path (charset, repair pre-pass, feed-rs, item extraction) against raw feed-rs,
    /// side by side, over the corpus files both accept.
    Parse(parse::Args),
    /// Writes the scale benchmark's feeds (all at generation 0) and its watcher config.
    Feeds(feeds::Args),
    /// Rewrites every `--every`-th feed at generation `--round`: one new item on top, the
    /// oldest dropped.
    Change(feeds::ChangeArgs),
    /// Records synthetic known items for every configured source through the watcher's commit
    /// path (the store must hold the sources already: run a cold round first).
    Seed(seed::Args),
    /// The store's bytes: on disk, and logical (keys + values) per tree.
    StoreBytes(bytes::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Parse(args) => parse::run(&args),
        Command::Feeds(args) => feeds::write_all(&args),
        Command::Change(args) => feeds::change(&args),
        Command::Seed(args) => seed::run(&args),
        Command::StoreBytes(args) => bytes::run(&args),
    }
}

/// The repository's root (this crate lives one level below it).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate is inside the workspace")
        .to_path_buf()
}
