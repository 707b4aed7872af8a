//! store_size: fills a store with N synthetic known items through the real commit path (one
//! baseline commit per source, as a cold round writes them) and prints what it takes: disk and
//! logical bytes (keys + values) per item, per tree, and how long opening it again takes.
//!
//!     cargo run --release -p watcher --example store_size -- fill --items 200000
//!     cargo run --release -p watcher --example store_size -- fill --items 1000000 --dir /tmp/s --kill
//!     cargo run --release -p watcher --example store_size -- open /tmp/s
//!
//! `--kill` ends the filling process with SIGKILL (no final flush), so `open` then measures a
//! recovery. sled's settings can be varied (`--cache-mb`, `--flush-ms`, `--segment-kb`,
//! `--high-throughput`) to compare them; the defaults are the watcher's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use watcher::identity::{Item, content_hash};
use watcher::store::{PollCommit, SourceState, Store, Tuning, source_key};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// sled's page cache, MiB (default: the watcher's).
    #[arg(long, global = true)]
    cache_mb: Option<u64>,
    /// sled's background flush interval, ms (0: none).
    #[arg(long, global = true)]
    flush_ms: Option<u64>,
    /// sled's segment size, KiB (fixed when the db is created).
    #[arg(long, global = true)]
    segment_kb: Option<usize>,
    /// sled's HighThroughput mode instead of LowSpace.
    #[arg(long, global = true)]
    high_throughput: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Fill a new store and measure it.
    Fill {
        /// Known items in all.
        #[arg(long, default_value_t = 200_000)]
        items: usize,
        /// Items per source (one commit each).
        #[arg(long, default_value_t = 20)]
        per_source: usize,
        /// The state dir (default: a temp dir, removed afterwards). Must not exist yet.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// End with SIGKILL after filling, without a final flush.
        #[arg(long)]
        kill: bool,
    },
    /// Open an existing store and measure it.
    Open { dir: PathBuf },
}

fn tuning(args: &Args) -> Tuning {
    let d = Tuning::default();
    Tuning {
        cache_capacity: args.cache_mb.map_or(d.cache_capacity, |mb| mb << 20),
        flush_every_ms: match args.flush_ms {
            None => d.flush_every_ms,
            Some(0) => None,
            Some(ms) => Some(ms),
        },
        segment_size: args.segment_kb.map_or(d.segment_size, |kb| kb << 10),
        high_throughput: args.high_throughput,
    }
}

/// The `n`th synthetic item of source `s`.
fn item(s: usize, n: usize) -> Item {
    let url = format!("https://blog{s}.example/posts/{n}/");
    let title = format!("Post {n} of blog {s}");
    Item {
        id: format!("g:{url}"),
        content_hash: content_hash(Some(&title), Some("a paragraph of body text")),
        canonical_url: Some(url),
        link_shared: false,
        title: Some(title),
        published: None,
        revision: 0,
        keys: Default::default(),
    }
}

fn report(store: &Store, dir: &Path, items: u64) -> anyhow::Result<()> {
    let f = store.footprint(dir)?;
    let per = |b: u64| b as f64 / items.max(1) as f64;
    println!(
        "items {items}: disk {} B ({:.0} B/item), allocated {} B ({:.0} B/item), logical {} B ({:.1} B/item)",
        f.disk_bytes,
        per(f.disk_bytes),
        f.allocated_bytes,
        per(f.allocated_bytes),
        f.logical_bytes(),
        per(f.logical_bytes())
    );
    for t in f.trees.iter().filter(|t| t.records > 0) {
        println!(
            "  tree {:<14} {:>9} records {:>11} B logical",
            t.name, t.records, t.logical_bytes
        );
    }
    Ok(())
}

fn known_items(store: &Store) -> anyhow::Result<u64> {
    Ok(store.sources()?.iter().map(|(_, s)| s.items_known).sum())
}

/// This process's CPU time so far (user + system), from /proc (10 ms resolution).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let field = |n: usize| after.split(' ').nth(n).and_then(|v| v.parse::<f64>().ok());
    let ticks = field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tuning = tuning(&args);
    println!("sled: {tuning:?}");
    match &args.command {
        Command::Fill {
            items,
            per_source,
            dir,
            kill,
        } => {
            let tmp = tempfile::tempdir()?;
            let dir = dir.clone().unwrap_or_else(|| tmp.path().join("state"));
            anyhow::ensure!(!dir.exists(), "`{}` exists already", dir.display());
            let store = Store::open_tuned(&dir, &tuning)?;
            let started = Instant::now();
            let sources = items.div_ceil(*per_source);
            for s in 0..sources {
                let author = format!("Author {s}");
                let url = format!("http://feeds{}.test/{s}.xml", s % 50);
                let record: Vec<Item> = (0..*per_source)
                    .map(|n| item(s, n))
                    .take(items - s * per_source)
                    .collect();
                let state = SourceState {
                    author: author.clone(),
                    url: url.clone(),
                    etag: Some(format!("\"{s}\"")),
                    baseline_done: true,
                    ..Default::default()
                };
                store
                    .commit_poll(PollCommit {
                        source_key: source_key(&author, &url),
                        state,
                        record,
                        stage: vec![],
                        hold: vec![],
                        baseline: true,
                    })
                    .await?;
            }
            println!(
                "filled {items} items of {sources} sources in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            if *kill {
                println!("killing this process (SIGKILL) without a final flush");
                nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
            }
            store.flush().await?;
            report(&store, &dir, *items as u64)?;
            drop(store);
            let started = Instant::now();
            let store = Store::open_tuned(&dir, &tuning)?;
            println!("reopened in {:.3} s", started.elapsed().as_secs_f64());
            report(&store, &dir, known_items(&store)?)?;
        }
        Command::Open { dir } => {
            let (started, cpu) = (Instant::now(), cpu_secs());
            let store = Store::open_tuned(dir, &tuning)?;
            println!(
                "opened in {:.3} s ({:.2} s CPU)",
                started.elapsed().as_secs_f64(),
                cpu_secs() - cpu
            );
            report(&store, dir, known_items(&store)?)?;
        }
    }
    Ok(())
}
