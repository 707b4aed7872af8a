//! discover.rs: feed autodiscovery. Which feeds a page advertises (`<link rel="alternate">`),
//! which well-known paths to try when it advertises none, and a cheap sniff that tells whether a
//! fetched body is a feed at all (so a `/feed` answering with an HTML page is not taken for one).
//! The probe tries at most [`MAX_CANDIDATES`] of them, each once: the candidates that answered
//! are remembered (in the source's state) and not fetched again while the page names the same.

use scraper::Selector;
use url::Url;

use super::bounds::Budget;
use super::page::Page;
use super::{Known, Read, ReadError};
use crate::fetch::{FetchError, FetchOutcome, Fetched, Fetcher, Validators};
use crate::parse::{ParseError, parse_feed_within};
use crate::work::{WorkBudget, WorkError};

/// Feed candidates one discovery fetches at most.
pub const MAX_CANDIDATES: usize = 3;

/// Where sites commonly serve their feed when no page advertises it, tried in this order
/// against the site's origin.
pub const WELL_KNOWN_FEED_PATHS: &[&str] = &[
    "/feed",
    "/rss",
    "/rss.xml",
    "/atom.xml",
    "/feed.xml",
    "/index.xml",
];

/// `type`s of `<link rel="alternate">` that name a feed: the registered ones, and the truncated
/// or `x-` forms real pages use (Hugo themes write `application/rss` and `application/atom`).
const FEED_TYPES: &[&str] = &[
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "application/rss",
    "application/atom",
    "application/x-rss+xml",
    "application/x-atom+xml",
];

/// The feeds a page advertises with `<link rel="alternate" type="…">` (RSS, Atom, RDF, JSON
/// Feed), resolved against the page URL (or its `<base href>`), in document order, deduplicated.
/// WordPress's `application/json` alternate that points into its REST API (`/wp-json/`) is not
/// a feed and is left out.
#[tracing::instrument(skip_all, fields(page_url = %page_url, bytes = html.len()))]
pub fn discover_feeds(html: &[u8], content_type: Option<&str>, page_url: &Url) -> Vec<Url> {
    discover_feeds_within(html, content_type, page_url, &WorkBudget::unlimited())
        .expect("an unlimited budget is never spent")
}

/// [`discover_feeds`] within a work budget (parsing the page charges it).
pub fn discover_feeds_within(
    html: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    work: &WorkBudget,
) -> Result<Vec<Url>, WorkError> {
    let page = Page::parse_within(html, content_type, page_url, work)?;
    let Ok(links) = Selector::parse("link[rel][href]") else {
        return Ok(Vec::new());
    };
    let mut feeds: Vec<Url> = Vec::new();
    for link in page.document.select(&links) {
        let rel = link.attr("rel").unwrap_or_default();
        if !rel
            .split_ascii_whitespace()
            .any(|token| token.eq_ignore_ascii_case("alternate"))
        {
            continue;
        }
        let Some(kind) = link.attr("type").map(media_type) else {
            continue;
        };
        if !FEED_TYPES.contains(&kind.as_str()) {
            continue;
        }
        let Some(url) = link.attr("href").and_then(|href| page.resolve(href)) else {
            continue;
        };
        if kind == "application/json" && url.path().contains("/wp-json/") {
            continue;
        }
        if !feeds.contains(&url) {
            feeds.push(url);
        }
    }
    tracing::debug!(found = feeds.len(), "discovered feeds");
    Ok(feeds)
}

/// [`WELL_KNOWN_FEED_PATHS`] on the origin of `site` (`https://example.com/blog/` gives
/// `https://example.com/feed`, …).
pub fn well_known_feed_urls(site: &Url) -> Vec<Url> {
    WELL_KNOWN_FEED_PATHS
        .iter()
        .filter_map(|path| site.join(path).ok())
        .collect()
}

/// `Application/RSS+XML; charset=utf-8` → `application/rss+xml`.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `body` looks like a feed: an XML document whose root element is `<rss>`, `<feed>` or
/// `<…:RDF>` (after any declaration, comments, processing instructions and doctype), or a JSON
/// object naming a `https://jsonfeed.org/version/…`. A sniff, not a parse: a body that passes may
/// still be malformed, and the feed parser says so; a feed wrapped in an XHTML page (which the
/// feed parser unwraps) does not pass, since its root is `<html>`.
pub fn looks_like_feed(body: &[u8]) -> bool {
    let text = sniff_text(body);
    let text = text.trim_start();
    if text.starts_with('{') {
        // JSON may escape the slashes: `"https:\/\/jsonfeed.org\/version\/1.1"`.
        return text.contains("\"version\"")
            && text.replace("\\/", "/").contains("jsonfeed.org/version/");
    }
    matches!(root_element(text), Some("rss" | "feed" | "RDF"))
}

/// The start of the body as text: enough to find the root element, in UTF-8 (a UTF-16 body with
/// a BOM is transcoded). JSON Feed's `version` may sit anywhere, so JSON is kept whole.
fn sniff_text(body: &[u8]) -> std::borrow::Cow<'_, str> {
    const XML_PROLOG_BYTES: usize = 16 * 1024;
    let (encoding, bom) = encoding_rs::Encoding::for_bom(body).unwrap_or((encoding_rs::UTF_8, 0));
    let body = &body[bom..];
    let is_json = body.trim_ascii_start().starts_with(b"{");
    let body = if is_json || encoding != encoding_rs::UTF_8 {
        body
    } else {
        &body[..body.len().min(XML_PROLOG_BYTES)]
    };
    encoding.decode_without_bom_handling(body).0
}

/// The local name of the first element, skipping the XML declaration, processing instructions,
/// comments and a doctype. `None` when the text does not start like XML.
fn root_element(mut text: &str) -> Option<&str> {
    loop {
        text = text.trim_start();
        let rest = text.strip_prefix('<')?;
        if let Some(rest) = rest.strip_prefix("!--") {
            text = &rest[rest.find("-->")? + 3..];
        } else if rest.starts_with('?') || rest.starts_with('!') {
            text = &rest[rest.find('>')? + 1..];
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(rest.len());
            let name = &rest[..end];
            return Some(name.rsplit(':').next().unwrap_or(name));
        }
    }
}

/// The feeds to try for a page: those it advertises, on its own host first (document order
/// otherwise), then the well-known paths on its origin; at most [`MAX_CANDIDATES`].
pub fn feed_candidates(html: &[u8], content_type: Option<&str>, page_url: &Url) -> Vec<Url> {
    feed_candidates_within(html, content_type, page_url, &WorkBudget::unlimited())
        .expect("an unlimited budget is never spent")
}

/// [`feed_candidates`] within a work budget (parsing the page charges it).
pub fn feed_candidates_within(
    html: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    work: &WorkBudget,
) -> Result<Vec<Url>, WorkError> {
    let host = page_url.host_str();
    let (mut candidates, elsewhere): (Vec<Url>, Vec<Url>) =
        discover_feeds_within(html, content_type, page_url, work)?
            .into_iter()
            .partition(|u| u.host_str() == host);
    candidates.extend(elsewhere);
    for url in well_known_feed_urls(page_url) {
        if !candidates.contains(&url) {
            candidates.push(url);
        }
    }
    candidates.truncate(MAX_CANDIDATES);
    Ok(candidates)
}

/// Finds a site's feed from its fetched page: the page itself, else up to [`MAX_CANDIDATES`]
/// [`feed_candidates`], each fetched (within the poll's `budget`) until one answers with a feed
/// that parses, skipping those an earlier discovery tried (`known.discovery_tried`). Reads that
/// feed. A candidate that answered is "tried"; one that timed out, failed to connect or answered
/// 429 or 5xx is tried again next time. Every parse runs on the blocking pool within `work`.
pub async fn read(
    fetcher: &Fetcher,
    page: Fetched,
    known: Known<'_>,
    budget: &mut Budget,
    work: &WorkBudget,
) -> Result<Read, ReadError> {
    if looks_like_feed(&page.body) {
        let url = page.final_url.clone();
        return found(url, page, work).await;
    }
    let (body, content_type, url) = (
        page.body.clone(),
        page.content_type.clone(),
        page.final_url.clone(),
    );
    let candidates = super::off_runtime(work, move |work| {
        Ok(feed_candidates_within(
            &body,
            content_type.as_deref(),
            &url,
            work,
        )?)
    })
    .await?;
    let mut tried = Vec::new();
    for candidate in candidates {
        if known
            .discovery_tried
            .iter()
            .any(|t| t == candidate.as_str())
        {
            tried.push(candidate);
            continue;
        }
        let cap = budget.cap(fetcher.body_cap());
        let resp = match fetcher
            .get_capped(&candidate, &Validators::default(), cap)
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                if matches!(e, FetchError::TooLarge { .. })
                    && let Some(over) = budget.over(cap)
                {
                    return Err(over.into());
                }
                if !is_transient(&e) {
                    tried.push(candidate);
                }
                continue;
            }
        };
        tried.push(candidate);
        if let FetchOutcome::Fetched(f) = resp.outcome {
            budget.spend_bytes(f.body.len() as u64)?;
            if looks_like_feed(&f.body) && parses(&f, work).await? {
                let url = f.final_url.clone();
                return found(url, f, work).await;
            }
        }
    }
    Err(ReadError::NoFeed {
        page: page.final_url,
        tried,
    })
}

/// Whether a failed probe may answer next time: a timeout, no connection, 429 or a 5xx.
fn is_transient(e: &FetchError) -> bool {
    match e {
        FetchError::Timeout(_) | FetchError::Connect { .. } | FetchError::Request { .. } => true,
        FetchError::Status { status, .. } => status.is_server_error() || status.as_u16() == 429,
        _ => false,
    }
}

/// Whether a candidate's body parses as a feed; a spent work budget or a cancelled poll ends
/// the search, not just this candidate.
async fn parses(f: &Fetched, work: &WorkBudget) -> Result<bool, ReadError> {
    let f = f.clone();
    let parsed = super::off_runtime(work, move |work| {
        Ok(parse_feed_within(
            &f.body,
            f.content_type.as_deref(),
            &f.final_url,
            work,
        ))
    })
    .await?;
    match parsed {
        Ok(_) => Ok(true),
        Err(ParseError::Work(e)) => Err(e.into()),
        Err(_) => Ok(false),
    }
}

async fn found(url: Url, feed: Fetched, work: &WorkBudget) -> Result<Read, ReadError> {
    tracing::info!(feed = %url, "feed discovered");
    let mut read = super::off_runtime(work, move |work| super::feed::read(feed, work)).await?;
    read.learned.discovered_feed = Some(url);
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://example.com/blog/post.html").unwrap()
    }

    fn discover(html: &str) -> Vec<String> {
        discover_feeds(html.as_bytes(), None, &page())
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn finds_typed_alternates_in_document_order() {
        let html = r#"<html><head>
            <link rel="stylesheet" href="/style.css">
            <link rel="alternate" hreflang="fr" href="/fr/">
            <link rel="alternate" type="application/atom+xml" href="/atom.xml">
            <LINK REL="Alternate Feed" TYPE="Application/RSS+XML; charset=utf-8" HREF="rss.xml">
            <link rel="alternate" type="application/feed+json" href="https://feeds.example.net/j">
            <link rel="alternate" type="application/json+oembed" href="/oembed?u=1">
            <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
            <link rel="alternate" type="application/json" href="/feed.json">
            <link rel="alternate" type="application/rss+xml" href="/atom.xml#dup">
            <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
            </head><body>
            <link rel="alternate" type="application/rss" href="/body-feed">
            </body></html>"#;
        assert_eq!(
            discover(html),
            [
                "https://example.com/atom.xml",
                "https://example.com/blog/rss.xml",
                "https://feeds.example.net/j",
                "https://example.com/feed.json",
                "https://example.com/body-feed",
            ]
        );
    }

    #[test]
    fn honours_base_and_finds_nothing_on_a_bare_page() {
        let html = r#"<base href="https://static.example.org/">
            <link rel="alternate" type="application/rss+xml" href="feed">"#;
        assert_eq!(discover(html), ["https://static.example.org/feed"]);
        assert!(discover("<p>no feed here</p>").is_empty());
        assert!(discover("").is_empty());
    }

    #[test]
    fn well_known_paths_are_tried_on_the_origin() {
        let urls: Vec<String> = well_known_feed_urls(&page())
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            urls,
            [
                "https://example.com/feed",
                "https://example.com/rss",
                "https://example.com/rss.xml",
                "https://example.com/atom.xml",
                "https://example.com/feed.xml",
                "https://example.com/index.xml",
            ]
        );
    }

    #[test]
    fn three_candidates_at_most_same_host_first() {
        let candidates = |html: &str| -> Vec<String> {
            feed_candidates(html.as_bytes(), None, &page())
                .into_iter()
                .map(String::from)
                .collect()
        };
        let html = r#"<link rel="alternate" type="application/rss+xml" href="https://feeds.example.net/a">
            <link rel="alternate" type="application/rss+xml" href="/b">
            <link rel="alternate" type="application/rss+xml" href="https://feeds.example.net/c">
            <link rel="alternate" type="application/atom+xml" href="/d">
            <link rel="alternate" type="application/atom+xml" href="/e">"#;
        assert_eq!(
            candidates(html),
            [
                "https://example.com/b",
                "https://example.com/d",
                "https://example.com/e"
            ]
        );
        assert_eq!(
            candidates(
                r#"<link rel="alternate" type="application/rss+xml" href="https://feeds.example.net/a">"#
            ),
            [
                "https://feeds.example.net/a",
                "https://example.com/feed",
                "https://example.com/rss"
            ]
        );
    }

    #[test]
    fn sniffs_feeds() {
        assert!(looks_like_feed(
            b"<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel/></rss>"
        ));
        assert!(looks_like_feed(
            b"\xef\xbb\xbf<?xml version='1.0'?><!-- generator --><?xml-stylesheet href='x.xsl'?>\
              <feed xmlns=\"http://www.w3.org/2005/Atom\">"
        ));
        assert!(looks_like_feed(
            b"<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"
        ));
        assert!(looks_like_feed(
            b"  {\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"t\", \"items\": []}"
        ));
        assert!(looks_like_feed(
            br#"{"title": "t", "version": "https:\/\/jsonfeed.org\/version\/1"}"#
        ));
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                "<rss version=\"2.0\"/>"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert!(looks_like_feed(&utf16));

        assert!(!looks_like_feed(
            b"<!DOCTYPE html><html><head><title>Feed</title>"
        ));
        assert!(!looks_like_feed(b"<?xml version=\"1.0\"?><urlset/>"));
        assert!(!looks_like_feed(b"{\"version\": 2, \"items\": []}"));
        assert!(!looks_like_feed(b"Not Found"));
        assert!(!looks_like_feed(b""));
        assert!(!looks_like_feed(b"<!-- never closed"));
    }
}
