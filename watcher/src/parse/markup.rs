//! markup.rs: RSS item descriptions written as raw XHTML child elements instead of escaped text,
//! kept as content.
//!
//! Real feeds write `<description><p>Hi <em>there</em></p></description>`. feed-rs reads only a
//! description's first text node, so such an item has no content at all, and several items that
//! share one link (and a title, or none) then collapse into one identity. Like feedparser, the
//! watcher keeps the markup as the item's HTML content: each such description (and
//! `content:encoded`) of an item is wrapped in a CDATA section before feed-rs parses the document.
//! CDATA sections inside it are unwrapped (their text is already the markup the feed meant), and a
//! stray `]]>` is written `]]&gt;`: the document grows by 12 bytes per rewritten element plus 3 per
//! stray `]]>`, so a hostile body cannot blow it up.
//!
//! Most feeds have no such description, so a quick look (memchr/memmem substring searches, at
//! most twice the document's length) decides first whether the tag scan, which charges the poll's work
//! budget, is needed at all.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::needles;
use super::repair::Format;
use super::tags::{self, Tag};
use crate::work::WorkBudget;

const CDATA_OPEN: &str = "<![CDATA[";
const CDATA_CLOSE: &str = "]]>";

/// `text` with the raw markup of every item's `<description>` and `<content:encoded>` turned into
/// CDATA text; borrowed when there is none (and for Atom and JSON). The scan charges `budget`;
/// when it runs out the scan ends early (the caller checks the budget).
pub(super) fn keep_as_content<'a>(
    text: &'a str,
    format: Format,
    budget: &WorkBudget,
) -> Cow<'a, str> {
    if !matches!(format, Format::Rss | Format::Rdf) || !may_hold_raw_markup(text) {
        return Cow::Borrowed(text);
    }
    let regions = raw_markup_regions(text, budget);
    if regions.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + regions.len() * 12);
    let mut at = 0;
    for region in regions {
        out.push_str(&text[at..region.start]);
        out.push_str(CDATA_OPEN);
        push_as_cdata_body(&mut out, &text[region.clone()]);
        out.push_str(CDATA_CLOSE);
        at = region.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Whether some `<description>` or `<content:encoded>` may hold an element outside CDATA. Never
/// wrongly no; wrongly yes only for odd documents (the name inside a comment or another CDATA),
/// and yes whenever the look would cost more than twice the document's length.
fn may_hold_raw_markup(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut allowance = text.len().saturating_mul(2);
    for (open, close) in [
        (&*DESCRIPTION_OPEN, "</description"),
        (&*ENCODED_OPEN, "</content:encoded"),
    ] {
        let mut from = 0;
        while let Some(at) = open.find(&bytes[from..]) {
            from += at + open.needle().len();
            let after = &bytes[from..];
            let Some(gt) = memchr::memchr(b'>', after) else {
                return true;
            };
            let attrs = &after[..gt];
            // `<descriptions>` is another element, `<description/>` an empty one.
            let spaced = attrs.is_empty() || text[from..].starts_with(char::is_whitespace);
            if !spaced || attrs.last() == Some(&b'/') {
                continue;
            }
            match content_has_element(&text[from + gt + 1..], close, &mut allowance) {
                Some(false) => {}
                Some(true) | None => return true,
            }
        }
    }
    false
}

static DESCRIPTION_OPEN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("<description"));
static ENCODED_OPEN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("<content:encoded"));

/// Whether `content` has an element start before `close`, outside CDATA sections; `None` when
/// that cannot be told within `allowance` bytes (which it spends) or the document ends first.
fn content_has_element(content: &str, close: &str, allowance: &mut usize) -> Option<bool> {
    let bytes = content.as_bytes();
    let mut at = 0;
    loop {
        let lt = at + memchr::memchr(b'<', &bytes[at..])?;
        let tail = &content[lt..];
        let next = if tail.starts_with(CDATA_OPEN) {
            lt + needles::end_of(tail.as_bytes(), 0, &needles::CDATA_END)?
        } else if tail.starts_with(close) {
            return Some(false);
        } else if tail[1..].starts_with(|c: char| c.is_alphabetic() || c == '_' || c == ':') {
            return Some(true);
        } else {
            lt + 1
        };
        *allowance = allowance.checked_sub(next - at)?;
        at = next;
    }
}

/// Is this the element whose content is the item's text? `description`, or `content:encoded`.
fn is_content_element(name: &str) -> bool {
    name == "description" || name == "content:encoded"
}

/// The content spans of items' content elements that hold at least one child element.
fn raw_markup_regions(text: &str, budget: &WorkBudget) -> Vec<Range<usize>> {
    let mut regions = Vec::new();
    let mut items = 0usize;
    // The open content element: its name, where its content starts, and whether it has children.
    let mut open: Option<(&str, usize, bool)> = None;
    for tag in tags::tags(text, budget) {
        match (tag, &mut open) {
            (Tag::Start(_), Some((_, _, children))) => *children = true,
            (Tag::End { name, span }, Some((open_name, start, children))) if name == *open_name => {
                if *children {
                    regions.push(*start..span.start);
                }
                open = None;
            }
            (Tag::End { .. }, Some(_)) => {}
            (Tag::Start(start), None) if start.local_name() == "item" && !start.empty => items += 1,
            (Tag::End { name, .. }, None) if tags::local_name(name) == "item" => {
                items = items.saturating_sub(1)
            }
            (Tag::Start(start), None)
                if items > 0 && !start.empty && is_content_element(start.name) =>
            {
                open = Some((start.name, start.span.end, false));
            }
            _ => {}
        }
    }
    regions
}

/// Appends `raw` as the body of a CDATA section: inner CDATA sections unwrapped, any other `]]>`
/// escaped.
fn push_as_cdata_body(out: &mut String, raw: &str) {
    let mut rest = raw;
    while let Some(at) = rest.find(CDATA_OPEN) {
        push_escaping_close(out, &rest[..at]);
        let body = &rest[at + CDATA_OPEN.len()..];
        match body.find(CDATA_CLOSE) {
            Some(end) => {
                out.push_str(&body[..end]);
                rest = &body[end + CDATA_CLOSE.len()..];
            }
            None => {
                push_escaping_close(out, body);
                return;
            }
        }
    }
    push_escaping_close(out, rest);
}

fn push_escaping_close(out: &mut String, text: &str) {
    let mut parts = text.split(CDATA_CLOSE);
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push_str("]]&gt;");
        out.push_str(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss(items: &str) -> String {
        format!("<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>")
    }

    #[test]
    fn raw_markup_becomes_cdata_text_and_escaped_text_is_left_alone() {
        let doc = rss(concat!(
            "<item><description>Plain &amp; escaped &lt;b&gt;</description></item>",
            "<item><description>Hi <em>there</em> &amp; you</description></item>",
        ));
        let got = keep_as_content(&doc, Format::Rss, &WorkBudget::unlimited());
        assert_eq!(
            got,
            rss(concat!(
                "<item><description>Plain &amp; escaped &lt;b&gt;</description></item>",
                "<item><description><![CDATA[Hi <em>there</em> &amp; you]]></description></item>",
            ))
        );
    }

    #[test]
    fn nothing_to_do_borrows() {
        let doc = rss("<item><description><![CDATA[<p>x</p>]]></description></item>");
        assert!(matches!(
            keep_as_content(&doc, Format::Rss, &WorkBudget::unlimited()),
            Cow::Borrowed(_)
        ));
        let channel_only = "<rss><channel><description><p>about</p></description></channel></rss>";
        assert!(matches!(
            keep_as_content(channel_only, Format::Rss, &WorkBudget::unlimited()),
            Cow::Borrowed(_)
        ));
        let atom = "<feed><entry><summary><p>x</p></summary></entry></feed>";
        assert!(matches!(
            keep_as_content(atom, Format::Atom, &WorkBudget::unlimited()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn inner_cdata_is_unwrapped_and_stray_closers_escaped() {
        let doc = rss(
            "<item><content:encoded><p>a</p><![CDATA[<b>b</b>]]> c ]]> d</content:encoded></item>",
        );
        let got = keep_as_content(&doc, Format::Rss, &WorkBudget::unlimited());
        assert_eq!(
            got,
            rss(
                "<item><content:encoded><![CDATA[<p>a</p><b>b</b> c ]]&gt; d]]></content:encoded></item>"
            )
        );
    }

    #[test]
    fn unclosed_html_inside_a_description_stays_inside_it() {
        let doc = rss("<item><description><p>one<br>two</description><title>T</title></item>");
        let got = keep_as_content(&doc, Format::Rss, &WorkBudget::unlimited());
        assert_eq!(
            got,
            rss(
                "<item><description><![CDATA[<p>one<br>two]]></description><title>T</title></item>"
            )
        );
    }

    #[test]
    fn a_feed_of_raw_xhtml_notes_sharing_one_link_keeps_every_note() {
        let body = include_bytes!("../../testdata/feeds/raw-xhtml-descriptions.rss.xml");
        let base = url::Url::parse("https://jamie-okafor.example.net/now/feed.xml").unwrap();
        let feed = super::super::parse_feed(body, None, &base).unwrap();
        assert_eq!(feed.items.len(), 6);
        for item in &feed.items {
            let content = item.content.as_deref().unwrap_or_default();
            assert!(content.starts_with("<p>"), "{content:?}");
        }
        assert!(
            feed.items[3]
                .content
                .as_deref()
                .unwrap()
                .contains("tell me</a> &amp; I")
        );
    }

    #[test]
    fn the_quick_look_finds_raw_markup_and_passes_cdata_by() {
        let raw = rss("<item><description>a <em>b</em></description></item>");
        assert!(may_hold_raw_markup(&raw));
        let cdata = rss("<item><description><![CDATA[<p>x</p>]]></description></item>");
        assert!(!may_hold_raw_markup(&cdata));
        let escaped = rss("<item><description>&lt;p&gt;x</description><descriptions/></item>");
        assert!(!may_hold_raw_markup(&escaped));
        let encoded = rss("<item><content:encoded><![CDATA[x]]><p>y</p></content:encoded></item>");
        assert!(may_hold_raw_markup(&encoded));
    }

    #[test]
    fn the_quick_look_stays_linear_on_hostile_input() {
        // Each description inside a CDATA section would walk the rest of the document again; the
        // honest answer is no, so yes shows the allowance (twice the length) stopped the look.
        let hostile = format!(
            "<description>{}</description>",
            "<![CDATA[<description>]]>".repeat(20_000)
        );
        assert!(may_hold_raw_markup(&hostile), "too costly to tell: maybe");
        let short = format!(
            "<description>{}</description>",
            "<![CDATA[<description>]]>".repeat(2)
        );
        assert!(!may_hold_raw_markup(&short), "cheap to tell: no");
        let unterminated = "<description><![CDATA[".repeat(20_000);
        assert!(may_hold_raw_markup(&unterminated));
        let no_gt = "<description ".repeat(20_000);
        assert!(may_hold_raw_markup(&no_gt));
    }
}
