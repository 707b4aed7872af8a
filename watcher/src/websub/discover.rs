//! websub/discover.rs: which WebSub hub a feed names, and its `rel=self` URL (the topic the hub
//! knows it by): HTTP `Link` headers first, then the feed's own `<link rel="hub">` /
//! `<link rel="self">` (Atom `link`, RSS `atom:link`) before its first item, or a JSON Feed's
//! `hubs` (type `WebSub`) and `feed_url`. Pure, bounded: at most [`MAX_LINK_HEADERS`] headers,
//! the first [`HEAD_BYTES`] of an XML body and [`MAX_JSON_HUBS`] JSON hubs are looked at (a JSON
//! body is already capped by `[fetch] max_body_bytes`), and only http(s) URLs count.

use reqwest::header::{HeaderMap, LINK};
use url::Url;

/// The `Link` headers looked at.
pub const MAX_LINK_HEADERS: usize = 16;

/// The part of a feed body searched for its hub links (they come before the items).
pub const HEAD_BYTES: usize = 64 * 1024;

/// The entries of a JSON Feed's `hubs` looked at.
pub const MAX_JSON_HUBS: usize = 16;

/// A feed's hub and topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushLinks {
    pub hub: Url,
    pub topic: Url,
}

/// The hub and topic `headers` and `body` name, relative URLs resolved against `base` (the URL
/// the feed was fetched from). Each of the two is taken from the headers when they name it,
/// else from the body; `None` unless both are found.
pub fn push_links(headers: &HeaderMap, body: &[u8], base: &Url) -> Option<PushLinks> {
    let (mut hub, mut topic) = from_headers(headers, base);
    if hub.is_none() || topic.is_none() {
        let (body_hub, body_topic) = if is_json(body) {
            from_json_feed(body, base)
        } else {
            from_feed_head(body, base)
        };
        hub = hub.or(body_hub);
        topic = topic.or(body_topic);
    }
    Some(PushLinks {
        hub: hub?,
        topic: topic?,
    })
}

/// `rel="hub"` and `rel="self"` of the `Link` headers (RFC 8288).
fn from_headers(headers: &HeaderMap, base: &Url) -> (Option<Url>, Option<Url>) {
    let (mut hub, mut topic) = (None, None);
    for value in headers.get_all(LINK).iter().take(MAX_LINK_HEADERS) {
        let Ok(value) = value.to_str() else { continue };
        for (target, rels) in link_values(value) {
            let Some(url) = http_url(base, target) else {
                continue;
            };
            for rel in rels.split_ascii_whitespace() {
                if rel.eq_ignore_ascii_case("hub") && hub.is_none() {
                    hub = Some(url.clone());
                } else if rel.eq_ignore_ascii_case("self") && topic.is_none() {
                    topic = Some(url.clone());
                }
            }
        }
    }
    (hub, topic)
}

/// The `<target>; rel=...` pairs of one `Link` header value.
fn link_values(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = rest[open + 1..open + close].trim();
        rest = &rest[open + close + 1..];
        // The parameters run to the next link-value (a comma outside quotes).
        let mut end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &rest[..end];
        rest = &rest[end..];
        let rel = params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("rel")
                .then(|| v.trim().trim_matches('"'))
        });
        if let Some(rel) = rel {
            out.push((target, rel));
        }
    }
    out
}

/// `<link rel="hub|self" href>` elements of the feed before its first item (`item`/`entry`).
fn from_feed_head(body: &[u8], base: &Url) -> (Option<Url>, Option<Url>) {
    use quick_xml::events::Event;
    let head = &body[..body.len().min(HEAD_BYTES)];
    let mut reader = quick_xml::Reader::from_reader(head);
    let (mut hub, mut topic) = (None, None);
    let mut buf = Vec::new();
    loop {
        let e = match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) => e,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {
                buf.clear();
                continue;
            }
        };
        let name = e.local_name();
        if matches!(name.as_ref(), b"item" | b"entry") {
            break;
        }
        if name.as_ref() == b"link" {
            let (mut rel, mut href) = (None, None);
            for attr in e.attributes().flatten().take(16) {
                let Ok(v) = attr.unescape_value() else {
                    continue;
                };
                match attr.key.local_name().as_ref() {
                    b"rel" => rel = Some(v.into_owned()),
                    b"href" => href = Some(v.into_owned()),
                    _ => {}
                }
            }
            if let (Some(rel), Some(url)) = (rel, href.and_then(|h| http_url(base, &h))) {
                for rel in rel.split_ascii_whitespace() {
                    if rel.eq_ignore_ascii_case("hub") && hub.is_none() {
                        hub = Some(url.clone());
                    } else if rel.eq_ignore_ascii_case("self") && topic.is_none() {
                        topic = Some(url.clone());
                    }
                }
            }
        }
        if hub.is_some() && topic.is_some() {
            break;
        }
        buf.clear();
    }
    (hub, topic)
}

/// Whether `body` looks like JSON (a JSON Feed): its first byte past a BOM and blanks is `{`.
fn is_json(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A JSON Feed 1.1's first `hubs` entry of type `WebSub`, and its `feed_url` as the topic. The
/// rest of the document is skipped, not kept.
fn from_json_feed(body: &[u8], base: &Url) -> (Option<Url>, Option<Url>) {
    #[derive(serde::Deserialize)]
    struct Head {
        feed_url: Option<String>,
        #[serde(default)]
        hubs: Vec<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Hub {
        #[serde(rename = "type")]
        kind: String,
        url: String,
    }
    #[derive(serde::Deserialize)]
    struct Hubs {
        #[serde(default)]
        hubs: Vec<serde_json::Value>,
    }
    // Two light passes: the first checks the shape without keeping anything, the second keeps
    // only `hubs` (already known to be a short list).
    let Ok(head) = serde_json::from_slice::<Head>(body) else {
        return (None, None);
    };
    let topic = head.feed_url.and_then(|u| http_url(base, &u));
    if head.hubs.is_empty() || head.hubs.len() > MAX_JSON_HUBS {
        return (None, topic);
    }
    let hub = serde_json::from_slice::<Hubs>(body)
        .ok()
        .into_iter()
        .flat_map(|h| h.hubs)
        .filter_map(|v| serde_json::from_value::<Hub>(v).ok())
        .find(|h| h.kind.eq_ignore_ascii_case("websub"))
        .and_then(|h| http_url(base, &h.url));
    (hub, topic)
}

fn http_url(base: &Url, target: &str) -> Option<Url> {
    let url = base.join(target.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn base() -> Url {
        Url::parse("https://blog.example/feed").unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn link_headers_name_hub_and_self() {
        let h = headers(&[r#"<https://hub.example/>; rel="hub", </feed?x=1,2>; rel="self""#]);
        let links = push_links(&h, b"", &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://hub.example/");
        assert_eq!(links.topic.as_str(), "https://blog.example/feed?x=1,2");
    }

    #[test]
    fn separate_headers_and_rel_lists_count() {
        let h = headers(&[
            "<https://hub.example/a>; rel=hub",
            r#"<https://blog.example/self>; title="a, b"; rel="alternate self""#,
        ]);
        let links = push_links(&h, b"", &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://hub.example/a");
        assert_eq!(links.topic.as_str(), "https://blog.example/self");
    }

    #[test]
    fn headers_come_before_the_body() {
        let h = headers(&[r#"<https://hub.example/h>; rel="hub""#]);
        let body = br#"<rss><channel><atom:link xmlns:atom="http://www.w3.org/2005/Atom" rel="hub" href="https://other.example/"/><atom:link rel="self" href="https://blog.example/rss"/></channel></rss>"#;
        let links = push_links(&h, body, &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://hub.example/h");
        assert_eq!(links.topic.as_str(), "https://blog.example/rss");
    }

    #[test]
    fn atom_links_before_the_first_entry() {
        let body = br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><link rel="self" href="/atom"/><link rel="hub" href="https://pubsubhubbub.appspot.com/"/><entry><link rel="hub" href="https://late.example/"/></entry></feed>"#;
        let links = push_links(&HeaderMap::new(), body, &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://pubsubhubbub.appspot.com/");
        assert_eq!(links.topic.as_str(), "https://blog.example/atom");
        let late = br#"<feed><link rel="self" href="/atom"/><entry><link rel="hub" href="https://late.example/"/></entry></feed>"#;
        assert_eq!(push_links(&HeaderMap::new(), late, &base()), None);
    }

    #[test]
    fn a_json_feed_names_its_websub_hub_and_feed_url() {
        let body = br#" {"version": "https://jsonfeed.org/version/1.1", "title": "t",
            "items": [{"id": "1", "url": "https://blog.example/a"}],
            "feed_url": "https://blog.example/feed.json",
            "hubs": [{"type": "rssCloud", "url": "https://cloud.example/"},
                     {"type": "WebSub", "url": "https://hub.example/"}]}"#;
        let links = push_links(&HeaderMap::new(), body, &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://hub.example/");
        assert_eq!(links.topic.as_str(), "https://blog.example/feed.json");
        // Headers still come first; a hub of another type or no feed_url is no push.
        let h = headers(&[r#"<https://hub.example/h>; rel="hub""#]);
        let links = push_links(&h, body, &base()).unwrap();
        assert_eq!(links.hub.as_str(), "https://hub.example/h");
        let cloud =
            br#"{"feed_url": "https://b/f", "hubs": [{"type": "rssCloud", "url": "https://c/"}]}"#;
        assert_eq!(push_links(&HeaderMap::new(), cloud, &base()), None);
        let no_self = br#"{"hubs": [{"type": "WebSub", "url": "https://hub.example/"}]}"#;
        assert_eq!(push_links(&HeaderMap::new(), no_self, &base()), None);
        let broken =
            br#"{"feed_url": "https://b/f", "hubs": [{"type": "WebSub", "url": "ftp://x/"}]"#;
        assert_eq!(push_links(&HeaderMap::new(), broken, &base()), None);
    }

    #[test]
    fn only_http_urls_and_both_links_count() {
        let h = headers(&[r#"<javascript:alert(1)>; rel="hub", <https://b/>; rel="self""#]);
        assert_eq!(push_links(&h, b"", &base()), None);
        let h = headers(&[r#"<https://hub/>; rel="hub""#]);
        assert_eq!(push_links(&h, b"not xml at all <<<", &base()), None);
    }
}
