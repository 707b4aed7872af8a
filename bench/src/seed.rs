//! seed.rs: store growth for the benchmark. Records `--per-source` synthetic known items for
//! every source of a config through the watcher's own commit path (`Store::commit_poll`, one
//! transaction per `--chunk` items, as a poll that found them would), so the store grows the
//! way polling grows it. The sources must be in the store already (a cold round first); their
//! state (validators, schedule) is written back unchanged.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use watcher::identity::{Item, content_hash};
use watcher::store::{PollCommit, Store, source_key};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The watcher config whose sources get the items (its store must not be in use).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Synthetic items per source.
    #[arg(long)]
    per_source: usize,
    /// Items per commit (one transaction each).
    #[arg(long, default_value_t = 100)]
    chunk: usize,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = watcher::config::Config::load(&args.config)
        .with_context(|| format!("cannot load `{}`", args.config.display()))?;
    let store = Store::open(&config.watcher.state_dir)?;
    let sources = config.sources();
    let rt = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let mut commits = 0usize;
    rt.block_on(async {
        for (s, source) in sources.iter().enumerate() {
            let key = source_key(&source.author, &source.url);
            let state = store.source(&key)?.with_context(|| {
                format!(
                    "source `{}` is not in the store yet; hint: run a cold round first",
                    source.url
                )
            })?;
            let mut k = 0;
            while k < args.per_source {
                let n = args.chunk.max(1).min(args.per_source - k);
                let record = (k..k + n).map(|k| item(s, k)).collect();
                store
                    .commit_poll(PollCommit {
                        source_key: key.clone(),
                        state: state.clone(),
                        record,
                        stage: Vec::new(),
                        hold: Vec::new(),
                        baseline: false,
                    })
                    .await?;
                commits += 1;
                k += n;
            }
        }
        store.flush().await?;
        anyhow::Ok(())
    })?;
    println!(
        "seeded {} items ({} per source over {} sources) in {} commits, {:.1} s",
        args.per_source * sources.len(),
        args.per_source,
        sources.len(),
        commits,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Synthetic item `k` of source `s`: shaped like the benchmark feeds' items.
fn item(s: usize, k: usize) -> Item {
    let url = format!("https://bench.example/seed/s{s}/a{k}");
    let title = format!("Seeded article {k} of source {s}");
    Item {
        id: url.clone(),
        canonical_url: Some(url),
        link_shared: false,
        content_hash: content_hash(Some(&title), Some("seeded")),
        title: Some(title),
        published: None,
        revision: 0,
        keys: Default::default(),
    }
}
