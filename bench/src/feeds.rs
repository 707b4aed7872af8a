//! feeds.rs: the scale benchmark's world: `--feeds` static RSS files of `--items` items each,
//! served by one nginx on `--hosts` loopback addresses (127.0.0.11 onwards), and the watcher
//! config that polls them (one author per address, so a round that changes every tenth feed forms
//! five batches) and delivers to a webhook on 127.0.0.1. A feed at generation `g` lists items
//! `g .. g + items` newest first; its file time is set from `g`, so nginx's ETag and
//! Last-Modified change with the content and only then.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;

/// Where the feeds are and how they are served.
#[derive(Debug, Clone, clap::Args)]
pub struct World {
    /// The benchmark's directory: `www/f/<i>.xml`, `watcher.toml`, `state/`, `out/`.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How many feeds.
    #[arg(long, default_value_t = 10_000)]
    feeds: usize,
    /// Items per feed.
    #[arg(long, default_value_t = 20)]
    items: usize,
    /// Loopback addresses serving them (one author each).
    #[arg(long, default_value_t = 50)]
    hosts: usize,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    world: World,
    /// nginx's port on every address.
    #[arg(long)]
    port: u16,
    /// The webhook receiver's port on 127.0.0.1.
    #[arg(long)]
    hook_port: u16,
    /// The daemon's status endpoint port on 127.0.0.1.
    #[arg(long, default_value_t = 0)]
    listen_port: u16,
    /// Every source's poll interval.
    #[arg(long, default_value = "5m")]
    interval: String,
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    world: World,
    /// The generation to write (round r of the changed rounds writes generation r).
    #[arg(long)]
    round: u32,
    /// Change feeds whose index is a multiple of this (10: 10% of them).
    #[arg(long, default_value_t = 10)]
    every: usize,
}

/// The address serving feed `i`.
fn host(world: &World, i: usize) -> String {
    format!("127.0.0.{}", 11 + i % world.hosts)
}

fn feed_path(world: &World, i: usize) -> PathBuf {
    world.dir.join("www/f").join(format!("{i}.xml"))
}

/// Writes every feed at generation 0 and the watcher config.
pub fn write_all(args: &Args) -> anyhow::Result<()> {
    let world = &args.world;
    anyhow::ensure!(
        (1..=200).contains(&world.hosts),
        "--hosts must be 1..=200 (addresses 127.0.0.11 onwards)"
    );
    std::fs::create_dir_all(world.dir.join("www/f"))?;
    for i in 0..world.feeds {
        write_feed(world, i, 0)?;
    }
    let config = config(args);
    let path = world.dir.join("watcher.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write `{}`", path.display()))?;
    println!(
        "{} feeds of {} items on {} addresses, config {}",
        world.feeds,
        world.items,
        world.hosts,
        path.display()
    );
    Ok(())
}

/// Rewrites every `every`-th feed at generation `round`.
pub fn change(args: &ChangeArgs) -> anyhow::Result<()> {
    let world = &args.world;
    let mut n = 0;
    for i in (0..world.feeds).step_by(args.every.max(1)) {
        write_feed(world, i, args.round)?;
        n += 1;
    }
    println!("{n} feeds now at generation {}", args.round);
    Ok(())
}

fn write_feed(world: &World, i: usize, generation: u32) -> anyhow::Result<()> {
    let path = feed_path(world, i);
    let body = feed(world, i, generation as usize);
    std::fs::write(&path, body).with_context(|| format!("cannot write `{}`", path.display()))?;
    // The file time stands for the generation: nginx's validators change with the content,
    // however fast the rounds follow each other.
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 60 * generation as u64);
    std::fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(t)?;
    Ok(())
}

/// Feed `i` at generation `g`: items `g + items - 1` down to `g`.
fn feed(world: &World, i: usize, g: usize) -> String {
    let mut out = String::with_capacity(600 * world.items + 400);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\n\
         <title>Bench feed {i}</title><link>https://bench.example/f{i}/</link>\n\
         <description>Feed {i} of the scale benchmark</description>\n"
    );
    for n in (g..g + world.items).rev() {
        // One item a day, newest first.
        let day = chrono::DateTime::from_timestamp(1_700_000_000 + 86_400 * n as i64, 0)
            .expect("in range")
            .to_rfc2822();
        let _ = writeln!(
            out,
            "<item><title>Article {n} of feed {i}</title>\
             <link>https://bench.example/f{i}/a{n}</link>\
             <guid>https://bench.example/f{i}/a{n}</guid><pubDate>{day}</pubDate>\
             <description>Article {n} of feed {i}: a paragraph of summary text, about as long as \
             a real feed's excerpt, so the body is of a realistic size and the content hash has \
             something to chew on. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed \
             do eiusmod tempor incididunt ut labore et dolore magna aliqua.</description></item>"
        );
    }
    out.push_str("</channel></rss>\n");
    out
}

/// The watcher config: one author per address, a webhook on 127.0.0.1.
fn config(args: &Args) -> String {
    let world = &args.world;
    let mut out = format!(
        "# The scale benchmark's config (written by `bench feeds`).\n\
         [watcher]\nstate_dir = \"state\"\noutput_dir = \"out\"\ninterval = \"{interval}\"\n\
         batch_window = \"0s\"\nmin_interval = \"0s\"\nlisten = \"127.0.0.1:{listen}\"\n\n\
         [trigger]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/hook\"\n\
         pipeline = \"digital_data_etl\"\nmin_interval = \"0s\"\n",
        interval = args.interval,
        listen = args.listen_port,
        hook = args.hook_port,
    );
    for h in 0..world.hosts {
        let _ = write!(out, "\n[[authors]]\nname = \"Author {h}\"\nfeeds = [\n");
        for i in (h..world.feeds).step_by(world.hosts) {
            let _ = writeln!(
                out,
                "  \"http://{}:{}/f/{i}.xml\",",
                host(world, i),
                args.port
            );
        }
        out.push_str("]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(dir: &std::path::Path) -> World {
        World {
            dir: dir.to_path_buf(),
            feeds: 5,
            items: 4,
            hosts: 2,
        }
    }

    fn links(world: &World, i: usize) -> Vec<String> {
        let body = std::fs::read(feed_path(world, i)).unwrap();
        let base = url::Url::parse("http://127.0.0.11/f/").unwrap();
        let feed = watcher::parse::parse_feed(&body, None, &base).unwrap();
        (feed.items.iter())
            .map(|item| item.link.as_ref().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_world_parses_loads_and_a_changed_round_adds_one_item_to_every_tenth_feed() {
        let dir = tempfile::tempdir().unwrap();
        let world = world(dir.path());
        let args = Args {
            world: world.clone(),
            port: 8080,
            hook_port: 8081,
            listen_port: 0,
            interval: "5m".into(),
        };
        write_all(&args).unwrap();
        assert_eq!(
            links(&world, 3),
            (0..4)
                .rev()
                .map(|n| format!("https://bench.example/f3/a{n}"))
                .collect::<Vec<_>>()
        );
        let config = watcher::config::Config::load(&dir.path().join("watcher.toml")).unwrap();
        let sources = config.sources();
        assert_eq!(sources.len(), 5);
        assert_eq!(config.authors.len(), 2, "one author per address");
        assert!(
            (sources.iter()).any(|s| s.url.as_str() == "http://127.0.0.12:8080/f/3.xml"),
            "{sources:?}"
        );

        let mtime = |i| {
            std::fs::metadata(feed_path(&world, i))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = (mtime(0), mtime(1));
        change(&ChangeArgs {
            world: world.clone(),
            round: 1,
            every: 4,
        })
        .unwrap();
        let changed = links(&world, 4);
        assert_eq!(
            changed[0], "https://bench.example/f4/a4",
            "one new item on top"
        );
        assert_eq!(changed.len(), 4, "the oldest dropped");
        assert_eq!(
            links(&world, 1)[0],
            "https://bench.example/f1/a3",
            "unchanged"
        );
        assert!(mtime(0) > before.0, "the file time follows the generation");
        assert_eq!(mtime(1), before.1);
    }
}
