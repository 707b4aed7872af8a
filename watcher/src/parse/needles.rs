//! needles.rs: the markup delimiters the pre-pass scans search for (`<!`, `-->`, `]]>`...), each a
//! memmem finder built once per process rather than once per search (the scans search again after
//! every comment, CDATA section and instruction).

use std::sync::LazyLock;

use memchr::memmem::Finder;

type Needle = LazyLock<Finder<'static>>;

pub(super) static MARKUP_DECLARATION: Needle = LazyLock::new(|| Finder::new("<!"));
pub(super) static INSTRUCTION: Needle = LazyLock::new(|| Finder::new("<?"));
pub(super) static INSTRUCTION_END: Needle = LazyLock::new(|| Finder::new("?>"));
pub(super) static COMMENT_END: Needle = LazyLock::new(|| Finder::new("-->"));
pub(super) static CDATA_END: Needle = LazyLock::new(|| Finder::new("]]>"));
pub(super) static XML_DECLARATION: Needle = LazyLock::new(|| Finder::new("<?xml"));

/// Where `needle` ends in `haystack` from `from` on, as an offset into `haystack`.
pub(super) fn end_of(haystack: &[u8], from: usize, needle: &Finder<'_>) -> Option<usize> {
    let at = needle.find(haystack.get(from..)?)?;
    Some(from + at + needle.needle().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_is_where_the_needle_ends() {
        let haystack = b"a<!-- x --><![CDATA[ ]] ]]><?pi ?> -->";
        assert_eq!(end_of(haystack, 0, &COMMENT_END), Some(11));
        assert_eq!(end_of(haystack, 11, &COMMENT_END), Some(haystack.len()));
        assert_eq!(end_of(haystack, 0, &CDATA_END), Some(27));
        assert_eq!(end_of(haystack, 28, &CDATA_END), None);
        assert_eq!(end_of(haystack, haystack.len() + 1, &CDATA_END), None);
    }
}
