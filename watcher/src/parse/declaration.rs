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

/// Positions just after `<?xml` of every declaration from `from` on that lies outside CDATA
/// sections and comments (where quick-xml would report it).
fn later_declarations(text: &str, from: usize) -> Vec<usize> {
    let mut found = Vec::new();
    if !text[from..].contains("<?xml") {
        return found;
    }
    let mut at = from;
    while let Some(offset) = text[at..].find('<') {
        at += offset;
        let rest = &text[at..];
        let skip_past = |close: &str, open: usize| {
            rest[open..]
                .find(close)
                .map_or(text.len(), |end| at + open + end + close.len())
        };
        if rest.starts_with("<![CDATA[") {
            at = skip_past("]]>", 9);
        } else if rest.starts_with("<!--") {
            at = skip_past("-->", 4);
        } else if opens_declaration(rest) {
            found.push(at + 5);
            at += 5;
        } else {
            at += 1;
        }
    }
    found
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
    fn unterminated_sections_end_the_scan() {
        assert!(matches!(run("<a><![CDATA[ <?xml ?> "), Cow::Borrowed(_)));
        assert!(matches!(run("<a><!-- <?xml ?>"), Cow::Borrowed(_)));
    }
}
