//! parse.rs: the parse benchmark. Our parse path (`watcher::parse::parse_feed`: charset choice,
//! the repair pre-pass, feed-rs with our id rule, item extraction) against raw feed-rs
//! (`feed_rs::parser::parse`) over the public corpus files both accept, interleaved round by
//! round so both see the same machine load. Prints per-side throughput and their ratio; asserts
//! no time.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory (never the holdout set).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Rounds over the whole corpus per side (each round times every file once per side).
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Also print each file's figures.
    #[arg(long)]
    per_file: bool,
}

/// One corpus file both parsers accept, with its best time per side.
struct Case {
    name: String,
    body: Vec<u8>,
    ours: Duration,
    raw: Duration,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = (args.corpus.clone())
        .unwrap_or_else(|| crate::workspace().join("watcher/testdata/corpus/public"));
    if dir.components().any(|c| c.as_os_str() == "holdout") {
        bail!(
            "`{}` is the holdout set, kept for checking the parser on feeds it was not tuned on; \
             hint: benchmark on corpus/public",
            dir.display()
        );
    }
    let (mut cases, skipped) = accepted(&dir)?;
    if cases.is_empty() {
        bail!("no file in `{}` parses with both parsers", dir.display());
    }
    let base = url::Url::parse("https://corpus.example/feed").expect("a valid URL");
    let mut round_totals = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds.max(1) {
        let (mut ours_total, mut raw_total) = (Duration::ZERO, Duration::ZERO);
        for case in &mut cases {
            // Alternate which side goes first, so neither always finds the caches warm.
            let (ours, raw) = if round % 2 == 0 {
                let o = time(|| ours(&case.body, &base));
                (o, time(|| raw(&case.body)))
            } else {
                let r = time(|| raw(&case.body));
                (time(|| ours(&case.body, &base)), r)
            };
            case.ours = if round == 0 {
                ours
            } else {
                case.ours.min(ours)
            };
            case.raw = if round == 0 { raw } else { case.raw.min(raw) };
            ours_total += ours;
            raw_total += raw;
        }
        round_totals.push((ours_total, raw_total));
    }

    let bytes: usize = cases.iter().map(|c| c.body.len()).sum();
    println!(
        "parse benchmark: {} corpus files both parsers accept ({:.2} MB), {} rounds; skipped: {}",
        cases.len(),
        bytes as f64 / 1e6,
        args.rounds.max(1),
        skipped.join(", ")
    );
    if args.per_file {
        println!(
            "{:<48} {:>9} {:>10} {:>10} {:>6}",
            "file", "bytes", "ours µs", "raw µs", "ratio"
        );
        for c in &cases {
            println!(
                "{:<48} {:>9} {:>10.1} {:>10.1} {:>6.2}",
                c.name,
                c.body.len(),
                micros(c.ours),
                micros(c.raw),
                c.raw.as_secs_f64() / c.ours.as_secs_f64()
            );
        }
    }
    let best_ours: Duration = cases.iter().map(|c| c.ours).sum();
    let best_raw: Duration = cases.iter().map(|c| c.raw).sum();
    let median = |pick: fn(&(Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = round_totals.iter().map(pick).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (med_ours, med_raw) = (median(|t| t.0), median(|t| t.1));
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!("{:<34} {:>12} {:>12}", "", "ours (path)", "raw feed-rs");
    println!(
        "{:<34} {:>9.2} ms {:>9.2} ms",
        "corpus, median round",
        millis(med_ours),
        millis(med_raw)
    );
    println!(
        "{:<34} {:>9.1} MB/s {:>7.1} MB/s",
        "throughput, median round",
        mbps(med_ours),
        mbps(med_raw)
    );
    println!(
        "{:<34} {:>9.1} MB/s {:>7.1} MB/s",
        "throughput, best time per file",
        mbps(best_ours),
        mbps(best_raw)
    );
    println!(
        "ours / raw throughput: {:.1}% (median round), {:.1}% (best per file)",
        100.0 * med_raw.as_secs_f64() / med_ours.as_secs_f64(),
        100.0 * best_raw.as_secs_f64() / best_ours.as_secs_f64()
    );
    Ok(())
}

/// The corpus files both parsers accept, and the names of those skipped (with which side refused).
fn accepted(dir: &Path) -> anyhow::Result<(Vec<Case>, Vec<String>)> {
    let base = url::Url::parse("https://corpus.example/feed").expect("a valid URL");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the corpus `{}`", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let (mut cases, mut skipped) = (Vec::new(), Vec::new());
    for path in paths.into_iter().filter(|p| p.is_file()) {
        let body =
            std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let ours_ok = ours(&body, &base);
        let raw_ok = raw(&body);
        match (ours_ok, raw_ok) {
            (true, true) => cases.push(Case {
                name,
                body,
                ours: Duration::ZERO,
                raw: Duration::ZERO,
            }),
            (true, false) => skipped.push(format!("{name} (raw refuses)")),
            (false, true) => skipped.push(format!("{name} (ours refuses)")),
            (false, false) => skipped.push(format!("{name} (both refuse)")),
        }
    }
    Ok((cases, skipped))
}

fn ours(body: &[u8], base: &url::Url) -> bool {
    black_box(watcher::parse::parse_feed(black_box(body), None, base)).is_ok()
}

fn raw(body: &[u8]) -> bool {
    black_box(feed_rs::parser::parse(black_box(body))).is_ok()
}

fn time(f: impl FnOnce() -> bool) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
