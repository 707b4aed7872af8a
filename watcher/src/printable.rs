//! printable.rs: the one rule for showing network text (titles, root element names, server error
//! bodies, URLs and messages a peer sent) on a terminal, in logs or in a stored field meant for
//! printing: control characters (C0, DEL, C1, so escape sequences) and bidi overrides are shown
//! escaped (`\u{1b}`, `\n`, `\u{202e}`), and the text is cut with an ellipsis. A leaf: every module
//! may use it. The per-character rule is the trigger client's (`trigger_client::push_escaped`), so
//! both binaries escape alike.

use trigger_client::reorders;

/// How many characters a field (a title, a URL, a root element name) keeps.
pub const FIELD: usize = 300;

/// How many characters an error line keeps (it joins several causes, each possibly quoting
/// network text).
pub const LINE: usize = 2000;

/// `text` made safe to print, cut at [`FIELD`] characters.
pub fn printable(text: &str) -> String {
    printable_within(text, FIELD)
}

/// `text` made safe to print, cut at `max` characters (an ellipsis then marks the cut).
pub fn printable_within(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        trigger_client::push_escaped(&mut out, c);
    }
    out
}

/// Whether `text` would print as is (no character [`printable`] escapes).
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() || reorders(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(printable("x\u{9b}31m\u{7f}"), "x\\u{9b}31m\\u{7f}");
        assert_eq!(
            printable("\u{202e}txt.exe\u{2066}"),
            "\\u{202e}txt.exe\\u{2066}"
        );
        assert_eq!(printable("café — 日本 ✓"), "café — 日本 ✓");
        assert!(is_printable(&printable("\u{1b}\u{202e}\r\t")));
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(printable(&"x".repeat(400)).chars().count(), FIELD + 1);
        assert!(printable(&"x".repeat(400)).ends_with('…'));
        assert_eq!(printable_within("abcdef", 3), "abc…");
        assert_eq!(printable_within("abc", 3), "abc");
    }
}
