//! page.rs: reads the article links out of an HTML page through a CSS selector, and owns how an
//! HTML page is decoded (charset) and which URL its relative links resolve against (`<base>`).
//!
//! Each element the selector matches gives at most one link, the first that applies of: the
//! element itself when it is an `<a href>`, the first `<a href>` inside it (`article h2` matching
//! `<h2><a href>…</a></h2>`), the nearest `<a href>` around it (`h1.title` inside
//! `<a href><h1>…</h1></a>`). Links are resolved against the page (or its `<base href>`), their
//! fragment is dropped (it names a place in a document, not another article; identity drops it
//! too), and only http(s) links to somewhere other than the page itself are kept, first
//! occurrence first.
//!
//! The search is one walk over the tree, whatever the nesting: the link inside a matched element
//! is the first `<a href>` that opens while it is open, the link around it the innermost `<a
//! href>` open when it opens, and each link's title is read once however many matched elements
//! stand for it. The walk charges the poll's work budget per node (plus the node's depth when the
//! selector has combinators, which the selector engine matches by walking up the ancestors), as
//! does building the tree (`html`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ego_tree::NodeId;
use ego_tree::iter::Edge;
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252, X_USER_DEFINED};
use scraper::{ElementRef, Html, Node, Selector};

use crate::config::CssSelector;
use url::Url;

use super::{Read, ReadError, SiteError};
use crate::fetch::Fetched;
use crate::parse::RawItem;
use crate::work::{WorkBudget, WorkError};

/// How far into the page a `<meta charset>` is looked for. The HTML standard's pre-scan stops at
/// 1024 bytes; browsers still honour a later one while parsing, so this looks a little further.
const META_SCAN_BYTES: usize = 4096;

/// Extracts one item per matched element: `link` absolute, `title` the link's text with its
/// whitespace collapsed (else its `title` attribute, else an image's `alt`), `guid` `None`.
///
/// `content_type` is the HTTP `Content-Type` (its `charset` is honoured); `page_url` is the final
/// URL after redirects. A selector that matches nothing, or only elements without a usable link,
/// is an error: on a page that lists articles it means the layout changed, and an empty result
/// would hide that.
pub fn extract_links(
    html: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    selector: &CssSelector,
) -> Result<Vec<RawItem>, SiteError> {
    extract_links_within(
        html,
        content_type,
        page_url,
        selector,
        &WorkBudget::unlimited(),
    )
}

/// [`extract_links`] within a work budget: parsing and the search charge `budget` and stop once
/// it is spent (or cancelled), failing with [`SiteError::Work`].
#[tracing::instrument(skip_all, fields(page_url = %page_url, selector = %selector, bytes = html.len()))]
pub fn extract_links_within(
    html: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    selector: &CssSelector,
    budget: &WorkBudget,
) -> Result<Vec<RawItem>, SiteError> {
    let page = Page::parse_within(html, content_type, page_url, budget)?;
    let found = search(&page.document, selector, budget)?;

    let mut items: Vec<RawItem> = Vec::new();
    let mut seen: HashMap<Url, usize> = HashMap::new();
    // Each link's title, read once however many matched elements stand for it.
    let mut titles: HashMap<NodeId, Option<String>> = HashMap::new();
    for anchor in found.links.into_iter().flatten() {
        let Some(anchor) = page.document.tree.get(anchor).and_then(ElementRef::wrap) else {
            continue;
        };
        let Some(link) = anchor.attr("href").and_then(|href| page.resolve(href)) else {
            continue;
        };
        let title = match titles.get(&anchor.id()) {
            Some(title) => title.clone(),
            None => {
                let title = link_title(anchor, budget)?;
                titles.insert(anchor.id(), title.clone());
                title
            }
        };
        match seen.get(&link) {
            // The same article linked twice (an image, then the headline): keep the first, but
            // take the title from a later one when the first had none.
            Some(&index) => {
                if items[index].title.is_none() {
                    items[index].title = title;
                }
            }
            None => {
                seen.insert(link.clone(), items.len());
                items.push(RawItem {
                    link: Some(link),
                    title,
                    ..RawItem::default()
                });
            }
        }
    }
    let matched = found.matched;
    tracing::debug!(matched, items = items.len(), "read links from page");

    if matched == 0 {
        return Err(SiteError::NoMatch {
            selector: selector.to_string(),
        });
    }
    if items.is_empty() {
        return Err(SiteError::NoLinks {
            selector: selector.to_string(),
            matched,
        });
    }
    Ok(items)
}

/// What the selector matched: how many elements, and the link each stands for (see the module
/// header), in document order.
struct Found {
    matched: usize,
    links: Vec<Option<NodeId>>,
}

/// One walk over `document` (see the module header), then the matches in the order the selector
/// engine reports them (the tree's arena order, as `Html::select`). An element the walk never
/// reached (html5ever's reparenting can leave scraper's sibling links short of a node its parent
/// links still place in the document) is searched on its own, as [`link_for`] says.
fn search(
    document: &Html,
    selector: &CssSelector,
    budget: &WorkBudget,
) -> Result<Found, WorkError> {
    // The selector engine matches a combinator by walking up the ancestors: charge for that.
    let walks_up = selector
        .to_string()
        .contains(|c: char| c.is_whitespace() || matches!(c, '>' | '+' | '~' | ':'));
    let mut visited: HashSet<NodeId> = HashSet::new();
    // Per matched element, its link once known.
    let mut found: HashMap<NodeId, Option<NodeId>> = HashMap::new();
    // Matched elements still open that have no link inside yet, and the link open around each.
    let mut waiting: Vec<(NodeId, Option<NodeId>)> = Vec::new();
    let mut open_links: Vec<NodeId> = Vec::new();
    let mut depth: u64 = 0;
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                depth += 1;
                budget.spend(1 + if walks_up { depth } else { 0 })?;
                let Some(element) = ElementRef::wrap(node) else {
                    continue;
                };
                visited.insert(node.id());
                let link = is_link(element);
                if selector.selector().matches(&element) {
                    if link {
                        found.insert(node.id(), Some(node.id()));
                    } else {
                        waiting.push((node.id(), open_links.last().copied()));
                    }
                }
                if link {
                    // The first link inside every matched element still waiting for one.
                    for (id, _) in waiting.drain(..) {
                        found.insert(id, Some(node.id()));
                    }
                    open_links.push(node.id());
                }
            }
            Edge::Close(node) => {
                depth -= 1;
                if open_links.last() == Some(&node.id()) {
                    open_links.pop();
                }
                if let Some(&(id, around)) = waiting.last()
                    && id == node.id()
                {
                    // No link inside: the one around it, if any.
                    waiting.pop();
                    found.insert(id, around);
                }
            }
        }
    }
    let mut links = Vec::new();
    for node in document.tree.nodes() {
        let Some(element) = ElementRef::wrap(node) else {
            continue;
        };
        if visited.contains(&node.id()) {
            if let Some(&link) = found.get(&node.id()) {
                links.push(link);
            }
            continue;
        }
        budget.spend(1)?;
        if selector.selector().matches(&element) {
            links.push(link_for(element, budget)?.map(|link| link.id()));
        }
    }
    budget.check()?;
    Ok(Found {
        matched: links.len(),
        links,
    })
}

/// The link one matched element stands for, searched from it (see the module header); one unit
/// per node visited.
fn link_for<'a>(
    element: ElementRef<'a>,
    budget: &WorkBudget,
) -> Result<Option<ElementRef<'a>>, WorkError> {
    if is_link(element) {
        return Ok(Some(element));
    }
    let link = (element.descendent_elements())
        .take_while(|_| budget.charge(1))
        .find(|e| is_link(*e))
        .or_else(|| {
            (element.ancestors().filter_map(ElementRef::wrap))
                .take_while(|_| budget.charge(1))
                .find(|e| is_link(*e))
        });
    budget.check()?;
    Ok(link)
}

/// Reads the article links of a fetched page through `selector`.
pub fn read(
    fetched: Fetched,
    selector: &CssSelector,
    budget: &WorkBudget,
) -> Result<Read, ReadError> {
    let items = extract_links_within(
        &fetched.body,
        fetched.content_type.as_deref(),
        &fetched.final_url,
        selector,
        budget,
    )?;
    Ok(Read::from(fetched, items, None))
}

/// A parsed page and the URL its relative links resolve against.
pub(super) struct Page {
    pub document: Html,
    /// The page URL, or its `<base href>` resolved against it.
    pub base: Url,
    /// The page URL without its fragment, to recognise links back to the page itself.
    page: Url,
}

impl Page {
    /// Decodes and parses `html` within a work budget (see `html`).
    pub fn parse_within(
        html: &[u8],
        content_type: Option<&str>,
        page_url: &Url,
        budget: &WorkBudget,
    ) -> Result<Page, WorkError> {
        budget.spend(html.len() as u64)?;
        let text = decode_html(html, content_type);
        let document = super::html::parse_document(&text, budget)?;
        let base = base_href(&document)
            .and_then(|href| page_url.join(href.trim()).ok())
            .filter(is_web_url)
            .unwrap_or_else(|| page_url.clone());
        let mut page = page_url.clone();
        page.set_fragment(None);
        Ok(Page {
            document,
            base,
            page,
        })
    }

    /// Resolves an `href` to an absolute http(s) URL without fragment; `None` for fragment-only,
    /// `javascript:`, `mailto:` and other non-web links, and for links to the page itself.
    pub fn resolve(&self, href: &str) -> Option<Url> {
        let href = href.trim();
        if href.is_empty() || href.starts_with('#') {
            return None;
        }
        let mut url = self.base.join(href).ok().filter(is_web_url)?;
        url.set_fragment(None);
        (url != self.page).then_some(url)
    }
}

fn base_href(document: &Html) -> Option<&str> {
    let base = Selector::parse("base[href]").ok()?;
    document
        .select(&base)
        .next()
        .and_then(|element| element.attr("href"))
}

pub(super) fn is_web_url(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.has_host()
}

fn is_link(element: ElementRef<'_>) -> bool {
    element.value().name() == "a" && element.attr("href").is_some()
}

/// The link's text with its whitespace collapsed, else its `title` attribute, else the `alt` of
/// an image inside it. Charges one unit per node read.
fn link_title(anchor: ElementRef<'_>, budget: &WorkBudget) -> Result<Option<String>, WorkError> {
    let mut text = String::new();
    let mut alt = None;
    for node in anchor.descendants() {
        budget.spend(1)?;
        match node.value() {
            Node::Text(t) => text.push_str(t),
            Node::Element(e) if alt.is_none() && e.name() == "img" => alt = e.attr("alt"),
            _ => {}
        }
    }
    let text = collapse_whitespace(&text);
    if !text.is_empty() {
        return Ok(Some(text));
    }
    Ok(anchor
        .attr("title")
        .or(alt)
        .map(collapse_whitespace)
        .filter(|title| !title.is_empty()))
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes an HTML page to UTF-8: a byte order mark wins, then the HTTP `charset`, then a
/// `<meta charset>` (or `http-equiv` `Content-Type`) near the top, else UTF-8.
fn decode_html<'a>(html: &'a [u8], content_type: Option<&str>) -> Cow<'a, str> {
    let declared = content_type
        .and_then(http_charset)
        .or_else(|| meta_charset(html));
    let encoding = declared.unwrap_or(UTF_8);
    // `decode` sniffs the BOM first, which overrides `encoding`.
    let (text, used, lossy) = encoding.decode(html);
    tracing::debug!(
        encoding = used.name(),
        declared = declared.map(Encoding::name),
        lossy,
        "decoded page"
    );
    text
}

/// The `charset` parameter of a `Content-Type` header value, if it names a known encoding.
fn http_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let label = value.trim().trim_matches(|c| c == '"' || c == '\'');
        Encoding::for_label(label.as_bytes())
    })
}

/// The charset a `<meta>` in the first [`META_SCAN_BYTES`] declares, either form:
/// `<meta charset="…">` or `<meta http-equiv="Content-Type" content="text/html; charset=…">`.
/// As in the HTML standard, a UTF-16 label here means UTF-8 (the bytes read so far were ASCII) and
/// `x-user-defined` means windows-1252.
fn meta_charset(html: &[u8]) -> Option<&'static Encoding> {
    let window = html[..html.len().min(META_SCAN_BYTES)].to_ascii_lowercase();
    let mut rest = window.as_slice();
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        if let Some(encoding) = charset_in_tag(&tag[..end]) {
            return Some(match encoding {
                e if e == UTF_16LE || e == UTF_16BE => UTF_8,
                e if e == X_USER_DEFINED => WINDOWS_1252,
                e => e,
            });
        }
        rest = &tag[end..];
    }
    None
}

/// `charset = "label"` inside one (lowercased) tag.
fn charset_in_tag(tag: &[u8]) -> Option<&'static Encoding> {
    let at = find(tag, b"charset")?;
    let rest = tag[at + b"charset".len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b'>') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    Encoding::for_label(&rest[..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(text: &str) -> CssSelector {
        CssSelector::parse(text).unwrap()
    }

    fn page() -> Url {
        Url::parse("https://example.com/blog/").unwrap()
    }

    fn links(html: &str, selector: &str) -> Vec<(String, Option<String>)> {
        extract_links(html.as_bytes(), None, &page(), &sel(selector))
            .unwrap()
            .into_iter()
            .map(|item| (item.link.unwrap().to_string(), item.title))
            .collect()
    }

    fn pair(url: &str, title: &str) -> (String, Option<String>) {
        (url.to_owned(), Some(title.to_owned()))
    }

    #[test]
    fn matched_links_headings_inside_and_headings_around() {
        let html = r#"<article><h2><a href="/p/one">One</a></h2></article>
            <article><h2><a href="two">Two
                 and   a half</a></h2></article>
            <a href="https://other.example/three"><h3 class="t">Three</h3></a>"#;
        assert_eq!(
            links(html, "article h2"),
            [
                pair("https://example.com/p/one", "One"),
                pair("https://example.com/blog/two", "Two and a half"),
            ]
        );
        assert_eq!(links(html, "article h2 a"), links(html, "article h2"));
        assert_eq!(
            links(html, "h3.t"),
            [pair("https://other.example/three", "Three")]
        );
    }

    #[test]
    fn skips_non_web_links_and_the_page_itself_and_dedupes() {
        let html = r##"<ul>
            <li><a href="#top">top</a></li>
            <li><a href="javascript:void(0)">js</a></li>
            <li><a href="mailto:me@example.com">mail</a></li>
            <li><a href="">self</a></li>
            <li><a href="/blog/#comments">self with fragment</a></li>
            <li><a href="/p/1"><img src="x.png"></a></li>
            <li><a href="/p/1#comments">Post one</a></li>
            <li><a href="/p/2">Post two</a></li>
            <li><a href="/p/2">Post two again</a></li>
            <li><a>no href</a></li>
        </ul>"##;
        assert_eq!(
            links(html, "li"),
            [
                pair("https://example.com/p/1", "Post one"),
                pair("https://example.com/p/2", "Post two"),
            ]
        );
    }

    #[test]
    fn title_falls_back_to_title_attribute_then_image_alt() {
        let html = r#"<a class="x" href="/a" title=" Titled "><i></i></a>
            <a class="x" href="/b"><img alt="Pictured"></a>
            <a class="x" href="/c"><img src="c.png"></a>"#;
        assert_eq!(
            links(html, "a.x"),
            [
                pair("https://example.com/a", "Titled"),
                pair("https://example.com/b", "Pictured"),
                ("https://example.com/c".to_owned(), None),
            ]
        );
    }

    #[test]
    fn honours_base_href() {
        let html = r#"<html><head><base href="https://cdn.example.org/site/"></head>
            <body><a class="p" href="post.html">P</a><a class="p" href="/root">R</a></body></html>"#;
        assert_eq!(
            links(html, ".p"),
            [
                pair("https://cdn.example.org/site/post.html", "P"),
                pair("https://cdn.example.org/root", "R"),
            ]
        );
        // A relative `<base>` resolves against the page.
        let relative = r#"<base href="../archive/"><a class="p" href="x">X</a>"#;
        assert_eq!(
            links(relative, ".p"),
            [pair("https://example.com/archive/x", "X")]
        );
    }

    #[test]
    fn charset_from_http_then_meta_then_utf8() {
        // "Café" in windows-1252 / ISO-8859-1.
        let latin1 = b"<a class=p href=/c>Caf\xe9</a>";
        let title = |body: &[u8], content_type| {
            extract_links(body, content_type, &page(), &sel(".p")).unwrap()[0]
                .title
                .clone()
                .unwrap()
        };
        assert_eq!(title(latin1, Some("text/html; charset=ISO-8859-1")), "Café");
        assert_eq!(title(latin1, Some("text/html")), "Caf\u{fffd}");

        let with_meta = [b"<meta charset=\"windows-1252\">".as_slice(), latin1].concat();
        assert_eq!(title(&with_meta, None), "Café");
        let http_equiv = [
            b"<META HTTP-EQUIV=Content-Type CONTENT='text/html; charset=iso-8859-1'>".as_slice(),
            latin1,
        ]
        .concat();
        assert_eq!(title(&http_equiv, None), "Café");
        // The HTTP header beats the meta; a BOM beats both.
        let utf8_meta = [
            b"<meta charset=utf-8>".as_slice(),
            "<a class=p href=/c>Café</a>".as_bytes(),
        ]
        .concat();
        assert_eq!(
            title(&utf8_meta, Some("text/html;charset=\"utf-8\"")),
            "Café"
        );
        let bom = [b"\xef\xbb\xbf".as_slice(), &utf8_meta].concat();
        assert_eq!(title(&bom, Some("text/html; charset=windows-1252")), "Café");
        // A UTF-16 label in a meta means UTF-8.
        let utf16_meta = [
            b"<meta charset=utf-16>".as_slice(),
            "<a class=p href=/c>Café</a>".as_bytes(),
        ]
        .concat();
        assert_eq!(title(&utf16_meta, None), "Café");
    }

    #[test]
    fn nothing_matched_and_no_links_are_errors() {
        let html = b"<article><h2>No link</h2></article>";
        insta::assert_snapshot!(
            extract_links(html, None, &page(), &sel(".missing")).unwrap_err(),
            @"the selector `.missing` matched nothing on the page; the site's layout may have changed: try the selector in the browser's developer tools on the page"
        );
        insta::assert_snapshot!(
            extract_links(html, None, &page(), &sel("article h2")).unwrap_err(),
            @"the selector `article h2` matched 1 element(s) but none is, contains or sits inside a link to a web page; select the article links (`<a href>`) or their headings"
        );
    }

    /// The work units the link search spends on `html` (building the tree excluded).
    fn search_work(html: &str, selector: &str) -> u64 {
        let parse = WorkBudget::unlimited();
        Page::parse_within(html.as_bytes(), None, &page(), &parse).unwrap();
        let all = WorkBudget::unlimited();
        extract_links_within(html.as_bytes(), None, &page(), &sel(selector), &all).unwrap();
        all.used() - parse.used()
    }

    /// Asserts that doubling the input about doubles the work the search spends on it.
    fn assert_linear(what: &str, small: &str, large: &str, selector: &str) {
        crate::work::assert_linear(
            what,
            (small.len(), search_work(small, selector)),
            (large.len(), search_work(large, selector)),
        );
    }

    #[test]
    fn the_link_search_is_linear_in_the_nesting_depth() {
        // Every matched element nested in the previous one, the link at the bottom.
        let matched_above_the_link =
            |n: usize| format!("{}<a href=\"/p/1\">One</a>", "<div class=\"p\">".repeat(n));
        assert_linear(
            "matched elements above the link",
            &matched_above_the_link(1_000),
            &matched_above_the_link(2_000),
            ".p",
        );
        // Every matched element inside one link.
        let matched_inside_the_link =
            |n: usize| format!("<a href=\"/p/1\">{}One</a>", "<span class=\"p\">".repeat(n));
        assert_linear(
            "matched elements inside the link",
            &matched_inside_the_link(1_000),
            &matched_inside_the_link(2_000),
            ".p",
        );
        assert_eq!(
            links(&matched_inside_the_link(3), ".p"),
            [pair("https://example.com/p/1", "One")]
        );
        assert_eq!(
            links(&matched_above_the_link(3), ".p"),
            [pair("https://example.com/p/1", "One")]
        );
    }

    #[test]
    fn a_spent_budget_stops_the_page_read() {
        let html = "<div class=\"p\">".repeat(5_000);
        let budget = WorkBudget::new(100_000, tokio_util::sync::CancellationToken::new());
        let err =
            extract_links_within(html.as_bytes(), None, &page(), &sel(".p"), &budget).unwrap_err();
        insta::assert_snapshot!(err, @"parsing stopped after 100000 work units (the per-poll `parse_budget`): the response is pathological (deeply nested, huge attributes or millions of elements); raise `[fetch] parse_budget` only if the source is genuine");
    }
}
