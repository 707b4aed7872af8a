//! sources.rs: the `[[authors]]` tables as written (feeds, sites, sitemaps, medium and substack
//! shortcuts, schedule overrides) and what they resolve to: one [`SourceConfig`] per source,
//! holding parsed values (the cron schedule, the CSS selector) so nothing is parsed again later.

use std::time::Duration;

use pipelines::schedule::Schedule;
use serde::Deserialize;
use url::Url;

use super::hold::{HoldOverrides, HoldRule};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    /// RSS / Atom / JSON Feed URLs, or tables `{ url, interval, cron }`.
    #[serde(default)]
    pub feeds: Vec<FeedSpec>,
    /// Pages without a feed: `{ url, selector }` picks article links by CSS selector; a bare URL
    /// (or a table without selector) discovers the site's feed.
    #[serde(default)]
    pub sites: Vec<SiteSpec>,
    /// Sitemaps (or sitemap indexes, `.xml.gz` too): `"url"` or `{ url, include }`.
    #[serde(default)]
    pub sitemaps: Vec<SitemapSpec>,
    /// Medium handles: `"@user"` → `https://medium.com/feed/@user`.
    #[serde(default)]
    pub medium: OneOrMany,
    /// Substack names: `"name"` → `https://name.substack.com/feed`.
    #[serde(default)]
    pub substack: OneOrMany,
    /// Treat what the first poll finds as new instead of recording a baseline.
    #[serde(default)]
    pub backfill: bool,
    /// Poll interval for this author's sources (default: `[watcher] interval`).
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Poll on a 5-field cron expression (UTC) instead of an interval.
    #[serde(default)]
    pub cron: Option<String>,
    /// This author's own config template (`digital_data_etl` format only), instead of
    /// `[output] template`. Absolute after loading.
    #[serde(default)]
    pub template: Option<std::path::PathBuf>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Default)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::None => vec![],
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A source given as a table: its URL, schedule overrides, and the keys of its kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub url: String,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub cron: Option<String>,
    /// `sites`: the CSS selector of article links (none: discover the site's feed).
    #[serde(default)]
    pub selector: Option<String>,
    /// `sitemaps`: keep only URLs whose path contains this.
    #[serde(default)]
    pub include: Option<String>,
    /// `false`: never hold this source's floods (see `config::hold`).
    #[serde(default)]
    pub hold: Option<bool>,
    #[serde(default)]
    pub hold_above: Option<usize>,
    #[serde(default)]
    pub hold_share: Option<f64>,
    #[serde(default)]
    pub hold_share_min: Option<usize>,
    /// `false`: never subscribe to this feed's WebSub hub (default: push when `[websub]` is
    /// set and the feed names a hub).
    #[serde(default)]
    pub push: Option<bool>,
}

/// A source: a URL, or a table `{ url, ... }`.
#[derive(Debug, Clone)]
pub enum Spec {
    Url(String),
    Table(SourceTable),
}

// Hand-written instead of `#[serde(untagged)]`, whose only error is "did not match any variant":
// a typo inside a source table must be named.
impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(url) => Ok(Spec::Url(url)),
            toml::Value::Table(t) => SourceTable::deserialize(toml::Value::Table(t))
                .map(Spec::Table)
                .map_err(|e| D::Error::custom(e.message().trim())),
            other => Err(D::Error::custom(format!(
                "expected a URL string or a table {{ url = \"...\" }}, got {}",
                other.type_str()
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(one) => Ok(OneOrMany::One(one)),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!(
                        "expected a list of strings, found {}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(OneOrMany::Many),
            other => Err(D::Error::custom(format!(
                "expected a string or a list of strings, got {}",
                other.type_str()
            ))),
        }
    }
}

pub type FeedSpec = Spec;
pub type SiteSpec = Spec;
pub type SitemapSpec = Spec;

impl SourceTable {
    /// The table's overrides of the `[watcher]` hold settings.
    pub fn hold_overrides(&self) -> HoldOverrides {
        HoldOverrides {
            hold: self.hold,
            hold_above: self.hold_above,
            hold_share: self.hold_share,
            hold_share_min: self.hold_share_min,
        }
    }
}

impl Spec {
    pub fn table(&self) -> SourceTable {
        match self {
            Spec::Url(url) => SourceTable {
                url: url.clone(),
                ..SourceTable::default()
            },
            Spec::Table(t) => t.clone(),
        }
    }
}

/// What kind of source a URL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Feed,
    /// An HTML page; article links picked by a CSS selector.
    Page {
        selector: CssSelector,
    },
    /// A site whose feed is found by autodiscovery.
    Discover,
    Sitemap {
        include: Option<String>,
    },
}

/// One source, resolved from the config (shortcuts expanded, schedule overrides applied).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub author: String,
    /// The URL as configured (after shortcut expansion): the source's key in the store.
    pub url: String,
    pub kind: SourceKind,
    pub backfill: bool,
    pub interval: Duration,
    /// Poll on this schedule (UTC) instead of the interval.
    pub cron: Option<Schedule>,
    /// When a poll's new items are a flood, held instead of delivered (`None`: `hold = false`).
    pub hold: Option<HoldRule>,
    /// Subscribe to the feed's WebSub hub when it names one (`push = false` turns it off).
    pub push: bool,
}

impl SourceConfig {
    /// The host polled (for the per-host limit).
    pub fn host(&self) -> String {
        Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default()
    }
}

/// `@user` (or `user`) → `https://medium.com/feed/@user`.
pub fn medium_feed(handle: &str) -> String {
    format!(
        "https://medium.com/feed/@{}",
        handle.trim().trim_start_matches('@')
    )
}

/// `name` → `https://name.substack.com/feed`.
pub fn substack_feed(name: &str) -> String {
    format!("https://{}.substack.com/feed", name.trim())
}

/// Parses a 5-field cron expression (minute hour day-of-month month day-of-week), read in UTC,
/// with the pipelines runner's parser (the one cron dialect of the workspace).
pub fn parse_cron(expr: &str) -> Result<Schedule, String> {
    // Checked first so that the watcher's message (shown by `watcher check`) names the fields;
    // the runner also accepts `@daily` shortcuts, which a source's `cron` does not.
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "expected 5 cron fields (minute hour day month weekday), got {fields} in `{expr}`"
        ));
    }
    Schedule::parse(expr, "UTC").map_err(|e| e.to_string())
}

/// A CSS selector of article links, parsed once when the config is read. Two are equal when
/// written the same.
#[derive(Debug, Clone)]
pub struct CssSelector {
    text: String,
    parsed: scraper::Selector,
}

/// Why a CSS selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid CSS selector `{selector}`: {reason}; selectors are CSS as in a browser's \
     `document.querySelectorAll`, e.g. `article h2 a`"
)]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

impl CssSelector {
    pub fn parse(text: &str) -> Result<CssSelector, SelectorError> {
        let invalid = |reason: String| SelectorError {
            selector: text.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        let parsed =
            scraper::Selector::parse(text).map_err(|err| invalid(selector_problem(&err)))?;
        Ok(CssSelector {
            text: text.to_owned(),
            parsed,
        })
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn selector(&self) -> &scraper::Selector {
        &self.parsed
    }
}

impl PartialEq for CssSelector {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CssSelector {}

impl std::fmt::Display for CssSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// scraper's messages are capitalised and one asks to be reported upstream; say it our way.
fn selector_problem(err: &scraper::error::SelectorErrorKind<'_>) -> String {
    use scraper::error::SelectorErrorKind as Kind;
    match err {
        Kind::EndOfLine => "it ends too early".to_owned(),
        Kind::UnexpectedSelectorParseError(kind) => {
            format!("unsupported or malformed selector syntax ({kind:?})")
        }
        other => lowercase_first(&other.to_string()),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_selectors_are_named_with_a_hint() {
        let err = CssSelector::parse("article h2[").unwrap_err();
        insta::assert_snapshot!(err, @"invalid CSS selector `article h2[`: it ends too early; selectors are CSS as in a browser's `document.querySelectorAll`, e.g. `article h2 a`");
        insta::assert_snapshot!(CssSelector::parse("a >> b").unwrap_err(), @"invalid CSS selector `a >> b`: unsupported or malformed selector syntax (DanglingCombinator); selectors are CSS as in a browser's `document.querySelectorAll`, e.g. `article h2 a`");
        insta::assert_snapshot!(CssSelector::parse("  ").unwrap_err(), @"invalid CSS selector `  `: it is empty; selectors are CSS as in a browser's `document.querySelectorAll`, e.g. `article h2 a`");
        assert!(CssSelector::parse("article h2 > a[href^='/p/']:not(.ad)").is_ok());
    }
}
