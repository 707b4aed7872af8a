//! validate.rs: turns the file's raw tables into checked values, collecting every problem with
//! the key it belongs to. Only what the file itself can tell is checked here; what needs the
//! chain files or the trigger client (the `[trigger]` target) comes in through [`TriggerCheck`],
//! supplied by the preflight step.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use pipelines::schedule::Schedule;
use url::Url;

use super::settings::{
    EMBEDDED, EmbeddedSettings, RawTrigger, TriggerSettings, WATCHER_TRIGGER_KEYS, WatcherSettings,
};
use super::sources::{
    Author, CssSelector, SourceConfig, SourceKind, SourceTable, medium_feed, parse_cron,
    substack_feed,
};
use super::{ConfigProblem, FetchSettings};

/// Checks of the `[trigger]` table that need more than the file (the chain files of
/// `kind = "embedded"`, the trigger client's target definition). Each problem names its key.
pub trait TriggerCheck {
    fn check(&self, trigger: &TriggerSettings) -> Vec<ConfigProblem>;
}

/// No checks beyond the file (tests, and tools that only read the sources).
pub struct FileOnly;

impl TriggerCheck for FileOnly {
    fn check(&self, _: &TriggerSettings) -> Vec<ConfigProblem> {
        Vec::new()
    }
}

pub(super) fn trigger(
    table: Option<toml::Table>,
    base: &Path,
    checks: &dyn TriggerCheck,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TriggerSettings> {
    let Some(table) = table else {
        problems.push(ConfigProblem::new(
            "trigger",
            "missing table; expected for example [trigger] kind = \"webhook\" url = \"http://127.0.0.1:9000/hook\"",
        ));
        return None;
    };
    let raw: RawTrigger = match toml::Value::Table(table.clone()).try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(ConfigProblem::new(
                "trigger",
                e.to_string().trim().to_string(),
            ));
            return None;
        }
    };
    super::durations::trigger(&raw, problems);
    if raw.max_attempts == 0 {
        problems.push(ConfigProblem::new(
            "trigger.max_attempts",
            "expected at least 1",
        ));
    }
    let embedded = (raw.kind == EMBEDDED).then(|| EmbeddedSettings {
        chains_dir: base.join(&raw.chains_dir),
        shutdown_grace: raw.shutdown_grace,
    });
    let settings = TriggerSettings {
        pipeline: raw.pipeline,
        max_attempts: raw.max_attempts,
        retry_base_delay: raw.retry_base_delay,
        retry_max_delay: raw.retry_max_delay,
        min_interval: raw.min_interval,
        wait_timeout: raw.wait_timeout,
        follow_interval: raw.follow_interval,
        run_lost_after: raw.run_lost_after,
        embedded,
        table,
    };
    problems.extend(checks.check(&settings));
    if settings.embedded.is_some() {
        for key in settings.table.keys() {
            if key != "kind" && key != "pipeline" && !WATCHER_TRIGGER_KEYS.contains(&key.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("trigger.{key}"),
                    "not a key of kind = \"embedded\" (the runner runs inside the watcher: no url or token)",
                ));
            }
        }
    }
    Some(settings)
}

/// Every source of every author, in config order (per author: feeds, medium, substack, sites,
/// sitemaps), with the cron expressions and selectors parsed.
pub(super) fn sources(
    authors: &[Author],
    watcher: &WatcherSettings,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<SourceConfig> {
    if authors.is_empty() {
        problems.push(ConfigProblem::new(
            "authors",
            "no [[authors]] table; expected at least one author with feeds to watch",
        ));
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, author) in authors.iter().enumerate() {
        if author.name.trim().is_empty() {
            problems.push(ConfigProblem::new(
                format!("authors[{i}].name"),
                "expected a non-empty name",
            ));
        } else if !names.insert(author.name.trim().to_lowercase()) {
            problems.push(ConfigProblem::new(
                format!("authors[{i}].name"),
                format!("`{}` is listed twice; merge the two tables", author.name),
            ));
        }
        out.extend(author_sources(i, author, watcher, problems));
    }
    out
}

/// The sources of one author; problems in the order the author's lists are written.
fn author_sources(
    i: usize,
    author: &Author,
    watcher: &WatcherSettings,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<SourceConfig> {
    let listed = author.feeds.len()
        + author.sites.len()
        + author.sitemaps.len()
        + author.medium.items().len()
        + author.substack.items().len();
    if listed == 0 {
        problems.push(ConfigProblem::new(
            format!("authors[{i}]"),
            format!(
                "author `{}` has no sources; add feeds = [\"https://...\"] (or sites, sitemaps, medium, substack)",
                author.name
            ),
        ));
    }
    if let Some(interval) = author.interval {
        super::durations::bounded(&format!("authors[{i}].interval"), interval, problems);
    }
    let author_cron = author
        .cron
        .as_deref()
        .and_then(|c| cron(c, format!("authors[{i}].cron"), problems));
    let mut walk = Walk {
        author,
        author_cron,
        watcher,
        problems,
        found: Vec::new(),
    };
    for (j, f) in author.feeds.iter().enumerate() {
        let key = format!("authors[{i}].feeds[{j}]");
        let t = f.table();
        walk.add(Rank::Feed, &key, &t, SourceKind::Feed);
        misplaced(walk.problems, &key, &t, "feeds");
    }
    for (j, f) in author.sites.iter().enumerate() {
        let key = format!("authors[{i}].sites[{j}]");
        let t = f.table();
        misplaced(walk.problems, &key, &t, "sites");
        let kind = match t.selector.as_deref().map(CssSelector::parse) {
            None => SourceKind::Discover,
            Some(Ok(selector)) => SourceKind::Page { selector },
            Some(Err(e)) => {
                // Reported after the URL and cron, as `watcher check` always did.
                let bad = ConfigProblem::new(format!("{key}.selector"), e.to_string());
                walk.add(Rank::Site, &key, &t, SourceKind::Discover);
                walk.problems.push(bad);
                continue;
            }
        };
        walk.add(Rank::Site, &key, &t, kind);
    }
    for (j, f) in author.sitemaps.iter().enumerate() {
        let key = format!("authors[{i}].sitemaps[{j}]");
        let t = f.table();
        misplaced(walk.problems, &key, &t, "sitemaps");
        let kind = SourceKind::Sitemap {
            include: t.include.clone(),
        };
        walk.add(Rank::Sitemap, &key, &t, kind);
    }
    for (j, m) in author.medium.items().iter().enumerate() {
        let t = SourceTable {
            url: medium_feed(m),
            ..SourceTable::default()
        };
        walk.add(
            Rank::Medium,
            &format!("authors[{i}].medium[{j}]"),
            &t,
            SourceKind::Feed,
        );
    }
    for (j, s) in author.substack.items().iter().enumerate() {
        let t = SourceTable {
            url: substack_feed(s),
            ..SourceTable::default()
        };
        walk.add(
            Rank::Substack,
            &format!("authors[{i}].substack[{j}]"),
            &t,
            SourceKind::Feed,
        );
    }
    let mut found = walk.found;
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().map(|(_, source)| source).collect()
}

/// Where a source's list comes in an author's sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Feed,
    Medium,
    Substack,
    Site,
    Sitemap,
}

/// One author's sources as they are read.
struct Walk<'a> {
    author: &'a Author,
    author_cron: Option<Schedule>,
    watcher: &'a WatcherSettings,
    problems: &'a mut Vec<ConfigProblem>,
    found: Vec<(Rank, SourceConfig)>,
}

impl Walk<'_> {
    fn add(&mut self, rank: Rank, key: &str, t: &SourceTable, kind: SourceKind) {
        if let Err(message) = parse_source_url(&t.url) {
            self.problems.push(ConfigProblem::new(key, message));
        }
        if let Some(interval) = t.interval {
            super::durations::bounded(&format!("{key}.interval"), interval, self.problems);
        }
        let cron = match &t.cron {
            Some(c) => cron(c, format!("{key}.cron"), self.problems),
            None => self.author_cron.clone(),
        };
        let hold = super::hold::resolve(self.watcher, &t.hold_overrides(), key, self.problems);
        self.found.push((
            rank,
            SourceConfig {
                author: self.author.name.clone(),
                url: t.url.clone(),
                kind,
                backfill: self.author.backfill,
                interval: t
                    .interval
                    .or(self.author.interval)
                    .unwrap_or(self.watcher.interval),
                cron,
                hold,
                push: t.push != Some(false),
            },
        ));
    }
}

fn cron(expr: &str, key: String, problems: &mut Vec<ConfigProblem>) -> Option<Schedule> {
    parse_cron(expr)
        .map_err(|message| problems.push(ConfigProblem::new(key, message)))
        .ok()
}

/// `selector` belongs to `sites`, `include` to `sitemaps`.
fn misplaced(problems: &mut Vec<ConfigProblem>, key: &str, t: &SourceTable, list: &str) {
    if t.selector.is_some() && list != "sites" {
        problems.push(ConfigProblem::new(
            format!("{key}.selector"),
            format!("`selector` is a key of `sites`, not of `{list}`"),
        ));
    }
    if t.include.is_some() && list != "sitemaps" {
        problems.push(ConfigProblem::new(
            format!("{key}.include"),
            format!("`include` is a key of `sitemaps`, not of `{list}`"),
        ));
    }
}

/// The checks of `[watcher]` and `[fetch]`, and those across sources (bounds, duplicates).
pub(super) fn settings(
    watcher: &WatcherSettings,
    fetch: &FetchSettings,
    sources: &[SourceConfig],
    problems: &mut Vec<ConfigProblem>,
) {
    super::durations::settings(watcher, fetch, problems);
    super::hold::check_watcher(watcher, problems);
    if watcher.min_interval > watcher.max_interval {
        problems.push(ConfigProblem::new(
            "watcher.min_interval",
            "expected min_interval <= max_interval",
        ));
    }
    if let Some(s) = sources.iter().find(|s| {
        s.cron.is_none() && (s.interval < watcher.min_interval || s.interval > watcher.max_interval)
    }) {
        problems.push(ConfigProblem::new(
            format!("interval of `{}`", s.url),
            format!(
                "{} is outside min_interval..max_interval ({}..{}); change the interval or the bounds",
                humantime::format_duration(s.interval),
                humantime::format_duration(watcher.min_interval),
                humantime::format_duration(watcher.max_interval)
            ),
        ));
    }
    if !(0.0..=0.5).contains(&watcher.jitter) {
        problems.push(ConfigProblem::new(
            "watcher.jitter",
            "expected a fraction from 0.0 to 0.5",
        ));
    }
    if watcher.per_host == 0 {
        problems.push(ConfigProblem::new(
            "watcher.per_host",
            "expected at least 1",
        ));
    }
    if watcher.failing_after == 0 {
        problems.push(ConfigProblem::new(
            "watcher.failing_after",
            "expected at least 1",
        ));
    }
    if watcher.max_interval > Duration::from_secs(7 * 24 * 3600) {
        problems.push(ConfigProblem::new(
            "watcher.max_interval",
            "expected at most 7d, so that no source is silently disabled",
        ));
    }
    if !watcher.listen.ip().is_loopback() {
        problems.push(ConfigProblem::new(
            "watcher.listen",
            format!(
                "`{}` is not a loopback address; the status endpoint has no authentication, so it only listens on 127.0.0.1 or ::1",
                watcher.listen
            ),
        ));
    }
    let mut seen = HashSet::new();
    for src in sources {
        if !seen.insert((src.author.as_str(), src.url.trim_end_matches('/'))) {
            problems.push(ConfigProblem::new(
                format!("authors `{}`", src.author),
                format!(
                    "`{}` is listed twice (a shortcut and a URL can name the same feed); keep one",
                    src.url
                ),
            ));
        }
    }
    if watcher.interval.is_zero() {
        problems.push(ConfigProblem::new(
            "watcher.interval",
            "expected a duration above zero, such as \"30m\"",
        ));
    }
    if watcher.concurrency == 0 {
        problems.push(ConfigProblem::new(
            "watcher.concurrency",
            "expected at least 1",
        ));
    }
    if fetch.max_body_bytes == 0 {
        problems.push(ConfigProblem::new(
            "fetch.max_body_bytes",
            "expected at least 1",
        ));
    }
    for key in fetch.zero_limits() {
        problems.push(ConfigProblem::new(
            format!("fetch.{key}"),
            "expected at least 1",
        ));
    }
    if fetch.poll_deadline.is_zero() {
        problems.push(ConfigProblem::new(
            "fetch.poll_deadline",
            "expected a duration above zero, such as \"5m\" (every poll would fail at once)",
        ));
    }
    for bad in fetch.invalid_networks() {
        problems.push(ConfigProblem::new(
            "fetch.allow_networks",
            format!("expected CIDRs such as \"10.0.0.0/8\" or addresses, got `{bad}`"),
        ));
    }
    if let Some(proxy) = &fetch.proxy
        && !Url::parse(proxy).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    {
        problems.push(ConfigProblem::new(
            "fetch.proxy",
            format!("expected an http(s) URL such as \"http://proxy.lan:3128\", got `{proxy}`"),
        ));
    }
}

/// Parses a configured source URL: absolute http(s) only.
pub fn parse_source_url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(url) => Err(format!(
            "expected an http(s) URL, got scheme `{}` in `{text}`",
            url.scheme()
        )),
        Err(url::ParseError::RelativeUrlWithoutBase)
            if Url::parse(&format!("https://{}", text.trim())).is_ok() =>
        {
            Err(format!(
                "expected an absolute http(s) URL, got `{text}`; did you mean `https://{}`?",
                text.trim()
            ))
        }
        Err(e) => Err(format!(
            "expected an absolute http(s) URL, got `{text}` ({e})"
        )),
    }
}

/// The candidate closest to `word` (a likely typo), if any is close enough.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// What the file tells about config templates: a per-author template only fits the per-author
/// format. Their contents are the preflight step's (`emit::template`).
pub(super) fn templates(
    output: &super::OutputSettings,
    authors: &[Author],
    problems: &mut Vec<ConfigProblem>,
) {
    if output.format == super::OutputFormat::DigitalDataEtl {
        return;
    }
    for (i, author) in authors.iter().enumerate() {
        if author.template.is_some() {
            problems.push(ConfigProblem::new(
                format!("authors[{i}].template"),
                format!(
                    "a per-author template needs [output] format = \"digital_data_etl\" (it is `{}`, one config for every author); hint: set [output] template instead",
                    output.format.as_str()
                ),
            ));
        }
    }
}
