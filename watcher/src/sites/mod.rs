//! sites: the pure parsing behind sources that are not feeds. Given a fetched body, these
//! functions say which articles (or feeds) it names; fetching, scheduling and storing are the
//! caller's.
//!
//! - [`html`]: a page without a feed, read through a CSS selector ([`extract_links`]);
//! - [`sitemap`]: a sitemap or sitemap index, plain or gzip ([`parse_sitemap`]);
//! - [`discover`]: which feed a page advertises ([`discover_feeds`]), the well-known feed paths
//!   to try when it advertises none, and a cheap "is this a feed?" sniff ([`looks_like_feed`]).
//!
//! Every item produced here has `guid: None`: its identity is its URL (see `identity`).

pub mod discover;
pub mod html;
pub mod sitemap;

pub use self::discover::{
    WELL_KNOWN_FEED_PATHS, discover_feeds, looks_like_feed, well_known_feed_urls,
};
pub use self::html::extract_links;
pub use self::sitemap::{Sitemap, parse_sitemap};

/// Why a page or sitemap yielded nothing usable. One error per body: the caller reports it for
/// that source only.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
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
        "the sitemap is larger than the {max_bytes}-byte body cap; raise the cap if the sitemap \
         is genuine (the protocol allows up to 50 MB and 50,000 URLs)"
    )]
    TooLarge { max_bytes: u64 },
    #[error(
        "the gzip-compressed sitemap decompresses to more than the {max_bytes}-byte body cap \
         (a gzip bomb, or an oversized sitemap); raise the cap only if the sitemap is genuine"
    )]
    DecompressedTooLarge { max_bytes: u64 },
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
