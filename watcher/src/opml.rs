//! opml.rs: reading and writing OPML subscription lists, the format feed readers import and
//! export. Pure text in, text out; choosing which authors a feed belongs to, and editing the
//! config, are the CLI's.
//!
//! Reading flattens nested outlines: every outline with an `xmlUrl` is a feed, and its category
//! is the nearest enclosing outline without one (a folder). Writing makes one folder per author.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One feed listed in an OPML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    /// The outline's `title`, else its `text`; `None` when blank or just the feed URL again.
    pub title: Option<String>,
    /// The feed URL (`xmlUrl`), trimmed, as written.
    pub xml_url: String,
    /// The site (`htmlUrl`), when given.
    pub html_url: Option<String>,
    /// The title of the nearest enclosing folder outline, if any.
    pub category: Option<String>,
}

/// Why a file could not be read as OPML.
#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    #[error(
        "not OPML: the root element is `<{root}>`, not `<opml>`; export the subscriptions from \
         the feed reader as OPML (often under Settings → Import/Export)"
    )]
    NotOpml { root: String },
    #[error(
        "not OPML: the file has no XML element; export the subscriptions from the feed reader as \
         OPML"
    )]
    Empty,
    #[error(
        "malformed OPML at byte {position}; the file is not well-formed XML: an XML validator \
         will show where"
    )]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
}

/// Reads the feeds of an OPML document, in document order, each `xmlUrl` once (the first
/// occurrence wins when a feed sits in several folders). Outlines without `xmlUrl` are folders;
/// attribute names are matched case-insensitively (`xmlurl` is common).
pub fn parse_opml(text: &str) -> Result<Vec<OpmlFeed>, OpmlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    // Hand-edited exports write `Tom & Jerry`; that `&` is text, not a broken reference.
    reader.config_mut().allow_dangling_amp = true;
    // Folders enclosing the current position; `None` for an outline that names no folder.
    let mut folders: Vec<Option<String>> = Vec::new();
    let mut feeds: Vec<OpmlFeed> = Vec::new();
    let mut seen_root = false;

    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(source) => {
                return Err(OpmlError::Xml {
                    position: reader.error_position(),
                    source,
                });
            }
        };
        let (start, is_empty) = match event {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(end) => {
                if end.local_name().as_ref().eq_ignore_ascii_case(b"outline") {
                    folders.pop();
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if !seen_root {
            seen_root = true;
            if !start.local_name().as_ref().eq_ignore_ascii_case(b"opml") {
                return Err(OpmlError::NotOpml {
                    root: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                });
            }
            continue;
        }
        if !start.local_name().as_ref().eq_ignore_ascii_case(b"outline") {
            continue;
        }

        let outline = Outline::read(&start);
        let folder = match outline.xml_url {
            Some(xml_url) => {
                if !feeds.iter().any(|feed| feed.xml_url == xml_url) {
                    let category = folders.iter().rev().find_map(Clone::clone);
                    feeds.push(OpmlFeed {
                        title: outline.title.filter(|title| *title != xml_url),
                        xml_url,
                        html_url: outline.html_url,
                        category,
                    });
                }
                None
            }
            None => outline.title,
        };
        if !is_empty {
            folders.push(folder);
        }
    }

    if !seen_root {
        return Err(OpmlError::Empty);
    }
    Ok(feeds)
}

/// The attributes of one `<outline>` that matter here, trimmed, blanks as `None`.
struct Outline {
    title: Option<String>,
    xml_url: Option<String>,
    html_url: Option<String>,
}

impl Outline {
    fn read(start: &BytesStart<'_>) -> Outline {
        let (mut title, mut text, mut xml_url, mut html_url) = (None, None, None, None);
        for attribute in start.html_attributes().flatten() {
            let value = unescape(&String::from_utf8_lossy(&attribute.value));
            let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
            let key = attribute.key.local_name();
            let key = key.as_ref();
            if key.eq_ignore_ascii_case(b"title") {
                title = value;
            } else if key.eq_ignore_ascii_case(b"text") {
                text = value;
            } else if key.eq_ignore_ascii_case(b"xmlurl") {
                xml_url = value;
            } else if key.eq_ignore_ascii_case(b"htmlurl") {
                html_url = value;
            }
        }
        Outline {
            title: title.or(text),
            xml_url,
            html_url,
        }
    }
}

/// Resolves the predefined XML entities and character references. Real exports carry HTML
/// entities (`&eacute;`) and bare `&`s that are not XML: those are kept as written rather than
/// losing the outline.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest[1..]
            .find(';')
            .filter(|&end| end <= 32)
            .map(|end| &rest[1..=end]);
        let resolved = reference.and_then(|name| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (reference, resolved) {
            (Some(name), Some(ch)) => {
                out.push(ch);
                rest = &rest[name.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An author and the feed URLs to export under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlAuthor<'a> {
    pub name: &'a str,
    pub feeds: Vec<&'a str>,
}

/// Writes an OPML 2.0 document: one folder outline per author holding its feeds (authors without
/// feeds are left out: an empty folder means nothing to a feed reader). Text is XML-escaped, so
/// [`parse_opml`] reads back exactly the authors' feeds, with each author's name as category.
pub fn write_opml(title: &str, authors: &[OpmlAuthor<'_>]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n");
    out.push_str("  <head>\n");
    out.push_str(&format!("    <title>{}</title>\n", escape(title)));
    out.push_str("  </head>\n  <body>\n");
    for author in authors.iter().filter(|author| !author.feeds.is_empty()) {
        let name = escape(author.name);
        out.push_str(&format!("    <outline text=\"{name}\" title=\"{name}\">\n"));
        for feed in &author.feeds {
            let feed = escape(feed);
            out.push_str(&format!(
                "      <outline type=\"rss\" text=\"{feed}\" xmlUrl=\"{feed}\"/>\n"
            ));
        }
        out.push_str("    </outline>\n");
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

/// Escapes text for an XML attribute value or element content. Whitespace that attribute
/// normalisation would turn into spaces is written as character references; the control
/// characters XML 1.0 forbids are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if c.is_control() && (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(title: Option<&str>, xml_url: &str, category: Option<&str>) -> OpmlFeed {
        OpmlFeed {
            title: title.map(str::to_owned),
            xml_url: xml_url.to_owned(),
            html_url: None,
            category: category.map(str::to_owned),
        }
    }

    #[test]
    fn nested_folders_flatten_to_the_nearest_folder() {
        let opml = r#"<?xml version="1.0"?>
<opml version="1.0"><head><title>Subs</title></head><body>
  <outline text="Top level" xmlUrl="https://a.example/feed"/>
  <outline text="Tech">
    <outline text="Rust" title="Rust">
      <outline text="This Week" xmlurl="https://b.example/rss" htmlUrl="https://b.example/"/>
    </outline>
    <outline text="Direct" XMLURL=" https://c.example/atom.xml "/>
    <outline text="">
      <outline text="Untitled folder child" xmlUrl="https://d.example/feed"/>
    </outline>
  </outline>
  <outline text="Duplicate in another folder">
    <outline text="Again" xmlUrl="https://b.example/rss"/>
  </outline>
  <outline text="No URL, no children"/>
  <outline type="link" text="A link" url="https://e.example/"/>
</body></opml>"#;
        let mut b = feed(Some("This Week"), "https://b.example/rss", Some("Rust"));
        b.html_url = Some("https://b.example/".to_owned());
        assert_eq!(
            parse_opml(opml).unwrap(),
            [
                feed(Some("Top level"), "https://a.example/feed", None),
                b,
                feed(Some("Direct"), "https://c.example/atom.xml", Some("Tech")),
                feed(
                    Some("Untitled folder child"),
                    "https://d.example/feed",
                    Some("Tech")
                ),
            ]
        );
    }

    #[test]
    fn tolerates_a_bare_ampersand_in_text() {
        let opml = "<opml><head><title>Tom & Jerry</title></head><body>\
                    <outline text=\"T & J\" xmlUrl=\"https://t.example/feed\"/></body></opml>";
        assert_eq!(
            parse_opml(opml).unwrap(),
            [feed(Some("T & J"), "https://t.example/feed", None)]
        );
    }

    #[test]
    fn tolerates_entities_that_are_not_xml() {
        let opml = r#"<opml><body>
            <outline text="Caf&eacute; &amp; Co &#x23;" xmlUrl="https://x.example/?a=1&b=2"/>
        </body></opml>"#;
        assert_eq!(
            parse_opml(opml).unwrap(),
            [feed(
                Some("Caf&eacute; & Co #"),
                "https://x.example/?a=1&b=2",
                None
            )]
        );
    }

    #[test]
    fn errors_say_what_failed_and_hint() {
        let err = |text: &str| parse_opml(text).unwrap_err().to_string();
        insta::assert_snapshot!(err("<!DOCTYPE html><html><body></body></html>"), @"not OPML: the root element is `<html>`, not `<opml>`; export the subscriptions from the feed reader as OPML (often under Settings → Import/Export)");
        insta::assert_snapshot!(err("<rss version=\"2.0\"/>"), @"not OPML: the root element is `<rss>`, not `<opml>`; export the subscriptions from the feed reader as OPML (often under Settings → Import/Export)");
        insta::assert_snapshot!(err(""), @"not OPML: the file has no XML element; export the subscriptions from the feed reader as OPML");
        insta::assert_snapshot!(err("just some text"), @"not OPML: the file has no XML element; export the subscriptions from the feed reader as OPML");
        insta::assert_snapshot!(err("<opml><body><outline text=\"x\"></body></opml>"), @"malformed OPML at byte 30; the file is not well-formed XML: an XML validator will show where");
    }

    #[test]
    fn escapes_and_drops_empty_authors() {
        let authors = [
            OpmlAuthor {
                name: "Tom & \"Jerry\" <co>",
                feeds: vec!["https://x.example/feed?a=1&b=2"],
            },
            OpmlAuthor {
                name: "Nobody",
                feeds: vec![],
            },
        ];
        let text = write_opml("It's\nmine", &authors);
        assert!(text.contains("<title>It&apos;s&#10;mine</title>"), "{text}");
        assert!(!text.contains("Nobody"));
        assert_eq!(
            parse_opml(&text).unwrap(),
            [feed(
                None,
                "https://x.example/feed?a=1&b=2",
                Some("Tom & \"Jerry\" <co>")
            )]
        );
    }
}
