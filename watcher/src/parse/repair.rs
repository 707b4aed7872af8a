//! repair.rs: finds the feed in a UTF-8 document and rewrites what would make feed-rs misread it.
//!
//! feed-rs dispatches on the root element and then matches elements by namespace, so a real-world
//! feed it doesn't recognise gives an error or, worse, zero items. Each repair here is small, works
//! on the text with the tag scanner, and leaves the document borrowed when it has nothing to do:
//!
//! - **locate**: the root element must be a feed (`<rss>`, `<feed>`, `<entry>`, `<rdf:RDF>`);
//!   otherwise a feed wrapped somewhere inside the document (an Atom `<feed>` served inside an XHTML
//!   page) is cut out, keeping the prefixed namespaces and `xml:base` it inherited. HTML pages,
//!   sitemaps and other XML are rejected with a reason.
//! - **namespace aliases**: feed-rs knows one namespace URI per vocabulary. Older URIs for the same
//!   elements are rewritten to it: RSS 0.90's Netscape namespaces and the UserLand/Harvard RSS 2.0
//!   namespaces to RSS 1.0's (feed-rs reads every RSS version's elements under that one), Atom 0.3's
//!   to Atom 1.0's.
//! - **rss version**: an `<rss>` whose `version` feed-rs doesn't dispatch on (missing, `0.93`,
//!   `2.0.1`...) is read as RSS 2.0, whose parser covers all of RSS 0.9x.
//! - **channel**: an `<rss>` without a `<channel>` (items straight under the root) has its
//!   children wrapped in one.
//! - **nested items**: an `<item>` illegally nested inside another is moved after it when it has
//!   content of its own; an empty one (`<item />`) is left in place, where feed-rs ignores it,
//!   because it is no article.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::tags::{self, StartTag, Tag};

mod nested;
use crate::work::WorkBudget;

const RSS1_NS: &str = "http://purl.org/rss/1.0/";
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
const ATOM03_NS: &str = "http://purl.org/atom/ns#";
const RDF_NS: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";

/// Namespace URIs feed-rs doesn't know, and the URI it knows for the same vocabulary.
const NAMESPACE_ALIASES: &[(&str, &str)] = &[
    ("http://my.netscape.com/rdf/simple/0.9/", RSS1_NS),
    ("http://channel.netscape.com/rdf/simple/0.9/", RSS1_NS),
    ("http://backend.userland.com/rss2", RSS1_NS),
    ("http://backend.userland.com/rss", RSS1_NS),
    ("http://blogs.law.harvard.edu/tech/rss", RSS1_NS),
    (ATOM03_NS, ATOM_NS),
];

static XMLNS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("xmlns"));

/// How many open ancestors the search for a wrapped feed tracks (for inherited declarations).
const MAX_OPEN: usize = 256;

/// The `<rss version>` values feed-rs dispatches on.
const RSS_VERSIONS: &[&str] = &["2.0", "", "0.91", "0.92"];

/// A document ready for feed-rs.
#[derive(Debug)]
pub(super) struct Prepared<'a> {
    pub text: Cow<'a, str>,
    pub format: Format,
    /// What was rewritten, for the logs.
    pub repairs: Vec<Repair>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Rss,
    Rdf,
    Atom,
    Json,
}

impl Format {
    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Rss => "RSS",
            Format::Rdf => "RDF (RSS 1.0/0.90)",
            Format::Atom => "Atom",
            Format::Json => "JSON",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Repair {
    /// The feed was cut out of a document whose root is this element.
    Unwrapped {
        from: String,
    },
    NamespaceAlias {
        from: &'static str,
        to: &'static str,
    },
    RssVersion {
        from: Option<String>,
    },
    NestedItems {
        moved: usize,
    },
    /// The `<rss>` root's children were not in a `<channel>`.
    Channel,
}

/// Why a document is not a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rejection {
    Empty,
    Html,
    Sitemap { root: String },
    OtherXml { root: String },
    NotMarkup { start: String },
}

/// Locates the feed in `text` and applies the repairs listed in the module header.
/// Every pass charges `budget` and ends early once it is spent: the caller checks it before
/// trusting the result.
pub(super) fn prepare<'a>(text: &'a str, budget: &WorkBudget) -> Result<Prepared<'a>, Rejection> {
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    match text.chars().next() {
        None => return Err(Rejection::Empty),
        Some('{') => {
            return Ok(Prepared {
                text: Cow::Borrowed(text),
                format: Format::Json,
                repairs: Vec::new(),
            });
        }
        Some('<') => {}
        Some(_) => {
            return Err(Rejection::NotMarkup {
                start: text.chars().take(20).collect(),
            });
        }
    }

    let mut repairs = Vec::new();
    let (mut text, format) = locate(text, budget, &mut repairs)?;
    if let Some(fixed) = alias_namespaces(&text, budget, &mut repairs) {
        text = Cow::Owned(fixed);
    }
    if let Some(fixed) = fix_rss_version(&text, budget, format, &mut repairs) {
        text = Cow::Owned(fixed);
    }
    if let Some(fixed) = wrap_in_channel(&text, budget, format, &mut repairs) {
        text = Cow::Owned(fixed);
    }
    if let Some(fixed) = nested::hoist_nested_items(&text, budget, format, &mut repairs) {
        text = Cow::Owned(fixed);
    }
    Ok(Prepared {
        text,
        format,
        repairs,
    })
}

/// The feed format a root element stands for, as feed-rs dispatches (by local name).
fn feed_format(root: &StartTag<'_>) -> Option<Format> {
    match root.local_name() {
        "rss" => Some(Format::Rss),
        "RDF" => Some(Format::Rdf),
        "feed" | "entry" => Some(Format::Atom),
        _ => None,
    }
}

/// The feed element: the root, or a feed wrapped inside the document.
fn locate<'a>(
    text: &'a str,
    budget: &WorkBudget,
    repairs: &mut Vec<Repair>,
) -> Result<(Cow<'a, str>, Format), Rejection> {
    let Some(Tag::Start(root)) = tags::tags(text, budget).find(|tag| matches!(tag, Tag::Start(_)))
    else {
        return Err(Rejection::NotMarkup {
            start: text.chars().take(20).collect(),
        });
    };
    if let Some(format) = feed_format(&root) {
        return Ok((Cow::Borrowed(text), format));
    }
    if let Some((feed, format)) = unwrap_embedded_feed(text, budget) {
        repairs.push(Repair::Unwrapped {
            from: root.name.to_owned(),
        });
        return Ok((Cow::Owned(feed), format));
    }
    let root_name = root.local_name();
    let doctype_html = text
        .get(..14)
        .is_some_and(|start| start.eq_ignore_ascii_case("<!doctype html"));
    Err(
        if doctype_html
            || ["html", "head", "body"]
                .iter()
                .any(|h| root_name.eq_ignore_ascii_case(h))
        {
            Rejection::Html
        } else if root_name == "urlset" || root_name == "sitemapindex" {
            Rejection::Sitemap {
                root: root.name.to_owned(),
            }
        } else {
            Rejection::OtherXml {
                root: root.name.to_owned(),
            }
        },
    )
}

/// The namespace declarations in scope during a scan, kept as the scan goes so a lookup never
/// re-reads an ancestor's attributes: each element's attributes are read once, when it opens.
#[derive(Default)]
struct Scope<'a> {
    /// Per prefix (`None`: the default namespace), the URIs the open elements bind it to,
    /// innermost last.
    bindings: HashMap<Option<&'a str>, Vec<&'a str>>,
    /// The prefixes each open element declared, in order, and where each element's start.
    declared: Vec<Option<&'a str>>,
    opened_at: Vec<usize>,
}

impl<'a> Scope<'a> {
    /// `tag` opens: its declarations come into scope.
    fn open(&mut self, tag: &StartTag<'a>) {
        self.opened_at.push(self.declared.len());
        for attr in tag.attrs() {
            let prefix = match attr.name.strip_prefix("xmlns") {
                Some("") => None,
                Some(rest) => match rest.strip_prefix(':') {
                    Some(prefix) => Some(prefix),
                    None => continue,
                },
                None => continue,
            };
            self.bindings
                .entry(prefix)
                .or_default()
                .push(attr.value.trim());
            self.declared.push(prefix);
        }
    }

    /// Every element from the `depth`-th open one on closes: their declarations leave scope.
    fn close_to(&mut self, depth: usize) {
        let Some(&start) = self.opened_at.get(depth) else {
            return;
        };
        self.opened_at.truncate(depth);
        for prefix in self.declared.drain(start..) {
            if let Some(uris) = self.bindings.get_mut(&prefix) {
                uris.pop();
            }
        }
    }

    /// The namespace bound to `tag`'s prefix, by itself or its innermost declaring ancestor.
    fn namespace_of(&self, tag: &StartTag<'a>) -> Option<&'a str> {
        let prefix = tag.prefix();
        tag.declares(prefix)
            .or_else(|| self.bindings.get(&prefix)?.last().copied())
    }
}

/// Cuts the first feed element out of a document whose root is something else, and re-declares on
/// it the prefixed namespaces and `xml:base` it inherited from its ancestors.
fn unwrap_embedded_feed(text: &str, budget: &WorkBudget) -> Option<(String, Format)> {
    let mut open: Vec<StartTag<'_>> = Vec::new();
    let mut scope = Scope::default();
    let mut scan = tags::tags(text, budget);
    let (feed, format) = loop {
        match scan.next()? {
            Tag::Start(tag) => {
                let format = match tag.local_name() {
                    "feed" => matches!(scope.namespace_of(&tag), Some(ATOM_NS | ATOM03_NS))
                        .then_some(Format::Atom),
                    "rss" => tag.attr("version").map(|_| Format::Rss),
                    "RDF" => (scope.namespace_of(&tag) == Some(RDF_NS)).then_some(Format::Rdf),
                    _ => None,
                };
                if let Some(format) = format {
                    break (tag, format);
                }
                // HTML leaves elements unclosed; a bounded stack keeps the scan linear.
                if !tag.empty && open.len() < MAX_OPEN {
                    scope.open(&tag);
                    open.push(tag);
                }
            }
            Tag::End { name, .. } => {
                // Tolerate HTML's unclosed elements: close up to the matching one, if any.
                if let Some(at) = open.iter().rposition(|o| o.name == name) {
                    open.truncate(at);
                    scope.close_to(at);
                }
            }
        }
    };

    let end = if feed.empty {
        feed.span.end
    } else {
        let mut depth = 1usize;
        loop {
            match scan.next() {
                Some(Tag::Start(tag)) if !tag.empty => depth += 1,
                Some(Tag::End { span, .. }) => {
                    depth -= 1;
                    if depth == 0 {
                        break span.end;
                    }
                }
                Some(_) => {}
                // Truncated: hand feed-rs what there is and let it report the error.
                None => break text.len(),
            }
        }
    };

    // Innermost ancestor first, so the nearest declaration of a name wins. Sets, so that many
    // declarations on both sides cost one read of each, not one per pair.
    let own: HashSet<&str> = feed.attrs().map(|attr| attr.name).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut inherited: Vec<(&str, &str)> = Vec::new();
    for attr in open.iter().rev().flat_map(StartTag::attrs) {
        let wanted = attr.name.starts_with("xmlns:") || attr.name == "xml:base";
        if wanted && !own.contains(attr.name) && seen.insert(attr.name) {
            inherited.push((attr.name, attr.value));
        }
    }

    let insert = feed.insert_at();
    let mut out = String::with_capacity(end - feed.span.start + 128);
    out.push_str(&text[feed.span.start..insert]);
    for (name, value) in inherited {
        out.push_str(&format!(" {name}=\"{}\"", value.replace('"', "&quot;")));
    }
    out.push_str(&text[insert..end]);
    Some((out, format))
}

/// Rewrites namespace declarations of known aliases (see [`NAMESPACE_ALIASES`]).
fn alias_namespaces(text: &str, budget: &WorkBudget, repairs: &mut Vec<Repair>) -> Option<String> {
    if !may_declare_alias(text) {
        return None;
    }
    rewrite_aliases(text, budget, repairs)
}

/// Whether some `xmlns` attribute may declare one of [`NAMESPACE_ALIASES`]: one search for
/// `xmlns`, each occurrence read as `tags::Attrs` reads an attribute that starts there. Never
/// wrongly no: an attribute the tag scan reads is a substring of the document at the same place,
/// so its name, `=` and value start are found the same way here; yes also for an `xmlns` inside
/// text, a comment or CDATA, which the scan then passes by.
fn may_declare_alias(text: &str) -> bool {
    let bytes = text.as_bytes();
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    XMLNS.find_iter(bytes).any(|at| {
        let name_end = bytes[at..]
            .iter()
            .position(|&b| b == b'=' || b.is_ascii_whitespace())
            .map_or(bytes.len(), |len| at + len);
        let name = &bytes[at..name_end];
        if name != b"xmlns" && !name.starts_with(b"xmlns:") {
            return false;
        }
        let eq = skip_space(name_end);
        if bytes.get(eq) != Some(&b'=') {
            return false;
        }
        let mut value = skip_space(eq + 1);
        if matches!(bytes.get(value), Some(b'"' | b'\'')) {
            value += 1;
        }
        // The scan compares the value trimmed: an alias must follow its leading whitespace.
        let value = text.get(value..).unwrap_or_default().trim_start();
        NAMESPACE_ALIASES
            .iter()
            .any(|(alias, _)| value.starts_with(alias))
    })
}

/// The rewrite of [`alias_namespaces`], for a text that may need it.
fn rewrite_aliases(text: &str, budget: &WorkBudget, repairs: &mut Vec<Repair>) -> Option<String> {
    let mut edits = Edits::default();
    for tag in tags::tags(text, budget) {
        let Tag::Start(tag) = tag else { continue };
        for attr in tag.attrs() {
            if attr.name != "xmlns" && !attr.name.starts_with("xmlns:") {
                continue;
            }
            let value = attr.value.trim();
            let found = NAMESPACE_ALIASES
                .iter()
                .find(|(alias, _)| value == *alias || value.strip_suffix('/') == Some(alias));
            if let Some(&(from, to)) = found {
                edits.replace(attr.value_span, to);
                if !repairs.contains(&Repair::NamespaceAlias { from, to }) {
                    repairs.push(Repair::NamespaceAlias { from, to });
                }
            }
        }
    }
    edits.apply(text)
}

/// Makes an `<rss>` root's version one feed-rs dispatches on: anything else is read as 2.0.
fn fix_rss_version(
    text: &str,
    budget: &WorkBudget,
    format: Format,
    repairs: &mut Vec<Repair>,
) -> Option<String> {
    if format != Format::Rss {
        return None;
    }
    let Some(Tag::Start(root)) = tags::tags(text, budget).find(|tag| matches!(tag, Tag::Start(_)))
    else {
        return None;
    };
    let mut edits = Edits::default();
    match root.attr("version") {
        Some(version) if RSS_VERSIONS.contains(&version.value) => return None,
        Some(version) => {
            repairs.push(Repair::RssVersion {
                from: Some(version.value.to_owned()),
            });
            edits.replace(version.value_span, "2.0");
        }
        None => {
            repairs.push(Repair::RssVersion { from: None });
            let at = root.insert_at();
            edits.replace(at..at, " version=\"2.0\"");
        }
    }
    edits.apply(text)
}

/// Wraps the children of an `<rss>` root that has no `<channel>` in one: feed-rs reads nothing
/// outside it, and RSS 0.9x feeds written without it (items straight under the root, or an
/// empty `<rss>`) are still read by every other reader.
fn wrap_in_channel(
    text: &str,
    budget: &WorkBudget,
    format: Format,
    repairs: &mut Vec<Repair>,
) -> Option<String> {
    if format != Format::Rss {
        return None;
    }
    let (mut depth, mut open, mut close) = (0usize, None, None);
    for tag in tags::tags(text, budget) {
        match tag {
            Tag::Start(tag) => {
                if depth == 0 {
                    open = Some(tag.span.end).filter(|_| !tag.empty);
                } else if depth == 1 && tag.local_name() == "channel" {
                    return None;
                }
                if !tag.empty {
                    depth += 1;
                }
            }
            Tag::End { span, .. } => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    close = Some(span.start);
                    break;
                }
            }
        }
    }
    let (open, close) = (open?, close?);
    let mut edits = Edits::default();
    edits.replace(open..open, "<channel>");
    edits.replace(close..close, "</channel>");
    repairs.push(Repair::Channel);
    edits.apply(text)
}

/// Non-overlapping replacements of byte ranges, applied in one pass.
#[derive(Default)]
struct Edits<'a> {
    edits: Vec<(Range<usize>, &'a str)>,
}

impl<'a> Edits<'a> {
    fn replace(&mut self, range: Range<usize>, with: &'a str) {
        self.edits.push((range, with));
    }

    /// The edited text, or `None` when there were no edits.
    fn apply(mut self, text: &str) -> Option<String> {
        if self.edits.is_empty() {
            return None;
        }
        // Stable sort: an insertion at a position stays before a replacement starting there.
        self.edits.sort_by_key(|(range, _)| range.start);
        let mut out = String::with_capacity(text.len() + 64);
        let mut at = 0;
        for (range, with) in self.edits {
            out.push_str(&text[at..range.start.max(at)]);
            out.push_str(with);
            at = at.max(range.end);
        }
        out.push_str(&text[at..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(text: &str) -> (String, Format, Vec<Repair>) {
        let p = prepare(text, &WorkBudget::unlimited()).unwrap();
        (p.text.into_owned(), p.format, p.repairs)
    }

    #[test]
    fn a_plain_feed_is_borrowed_untouched() {
        let text = "\n<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><item><title>a</title></item></channel></rss>";
        let p = prepare(text, &WorkBudget::unlimited()).unwrap();
        assert!(matches!(p.text, Cow::Borrowed(_)));
        assert_eq!(p.text, text.trim_start());
        assert_eq!(p.format, Format::Rss);
        assert!(p.repairs.is_empty());
    }

    #[test]
    fn rss090_namespace_becomes_rss1() {
        let (text, format, repairs) = prepared(
            r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://my.netscape.com/rdf/simple/0.9/"><item/></rdf:RDF>"#,
        );
        assert_eq!(format, Format::Rdf);
        assert!(
            text.contains(r#"xmlns="http://purl.org/rss/1.0/""#),
            "{text}"
        );
        assert_eq!(
            repairs,
            [Repair::NamespaceAlias {
                from: "http://my.netscape.com/rdf/simple/0.9/",
                to: RSS1_NS
            }]
        );
    }

    #[test]
    fn the_alias_look_says_no_only_where_the_rewrite_would_change_nothing() {
        let mut texts: Vec<String> = Vec::new();
        for (alias, _) in NAMESPACE_ALIASES {
            let cut = &alias[..alias.len() - 1];
            for decl in [
                format!("xmlns=\"{alias}\""),
                format!("xmlns:x = '\u{a0} {alias}/ '"),
                format!("xmlns:x\t=\n{alias}"),
                format!("xmlns:a=\"{cut}\""),
                format!("xmlns=\"x{alias}\""),
                format!("xmlnsx=\"{alias}\""),
                format!("data-xmlns=\"{alias}\""),
                format!("a=\"xmlns\" b=\"{alias}\""),
            ] {
                texts.push(format!("<rss {decl}><channel/></rss>"));
                texts.push(format!("<rss><!-- <a {decl}> --><b {decl}/></rss>"));
                texts.push(format!("<rss {decl}"));
            }
        }
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/corpus/public");
        for entry in std::fs::read_dir(corpus).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        let (mut spared, mut rewritten) = (0, 0);
        for text in &texts {
            let rewrite = rewrite_aliases(text, &WorkBudget::unlimited(), &mut Vec::new());
            rewritten += usize::from(rewrite.is_some());
            if !may_declare_alias(text) {
                spared += 1;
                assert_eq!(rewrite, None, "{text:.200}");
            }
        }
        assert!(
            spared > texts.len() / 2,
            "the look spares few scans: {spared}"
        );
        assert!(rewritten > 2 * NAMESPACE_ALIASES.len(), "{rewritten}");
    }

    #[test]
    fn userland_rss2_namespace_is_aliased_only_in_declarations() {
        let (text, _, _) = prepared(
            r#"<rss version="2.0" xmlns="http://backend.userland.com/rss2"><channel><link>http://backend.userland.com/rss2</link></channel></rss>"#,
        );
        assert_eq!(
            text,
            r#"<rss version="2.0" xmlns="http://purl.org/rss/1.0/"><channel><link>http://backend.userland.com/rss2</link></channel></rss>"#
        );
    }

    #[test]
    fn rss_version_missing_or_unknown_reads_as_2_0() {
        let (text, _, repairs) = prepared("<rss><channel/></rss>");
        assert_eq!(text, "<rss version=\"2.0\"><channel/></rss>");
        assert_eq!(repairs, [Repair::RssVersion { from: None }]);
        let (text, _, _) = prepared("<rss version='0.94'><channel/></rss>");
        assert_eq!(text, "<rss version='2.0'><channel/></rss>");
        let (text, _, _) = prepared("<rss version=\"0.91\"><channel/></rss>");
        assert_eq!(text, "<rss version=\"0.91\"><channel/></rss>");
    }

    #[test]
    fn atom_wrapped_in_xhtml_is_cut_out_with_inherited_namespaces() {
        let text = r#"<?xml version="1.0"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "x.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:media="http://search.yahoo.com/mrss/" xml:base="http://example.com/blog/">
<body><p>hi<br></p>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><feed/></div></content></entry></feed>
<p>after</p></body></html>"#;
        let (out, format, repairs) = prepared(text);
        assert_eq!(format, Format::Atom);
        assert_eq!(
            out,
            r#"<feed xmlns:media="http://search.yahoo.com/mrss/" xml:base="http://example.com/blog/" xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><feed/></div></content></entry></feed>"#
        );
        assert_eq!(
            repairs,
            [Repair::Unwrapped {
                from: "html".into()
            }]
        );
    }

    #[test]
    fn a_feed_element_outside_the_atom_namespace_is_not_unwrapped() {
        let html = "<!DOCTYPE html><html><body><feed>not atom</feed></body></html>";
        assert_eq!(
            prepare(html, &WorkBudget::unlimited()).unwrap_err(),
            Rejection::Html
        );
    }

    #[test]
    fn nested_items_with_content_are_moved_after_their_parent() {
        let text = "<rss version=\"2.0\"><channel>\
            <item><title>a</title><item><title>b</title></item><link>la</link></item>\
            <item><title>c</title><item /><item> </item></item>\
            </channel></rss>";
        let (out, _, repairs) = prepared(text);
        assert_eq!(
            out,
            "<rss version=\"2.0\"><channel>\
            <item><title>a</title><link>la</link></item><item><title>b</title></item>\
            <item><title>c</title><item /><item> </item></item>\
            </channel></rss>"
        );
        assert_eq!(repairs, [Repair::NestedItems { moved: 1 }]);
    }

    #[test]
    fn rejections() {
        assert_eq!(
            prepare(" \n", &WorkBudget::unlimited()).unwrap_err(),
            Rejection::Empty
        );
        assert_eq!(
            prepare(
                "<!DOCTYPE html>\n<meta charset=utf-8><title>x</title>",
                &WorkBudget::unlimited()
            )
            .unwrap_err(),
            Rejection::Html
        );
        assert_eq!(
            prepare("<HTML><body/></HTML>", &WorkBudget::unlimited()).unwrap_err(),
            Rejection::Html
        );
        assert_eq!(
            prepare(
                "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'/>",
                &WorkBudget::unlimited()
            )
            .unwrap_err(),
            Rejection::Sitemap {
                root: "urlset".into()
            }
        );
        assert_eq!(
            prepare("<opml version='2.0'/>", &WorkBudget::unlimited()).unwrap_err(),
            Rejection::OtherXml {
                root: "opml".into()
            }
        );
        assert_eq!(
            prepare("Not Found", &WorkBudget::unlimited()).unwrap_err(),
            Rejection::NotMarkup {
                start: "Not Found".into()
            }
        );
    }

    #[test]
    fn json_is_passed_through() {
        let p = prepare(
            "\u{feff} {\"version\": \"https://jsonfeed.org/version/1.1\"}",
            &WorkBudget::unlimited(),
        )
        .unwrap();
        assert_eq!(p.format, Format::Json);
        assert!(p.text.starts_with('{'));
    }

    /// The work units `prepare` spends on `text` (bytes scanned, tags and attributes read).
    fn work(text: &str) -> u64 {
        let budget = WorkBudget::unlimited();
        let _ = prepare(text, &budget);
        budget.used()
    }

    /// Asserts that doubling the input about doubles the work `prepare` spends on it.
    fn assert_linear(what: &str, small: &str, large: &str) {
        crate::work::assert_linear(what, (small.len(), work(small)), (large.len(), work(large)));
    }

    /// An XHTML page whose `<body>` carries `attr_bytes` of attributes, holding `tags` `<feed/>`
    /// elements outside the Atom namespace (each one's namespace is looked up), then the feed.
    fn wrapped_under_large_attributes(attr_bytes: usize, tags: usize) -> String {
        format!(
            "<html xmlns=\"http://www.w3.org/1999/xhtml\"><body data-x=\"{}\">{}\
             <feed xmlns=\"http://www.w3.org/2005/Atom\"><entry/></feed></body></html>",
            "x".repeat(attr_bytes),
            "<feed/>".repeat(tags)
        )
    }

    #[test]
    fn the_namespace_lookup_reads_each_ancestor_attribute_once() {
        assert_linear(
            "large ancestor attributes",
            &wrapped_under_large_attributes(10_000, 1_000),
            &wrapped_under_large_attributes(20_000, 2_000),
        );
    }

    /// A page declaring `n` prefixes around an Atom feed that has `n` attributes of its own.
    fn wrapped_under_many_declarations(n: usize) -> String {
        let declarations: String = (0..n)
            .map(|i| format!(" xmlns:p{i}=\"http://example.com/{i}\""))
            .collect();
        let attributes: String = (0..n).map(|i| format!(" a{i}=\"{i}\"")).collect();
        format!(
            "<html{declarations}><body><feed xmlns=\"http://www.w3.org/2005/Atom\"{attributes}>\
             <entry/></feed></body></html>"
        )
    }

    #[test]
    fn inherited_declarations_are_collected_in_one_pass() {
        let (out, format, _) = prepared(&wrapped_under_many_declarations(3));
        assert_eq!(format, Format::Atom);
        assert!(
            out.starts_with("<feed xmlns:p0=\"http://example.com/0\" xmlns:p1="),
            "{out}"
        );
        assert_linear(
            "many inherited declarations",
            &wrapped_under_many_declarations(1_000),
            &wrapped_under_many_declarations(2_000),
        );
    }

    #[test]
    fn a_spent_budget_ends_the_scan_early() {
        let text = wrapped_under_large_attributes(10_000, 1_000);
        let budget = WorkBudget::new(5_000, tokio_util::sync::CancellationToken::new());
        let _ = prepare(&text, &budget);
        assert!(budget.check().is_err());
        // Every pass stopped at its next step (one tag at most) once the budget was spent.
        assert!(budget.used() < work(&text) / 2, "{}", budget.used());
    }
}
