//! tags.rs: a small, tolerant scanner over the tags of a UTF-8 XML document.
//!
//! It yields start and end tags with their byte spans and skips everything else: text, comments,
//! CDATA sections, processing instructions and the DOCTYPE (internal subset included). It never
//! fails: where the markup stops making sense (a tag that never closes) it simply ends. The repairs
//! in `repair.rs` use it to find the root element, namespace declarations and misplaced elements
//! without building a tree; feed-rs still does the real parsing afterwards.
//!
//! Both the tag scan and the attribute reader charge the poll's work budget for the bytes they
//! read (and one unit per tag or attribute), and end early once it is spent: see `crate::work`.

use std::ops::Range;

use memchr::memmem::Finder;

use super::needles;
use crate::work::WorkBudget;

/// A start or end tag, with the byte span of the whole tag (`<` to `>` inclusive).
#[derive(Debug, Clone)]
pub(super) enum Tag<'a> {
    Start(StartTag<'a>),
    End { name: &'a str, span: Range<usize> },
}

/// A start tag (`<name attr="value">`) or an empty-element tag (`<name/>`).
#[derive(Debug, Clone)]
pub(super) struct StartTag<'a> {
    /// The qualified name as written, e.g. `rdf:RDF`.
    pub name: &'a str,
    pub span: Range<usize>,
    /// `<name/>`: the element has no content and no end tag.
    pub empty: bool,
    /// The attribute text between the name and `>` (or `/>`), and where it starts in the document.
    attrs: &'a str,
    attrs_at: usize,
    budget: &'a WorkBudget,
}

/// One attribute of a start tag; `value` is raw (entities are not expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attr<'a> {
    pub name: &'a str,
    pub value: &'a str,
    /// Where the value (without its quotes) lies in the document.
    pub value_span: Range<usize>,
}

/// The part of a qualified name after its prefix: `rdf:RDF` → `RDF`.
pub(super) fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The prefix of a qualified name, if any: `rdf:RDF` → `Some("rdf")`.
pub(super) fn prefix(name: &str) -> Option<&str> {
    name.split_once(':').map(|(prefix, _)| prefix)
}

/// Scans `text` from its start, charging `budget` as it goes.
pub(super) fn tags<'a>(text: &'a str, budget: &'a WorkBudget) -> Tags<'a> {
    Tags {
        text,
        pos: 0,
        budget,
    }
}

impl<'a> StartTag<'a> {
    pub(super) fn local_name(&self) -> &'a str {
        local_name(self.name)
    }

    pub(super) fn prefix(&self) -> Option<&'a str> {
        prefix(self.name)
    }

    pub(super) fn attrs(&self) -> Attrs<'a> {
        Attrs {
            text: self.attrs,
            at: self.attrs_at,
            pos: 0,
            budget: self.budget,
        }
    }

    pub(super) fn attr(&self, name: &str) -> Option<Attr<'a>> {
        self.attrs().find(|attr| attr.name == name)
    }

    /// Where a new attribute can be inserted: right after the element name.
    pub(super) fn insert_at(&self) -> usize {
        self.attrs_at
    }

    /// The namespace bound to `prefix` (`None`: the default namespace) by this tag itself.
    pub(super) fn declares(&self, prefix: Option<&str>) -> Option<&'a str> {
        self.attrs()
            .find(|attr| match (prefix, attr.name.strip_prefix("xmlns")) {
                (None, Some("")) => true,
                (Some(prefix), Some(rest)) => rest.strip_prefix(':') == Some(prefix),
                _ => false,
            })
            .map(|attr| attr.value.trim())
    }
}

/// Iterator over the tags of a document; see [`tags`].
pub(super) struct Tags<'a> {
    text: &'a str,
    pos: usize,
    budget: &'a WorkBudget,
}

impl<'a> Tags<'a> {
    /// Moves past `marker` (searched from `from`), or to the end when it never comes.
    fn skip_past(&mut self, from: usize, marker: &Finder<'_>) {
        self.pos = needles::end_of(self.text.as_bytes(), from, marker).unwrap_or(self.text.len());
    }

    /// Moves past a `<!DOCTYPE ...>`, including an internal subset in brackets and quoted strings.
    fn skip_declaration(&mut self, from: usize) {
        let mut quote = None;
        let mut brackets = 0usize;
        for (i, b) in self.text.as_bytes()[from..].iter().enumerate() {
            match (quote, b) {
                (Some(q), _) if q == *b => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(*b),
                (None, b'[') => brackets += 1,
                (None, b']') => brackets = brackets.saturating_sub(1),
                (None, b'>') if brackets == 0 => {
                    self.pos = from + i + 1;
                    return;
                }
                _ => {}
            }
        }
        self.pos = self.text.len();
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'/' || b == b'>'
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let from = self.pos;
        let tag = self.scan()?;
        // The bytes this step read, plus one for the tag; a spent budget ends the scan.
        if self.budget.charge((self.pos - from) as u64 + 1) {
            Some(tag)
        } else {
            self.pos = self.text.len();
            None
        }
    }
}

impl<'a> Tags<'a> {
    /// The next tag, unmetered.
    fn scan(&mut self) -> Option<Tag<'a>> {
        let text = self.text;
        let bytes = text.as_bytes();
        loop {
            let lt = self.pos + memchr::memchr(b'<', bytes.get(self.pos..)?)?;
            let rest = &text[lt..];
            if rest.starts_with("<!--") {
                self.skip_past(lt + 4, &needles::COMMENT_END);
            } else if rest.starts_with("<![CDATA[") {
                self.skip_past(lt + 9, &needles::CDATA_END);
            } else if rest.starts_with("<?") {
                self.skip_past(lt + 2, &needles::INSTRUCTION_END);
            } else if rest.starts_with("<!") {
                self.skip_declaration(lt + 2);
            } else if let Some(after) = rest.strip_prefix("</") {
                let gt = lt + 2 + memchr::memchr(b'>', after.as_bytes())?;
                self.pos = gt + 1;
                return Some(Tag::End {
                    name: text[lt + 2..gt].trim(),
                    span: lt..gt + 1,
                });
            } else if bytes.get(lt + 1).copied().is_some_and(is_name_start) {
                let name_end = lt
                    + 1
                    + bytes[lt + 1..]
                        .iter()
                        .position(|&b| is_name_end(b))
                        .unwrap_or(bytes.len() - lt - 1);
                let gt = name_end + find_tag_end(&bytes[name_end..])?;
                let empty = gt > name_end && bytes[gt - 1] == b'/';
                let attrs_end = if empty { gt - 1 } else { gt };
                self.pos = gt + 1;
                return Some(Tag::Start(StartTag {
                    name: &text[lt + 1..name_end],
                    span: lt..gt + 1,
                    empty,
                    attrs: &text[name_end..attrs_end],
                    attrs_at: name_end,
                    budget: self.budget,
                }));
            } else {
                // A `<` that starts no markup (e.g. `a < b` in sloppy HTML): it is text.
                self.pos = lt + 1;
            }
        }
    }
}

/// Offset of the `>` closing a tag, skipping any `>` inside quoted attribute values.
pub(super) fn find_tag_end(bytes: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if q == b => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Iterator over the attributes of a start tag; see [`StartTag::attrs`].
pub(super) struct Attrs<'a> {
    text: &'a str,
    at: usize,
    pos: usize,
    budget: &'a WorkBudget,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        // `read` may leave `pos` one past the end: never charge a negative step (found by fuzzing).
        let from = self.pos.min(self.text.len());
        let attr = self.read();
        // The attribute bytes this step read, plus one for the attribute.
        if self
            .budget
            .charge((self.pos.min(self.text.len()) - from) as u64 + 1)
        {
            attr
        } else {
            self.pos = self.text.len();
            None
        }
    }
}

impl<'a> Attrs<'a> {
    /// The next attribute, unmetered.
    fn read(&mut self) -> Option<Attr<'a>> {
        let bytes = self.text.as_bytes();
        let skip_space = |mut i: usize| {
            while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            i
        };
        loop {
            let start = skip_space(self.pos);
            if start >= bytes.len() {
                self.pos = bytes.len();
                return None;
            }
            let name_len = bytes[start..]
                .iter()
                .position(|&b| b == b'=' || b.is_ascii_whitespace())
                .unwrap_or(bytes.len() - start);
            let name = &self.text[start..start + name_len];
            let eq = skip_space(start + name_len);
            if bytes.get(eq) != Some(&b'=') {
                // An attribute without a value (HTML's `<option selected>`): not interesting.
                self.pos = (start + name_len).max(start + 1);
                continue;
            }
            let value_start = skip_space(eq + 1);
            let (value, value_end, next) = match bytes.get(value_start) {
                Some(&q @ (b'"' | b'\'')) => {
                    let len = bytes[value_start + 1..].iter().position(|&b| b == q);
                    let end = len.map_or(bytes.len(), |len| value_start + 1 + len);
                    (value_start + 1, end, end + 1)
                }
                _ => {
                    let len = bytes[value_start..]
                        .iter()
                        .position(u8::is_ascii_whitespace)
                        .unwrap_or(bytes.len() - value_start);
                    (value_start, value_start + len, value_start + len)
                }
            };
            self.pos = next;
            return Some(Attr {
                name,
                value: &self.text[value..value_end],
                value_span: self.at + value..self.at + value_end,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNMETERED: std::sync::LazyLock<WorkBudget> =
        std::sync::LazyLock::new(WorkBudget::unlimited);

    fn names(text: &str) -> Vec<String> {
        tags(text, &UNMETERED)
            .map(|tag| match tag {
                Tag::Start(start) if start.empty => format!("<{}/>", start.name),
                Tag::Start(start) => format!("<{}>", start.name),
                Tag::End { name, .. } => format!("</{name}>"),
            })
            .collect()
    }

    #[test]
    fn skips_prolog_comments_cdata_and_doctype() {
        let text = r#"<?xml version="1.0"?>
<!DOCTYPE rss [ <!ENTITY x "<fake>"> ]>
<!-- <rss> in a comment -->
<rss version="2.0"><a><![CDATA[<b>not a tag</b>]]></a><c/></rss>"#;
        assert_eq!(names(text), ["<rss>", "<a>", "</a>", "<c/>", "</rss>"]);
    }

    #[test]
    fn quoted_gt_does_not_end_a_tag() {
        let text = r#"<a title="x > y" href='1>2'>t</a>"#;
        let Some(Tag::Start(start)) = tags(text, &UNMETERED).next() else {
            panic!("no start tag")
        };
        assert_eq!(start.span, 0..28);
        assert_eq!(start.attr("title").map(|a| a.value), Some("x > y"));
        assert_eq!(start.attr("href").map(|a| a.value), Some("1>2"));
    }

    #[test]
    fn stray_lt_is_text_and_truncated_tag_ends_the_scan() {
        assert_eq!(names("<p>a < b</p><q"), ["<p>", "</p>"]);
    }

    #[test]
    fn attribute_spans_point_into_the_document() {
        let text = r#"<rdf:RDF xmlns="http://a/" xmlns:rdf = "http://r/" checked>"#;
        let Some(Tag::Start(start)) = tags(text, &UNMETERED).next() else {
            panic!("no start tag")
        };
        assert_eq!(start.local_name(), "RDF");
        assert_eq!(start.prefix(), Some("rdf"));
        assert_eq!(start.declares(None), Some("http://a/"));
        assert_eq!(start.declares(Some("rdf")), Some("http://r/"));
        let attrs: Vec<_> = start.attrs().collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(&text[attrs[1].value_span.clone()], "http://r/");
    }

    #[test]
    fn empty_element_and_insert_position() {
        let text = "<item />";
        let Some(Tag::Start(start)) = tags(text, &UNMETERED).next() else {
            panic!("no start tag")
        };
        assert!(start.empty);
        assert_eq!(start.insert_at(), 5);
        assert_eq!(start.attrs().count(), 0);
    }
}
