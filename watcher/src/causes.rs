//! causes.rs: how an error and its causes read on one line (logs, status, stderr). A leaf: every
//! module may use it without depending on the top-level error.

/// `e` and its causes on one line, joined by `: ` (each error says only its own part; its cause
/// is its `source`).
pub fn one_line(e: &dyn std::error::Error) -> String {
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
}
