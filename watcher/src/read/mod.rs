//! read: turns a fetched response into the items it names, per kind of source, each step a
//! pure parse except where the source itself says to fetch more (a sitemap index's children,
//! the candidates of feed autodiscovery). Fetching the source, scheduling and storing are the
//! caller's (`poll`).
//!
//! - [`feed`]: RSS, Atom, JSON Feed (through `parse`);
//! - [`page`]: a page without a feed, read through a CSS selector ([`extract_links`]);
//! - [`sitemap`]: a sitemap or sitemap index, plain or gzip ([`parse_sitemap`]), and the crawl
//!   of an index's children;
//! - [`discover`]: which feed a page advertises ([`discover_feeds`]), the well-known feed paths
//!   to try when it advertises none, a cheap "is this a feed?" sniff ([`looks_like_feed`]), and
//!   the probe that finds the feed;
//! - [`bounds`]: what one poll may read (bytes and items in all) and the field-length limits,
//!   applied here to every reader's items.
//!
//! Every item read from a page or sitemap has `guid: None`: its identity is its URL (see
//! `identity`).
//!
//! Every parse runs on the blocking pool within the poll's work budget ([`off_runtime`], see
//! `work`).

pub mod bounds;
pub mod discover;
pub mod feed;
mod html;
pub mod page;
pub mod sitemap;

use std::time::Duration;

use reqwest::header::HeaderMap;
use url::Url;

pub use self::discover::{
    MAX_CANDIDATES, WELL_KNOWN_FEED_PATHS, discover_feeds, looks_like_feed, well_known_feed_urls,
};
pub use self::page::{extract_links, extract_links_within};
pub use self::sitemap::{Sitemap, parse_sitemap};

use self::bounds::{Budget, Cuts, OverLimit};
use crate::config::{FetchSettings, SourceKind};
use crate::fetch::{Cap, FetchError, Fetched, Fetcher, Validators};
use crate::parse::{ParseError, RawItem};
use crate::work::{WorkBudget, WorkError};

/// What one response said: its items, and what the source learned from it.
#[derive(Debug, Clone)]
pub struct Read {
    pub items: Vec<RawItem>,
    /// The feed's own `<ttl>`.
    pub ttl: Option<Duration>,
    /// The validators and headers of the response the items came from (the discovered feed's,
    /// when autodiscovery fetched one).
    pub validators: Validators,
    pub headers: HeaderMap,
    pub learned: Learned,
    /// What the field-length limits changed.
    pub cuts: Cuts,
}

/// What reading taught about the source itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// A sitemap source: whether it is an index (its children can change while it does not).
    pub sitemap_index: Option<bool>,
    /// A site without a selector: the feed autodiscovery found.
    pub discovered_feed: Option<Url>,
    /// A feed: the WebSub hub and topic it names (see `websub::discover`).
    pub push: Option<crate::websub::discover::PushLinks>,
    /// A feed: its `<generator>`, the platform marker the link rules read (see `platform`).
    pub generator: Option<String>,
}

/// What the source's state says that reading needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// A site whose feed was already discovered (the response is that feed).
    pub feed_known: bool,
    /// A site whose feed is not known yet: the candidates an earlier discovery tried in vain.
    pub discovery_tried: &'a [String],
}

/// The body cap of a source's own response: a sitemap's is `max_sitemap_bytes`, any other's
/// `max_body_bytes`; within the poll's budget either way.
pub fn first_cap(kind: &SourceKind, fetcher: &Fetcher, budget: &Budget) -> Cap {
    match kind {
        SourceKind::Sitemap { .. } => budget.cap(sitemap_cap(fetcher.settings())),
        _ => budget.cap(fetcher.body_cap()),
    }
}

pub(crate) fn sitemap_cap(settings: &FetchSettings) -> Cap {
    Cap {
        bytes: settings.max_sitemap_bytes,
        key: "max_sitemap_bytes",
    }
}

/// Reads `fetched` as a source of `kind`, what it fetches on the way counted in `budget`; the
/// items within the poll's item limit and the field-length limits. Every parse runs on the
/// blocking pool within `work`.
pub async fn read(
    fetcher: &Fetcher,
    kind: &SourceKind,
    known: Known<'_>,
    fetched: Fetched,
    budget: &mut Budget,
    work: &WorkBudget,
) -> Result<Read, ReadError> {
    budget.spend_bytes(fetched.body.len() as u64)?;
    let mut read = match kind {
        SourceKind::Feed => off_runtime(work, move |w| feed::read(fetched, w)).await,
        SourceKind::Discover if known.feed_known => {
            off_runtime(work, move |w| feed::read(fetched, w)).await
        }
        SourceKind::Discover => discover::read(fetcher, fetched, known, budget, work).await,
        SourceKind::Page { selector } => {
            let selector = selector.clone();
            off_runtime(work, move |w| page::read(fetched, &selector, w)).await
        }
        SourceKind::Sitemap { include } => {
            sitemap::read(fetcher, fetched, include.as_deref(), budget, work).await
        }
    }?;
    budget.check_items(read.items.len())?;
    read.cuts = bounds::bound_fields(&mut read.items, fetcher.settings());
    Ok(read)
}

/// Runs `parse` on the blocking pool within `budget`: async workers go on fetching and answering
/// while it runs, and it stops once the budget is spent or the poll cancelled.
pub(crate) async fn off_runtime<T, F>(budget: &WorkBudget, parse: F) -> Result<T, ReadError>
where
    F: FnOnce(&WorkBudget) -> Result<T, ReadError> + Send + 'static,
    T: Send + 'static,
{
    let budget = budget.clone();
    crate::work::offload(move || parse(&budget)).await?
}

impl Read {
    /// Items read from `fetched` itself, learning nothing about the source.
    fn from(fetched: Fetched, items: Vec<RawItem>, ttl: Option<Duration>) -> Read {
        Read {
            items,
            ttl,
            validators: fetched.validators,
            headers: fetched.headers,
            learned: Learned::default(),
            cuts: Cuts::default(),
        }
    }
}

/// Why a response yielded no items.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Feed(#[from] ParseError),
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The poll's work budget ran out, or the poll was cancelled, while parsing.
    #[error(transparent)]
    Work(#[from] WorkError),
    /// Fetching what the response pointed at (a child sitemap) failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The poll went over a per-poll limit.
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
    #[error(
        "no feed found at `{page}`: none of the {} candidate(s) tried (its <link rel=\"alternate\"> feeds, same host first, then {}; at most {MAX_CANDIDATES}, each tried once) answered with a feed; hint: put the feed URL in `feeds`, or give this site a `selector`",
        tried.len(),
        WELL_KNOWN_FEED_PATHS.join(", ")
    )]
    NoFeed {
        page: Url,
        /// The candidates tried (now or by an earlier poll), remembered so the next poll does not
        /// fetch them again.
        tried: Vec<Url>,
    },
}

/// Why a page or sitemap yielded nothing usable. One error per body: the caller reports it for
/// that source only.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The poll's work budget ran out, or the poll was cancelled, while parsing the page.
    #[error(transparent)]
    Work(#[from] WorkError),
    #[error(
        "the selector `{selector}` matched nothing on the page; the site's layout may have \
         changed: try the selector in the browser's developer tools on the page"
    )]
    NoMatch { selector: String },
    #[error(
        "the selector `{selector}` matched {matched} element(s) but none is, contains or sits \
         inside a link to a web page; select the article links (`<a href>`) or their headings"
    )]
    NoLinks { selector: String, matched: usize },
    #[error(
        "the sitemap is larger than the {max_bytes}-byte sitemap cap; hint: raise [fetch] \
         max_sitemap_bytes if the sitemap is genuine (the protocol allows up to 50 MB and 50,000 \
         URLs)"
    )]
    TooLarge { max_bytes: u64 },
    #[error(
        "the gzip-compressed sitemap decompresses to more than the {max_bytes}-byte sitemap cap \
         (a gzip bomb, or an oversized sitemap); hint: raise [fetch] max_sitemap_bytes only if \
         the sitemap is genuine"
    )]
    DecompressedTooLarge { max_bytes: u64 },
    #[error(
        "the sitemap lists more than {max_urls} entries (the protocol allows 50,000 per file); \
         hint: raise [fetch] max_sitemap_urls if the sitemap is genuine"
    )]
    TooManyUrls { max_urls: usize },
    #[error(
        "the sitemap looks gzip-compressed but does not decompress; the file is corrupt or \
         truncated: check it with `curl -s URL | gunzip | head`"
    )]
    Gzip {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "malformed sitemap XML at byte {position}; the sitemap itself is broken: an XML \
         validator will show where"
    )]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error(
        "the sitemap ends inside `<{open}>` (truncated at byte {position}?); if it is large, \
         raise the body cap, else the server cut the response short"
    )]
    Truncated { open: String, position: u64 },
    #[error("the sitemap is empty; check that the URL points at a sitemap")]
    Empty,
    #[error(
        "not a sitemap: the response is a feed (`<{root}>`); list it under the author's `feeds` \
         instead"
    )]
    IsFeed { root: String },
    #[error(
        "not a sitemap: the root element is `<{root}>`, not `<urlset>` or `<sitemapindex>`; \
         point the source at the sitemap (its URL is often listed in the site's /robots.txt)"
    )]
    NotSitemap { root: String },
    #[error(
        "not a sitemap: the response is neither XML nor a list of URLs (it starts with \
         `{start}`); point the source at the sitemap"
    )]
    NotMarkup { start: String },
}
