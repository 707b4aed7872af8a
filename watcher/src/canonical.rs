//! canonical.rs: the generic URL canonicalization every link gets: lowercase scheme and host, no
//! default port, no fragment, no tracking parameters (built-in and configured). The platform
//! rules (`platform`) build on it. Pure functions, no I/O.

use url::Url;

/// Query parameters that are always tracking noise.
const TRACKING_PARAMS: &[&str] = &["fbclid", "gclid", "mc_cid", "mc_eid"];

/// Which query parameters to strip from links.
#[derive(Debug, Clone, Default)]
pub struct Canonicalizer {
    extra: Vec<String>,
    by_host: Vec<(String, Vec<String>)>,
}

impl Canonicalizer {
    pub fn new(
        extra: &[String],
        by_host: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Canonicalizer {
        Canonicalizer {
            extra: extra.iter().map(|s| s.to_ascii_lowercase()).collect(),
            by_host: by_host
                .iter()
                .map(|(h, p)| {
                    (
                        h.trim_start_matches('.').to_ascii_lowercase(),
                        p.iter().map(|s| s.to_ascii_lowercase()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Lowercase scheme and host, no default port, no fragment, no tracking parameters.
    /// Idempotent: `canonical(canonical(u)) == canonical(u)`.
    pub fn canonical(&self, url: &Url) -> Url {
        // The url crate already lowercases scheme and host and drops default ports.
        let mut url = url.clone();
        url.set_fragment(None);
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        keep_params(&mut url, |k| !self.is_tracking(&host, k));
        url
    }

    /// Whether the query parameter `key` is tracking noise on `host`: `utm_*`, the built-in
    /// ones, or a configured one.
    pub(crate) fn is_tracking(&self, host: &str, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        key.starts_with("utm_")
            || TRACKING_PARAMS.contains(&key.as_str())
            || self.extra.contains(&key)
            || self.by_host.iter().any(|(h, params)| {
                (host == h || host.ends_with(&format!(".{h}"))) && params.contains(&key)
            })
    }
}

/// Keeps the query parameters of `url` whose name `keep` accepts (no query when none is left).
pub(crate) fn keep_params(url: &mut Url, keep: impl Fn(&str) -> bool) {
    if url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon() -> Canonicalizer {
        Canonicalizer::default()
    }

    #[test]
    fn canonicalization_strips_tracking_and_is_idempotent() {
        let c = canon();
        let cases = [
            (
                "HTTPS://Example.COM:443/p/a?utm_source=x&id=3&fbclid=1#top",
                "https://example.com/p/a?id=3",
            ),
            (
                "http://example.com:80/a?utm_medium=rss",
                "http://example.com/a",
            ),
            (
                "https://example.com/a?r=1ttoeh&ref=x",
                "https://example.com/a?r=1ttoeh&ref=x",
            ),
            (
                "https://example.com/a?gclid=1&mc_cid=2&mc_eid=3",
                "https://example.com/a",
            ),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
        ];
        for (input, want) in cases {
            let once = c.canonical(&Url::parse(input).unwrap());
            assert_eq!(once.as_str(), want, "{input}");
            assert_eq!(c.canonical(&once), once, "idempotent for {input}");
        }
    }

    #[test]
    fn configured_params_apply_globally_or_per_host() {
        let mut by_host = std::collections::BTreeMap::new();
        by_host.insert("substack.com".to_string(), vec!["r".to_string()]);
        let c = Canonicalizer::new(&["source".into()], &by_host);
        let strip = |u: &str| c.canonical(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            strip("https://decodingml.substack.com/p/x?r=1ttoeh&source=rss"),
            "https://decodingml.substack.com/p/x"
        );
        assert_eq!(
            strip("https://other.com/p/x?r=1"),
            "https://other.com/p/x?r=1"
        );
    }
}
