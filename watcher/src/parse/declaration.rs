//! declaration.rs: makes the XML declarations of a body already transcoded to UTF-8 safe to hand
//! to feed-rs.
//!
//! feed-rs switches quick-xml's decoder to the encoding of every XML declaration it meets
//! (`Event::Decl`), and quick-xml panics when that happens after the first 64 bytes it reads
//! ("set_encoding() called after prefix buffer was drained"). A declaration that is long, comes
//! after leading whitespace, or appears a second time inside the document (pasted feeds do
//! this) reaches that panic on hostile input. The text is UTF-8 by now, so:
//!
//! - the initial declaration (after optional whitespace and a BOM) is kept when the only
//!   `encoding` it names is UTF-8, and otherwise replaced by `<?xml version="1.0"
//!   encoding="UTF-8"?>`;
//! - any later `<?xml` declaration outside CDATA sections and comments becomes a processing
//!   instruction named `xml-` (feed-rs ignores those), which leaves items' text untouched.
//!
//! Both passes are linear in the body; a body without a second `<?xml` pays one substring search.

use std::borrow::Cow;

use memchr::memmem::Finder;

use super::needles;

const CANONICAL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The body with its XML declarations made harmless, as the module header describes (borrowing
/// when there is nothing to change).
pub(super) fn normalize(text: Cow<'_, str>) -> Cow<'_, str> {
    let start = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_whitespace() || c == '\u{feff}'))
        .map_or(text.len(), |(at, _)| at);
    let initial = declaration_at(&text, start).map(|end| (start, end));
    let rest_from = initial.map_or(start, |(_, end)| end);
    let later = later_declarations(&text, rest_from);
    let replace_initial = initial.is_some_and(|(from, to)| !names_only_utf8(&text[from..to]));
    if later.is_empty() && !replace_initial {
        return text;
    }
    let mut out = String::with_capacity(text.len() + later.len() + CANONICAL.len());
    let mut copied = 0;
    if let Some((from, to)) = initial.filter(|_| replace_initial) {
        out.push_str(&text[..from]);
        out.push_str(CANONICAL);
        copied = to;
    }
    for at in later {
        out.push_str(&text[copied..at]);
        out.push('-');
        copied = at;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// When `text[at..]` opens an XML declaration (`<?xml` then whitespace or `?`, as quick-xml
/// tells a declaration from other processing instructions), where it ends (after its `?>`).
fn declaration_at(text: &str, at: usize) -> Option<usize> {
    let rest = text.get(at..)?;
    if !opens_declaration(rest) {
        return None;
    }
    rest.find("?>").map(|end| at + end + 2)
}

/// Whether `rest` starts with `<?xml` then whitespace or `?`.
fn opens_declaration(rest: &str) -> bool {
    rest.strip_prefix("<?xml").is_some_and(|after| {
        matches!(
            after.bytes().next(),
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'?')
        )
    })
}

/// Whether every `encoding` the declaration `decl` could name is UTF-8: `encoding` appears once,
/// as `encoding = "UTF-8"` (any case), or not at all.
fn names_only_utf8(decl: &str) -> bool {
    let mut found = decl.match_indices("encoding");
    let Some((at, _)) = found.next() else {
        return true;
    };
    if found.next().is_some() {
        return false;
    }
    let value = decl[at + "encoding".len()..].trim_start();
    let Some(value) = value.strip_prefix('=') else {
        return false;
    };
    let value = value.trim_start();
    let Some(quote) = value.chars().next().filter(|q| matches!(q, '"' | '\'')) else {
        return false;
    };
    let value = &value[1..];
    value
        .find(quote)
        .is_some_and(|end| value[..end].eq_ignore_ascii_case("utf-8"))
}

/// Positions just after `<?xml` of every declaration from `from` on that quick-xml would report.
///
/// The scan reads markup as quick-xml 0.42 does, so that a `<?xml` inside a CDATA section, a
/// comment or an attribute value stays as it is: `<![` opens a CDATA section that ends at the
/// first `]]>`, `<!-` a comment ending at `-->`, `<?` an instruction ending at `?>`, `</` an end
/// tag ending at `>`, any other `<` a tag ending at the first `>` outside quotes. Where the scan
/// could end a section later than quick-xml, it ends it earlier instead: marking a declaration
/// quick-xml would not report is harmless, missing one is not. A DOCTYPE's internal subset has
/// rules of its own, so from a `<!D` on every `<?xml` is marked.
fn later_declarations(text: &str, from: usize) -> Vec<usize> {
    if !may_declare_later(text, from) {
        return Vec::new();
    }
    scan_declarations(text, from)
}

/// The markup scan of [`later_declarations`], for a text that may hold one.
fn scan_declarations(text: &str, from: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut at = from;
    while let Some(offset) = memchr::memchr(b'<', &bytes[at..]) {
        at += offset;
        let rest = &text[at..];
        let end = match bytes.get(at + 1) {
            Some(b'!') => match bytes.get(at + 2) {
                Some(b'[') => end_of(rest, 3, &needles::CDATA_END),
                Some(b'-') => end_of(rest, 4, &needles::COMMENT_END),
                Some(b'D' | b'd') => {
                    mark_every_declaration(text, at, &mut found);
                    break;
                }
                _ => Some(2),
            },
            Some(b'?') => {
                if opens_declaration(rest) {
                    found.push(at + 5);
                }
                end_of(rest, 2, &needles::INSTRUCTION_END)
            }
            Some(b'/') => memchr::memchr(b'>', &rest.as_bytes()[2..]).map(|at| 2 + at + 1),
            _ => end_of_tag(rest),
        };
        match end {
            Some(end) => at += end,
            None => break,
        }
    }
    found
}

/// Where `rest` continues after the first `close` at or past `from` (`None`: never closed).
fn end_of(rest: &str, from: usize, close: &Finder<'_>) -> Option<usize> {
    // `close` is ASCII, so no match starts inside a character: search from the next boundary.
    let mut from = from.min(rest.len());
    while !rest.is_char_boundary(from) {
        from += 1;
    }
    needles::end_of(rest.as_bytes(), from, close)
}

/// Where `rest` (a tag from its `<`) continues after its first `>` outside quotes.
fn end_of_tag(rest: &str) -> Option<usize> {
    let mut quote = None;
    for (at, byte) in rest.bytes().enumerate().skip(1) {
        match (quote, byte) {
            (None, b'>') => return Some(at + 1),
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(open), _) if open == byte => quote = None,
            _ => {}
        }
    }
    None
}

/// Whether some `<?xml` from `from` on opens a declaration (see [`opens_declaration`]): when
/// none does, [`later_declarations`] has nothing to find, since it marks only those. This spares
/// the markup scan to feeds whose only later `<?xml` is a `<?xml-stylesheet` instruction.
fn may_declare_later(text: &str, from: usize) -> bool {
    declaration_starts(text, from).next().is_some()
}

/// Every position from `from` on where a `<?xml` opening a declaration starts.
fn declaration_starts(text: &str, from: usize) -> impl Iterator<Item = usize> + '_ {
    needles::XML_DECLARATION
        .find_iter(&text.as_bytes()[from..])
        .map(move |at| from + at)
        .filter(|&at| opens_declaration(&text[at..]))
}

/// Marks every `<?xml` declaration opening from `from` on, whatever surrounds it.
fn mark_every_declaration(text: &str, from: usize, found: &mut Vec<usize>) {
    found.extend(declaration_starts(text, from).map(|at| at + 5));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &'static str) -> Cow<'static, str> {
        normalize(Cow::Borrowed(text))
    }

    #[test]
    fn a_utf8_or_encodingless_declaration_is_borrowed() {
        for text in [
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss/>",
            "\u{feff}\n <?xml version='1.0' encoding = 'UTF-8' standalone='yes'?><rss/>",
            "<?xml version=\"1.0\"?><rss/>",
            "<rss><![CDATA[<?xml version=\"1.0\" encoding=\"latin1\"?>]]><!-- <?xml ?> --></rss>",
            "<?xml-stylesheet href=\"x\"?><rss/>",
        ] {
            assert!(matches!(run(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn another_initial_encoding_is_replaced_whole() {
        assert_eq!(
            run("\n<?xml version=\"1.0\" encoding='windows-1251'?><rss/>"),
            "\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss/>"
        );
        // Two `encoding`s: which one quick-xml reads is its business; neither survives.
        assert_eq!(
            run("<?xml version=\"1.0\" xencoding=\"utf-8\" encoding=\"latin1\"?><a/>"),
            format!("{CANONICAL}<a/>")
        );
    }

    #[test]
    fn later_declarations_become_other_instructions_outside_cdata_and_comments() {
        assert_eq!(
            run(
                "<?xml version=\"1.0\"?><feed><?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\
                 <![CDATA[<?xml ?>]]><!--<?xml ?>--><?xml?></feed>"
            ),
            "<?xml version=\"1.0\"?><feed><?xml- version=\"1.0\" encoding=\"ISO-8859-1\"?>\
             <![CDATA[<?xml ?>]]><!--<?xml ?>--><?xml-?></feed>"
        );
        assert_eq!(run("<a/><?xml\tencoding='x'"), "<a/><?xml-\tencoding='x'");
    }

    #[test]
    fn the_scan_reads_markup_as_quick_xml_does() {
        // An attribute value holding `<![CDATA[` opens nothing: the declaration after the tag
        // is quick-xml's to report (the shape of the second input the fuzzer found).
        assert_eq!(
            run("<a t=\"<![CDATA[\"><?xml version='1.0' encoding='latin1'?>]]></a>"),
            "<a t=\"<![CDATA[\"><?xml- version='1.0' encoding='latin1'?>]]></a>"
        );
        // Any `<![` is a CDATA section to quick-xml; a PI hides what it holds up to its `?>`.
        assert_eq!(
            run("<a><![x <?xml ?> ]]><?pi <![CDATA[ ?><?xml ?></a>"),
            "<a><![x <?xml ?> ]]><?pi <![CDATA[ ?><?xml- ?></a>"
        );
        // Inside and after a DOCTYPE every declaration is marked.
        assert_eq!(
            run("<!DOCTYPE r [<!ENTITY e \"<![CDATA[\">]><r><?xml ?><![CDATA[<?xml ?>]]></r>"),
            "<!DOCTYPE r [<!ENTITY e \"<![CDATA[\">]><r><?xml- ?><![CDATA[<?xml- ?>]]></r>"
        );
    }

    #[test]
    fn the_scan_is_skipped_only_where_it_would_find_nothing() {
        // Every push of the scan is guarded by `opens_declaration`, so where no `<?xml` opens a
        // declaration the scan's answer is empty: check that on tricky texts and the corpus.
        let mut texts: Vec<String> = [
            "<rss><?xml-stylesheet href=\"x\"?><channel/></rss>",
            "<!DOCTYPE r [<?xml-x?>]><r><?xmlns ?><?xml\u{a0}?></r>",
            "<a><?xml?></a>",
            "<a><![CDATA[<?xml ?>]]></a>",
            "<a t=\"<?xml \"/><?XML ?>",
            "<?xml",
        ]
        .map(String::from)
        .into();
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/corpus/public");
        for entry in std::fs::read_dir(corpus).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        let mut skipped = 0;
        for text in &texts {
            for from in [0, text.len() / 3] {
                let from = (from..=text.len())
                    .find(|&at| text.is_char_boundary(at))
                    .unwrap();
                if !may_declare_later(text, from) {
                    skipped += 1;
                    assert_eq!(
                        scan_declarations(text, from),
                        Vec::<usize>::new(),
                        "{text:.80}"
                    );
                }
                assert_eq!(
                    later_declarations(text, from),
                    scan_declarations(text, from)
                );
            }
        }
        assert!(skipped > texts.len(), "the quick look never spared a scan");
    }

    #[test]
    fn a_multibyte_character_right_after_the_opening_is_no_slicing_error() {
        // Found by the `feed` fuzz target: `<!-ÿ` made the comment scan slice inside `ÿ`.
        assert_eq!(run("<a><!-ÿ <?xml ?>"), "<a><!-ÿ <?xml ?>");
        assert_eq!(run("<a><![ÿ<?xml ?>"), "<a><![ÿ<?xml ?>");
        assert_eq!(run("<a><?ÿ?><?xml ?>"), "<a><?ÿ?><?xml- ?>");
    }

    #[test]
    fn unterminated_sections_end_the_scan() {
        assert!(matches!(run("<a><![CDATA[ <?xml ?> "), Cow::Borrowed(_)));
        assert!(matches!(run("<a><!-- <?xml ?>"), Cow::Borrowed(_)));
    }
}
