//! causes.rs: how an error and its causes read on one line (logs, status, stderr). A leaf: every
//! module may use it without depending on the top-level error.

/// `e` and its causes on one line, joined by `: ` (each error says only its own part; its cause
/// is its `source`). Causes quote network text (a root element name, a server's error body), so
/// the line is made printable (see [`crate::printable`]): it never carries a raw control
/// character, and it is cut at [`crate::printable::LINE`] characters.
pub fn one_line(e: &dyn std::error::Error) -> String {
    crate::printable::printable_within(&joined(e), crate::printable::LINE)
}

/// `e` and its causes joined by `: `, as they are: for errors about local text only (a config
/// file's syntax error keeps its lines and caret), each line made printable.
pub fn local_lines(e: &dyn std::error::Error) -> String {
    joined(e)
        .lines()
        .map(|l| crate::printable::printable_within(l, crate::printable::LINE))
        .collect::<Vec<_>>()
        .join("\n")
}

fn joined(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_joined_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(one_line(&e), "outer: inner");
    }

    #[test]
    fn network_text_in_a_cause_is_escaped() {
        let e = Outer(std::io::Error::other(
            "root `\u{1b}]0;pwned\u{7}\u{202e}`\nfake line",
        ));
        let line = one_line(&e);
        assert!(crate::printable::is_printable(&line), "{line}");
        assert!(line.contains("\\u{1b}]0;pwned"), "{line}");
    }
}
