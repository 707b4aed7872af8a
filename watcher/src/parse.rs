//! parse.rs: turns a fetched feed body into items (RSS 0.9x/1.0/2.0, Atom, JSON Feed), honouring charsets.
//!
//! [`parse_feed`] reads top to bottom as the pipeline:
//! 1. `encoding`: choose the charset (BOM, HTTP `charset`, XML declaration, then content sniffing
//!    with a Latin-1 fallback) and transcode to UTF-8, declaration rewritten to match;
//! 2. `repair`: locate the feed (reject HTML pages, sitemaps and other documents with a reason,
//!    unwrap a feed embedded in XHTML) and rewrite what feed-rs would misread (namespace aliases
//!    such as RSS 0.90's, `<rss>` versions it doesn't dispatch on, illegally nested items);
//! 3. `markup`: RSS item descriptions written as raw XHTML are kept as content (feed-rs would
//!    drop them);
//! 4. feed-rs parses, with its id generator replaced so a missing GUID stays `None`;
//! 5. each entry becomes a [`RawItem`]: trimmed GUID, absolute http(s) article link, text fields.
//!
//! Identity, canonical URLs and diffing are not done here (see `identity`); this module only
//! reports what the feed says.

mod declaration;
mod encoding;
mod markup;
mod needles;
mod repair;
mod tags;

use std::time::Duration;

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Link};
use url::Url;

use self::repair::{Format, Rejection};
use crate::printable::printable;
use crate::work::{WorkBudget, WorkError};

/// A parsed feed: its items plus what the feed says about itself.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    /// RSS `<ttl>`: how long the feed may be cached (given in minutes).
    pub ttl: Option<Duration>,
    /// The feed's `<generator>` (a platform's marker, see `platform`).
    pub generator: Option<String>,
    pub items: Vec<RawItem>,
}

/// One entry as the feed states it, before identity is assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawItem {
    /// RSS `guid` / Atom `id` / JSON Feed `id` as given, trimmed; `None` when absent or empty
    /// (never an id made up by the parser).
    pub guid: Option<String>,
    /// The article link, absolute (resolved against `xml:base` and the feed's final URL) and
    /// http(s); when the item has none, its GUID if that is an absolute http(s) URL.
    pub link: Option<Url>,
    /// Trimmed; `None` when absent or blank.
    pub title: Option<String>,
    /// The content, else the summary, as given (for change detection); `None` when blank.
    pub content: Option<String>,
    pub published: Option<DateTime<Utc>>,
    /// As parsed by feed-rs, which copies `published` here for RSS items that give no update time.
    pub updated: Option<DateTime<Utc>>,
}

/// Why a body yielded no feed. One error per body: the caller reports it for that source only.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the response body is empty; check that the source URL points at a feed")]
    Empty,
    #[error(
        "not a feed: the response is an HTML page; point the source at its feed (the page's \
         `<link rel=\"alternate\">` names it)"
    )]
    Html,
    #[error(
        "not a feed: the response is a sitemap (`<{root}>`); point the source at the site's feed"
    )]
    Sitemap { root: String },
    #[error(
        "not a feed: the root element is `<{root}>`, not `<rss>`, `<feed>` or `<rdf:RDF>`; point \
         the source at a feed"
    )]
    OtherXml { root: String },
    #[error(
        "not a feed: the response is neither XML nor JSON (it starts with `{start}`); check that \
         the source URL points at a feed"
    )]
    NotMarkup { start: String },
    /// The poll's work budget ran out, or the poll was cancelled, while parsing.
    #[error(transparent)]
    Work(#[from] WorkError),
    #[error(
        "malformed {format} feed (read as `{encoding}`); the feed itself is broken: a feed \
         validator will show where"
    )]
    Malformed {
        format: &'static str,
        encoding: &'static str,
        #[source]
        source: FeedRsError,
    },
    /// feed-rs (or the XML reader under it) panicked on this body. The panic is contained here, so
    /// one hostile feed fails its own poll and nothing else.
    #[error(
        "malformed {format} feed (read as `{encoding}`): the feed parser gave up on it; the feed \
         itself is broken: a feed validator will show where"
    )]
    ParserPanicked {
        format: &'static str,
        encoding: &'static str,
    },
}

/// feed-rs's error. Its message already includes its cause, so the chain ends here rather than
/// printing that cause twice.
#[derive(Debug)]
pub struct FeedRsError(pub feed_rs::parser::ParseFeedError);

impl std::fmt::Display for FeedRsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FeedRsError {}

impl From<Rejection> for ParseError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Empty => ParseError::Empty,
            Rejection::Html => ParseError::Html,
            // The root element and the body's start are network text: escaped (see
            // [`crate::printable`]).
            Rejection::Sitemap { root } => ParseError::Sitemap {
                root: printable(&root),
            },
            Rejection::OtherXml { root } => ParseError::OtherXml {
                root: printable(&root),
            },
            Rejection::NotMarkup { start } => ParseError::NotMarkup {
                start: printable(&start),
            },
        }
    }
}

/// Parses a fetched feed body.
///
/// `content_type` is the HTTP `Content-Type` (its `charset` is honoured); `base_url` is the final
/// URL after redirects, against which relative links resolve.
pub fn parse_feed(
    body: &[u8],
    content_type: Option<&str>,
    base_url: &Url,
) -> Result<ParsedFeed, ParseError> {
    parse_feed_within(body, content_type, base_url, &WorkBudget::unlimited())
}

/// [`parse_feed`] within a work budget: every step charges `budget` and stops once it is spent
/// (or cancelled), failing with [`ParseError::Work`].
#[tracing::instrument(skip_all, fields(base_url = %base_url, bytes = body.len()))]
pub fn parse_feed_within(
    body: &[u8],
    content_type: Option<&str>,
    base_url: &Url,
    budget: &WorkBudget,
) -> Result<ParsedFeed, ParseError> {
    // Choosing the charset and transcoding read the body a few times over, linearly.
    budget.spend(body.len() as u64)?;
    let decoded = encoding::decode(body, content_type);
    tracing::debug!(
        encoding = decoded.encoding.name(),
        decided_by = %decoded.source,
        lossy = decoded.lossy,
        "decoded feed body"
    );
    let prepared = repair::prepare(&decoded.text, budget);
    // A pass that ran out of budget ended early: its verdict means nothing.
    budget.check()?;
    let prepared = prepared?;
    if !prepared.repairs.is_empty() {
        tracing::debug!(repairs = ?prepared.repairs, "repaired feed before parsing");
    }

    let text = markup::keep_as_content(&prepared.text, prepared.format, budget);
    // A scan that ran out of budget ended early: go no further.
    budget.check()?;
    // The text is UTF-8 now: its XML declarations must say so, or not be declarations at all.
    let text = match prepared.format {
        Format::Json => text,
        _ => declaration::normalize(text),
    };
    // A panic inside feed-rs's XML reader (fuzzing found one in quick-xml's `set_encoding`) is
    // contained here: it fails this body, not the poll's task.
    let feed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parser(base_url)
            .parse(Metered::new(text.as_bytes(), budget))
            .or_else(|err| match prepared.format {
                Format::Json => retry_loosened_json(&prepared.text, base_url, budget).ok_or(err),
                _ => Err(err),
            })
    }))
    .map_err(|_| ParseError::ParserPanicked {
        format: prepared.format.name(),
        encoding: decoded.encoding.name(),
    })?;
    // feed-rs stopped because its input did (the budget ran out): say so, not "malformed".
    budget.check()?;
    let feed = feed.map_err(|source| ParseError::Malformed {
        format: prepared.format.name(),
        encoding: decoded.encoding.name(),
        source: FeedRsError(source),
    })?;

    Ok(ParsedFeed {
        title: feed.title.and_then(|t| non_blank(t.content)),
        ttl: feed
            .ttl
            .map(|minutes| Duration::from_secs(u64::from(minutes) * 60)),
        generator: feed.generator.and_then(|g| non_blank(g.content)),
        items: feed
            .entries
            .into_iter()
            .map(|entry| raw_item(entry, base_url))
            .collect(),
    })
}

/// The URL a response's relative links resolve against: its `Content-Location` when that is an
/// http(s) URL (a relative one made absolute against the final URL), else the final URL after
/// redirects. Any other scheme (`javascript:`, `data:`...) is ignored.
pub fn document_base(final_url: &Url, content_location: Option<&str>) -> Url {
    content_location
        .and_then(|location| resolve(location, final_url))
        .unwrap_or_else(|| final_url.clone())
}

/// feed-rs, configured so that it invents nothing: no generated ids (a missing GUID must stay
/// visible to identity) and no sanitising (content is hashed as the feed gave it).
fn parser(base_url: &Url) -> feed_rs::parser::Parser {
    feed_rs::parser::Builder::new()
        .base_uri(Some(base_url.as_str()))
        .id_generator(|_links, _title, _base| String::new())
        .sanitize_content(false)
        .build()
}

/// Loosens a JSON Feed that feed-rs refused, where the spec or common practice allows: a
/// non-string item `id` is coerced to a string (JSON Feed 1.1 requires readers to), an
/// `http://jsonfeed.org/version/1...` version is read as its `https` form, and a missing feed
/// `title` becomes empty. Only tried after feed-rs failed on JSON; `None` when nothing changed.
fn retry_loosened_json(
    text: &str,
    base_url: &Url,
    budget: &WorkBudget,
) -> Option<feed_rs::model::Feed> {
    use serde_json::Value;

    let mut json: Value = serde_json::from_reader(Metered::new(text.as_bytes(), budget)).ok()?;
    let feed = json.as_object_mut()?;
    let mut changed = false;
    let https_version = feed
        .get("version")
        .and_then(Value::as_str)
        .and_then(|version| version.strip_prefix("http://jsonfeed.org/version/1"))
        .map(|rest| format!("https://jsonfeed.org/version/1{rest}"));
    if let Some(version) = https_version {
        feed.insert("version".into(), Value::String(version));
        changed = true;
    }
    if !feed.get("title").is_some_and(Value::is_string) {
        feed.insert("title".into(), Value::String(String::new()));
        changed = true;
    }
    for item in feed.get_mut("items")?.as_array_mut()? {
        if let Some(id) = item.get_mut("id").filter(|id| id.is_number()) {
            *id = Value::String(id.to_string());
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let text = serde_json::to_vec(&json).ok()?;
    parser(base_url)
        .parse(Metered::new(text.as_slice(), budget))
        .ok()
}

/// feed-rs's input: hands it at most [`Metered::STEP`] bytes a read, charging the budget for
/// them, and fails the read once the budget is spent or cancelled, which stops feed-rs there.
struct Metered<'a> {
    rest: &'a [u8],
    budget: &'a WorkBudget,
}

impl<'a> Metered<'a> {
    /// Small steps bound the work feed-rs does between two checks.
    const STEP: usize = 4096;

    fn new(bytes: &'a [u8], budget: &'a WorkBudget) -> Metered<'a> {
        Metered {
            rest: bytes,
            budget,
        }
    }
}

impl std::io::Read for Metered<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.rest.len()).min(Self::STEP);
        if !self.budget.charge(n as u64 + 1) {
            return Err(std::io::Error::other("the parse's work budget is spent"));
        }
        let (now, rest) = self.rest.split_at(n);
        buf[..n].copy_from_slice(now);
        self.rest = rest;
        Ok(n)
    }
}

fn raw_item(entry: Entry, base_url: &Url) -> RawItem {
    let guid = non_blank(entry.id);
    let link = article_link(&entry.links, base_url).or_else(|| {
        guid.as_deref()
            .and_then(|guid| Url::parse(guid).ok())
            .filter(is_web_url)
    });
    let content = entry
        .content
        .and_then(|content| content.body)
        .filter(|body| !body.trim().is_empty())
        .or_else(|| entry.summary.map(|summary| summary.content))
        .filter(|text| !text.trim().is_empty());
    // An item titled only by its Media RSS object (`<media:title>`) keeps that title.
    let title = entry
        .title
        .and_then(|title| non_blank(title.content))
        .or_else(|| {
            entry
                .media
                .into_iter()
                .find_map(|media| media.title.and_then(|title| non_blank(title.content)))
        });
    RawItem {
        guid,
        link,
        title,
        content,
        published: entry.published,
        updated: entry.updated,
    }
}

/// The entry's article link: the first `alternate` (Atom; RSS and JSON links carry no `rel`)
/// that is not a comments link nor typed as something other than a web page (a JSON Feed
/// attachment, a podcast file), made absolute and kept only if it is http(s). The feed's own URL
/// is no article: it is what feed-rs makes of a blank `<link> </link>`.
fn article_link(links: &[Link], base_url: &Url) -> Option<Url> {
    links
        .iter()
        .filter(|link| link.target.is_none())
        .filter(|link| link.rel.as_deref().is_none_or(|rel| rel == "alternate"))
        .filter(|link| {
            link.media_type
                .as_deref()
                .is_none_or(|t| t.contains("html"))
        })
        .filter_map(|link| resolve(&link.href, base_url))
        .find(|url| url != base_url)
}

/// `href` made absolute against `base_url`; `None` when blank, unparsable or not http(s).
/// (feed-rs has already resolved it against `xml:base` where one applies.)
fn resolve(href: &str, base_url: &Url) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    base_url.join(href).ok().filter(is_web_url)
}

fn is_web_url(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

fn non_blank(text: String) -> Option<String> {
    let trimmed = text.trim();
    match trimmed.len() {
        0 => None,
        len if len == text.len() => Some(text),
        _ => Some(trimmed.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.com/blog/feed.xml").unwrap()
    }

    fn parse(body: &str) -> ParsedFeed {
        parse_feed(body.as_bytes(), None, &base()).unwrap()
    }

    fn err(body: &[u8]) -> String {
        parse_feed(body, None, &base()).unwrap_err().to_string()
    }

    #[test]
    fn missing_or_empty_guid_is_none_never_generated() {
        let feed = parse(
            "<rss version=\"2.0\"><channel>\
             <item><title>no guid</title><link>https://example.com/a</link></item>\
             <item><guid>  </guid><title>blank guid</title></item>\
             <item><guid isPermaLink=\"false\">  id-3 \n</guid></item>\
             </channel></rss>",
        );
        let guids: Vec<_> = feed.items.iter().map(|i| i.guid.as_deref()).collect();
        assert_eq!(guids, [None, None, Some("id-3")]);

        let atom = parse(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title>t</title>\
             <link href=\"https://example.com/x\"/></entry></feed>",
        );
        assert_eq!(atom.items[0].guid, None);

        let json = parse(
            r#"{"version": "https://jsonfeed.org/version/1.1", "title": "j",
                "items": [{"url": "https://example.com/j", "content_text": "x"}]}"#,
        );
        assert_eq!(json.items[0].guid, None);
    }

    #[test]
    fn relative_links_resolve_against_xml_base_then_the_final_url() {
        let feed = parse(
            "<rss version=\"2.0\"><channel>\
             <item><link>posts/one.html</link></item>\
             <item><link>/two</link></item>\
             <item><link>../three</link></item>\
             <item><link> </link></item>\
             </channel></rss>",
        );
        let links: Vec<_> = feed
            .items
            .iter()
            .map(|i| i.link.as_ref().map(Url::as_str))
            .collect();
        assert_eq!(
            links,
            [
                Some("https://example.com/blog/posts/one.html"),
                Some("https://example.com/two"),
                Some("https://example.com/three"),
                None,
            ]
        );

        let atom = parse(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"https://other.example/root/\">\
             <entry><id>1</id><link rel=\"replies\" href=\"c\"/><link href=\"p/1\"/></entry>\
             <entry xml:base=\"/deep/\"><id>2</id><link rel=\"alternate\" href=\"p/2\"/></entry>\
             </feed>",
        );
        let links: Vec<_> = atom
            .items
            .iter()
            .map(|i| i.link.as_ref().map(Url::as_str))
            .collect();
        assert_eq!(
            links,
            [
                Some("https://other.example/root/p/1"),
                Some("https://other.example/deep/p/2"),
            ]
        );

        let json = parse(
            r#"{"version": "https://jsonfeed.org/version/1", "title": "j",
                "items": [{"id": "1", "url": "/j/1"}]}"#,
        );
        assert_eq!(
            json.items[0].link.as_ref().map(Url::as_str),
            Some("https://example.com/j/1")
        );
    }

    #[test]
    fn a_permalink_guid_stands_in_for_a_missing_link_but_other_schemes_do_not() {
        let feed = parse(
            "<rss version=\"2.0\"><channel>\
             <item><guid>https://example.com/p/1</guid></item>\
             <item><guid>tag:example.com,2024:2</guid></item>\
             <item><link>javascript:alert(1)</link></item>\
             </channel></rss>",
        );
        let links: Vec<_> = feed
            .items
            .iter()
            .map(|i| i.link.as_ref().map(Url::as_str))
            .collect();
        assert_eq!(links, [Some("https://example.com/p/1"), None, None]);
    }

    #[test]
    fn fields_title_content_dates_and_ttl() {
        let feed = parse(
            "<rss version=\"2.0\"><channel><title> Blog </title><ttl>90</ttl>\
             <item><title>\n  Hello  </title><description>summary</description>\
             <pubDate>Tue, 10 Jun 2025 08:00:00 GMT</pubDate></item>\
             <item><title> </title><description>only</description>\
             <content:encoded xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">&lt;p&gt;full&lt;/p&gt;</content:encoded></item>\
             </channel></rss>",
        );
        assert_eq!(feed.title.as_deref(), Some("Blog"));
        assert_eq!(feed.ttl, Some(Duration::from_secs(90 * 60)));
        let first = &feed.items[0];
        assert_eq!(first.title.as_deref(), Some("Hello"));
        assert_eq!(first.content.as_deref(), Some("summary"));
        assert_eq!(
            first.published.map(|d| d.to_rfc3339()),
            Some("2025-06-10T08:00:00+00:00".into())
        );
        assert_eq!(feed.items[1].title, None);
        assert_eq!(feed.items[1].content.as_deref(), Some("<p>full</p>"));
    }

    #[test]
    fn charset_from_http_header_reaches_the_items() {
        let body = b"<rss version=\"2.0\"><channel><item><title>\xcf\xf0\xe8\xe2\xe5\xf2</title></item></channel></rss>";
        let feed = parse_feed(
            body,
            Some("application/rss+xml; charset=windows-1251"),
            &base(),
        )
        .unwrap();
        assert_eq!(feed.items[0].title.as_deref(), Some("Привет"));
    }

    #[test]
    fn content_location_is_the_base_only_when_http() {
        let final_url = base();
        let base_of = |location| document_base(&final_url, location).to_string();
        assert_eq!(base_of(None), "https://example.com/blog/feed.xml");
        assert_eq!(base_of(Some("http://cdn.example/")), "http://cdn.example/");
        assert_eq!(
            base_of(Some("/feed/pg.cgi")),
            "https://example.com/feed/pg.cgi"
        );
        assert_eq!(
            base_of(Some("javascript:alert('unsafe');")),
            "https://example.com/blog/feed.xml"
        );
        assert_eq!(base_of(Some("  ")), "https://example.com/blog/feed.xml");
    }

    #[test]
    fn items_without_a_channel_titled_by_dc_or_media_or_entities_are_read() {
        // RSS 0.9x without <channel>; dc:title and media:title as titles; HTML's named
        // entities resolved, a DTD's never.
        let feed = parse(
            "<!DOCTYPE rss [<!ENTITY x \"boom\">]>\
             <rss xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
             xmlns:media=\"http://search.yahoo.com/mrss/\">\
             <item><dc:title>caf&eacute;&nbsp;&x;</dc:title><link>/a</link></item>\
             <item><media:title>bar</media:title><link>/b</link></item></rss>",
        );
        let items: Vec<_> = feed
            .items
            .iter()
            .map(|i| (i.title.as_deref(), i.link.as_ref().map(Url::as_str)))
            .collect();
        assert_eq!(
            items,
            [
                (Some("caf\u{e9}\u{a0}&x;"), Some("https://example.com/a")),
                (Some("bar"), Some("https://example.com/b"))
            ]
        );
        // RSS 1.0 items known only by rdf:about are kept, that URI as their link.
        let rdf = parse(
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" \
             xmlns=\"http://purl.org/rss/1.0/\"><channel rdf:about=\"https://example.com/\">\
             <title>t</title></channel><item rdf:about=\"https://example.com/1\">\
             <title>One</title></item></rdf:RDF>",
        );
        assert_eq!(
            rdf.items[0].link.as_ref().map(Url::as_str),
            Some("https://example.com/1")
        );
        assert_eq!(rdf.items[0].guid, None);
    }

    #[test]
    fn rss090_items_are_found() {
        let feed = parse(
            "<?xml version=\"1.0\"?><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" \
             xmlns=\"http://my.netscape.com/rdf/simple/0.9/\"><channel><title>Old</title></channel>\
             <item><title>One</title><link>http://example.com/1</link></item>\
             <item><title>Two</title><link>http://example.com/2</link></item></rdf:RDF>",
        );
        assert_eq!(feed.title.as_deref(), Some("Old"));
        assert_eq!(feed.items.len(), 2);
        assert_eq!(feed.items[1].title.as_deref(), Some("Two"));
    }

    #[test]
    fn atom_03_entries_are_found() {
        let feed = parse(
            "<feed version=\"0.3\" xmlns=\"http://purl.org/atom/ns#\"><title>Old Atom</title>\
             <entry><title>E</title><id>tag:x,2004:1</id>\
             <link rel=\"alternate\" type=\"text/html\" href=\"http://example.com/e\"/></entry></feed>",
        );
        assert_eq!(feed.items.len(), 1);
        assert_eq!(feed.items[0].guid.as_deref(), Some("tag:x,2004:1"));
        assert_eq!(
            feed.items[0].link.as_ref().map(Url::as_str),
            Some("http://example.com/e")
        );
    }

    #[test]
    fn json_feed_is_read_loosely_where_the_spec_allows() {
        // Numeric ids, the `http` version URL, no title, and an attachment that is no article.
        let feed = parse(
            r#"{"version": "http://jsonfeed.org/version/1",
                "items": [{"id": 42, "url": "https://example.com/42"},
                          {"id": "a", "attachments": [{"url": "https://example.com/a.mp3",
                                                        "mime_type": "audio/mpeg"}]}]}"#,
        );
        assert_eq!(feed.title, None);
        let items: Vec<_> = feed
            .items
            .iter()
            .map(|i| (i.guid.as_deref(), i.link.as_ref().map(Url::as_str)))
            .collect();
        assert_eq!(
            items,
            [
                (Some("42"), Some("https://example.com/42")),
                (Some("a"), None)
            ]
        );
        let unsupported =
            r#"{"version": "https://jsonfeed.org/version/9", "title": "t", "items": []}"#;
        assert!(parse_feed(unsupported.as_bytes(), None, &base()).is_err());
    }

    #[test]
    fn errors_say_what_failed_and_hint() {
        insta::assert_snapshot!(err(b""), @"the response body is empty; check that the source URL points at a feed");
        insta::assert_snapshot!(
            err(b"<!DOCTYPE html><html><head><link rel=alternate href=/feed></head></html>"),
            @"not a feed: the response is an HTML page; point the source at its feed (the page's `<link rel=\"alternate\">` names it)"
        );
        insta::assert_snapshot!(
            err(b"<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"></urlset>"),
            @"not a feed: the response is a sitemap (`<urlset>`); point the source at the site's feed"
        );
        insta::assert_snapshot!(
            err(b"<opml version=\"2.0\"></opml>"),
            @"not a feed: the root element is `<opml>`, not `<rss>`, `<feed>` or `<rdf:RDF>`; point the source at a feed"
        );
        insta::assert_snapshot!(
            err(b"502 Bad Gateway\n"),
            @"not a feed: the response is neither XML nor JSON (it starts with `502 Bad Gateway\\n`); check that the source URL points at a feed"
        );
        insta::assert_snapshot!(
            err(b"<rss version=\"2.0\"><channel><item><title>cut"),
            @"malformed RSS feed (read as `UTF-8`); the feed itself is broken: a feed validator will show where"
        );
        insta::assert_snapshot!(
            err(b"{\"items\": 3}"),
            @"malformed JSON feed (read as `UTF-8`); the feed itself is broken: a feed validator will show where"
        );
    }

    #[test]
    fn malformed_keeps_its_cause_once_and_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
        let error = parse_feed(b"<rss version=\"2.0\"><channel><item>", None, &base()).unwrap_err();
        assert_send_sync(&error);
        let cause = std::error::Error::source(&error).unwrap();
        assert!(
            cause.to_string().starts_with("unable to parse XML"),
            "{cause}"
        );
        assert!(cause.source().is_none());
    }
}
