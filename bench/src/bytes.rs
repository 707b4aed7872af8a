//! bytes.rs: what the store takes: bytes on disk (every file under `<state_dir>/db`) and
//! logical bytes (keys + values, per sled tree), so what sled adds on top is visible. Opens the
//! sled database directly: run it while no watcher holds the store.

use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The watcher's state dir (the sled database is its `db/`).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Known items in the store, to print bytes per item.
    #[arg(long)]
    items: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let db_dir = args.state_dir.join("db");
    let disk = disk_bytes(&db_dir)?;
    let db = sled::open(&db_dir).with_context(|| format!("cannot open `{}`", db_dir.display()))?;
    let mut names = db.tree_names();
    names.sort();
    let mut logical = 0u64;
    let mut trees = Vec::new();
    for name in names {
        let tree = db.open_tree(&name)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for entry in tree.iter() {
            let (k, v) = entry?;
            n += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        logical += bytes;
        if n > 0 {
            trees.push(format!(
                "{} {n} entries {:.1} MB",
                String::from_utf8_lossy(&name),
                bytes as f64 / 1e6
            ));
        }
    }
    let per = |b: u64| b as f64 / args.items.max(1) as f64;
    println!(
        "store: {} known items; disk {:.1} MB ({:.0} B/item), logical {:.1} MB ({:.0} B/item); trees: {}",
        args.items,
        disk as f64 / 1e6,
        per(disk),
        logical as f64 / 1e6,
        per(logical),
        trees.join(", ")
    );
    Ok(())
}

/// Every file's size under `dir` (sled's blobs, snapshots and its one big file).
fn disk_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot list `{}`", dir.display()))?
    {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
