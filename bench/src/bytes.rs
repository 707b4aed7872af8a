//! bytes.rs: what the store takes, from the watcher's own [`watcher::store::Footprint`]: bytes
//! on disk (file sizes and allocated blocks under `<state_dir>/db`) and logical bytes (keys +
//! values, per tree), so what sled adds on top is visible. Opens the store: run it while no
//! watcher holds it.

use std::path::PathBuf;

use watcher::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The watcher's state dir.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Known items in the store, to print bytes per item.
    #[arg(long)]
    items: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let store = Store::open(&args.state_dir)?;
    let footprint = store.footprint(&args.state_dir)?;
    let per = |b: u64| b as f64 / args.items.max(1) as f64;
    let mb = |b: u64| b as f64 / 1e6;
    let trees: Vec<String> = (footprint.trees.iter())
        .filter(|t| t.records > 0)
        .map(|t| {
            format!(
                "{} {} records {:.1} MB",
                t.name,
                t.records,
                mb(t.logical_bytes)
            )
        })
        .collect();
    let logical = footprint.logical_bytes();
    println!(
        "store: {} known items; disk {:.1} MB ({:.0} B/item; allocated {:.1} MB, {:.0} B/item), \
         logical {:.1} MB ({:.0} B/item); trees: {}",
        args.items,
        mb(footprint.disk_bytes),
        per(footprint.disk_bytes),
        mb(footprint.allocated_bytes),
        per(footprint.allocated_bytes),
        mb(logical),
        per(logical),
        trees.join(", ")
    );
    Ok(())
}
