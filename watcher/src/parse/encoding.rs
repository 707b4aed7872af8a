//! encoding.rs: decides which character encoding a feed body is in and transcodes it to UTF-8.
//!
//! Evidence is weighed strongest first:
//! 1. a byte order mark;
//! 2. UTF-16 without a BOM, recognised by how `<?` is laid out in bytes (XML 1.0, appendix F);
//! 3. the `charset` parameter of the HTTP `Content-Type`;
//! 4. the `encoding` of the XML declaration;
//! 5. nothing usable declared: UTF-8 when the bytes are valid UTF-8, else windows-1252 (undeclared
//!    Latin-1; windows-1252 is how browsers read ISO-8859-1, and a superset of its printable part).
//!
//! A declared encoding is used only if the bytes decode in it cleanly, with one exception drawn
//! from real feeds: valid UTF-8 containing non-ASCII text beats a declared *single-byte* encoding
//! (the classic "prolog says ISO-8859-1, the CMS writes UTF-8"; genuine Latin-1 text is almost
//! never valid UTF-8). When no declaration decodes cleanly and the bytes are not UTF-8 either, the
//! first declared encoding is used anyway, replacing the bad bytes.
//!
//! The text keeps its XML declaration; `declaration.rs` makes it say `UTF-8` just before feed-rs
//! reads the text.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{Encoding, REPLACEMENT, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// A body transcoded to UTF-8, and how its encoding was chosen.
#[derive(Debug)]
pub(super) struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static Encoding,
    pub source: Source,
    /// Some bytes were not valid in `encoding` and were replaced with U+FFFD.
    pub lossy: bool,
}

/// Which evidence decided the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Bom,
    Utf16Layout,
    Http,
    Prolog,
    /// The bytes are valid UTF-8 and nothing usable said otherwise (or only a single-byte
    /// declaration did).
    Utf8Content,
    /// Not UTF-8 and nothing usable declared: read as Latin-1 (windows-1252).
    Latin1Fallback,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Bom => "byte order mark",
            Source::Utf16Layout => "UTF-16 byte layout",
            Source::Http => "HTTP charset",
            Source::Prolog => "XML declaration",
            Source::Utf8Content => "valid UTF-8 content",
            Source::Latin1Fallback => "undeclared, not UTF-8: Latin-1 fallback",
        })
    }
}

/// Transcodes `body` to UTF-8 (borrowing it when it already is), choosing the encoding as the
/// module header describes.
pub(super) fn decode<'a>(body: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(body) {
        return decode_lossy(encoding, &body[bom_len..], Source::Bom);
    }
    if let Some(encoding) = utf16_layout(body) {
        return decode_lossy(encoding, body, Source::Utf16Layout);
    }

    // The same verdict as `std::str::from_utf8`, found faster (SIMD).
    let utf8 = simdutf8::basic::from_utf8(body).ok();
    let as_utf8 = |text: &'a str, source| Decoded {
        text: Cow::Borrowed(text),
        encoding: UTF_8,
        source,
        lossy: false,
    };
    let declared = [
        (content_type.and_then(http_charset), Source::Http),
        (declared_encoding(body), Source::Prolog),
    ];
    let mut failed = None;
    for (encoding, source) in declared {
        let Some(encoding) = encoding else { continue };
        if encoding == UTF_8 {
            match utf8 {
                Some(text) => return as_utf8(text, source),
                None => continue,
            }
        }
        if let Some(text) = utf8.filter(|text| encoding.is_single_byte() && !text.is_ascii()) {
            return as_utf8(text, Source::Utf8Content);
        }
        match encoding.decode_without_bom_handling_and_without_replacement(body) {
            Some(text) => {
                return Decoded {
                    text,
                    encoding,
                    source,
                    lossy: false,
                };
            }
            None => {
                failed.get_or_insert((encoding, source));
            }
        }
    }

    if let Some(text) = utf8 {
        return as_utf8(text, Source::Utf8Content);
    }
    match failed {
        Some((encoding, source)) => decode_lossy(encoding, body, source),
        None => decode_lossy(WINDOWS_1252, body, Source::Latin1Fallback),
    }
}

fn decode_lossy<'a>(encoding: &'static Encoding, bytes: &'a [u8], source: Source) -> Decoded<'a> {
    let (text, lossy) = encoding.decode_without_bom_handling(bytes);
    Decoded {
        text,
        encoding,
        source,
        lossy,
    }
}

/// UTF-16 without a BOM: the document starts with `<?` (or `<` and a name) as 16-bit units.
fn utf16_layout(body: &[u8]) -> Option<&'static Encoding> {
    match body {
        [b'<', 0, x, 0, ..] if x.is_ascii_graphic() => Some(UTF_16LE),
        [0, b'<', 0, x, ..] if x.is_ascii_graphic() => Some(UTF_16BE),
        _ => None,
    }
}

/// An encoding that can be taken at its word when declared on ASCII-compatible bytes: UTF-16 can't
/// be (a BOM or the byte layout would have said so; WHATWG reads such labels as UTF-8), and the
/// "replacement" encoding would turn the whole document into one U+FFFD.
fn usable(encoding: &'static Encoding) -> Option<&'static Encoding> {
    if encoding == UTF_16LE || encoding == UTF_16BE {
        Some(UTF_8)
    } else if encoding == REPLACEMENT {
        None
    } else {
        Some(encoding)
    }
}

/// The encoding named by the `charset` parameter of a `Content-Type` value.
pub(super) fn http_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .and_then(|(_, value)| Encoding::for_label(value.trim().trim_matches('"').as_bytes()))
        .and_then(usable)
}

/// The encoding named by the XML declaration, read from the raw bytes.
fn declared_encoding(body: &[u8]) -> Option<&'static Encoding> {
    let (range, _) = declaration_encoding_value(body)?;
    Encoding::for_label(&body[range]).and_then(usable)
}

/// Where the value of the XML declaration's `encoding` lies, and the declaration's extent.
/// Works on bytes so it can run before decoding; the declaration itself is ASCII.
fn declaration_encoding_value(bytes: &[u8]) -> Option<(std::ops::Range<usize>, usize)> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let decl = bytes[start..].strip_prefix(b"<?xml")?;
    if !decl.first()?.is_ascii_whitespace() {
        return None;
    }
    let decl_start = start + 5;
    let decl_len = decl.windows(2).take(512).position(|w| w == b"?>")?;
    let decl = &decl[..decl_len];
    let mut at = decl.windows(8).position(|w| w == b"encoding")? + 8;
    let skip_space = |mut i: usize| {
        while decl.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    at = skip_space(at);
    if decl.get(at) != Some(&b'=') {
        return None;
    }
    at = skip_space(at + 1);
    let quote = *decl.get(at).filter(|q| matches!(q, b'"' | b'\''))?;
    let len = decl[at + 1..].iter().position(|&b| b == quote)?;
    let value = decl_start + at + 1..decl_start + at + 1 + len;
    Some((value, decl_start + decl_len + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATIN1_PROLOG: &[u8] =
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss>caf\xe9</rss>";

    fn check(body: &[u8], content_type: Option<&str>) -> (String, &'static str, Source) {
        let decoded = decode(body, content_type);
        (
            decoded.text.into_owned(),
            decoded.encoding.name(),
            decoded.source,
        )
    }

    #[test]
    fn prolog_encoding_is_honoured() {
        let (text, encoding, source) = check(LATIN1_PROLOG, None);
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss>café</rss>"
        );
        assert_eq!((encoding, source), ("windows-1252", Source::Prolog));
    }

    #[test]
    fn http_charset_beats_the_prolog() {
        // 0xE9 is `é` in Latin-1 and `й` in windows-1251: the HTTP header decides.
        let (text, encoding, source) = check(LATIN1_PROLOG, Some("text/xml; charset=windows-1251"));
        assert!(text.contains("cafй"), "{text}");
        assert_eq!((encoding, source), ("windows-1251", Source::Http));
    }

    #[test]
    fn bom_beats_http_charset_and_prolog() {
        let mut body = b"\xef\xbb\xbf".to_vec();
        body.extend_from_slice(
            "<?xml version='1.0' encoding='ISO-8859-1'?><rss>café</rss>".as_bytes(),
        );
        let (text, encoding, source) = check(&body, Some("text/xml; charset=windows-1251"));
        assert_eq!(
            text,
            "<?xml version='1.0' encoding='ISO-8859-1'?><rss>café</rss>"
        );
        assert_eq!((encoding, source), ("UTF-8", Source::Bom));
    }

    #[test]
    fn utf16_with_bom_and_without() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss>ü</rss>";
        let le: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = xml.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let expected = xml.to_owned();

        let with_bom = [&[0xff, 0xfe][..], &le].concat();
        assert_eq!(
            check(&with_bom, None),
            (expected.clone(), "UTF-16LE", Source::Bom)
        );
        assert_eq!(
            check(&le, Some("text/xml; charset=utf-8")),
            (expected.clone(), "UTF-16LE", Source::Utf16Layout)
        );
        assert_eq!(
            check(&be, None),
            (expected, "UTF-16BE", Source::Utf16Layout)
        );
    }

    #[test]
    fn a_declaration_the_bytes_contradict_is_skipped() {
        // HTTP says UTF-8, but 0xE9 alone is not UTF-8: the prolog's Latin-1 is used.
        let (text, encoding, source) =
            check(LATIN1_PROLOG, Some("application/rss+xml; charset=UTF-8"));
        assert!(text.contains("café"));
        assert_eq!((encoding, source), ("windows-1252", Source::Prolog));
    }

    #[test]
    fn undeclared_latin1_falls_back_to_windows_1252() {
        let (text, encoding, source) = check(b"<rss><title>caf\xe9 \x93q\x94</title></rss>", None);
        assert_eq!(text, "<rss><title>café “q”</title></rss>");
        assert_eq!((encoding, source), ("windows-1252", Source::Latin1Fallback));
    }

    #[test]
    fn undeclared_utf8_is_borrowed() {
        let body = "<rss><title>Šolc</title></rss>".as_bytes();
        let decoded = decode(body, Some("text/xml"));
        assert!(matches!(decoded.text, Cow::Borrowed(_)));
        assert_eq!(decoded.source, Source::Utf8Content);
    }

    #[test]
    fn utf8_bytes_beat_a_single_byte_declaration() {
        let body = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><feed>Café</feed>";
        let (text, encoding, source) = check(body.as_bytes(), None);
        assert_eq!(text, body);
        assert_eq!((encoding, source), ("UTF-8", Source::Utf8Content));
    }

    #[test]
    fn a_multibyte_declaration_that_fails_is_still_used_lossily() {
        // `中文` in GBK, then a truncated lead byte.
        let body = b"<?xml version=\"1.0\" encoding=\"gb2312\"?><rss>\xd6\xd0\xce\xc4\xd6</rss>";
        let decoded = decode(body, None);
        assert_eq!(decoded.encoding.name(), "GBK");
        assert_eq!(decoded.source, Source::Prolog);
        assert!(decoded.lossy);
        assert!(decoded.text.contains("中文"), "{}", decoded.text);
    }

    #[test]
    fn the_utf8_check_agrees_with_std() {
        // Valid and invalid sequences at every position of a SIMD block and across its edges.
        let pieces: [&[u8]; 9] = [
            b"a",
            "é".as_bytes(),
            "中".as_bytes(),
            "😀".as_bytes(),
            b"\xe9",
            b"\xed\xa0\x80",
            b"\xf0\x9f\x98",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
        ];
        for piece in pieces {
            for at in 0..70 {
                let mut body = vec![b'x'; 70];
                body.splice(at..at, piece.iter().copied());
                assert_eq!(
                    simdutf8::basic::from_utf8(&body).ok(),
                    std::str::from_utf8(&body).ok(),
                    "{body:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_and_utf16_labels_on_ascii_bytes() {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-16\"?><rss/>";
        let (_, encoding, source) = check(body, Some("text/xml; charset=x-no-such-thing"));
        assert_eq!((encoding, source), ("UTF-8", Source::Prolog));
    }

    #[test]
    fn http_charset_parameter_parsing() {
        let name = |ct| http_charset(ct).map(|e| e.name());
        assert_eq!(name("text/xml; charset=\"ISO-8859-7\""), Some("ISO-8859-7"));
        assert_eq!(name("text/xml;format=x; CHARSET = koi8-r "), Some("KOI8-R"));
        assert_eq!(name("text/xml"), None);
        assert_eq!(name("charset=utf-8"), None, "a media type, not a parameter");
    }
}
