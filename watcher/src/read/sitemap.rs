//! sitemap.rs: reads a sitemap (`<urlset>`: article URLs with their `<lastmod>`) or a sitemap
//! index (`<sitemapindex>`: the child sitemaps to fetch next), following sitemaps.org.
//!
//! A gzip body (recognised by its magic bytes, whatever the URL says) is decompressed with the
//! output capped, so a gzip bomb stops at the cap instead of filling memory. `<loc>`s resolve
//! against the sitemap's URL (real sitemaps carry relative ones); extension elements (image,
//! video, news, xhtml alternates) are skipped, except that a news `<publication_date>` is read
//! as the publication date. A text sitemap (one URL per line, which the protocol allows) is read
//! too.

use std::borrow::Cow;
use std::io::Read as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use flate2::read::MultiGzDecoder;
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use url::Url;

use super::SiteError;
use super::page::is_web_url;
use crate::parse::RawItem;
use crate::work::WorkBudget;

mod crawl;

pub use self::crawl::read;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const NEWS_NAMESPACE: &[u8] = b"http://www.google.com/schemas/sitemap-news/0.9";

/// What a sitemap lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sitemap {
    /// A `<urlset>`: one item per page (`link`, and `published`/`updated` from `<lastmod>`).
    Urls(Vec<RawItem>),
    /// A `<sitemapindex>`: the child sitemaps, absolute, in order.
    Index(Vec<Url>),
}

/// Parses a fetched sitemap body.
///
/// `url` is the sitemap's final URL (relative `<loc>`s resolve against it); `include`, when
/// given, keeps only pages whose path and query contain it (it does not filter an index's child
/// sitemaps); `max_bytes` caps the body, decompressed. URLs are deduplicated, first kept; a
/// `<loc>` that is not an http(s) URL is skipped. At most the protocol's 50,000 entries.
pub fn parse_sitemap(
    body: &[u8],
    url: &Url,
    include: Option<&str>,
    max_bytes: u64,
) -> Result<Sitemap, SiteError> {
    let caps = Caps {
        max_bytes,
        max_urls: PROTOCOL_MAX_URLS,
    };
    parse_sitemap_with(body, url, include, caps).map(|(sitemap, _)| sitemap)
}

/// The entries one sitemap file may list, by the protocol.
pub const PROTOCOL_MAX_URLS: usize = 50_000;

/// The limits of one sitemap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The body, decompressed.
    pub max_bytes: u64,
    /// Entries (`<url>`s or `<sitemap>`s, before `include` filters them): parsing stops at the
    /// first one over, so a huge file costs no more than this many.
    pub max_urls: usize,
}

/// [`parse_sitemap`] with both limits given; with the size of the body parsed (decompressed).
pub fn parse_sitemap_with(
    body: &[u8],
    url: &Url,
    include: Option<&str>,
    caps: Caps,
) -> Result<(Sitemap, u64), SiteError> {
    parse_sitemap_within(body, url, include, caps, &WorkBudget::unlimited())
}

/// [`parse_sitemap_with`] charging `work` as it goes (a unit per byte decompressed, and per byte
/// and element the XML or text pass reads), stopping at its next check once the budget is spent
/// or the poll cancelled (`SiteError::Work`).
#[tracing::instrument(skip_all, fields(url = %url, bytes = body.len()))]
pub fn parse_sitemap_within(
    body: &[u8],
    url: &Url,
    include: Option<&str>,
    caps: Caps,
    work: &WorkBudget,
) -> Result<(Sitemap, u64), SiteError> {
    let body = decompress(body, caps.max_bytes)?;
    let parsed = body.len() as u64;
    if matches!(body, Cow::Owned(_)) {
        work.spend(parsed)?;
    }
    let text = decode(&body);
    let text = text.trim_start();
    if text.is_empty() {
        return Err(SiteError::Empty);
    }
    let collector = Collector::new(url, include, caps.max_urls);
    let sitemap = if text.starts_with('<') {
        parse_xml(text, collector, work)?
    } else {
        parse_text(text, collector, work)?
    };
    match &sitemap {
        Sitemap::Urls(items) => tracing::debug!(urls = items.len(), "parsed sitemap"),
        Sitemap::Index(children) => tracing::debug!(sitemaps = children.len(), "parsed index"),
    }
    Ok((sitemap, parsed))
}

/// The body itself, or its gzip decompression; either way at most `max_bytes`. Decompression
/// reads at most one byte past the cap, so it never holds more than that.
fn decompress(body: &[u8], max_bytes: u64) -> Result<Cow<'_, [u8]>, SiteError> {
    if !body.starts_with(GZIP_MAGIC) {
        if body.len() as u64 > max_bytes {
            return Err(SiteError::TooLarge { max_bytes });
        }
        return Ok(Cow::Borrowed(body));
    }
    let mut output = Vec::new();
    MultiGzDecoder::new(body)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut output)
        .map_err(|source| SiteError::Gzip { source })?;
    if output.len() as u64 > max_bytes {
        return Err(SiteError::DecompressedTooLarge { max_bytes });
    }
    tracing::debug!(
        compressed = body.len(),
        decompressed = output.len(),
        "gunzipped sitemap"
    );
    Ok(Cow::Owned(output))
}

/// Sitemaps are UTF-8 by the protocol; a UTF-16 one with a BOM is transcoded, and stray invalid
/// bytes become U+FFFD rather than failing the whole sitemap.
fn decode(body: &[u8]) -> Cow<'_, str> {
    match encoding_rs::Encoding::for_bom(body) {
        Some((encoding, bom)) => encoding.decode_without_bom_handling(&body[bom..]).0,
        None => String::from_utf8_lossy(body),
    }
}

/// Whether the path and query of `link` contain `pattern`.
fn includes(link: &Url, pattern: &str) -> bool {
    let path_and_query = &link[url::Position::BeforePath..url::Position::AfterQuery];
    path_and_query.contains(pattern)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Urlset,
    Index,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Loc,
    Lastmod,
    NewsPublished,
}

/// One `<url>` or `<sitemap>` being read.
#[derive(Debug, Default)]
struct Entry {
    loc: Option<String>,
    lastmod: Option<String>,
    news_published: Option<String>,
}

/// Collects entries into a [`Sitemap`], deduplicating, skipping bad `<loc>`s and pages
/// `include` leaves out, and counting entries against `max_urls`.
struct Collector<'u> {
    kind: Kind,
    base: &'u Url,
    include: Option<&'u str>,
    max_urls: usize,
    /// Entries seen, kept or not.
    entries: usize,
    items: Vec<RawItem>,
    children: Vec<(Url, Option<DateTime<Utc>>)>,
    skipped: usize,
}

impl<'u> Collector<'u> {
    fn new(base: &'u Url, include: Option<&'u str>, max_urls: usize) -> Collector<'u> {
        Collector {
            kind: Kind::Urlset,
            base,
            include,
            max_urls,
            entries: 0,
            items: Vec::new(),
            children: Vec::new(),
            skipped: 0,
        }
    }

    /// A new collector with the same base, filter and limit, for a document of `kind`.
    fn start(&self, kind: Kind) -> Collector<'u> {
        Collector {
            kind,
            ..Collector::new(self.base, self.include, self.max_urls)
        }
    }

    /// Whether more entries were seen than the file may list.
    fn over(&self) -> Result<(), SiteError> {
        if self.entries > self.max_urls {
            return Err(SiteError::TooManyUrls {
                max_urls: self.max_urls,
            });
        }
        Ok(())
    }

    fn finish_entry(&mut self, entry: Entry) {
        self.entries += 1;
        let Some(link) = entry
            .loc
            .as_deref()
            .map(str::trim)
            .and_then(|loc| self.base.join(loc).ok())
            .filter(is_web_url)
        else {
            tracing::debug!(loc = ?entry.loc, "skipped a sitemap entry without a usable <loc>");
            self.skipped += 1;
            return;
        };
        if self.kind == Kind::Urlset
            && let Some(pattern) = self.include
            && !includes(&link, pattern)
        {
            return;
        }
        match self.kind {
            Kind::Index => self
                .children
                .push((link, entry.lastmod.as_deref().and_then(parse_w3c_datetime))),
            Kind::Urlset => {
                let lastmod = entry.lastmod.as_deref().and_then(parse_w3c_datetime);
                let published = entry
                    .news_published
                    .as_deref()
                    .and_then(parse_w3c_datetime)
                    .or(lastmod);
                self.items.push(RawItem {
                    link: Some(link),
                    published,
                    updated: lastmod,
                    ..RawItem::default()
                });
            }
        }
    }

    fn into_sitemap(self) -> Sitemap {
        if self.skipped > 0 {
            tracing::debug!(
                skipped = self.skipped,
                "sitemap entries without an http(s) <loc> were skipped"
            );
        }
        match self.kind {
            Kind::Urlset => {
                let mut items = self.items;
                first_of_each(&mut items, |item| item.link.as_ref().map(Url::as_str));
                Sitemap::Urls(items)
            }
            Kind::Index => {
                let mut children = self.children;
                first_of_each(&mut children, |(url, _)| Some(url.as_str()));
                // Newest first (by `<lastmod>`; undated ones after, in document order), so that
                // a reader that stops after N children reads the ones new articles are in.
                children.sort_by_key(|c| std::cmp::Reverse(c.1));
                Sitemap::Index(children.into_iter().map(|(u, _)| u).collect())
            }
        }
    }
}

/// Keeps the first of the entries that share a URL (`key`), in order. Deduplicated once at the
/// end, through borrowed keys, so a file's URLs are never held twice.
fn first_of_each<T>(entries: &mut Vec<T>, key: impl Fn(&T) -> Option<&str>) {
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        entries.iter().map(|e| seen.insert(key(e))).collect()
    };
    let mut keep = keep.into_iter();
    entries.retain(|_| keep.next().unwrap_or(true));
}

/// Namespace identity of an element, comparable across events: `None` when in no namespace.
fn namespace_of(resolved: &ResolveResult<'_>) -> Option<Option<Vec<u8>>> {
    match resolved {
        ResolveResult::Bound(ns) => Some(Some(ns.as_ref().to_vec())),
        ResolveResult::Unbound => Some(None),
        ResolveResult::Unknown(_) => None,
    }
}

/// Parses XML; `proto` says how to collect (its kind is set by the root element).
fn parse_xml(text: &str, proto: Collector<'_>, work: &WorkBudget) -> Result<Sitemap, SiteError> {
    let mut reader = NsReader::from_str(text);
    // Generators write query strings unescaped (`?a=1&b=2`); that `&` is part of the URL.
    reader.config_mut().allow_dangling_amp = true;
    let mut collector: Option<Collector<'_>> = None;
    // The root's namespace: `<loc>` and `<lastmod>` count only in it (an `<image:loc>` doesn't).
    let mut root_namespace: Option<Option<Vec<u8>>> = None;
    // Local names of the open elements, root first.
    let mut open: Vec<String> = Vec::new();
    let mut entry: Option<Entry> = None;
    let mut field: Option<(Field, String)> = None;
    let mut read = 0;

    loop {
        let at = reader.buffer_position();
        work.spend(1 + at.saturating_sub(read))?;
        read = at;
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(source) => {
                return Err(SiteError::Xml {
                    position: reader.error_position(),
                    source,
                });
            }
        };
        let (start, is_empty) = match event {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) => {
                let depth = open.len();
                open.pop();
                close(depth, &mut entry, &mut field, collector.as_mut());
                collector.as_ref().map_or(Ok(()), Collector::over)?;
                continue;
            }
            Event::Text(text) => {
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&text.decode().unwrap_or_default());
                }
                continue;
            }
            Event::CData(cdata) => {
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&cdata.decode().unwrap_or_default());
                }
                continue;
            }
            Event::GeneralRef(reference) => {
                if let Some((_, value)) = field.as_mut() {
                    push_reference(value, &reference);
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };

        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let namespace = namespace_of(&resolved);
        open.push(name);
        let depth = open.len();
        let name = open[depth - 1].as_str();

        if depth == 1 {
            let kind = match name {
                "urlset" => Kind::Urlset,
                "sitemapindex" => Kind::Index,
                "rss" | "feed" | "RDF" => {
                    return Err(SiteError::IsFeed {
                        root: qualified(&start),
                    });
                }
                _ => {
                    return Err(SiteError::NotSitemap {
                        root: qualified(&start),
                    });
                }
            };
            root_namespace = namespace;
            collector = Some(proto.start(kind));
        } else if let Some(collector) = collector.as_ref() {
            let in_sitemap_ns = namespace.is_some() && namespace == root_namespace;
            let entry_name = match collector.kind {
                Kind::Urlset => "url",
                Kind::Index => "sitemap",
            };
            match depth {
                2 if in_sitemap_ns && name == entry_name => entry = Some(Entry::default()),
                3 if in_sitemap_ns && entry.is_some() => {
                    field = match name {
                        "loc" => Some((Field::Loc, String::new())),
                        "lastmod" => Some((Field::Lastmod, String::new())),
                        _ => None,
                    };
                }
                _ if entry.is_some()
                    && name == "publication_date"
                    && matches!(&namespace, Some(Some(ns)) if ns == NEWS_NAMESPACE) =>
                {
                    field = Some((Field::NewsPublished, String::new()));
                }
                _ => {}
            }
        }

        if is_empty {
            open.pop();
            close(depth, &mut entry, &mut field, collector.as_mut());
            collector.as_ref().map_or(Ok(()), Collector::over)?;
        }
    }

    if let Some(innermost) = open.last() {
        return Err(SiteError::Truncated {
            open: innermost.clone(),
            position: reader.buffer_position(),
        });
    }
    collector
        .map(Collector::into_sitemap)
        .ok_or(SiteError::Empty)
}

/// Closes the element at `depth`: a field ends at any close (fields hold no elements), an entry
/// at depth 2.
fn close(
    depth: usize,
    entry: &mut Option<Entry>,
    field: &mut Option<(Field, String)>,
    collector: Option<&mut Collector<'_>>,
) {
    if let (Some((which, value)), Some(current)) = (field.take(), entry.as_mut()) {
        let slot = match which {
            Field::Loc => &mut current.loc,
            Field::Lastmod => &mut current.lastmod,
            Field::NewsPublished => &mut current.news_published,
        };
        slot.get_or_insert(value);
    }
    if depth == 2 {
        if let (Some(done), Some(collector)) = (entry.take(), collector) {
            collector.finish_entry(done);
        }
    }
}

/// Appends what an entity or character reference stands for (`&amp;`, `&#38;`); an unknown
/// entity is kept as written.
fn push_reference(value: &mut String, reference: &quick_xml::events::BytesRef<'_>) {
    if let Ok(Some(ch)) = reference.resolve_char_ref() {
        value.push(ch);
        return;
    }
    let name = reference.decode().unwrap_or_default();
    match quick_xml::escape::resolve_xml_entity(&name) {
        Some(resolved) => value.push_str(resolved),
        None => {
            value.push('&');
            value.push_str(&name);
            value.push(';');
        }
    }
}

/// The root element's name as written (`rdf:RDF`).
fn qualified(start: &quick_xml::events::BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.name().as_ref()).into_owned()
}

/// A text sitemap: one absolute URL per line. Lines that are not http(s) URLs are skipped; a body
/// with none is not a sitemap.
fn parse_text(
    text: &str,
    mut collector: Collector<'_>,
    work: &WorkBudget,
) -> Result<Sitemap, SiteError> {
    for line in text.lines() {
        work.spend(1 + line.len() as u64)?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if Url::parse(line).is_ok_and(|url| is_web_url(&url)) {
            collector.finish_entry(Entry {
                loc: Some(line.to_owned()),
                ..Entry::default()
            });
            collector.over()?;
        }
    }
    if collector.entries == 0 {
        let start: String = text.chars().take(40).collect();
        return Err(SiteError::NotMarkup {
            start: start.escape_debug().to_string(),
        });
    }
    Ok(collector.into_sitemap())
}

/// A W3C datetime as sitemaps use it (`2024-05-01`, `2024-05-01T10:00+02:00`,
/// `2024-05-01T10:00:00.5Z`, also `2024` and `2024-05`), plus what real sitemaps write instead: a
/// space for the `T`, an offset without colon, no offset at all (read as UTC).
pub fn parse_w3c_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    let normalized = text.replacen(' ', "T", 1);
    let normalized = match normalized.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => normalized,
    };
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(&normalized, format) {
            return Some(parsed.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(parsed) = NaiveDateTime::parse_from_str(&normalized, format) {
            return Some(parsed.and_utc());
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d"))
        .or_else(|_| NaiveDate::parse_from_str(&format!("{text}-01-01"), "%Y-%m-%d"))
        .ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const CAP: u64 = 1 << 20;

    fn url() -> Url {
        Url::parse("https://example.com/sitemaps/sitemap.xml").unwrap()
    }

    fn urls(body: &[u8], include: Option<&str>) -> Vec<RawItem> {
        match parse_sitemap(body, &url(), include, CAP).unwrap() {
            Sitemap::Urls(items) => items,
            Sitemap::Index(children) => panic!("expected a urlset, got an index: {children:?}"),
        }
    }

    fn links(items: &[RawItem]) -> Vec<&str> {
        items
            .iter()
            .map(|item| item.link.as_ref().unwrap().as_str())
            .collect()
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    const URLSET: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"
        xmlns:xhtml="http://www.w3.org/1999/xhtml">
  <url>
    <loc>https://example.com/blog/one?a=1&amp;b=2</loc>
    <lastmod>2024-05-01</lastmod>
    <xhtml:link rel="alternate" hreflang="fr" href="https://example.com/fr/one"/>
    <image:image><image:loc>https://example.com/one.png</image:loc></image:image>
  </url>
  <url>
    <loc><![CDATA[/blog/two]]></loc>
    <lastmod>2024-05-02T10:30+02:00</lastmod>
    <news:news>
      <news:publication><news:name>Ex</news:name><news:language>en</news:language></news:publication>
      <news:publication_date>2024-05-02T08:00:00Z</news:publication_date>
      <news:title>Two</news:title>
    </news:news>
  </url>
  <url><loc>https://example.com/about/</loc></url>
  <url><loc>https://example.com/blog/one?a=1&#38;b=2</loc></url>
  <url><loc>https://example.com/blog/three?a=1&b=2&c</loc></url>
  <url><loc>mailto:me@example.com</loc></url>
  <url><lastmod>2024-01-01</lastmod></url>
</urlset>"#;

    #[test]
    fn urlset_with_extensions_relative_locs_and_lastmod() {
        let items = urls(URLSET.as_bytes(), None);
        assert_eq!(
            links(&items),
            [
                "https://example.com/blog/one?a=1&b=2",
                "https://example.com/blog/two",
                "https://example.com/about/",
                "https://example.com/blog/three?a=1&b=2&c",
            ]
        );
        assert_eq!(items[0].updated, at("2024-05-01T00:00:00Z"));
        assert_eq!(items[0].published, items[0].updated);
        assert_eq!(items[1].updated, at("2024-05-02T08:30:00Z"));
        assert_eq!(items[1].published, at("2024-05-02T08:00:00Z"));
        assert_eq!((items[2].published, items[2].updated), (None, None));
        assert!(
            items
                .iter()
                .all(|item| item.guid.is_none() && item.title.is_none())
        );
    }

    #[test]
    fn include_filters_on_path_and_query() {
        assert_eq!(
            links(&urls(URLSET.as_bytes(), Some("/blog/"))),
            [
                "https://example.com/blog/one?a=1&b=2",
                "https://example.com/blog/two",
                "https://example.com/blog/three?a=1&b=2&c",
            ]
        );
        assert_eq!(
            links(&urls(URLSET.as_bytes(), Some("b=2"))),
            [
                "https://example.com/blog/one?a=1&b=2",
                "https://example.com/blog/three?a=1&b=2&c",
            ]
        );
        // The host is not part of what `include` looks at.
        assert!(urls(URLSET.as_bytes(), Some("example.com")).is_empty());
    }

    #[test]
    fn index_lists_the_newest_children_first() {
        let index = br#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>old.xml</loc><lastmod>2020-01-01</lastmod></sitemap>
  <sitemap><loc>undated.xml</loc></sitemap>
  <sitemap><loc>new.xml</loc><lastmod>2026-11-01T00:00:00Z</lastmod></sitemap>
</sitemapindex>"#;
        let Sitemap::Index(children) = parse_sitemap(index, &url(), None, CAP).unwrap() else {
            panic!("an index")
        };
        let names: Vec<&str> = children
            .iter()
            .map(|u| u.path_segments().unwrap().next_back().unwrap())
            .collect();
        assert_eq!(names, ["new.xml", "old.xml", "undated.xml"]);
    }

    #[test]
    fn index_lists_children_resolved_and_unfiltered() {
        let index = br#"<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="s.xsl"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>post-sitemap.xml</loc><lastmod>2024-01-01</lastmod></sitemap>
  <sitemap><loc> https://cdn.example.com/s2.xml.gz </loc></sitemap>
  <sitemap><loc>post-sitemap.xml</loc></sitemap>
</sitemapindex>
<!-- generated -->"#;
        let parsed = parse_sitemap(index, &url(), Some("/blog/"), CAP).unwrap();
        assert_eq!(
            parsed,
            Sitemap::Index(vec![
                Url::parse("https://example.com/sitemaps/post-sitemap.xml").unwrap(),
                Url::parse("https://cdn.example.com/s2.xml.gz").unwrap(),
            ])
        );
    }

    #[test]
    fn gzip_by_magic_and_capped() {
        let compressed = gzip(URLSET.as_bytes());
        assert_eq!(urls(&compressed, None), urls(URLSET.as_bytes(), None));

        let cap = URLSET.len() as u64 - 1;
        let err = parse_sitemap(&compressed, &url(), None, cap).unwrap_err();
        assert!(matches!(err, SiteError::DecompressedTooLarge { max_bytes } if max_bytes == cap));
        let err = parse_sitemap(URLSET.as_bytes(), &url(), None, cap).unwrap_err();
        assert!(matches!(err, SiteError::TooLarge { .. }));

        let truncated = &compressed[..compressed.len() / 2];
        let err = parse_sitemap(truncated, &url(), None, CAP).unwrap_err();
        assert!(matches!(err, SiteError::Gzip { .. }), "{err:?}");
    }

    #[test]
    fn text_sitemaps_and_empty_urlsets() {
        let text = b"https://example.com/a\n\n  https://example.com/b  \r\nnot a url\n";
        assert_eq!(
            links(&urls(text, None)),
            ["https://example.com/a", "https://example.com/b"]
        );
        let empty = br#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>"#;
        assert_eq!(urls(empty, None), []);
        // No namespace at all is fine too.
        assert_eq!(
            links(&urls(b"<urlset><url><loc>/x</loc></url></urlset>", None)),
            ["https://example.com/x"]
        );
    }

    #[test]
    fn errors_say_what_failed_and_hint() {
        let err = |body: &[u8]| {
            parse_sitemap(body, &url(), None, CAP)
                .unwrap_err()
                .to_string()
        };
        insta::assert_snapshot!(err(b"  \n"), @"the sitemap is empty; check that the URL points at a sitemap");
        insta::assert_snapshot!(err(b"<!DOCTYPE html><html><body>hi</body></html>"), @"not a sitemap: the root element is `<html>`, not `<urlset>` or `<sitemapindex>`; point the source at the sitemap (its URL is often listed in the site's /robots.txt)");
        insta::assert_snapshot!(err(b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel/></rss>"), @"not a sitemap: the response is a feed (`<rss>`); list it under the author's `feeds` instead");
        insta::assert_snapshot!(err(b"<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/>"), @"not a sitemap: the response is a feed (`<rdf:RDF>`); list it under the author's `feeds` instead");
        insta::assert_snapshot!(err(b"{\"not\": \"a sitemap\"}"), @r#"not a sitemap: the response is neither XML nor a list of URLs (it starts with `{\"not\": \"a sitemap\"}`); point the source at the sitemap"#);
        insta::assert_snapshot!(err(b"<urlset><url><loc>/a</loc></url><url><loc>/b"), @"the sitemap ends inside `<loc>` (truncated at byte 44?); if it is large, raise the body cap, else the server cut the response short");
        insta::assert_snapshot!(err(b"<urlset><url><loc>/a</lastmod></url></urlset>"), @"malformed sitemap XML at byte 20; the sitemap itself is broken: an XML validator will show where");
        insta::assert_snapshot!(err(&[0x1f, 0x8b, 0x08, 0x00, 0x01]), @"the sitemap looks gzip-compressed but does not decompress; the file is corrupt or truncated: check it with `curl -s URL | gunzip | head`");
        insta::assert_snapshot!(parse_sitemap(URLSET.as_bytes(), &url(), None, 10).unwrap_err(), @"the sitemap is larger than the 10-byte sitemap cap; hint: raise [fetch] max_sitemap_bytes if the sitemap is genuine (the protocol allows up to 50 MB and 50,000 URLs)");
        insta::assert_snapshot!(parse_sitemap(&gzip(URLSET.as_bytes()), &url(), None, 10).unwrap_err(), @"the gzip-compressed sitemap decompresses to more than the 10-byte sitemap cap (a gzip bomb, or an oversized sitemap); hint: raise [fetch] max_sitemap_bytes only if the sitemap is genuine");
    }

    #[test]
    fn a_file_over_its_entry_limit_stops_at_the_first_entry_over() {
        let caps = |max_urls| Caps {
            max_bytes: CAP,
            max_urls,
        };
        // Seven entries, the bad ones and those `include` leaves out counted too.
        let err = parse_sitemap_with(URLSET.as_bytes(), &url(), Some("/blog/"), caps(6));
        assert!(
            matches!(err, Err(SiteError::TooManyUrls { max_urls: 6 })),
            "{err:?}"
        );
        let (sitemap, parsed) =
            parse_sitemap_with(URLSET.as_bytes(), &url(), Some("/blog/"), caps(7)).unwrap();
        assert!(matches!(sitemap, Sitemap::Urls(items) if items.len() == 3));
        assert_eq!(parsed, URLSET.len() as u64);
        let text = b"https://example.com/a\nhttps://example.com/b\nhttps://example.com/c\n";
        let err = parse_sitemap_with(text, &url(), None, caps(2)).unwrap_err();
        insta::assert_snapshot!(err, @"the sitemap lists more than 2 entries (the protocol allows 50,000 per file); hint: raise [fetch] max_sitemap_urls if the sitemap is genuine");
    }

    #[test]
    fn w3c_datetimes() {
        let cases = [
            ("2024", "2024-01-01T00:00:00Z"),
            ("2024-05", "2024-05-01T00:00:00Z"),
            ("2024-05-01", "2024-05-01T00:00:00Z"),
            ("2024-05-01T10:30+02:00", "2024-05-01T08:30:00Z"),
            ("2024-05-01T10:30Z", "2024-05-01T10:30:00Z"),
            ("2024-05-01T10:30:15+00:00", "2024-05-01T10:30:15Z"),
            ("2024-05-01T10:30:15.25Z", "2024-05-01T10:30:15.25Z"),
            (" 2024-05-01 10:30:15 ", "2024-05-01T10:30:15Z"),
            ("2024-05-01T10:30:15+0200", "2024-05-01T08:30:15Z"),
            ("2024-05-01T10:30:15", "2024-05-01T10:30:15Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_w3c_datetime(text), at(expected), "{text}");
        }
        for bad in ["", "yesterday", "2024-13-01", "01/05/2024"] {
            assert_eq!(parse_w3c_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn parsing_charges_the_work_budget_and_stops_once_it_is_spent_or_cancelled() {
        use crate::work::WorkError;
        use tokio_util::sync::CancellationToken;

        let mut xml =
            String::from("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">");
        for i in 0..2_000 {
            xml.push_str(&format!("<url><loc>https://example.com/p/{i}</loc></url>"));
        }
        xml.push_str("</urlset>");
        let text = (0..2_000)
            .map(|i| format!("https://example.com/t/{i}\n"))
            .collect::<String>();
        let caps = Caps {
            max_bytes: CAP,
            max_urls: PROTOCOL_MAX_URLS,
        };
        for body in [xml.as_bytes(), text.as_bytes()] {
            let full = WorkBudget::unlimited();
            parse_sitemap_within(body, &url(), None, caps, &full).unwrap();
            assert!(full.used() >= body.len() as u64, "{} units", full.used());

            let limit = full.used() / 4;
            let quarter = WorkBudget::new(limit, CancellationToken::new());
            let err = parse_sitemap_within(body, &url(), None, caps, &quarter).unwrap_err();
            assert!(
                matches!(err, SiteError::Work(WorkError::Exceeded { .. })),
                "{err}"
            );
            assert!(
                quarter.used() < limit + 1_000,
                "stopped late: {}",
                quarter.used()
            );

            let stop = CancellationToken::new();
            stop.cancel();
            let cancelled = WorkBudget::new(u64::MAX, stop);
            let err = parse_sitemap_within(body, &url(), None, caps, &cancelled).unwrap_err();
            assert!(
                matches!(err, SiteError::Work(WorkError::Cancelled)),
                "{err}"
            );
        }
    }
}
