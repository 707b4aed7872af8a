//! needles.rs: substring search for the markup delimiters the pre-pass looks for (`<!`, `-->`,
//! `]]>`...), each with a memmem finder built once per process rather than once per search (the
//! scans search again after every comment, CDATA section and instruction).

use std::sync::LazyLock;

use memchr::memmem::{self, Finder};

/// The delimiters that have a prebuilt finder.
const DELIMITERS: [&str; 6] = ["<!", "<?", "-->", "]]>", "?>", ">"];

static FINDERS: LazyLock<[Finder<'static>; DELIMITERS.len()]> =
    LazyLock::new(|| DELIMITERS.map(Finder::new));

/// Where `needle` first occurs in `haystack`: what `memmem::find` answers, with the finder built
/// once when `needle` is one of [`DELIMITERS`].
pub(super) fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    match DELIMITERS.iter().position(|d| *d == needle) {
        Some(at) => FINDERS[at].find(haystack),
        None => memmem::find(haystack, needle.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_and_one_off_finders_agree() {
        let haystack = b"a<!-- x --><![CDATA[ ]] ]]><?pi ?><?xml ?> -- ]>";
        for needle in DELIMITERS.iter().chain(&["CDATA", "zz", ""]) {
            for from in 0..haystack.len() {
                let rest = &haystack[from..];
                assert_eq!(find(rest, needle), memmem::find(rest, needle.as_bytes()));
            }
        }
    }
}
