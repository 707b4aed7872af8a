//! platform.rs: the platform link rules, one table ([`RULES`]): for a blogging platform, the
//! hosts and the feed marker (the feed's `<generator>`) that select it, the query parameters its
//! links carry for tracking, and how one article is told apart across its URLs (its identity
//! key). Pure functions, no I/O; [`explain`] says which rule decided a link (`watcher check
//! --explain-link`).
//!
//! A link gets two things: its **canonical link** (what a generated config lists: the link as
//! the feed gave it, host and path unchanged, tracking parameters removed) and its **identity
//! key** (what the alias rule of `diff` compares within one author): the canonical link itself,
//! or what the platform's rule derives. Adding a platform is a line in [`RULES`] plus a fixture.

use url::Url;

use crate::canonical::Canonicalizer;

/// One platform's rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    /// Hosts whose links the rule applies to: each itself and its subdomains.
    pub hosts: &'static [&'static str],
    /// The feed marker: a feed whose `<generator>` starts with this (ASCII case ignored) has its
    /// links read by the rule, whatever their host (a publication's custom domain).
    pub generator: &'static str,
    /// Query parameters stripped from its links (`name*`: every name with that prefix).
    pub strip: &'static [&'static str],
    /// Query parameters never stripped from its links, even when configured.
    pub keep: &'static [&'static str],
    pub key: KeyRule,
}

/// How a platform's identity key is derived from a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// `medium:<post id>`: the trailing 10–12 hex digits of the path's last segment
    /// (`<slug>-<id>`) or `/p/<id>`, also read from a `medium.com/p/<id>` GUID.
    MediumPostId,
    /// A path that is exactly `/p/<slug>`, with the item's title: see [`post_key`].
    SubstackPost,
}

/// The platform rules. Hosts match before feed markers; a link that no rule selects keeps the
/// generic canonicalization (`identity::Canonicalizer`) and, when its path is exactly
/// `/p/<slug>`, the cross-host post key (see [`post_key`]).
pub const RULES: &[Rule] = &[
    Rule {
        name: "medium",
        hosts: &["medium.com"],
        generator: "medium",
        strip: &[
            "source",
            "gi",
            "postPublishedType",
            "_branch_match_id",
            "_branch_referrer",
        ],
        keep: &["sk"],
        key: KeyRule::MediumPostId,
    },
    Rule {
        name: "substack",
        hosts: &["substack.com"],
        generator: "substack",
        strip: &[
            "r",
            "triedRedirect",
            "s",
            "showWelcome",
            "isFreemail",
            "publication_id",
            "post_id",
            "utm_*",
        ],
        keep: &[],
        key: KeyRule::SubstackPost,
    },
];

/// Why a rule applies to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// The link's host is one of the rule's.
    Host(&'static str),
    /// The feed's `<generator>` is the rule's marker.
    Generator,
}

/// Which rule decided a link's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// No platform rule: the generic canonicalization; the key is the canonical link.
    Generic,
    /// A platform rule stripped the link's parameters; `derived` when it also gave the key (else
    /// the key is the canonical link: no post id, no `/p/<slug>`, or no title).
    Platform {
        rule: &'static Rule,
        by: Selected,
        derived: bool,
    },
    /// No platform rule, but the path is exactly `/p/<slug>` and the item has a title: the
    /// cross-host post key.
    CrossHostPost,
}

/// A link as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What a generated config lists.
    pub canonical: Url,
    /// What the alias rule compares within one author.
    pub key: String,
    /// The canonical link of the generic rule alone (what earlier versions indexed).
    pub generic: Url,
    pub decided: Decided,
}

/// What is known about an item besides its link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The feed's `<generator>`.
    pub generator: Option<&'a str>,
    pub title: Option<&'a str>,
    pub guid: Option<&'a str>,
}

/// Reads `url` with the platform rules (and `canon`'s generic and configured parameters).
pub fn link(canon: &Canonicalizer, url: &Url, cx: Context<'_>) -> Link {
    let generic = canon.canonical(url);
    let Some((rule, by)) = select(&generic, cx.generator) else {
        let (key, decided) = match post_key(&generic, cx.title) {
            Some(key) => (key, Decided::CrossHostPost),
            None => (generic.to_string(), Decided::Generic),
        };
        return Link {
            canonical: generic.clone(),
            key,
            generic,
            decided,
        };
    };
    let host = generic.host_str().unwrap_or("").to_owned();
    let mut canonical = url.clone();
    canonical.set_fragment(None);
    crate::canonical::keep_params(&mut canonical, |name| {
        let lower = name.to_ascii_lowercase();
        rule.keep.iter().any(|k| k.eq_ignore_ascii_case(&lower))
            || !(canon.is_tracking(&host, name) || strips(rule, &lower))
    });
    let derived = match rule.key {
        KeyRule::MediumPostId => medium_post_id(&canonical)
            .or_else(|| {
                (cx.guid.and_then(|g| Url::parse(g).ok()))
                    .filter(|g| host_matches(g.host_str().unwrap_or(""), "medium.com"))
                    .and_then(|g| medium_post_id(&g))
            })
            .map(|id| format!("medium:{id}")),
        KeyRule::SubstackPost => post_key(&canonical, cx.title),
    };
    Link {
        key: derived.clone().unwrap_or_else(|| canonical.to_string()),
        canonical,
        generic,
        decided: Decided::Platform {
            rule,
            by,
            derived: derived.is_some(),
        },
    }
}

/// The rule for a link: by its host, else by the feed's marker.
fn select(url: &Url, generator: Option<&str>) -> Option<(&'static Rule, Selected)> {
    let host = url.host_str().unwrap_or("");
    let by_host = RULES.iter().find_map(|rule| {
        (rule.hosts.iter())
            .find(|h| host_matches(host, h))
            .map(|h| (rule, Selected::Host(h)))
    });
    by_host.or_else(|| {
        let generator = generator?.trim().to_ascii_lowercase();
        RULES
            .iter()
            .find(|rule| generator.starts_with(rule.generator))
            .map(|rule| (rule, Selected::Generator))
    })
}

/// `host` is `pattern` or one of its subdomains.
fn host_matches(host: &str, pattern: &str) -> bool {
    host.eq_ignore_ascii_case(pattern)
        || (host.len() > pattern.len()
            && host.as_bytes()[host.len() - pattern.len() - 1] == b'.'
            && host[host.len() - pattern.len()..].eq_ignore_ascii_case(pattern))
}

/// Whether the rule strips the (lowercased) parameter `name`.
fn strips(rule: &Rule, name: &str) -> bool {
    rule.strip.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(&prefix.to_ascii_lowercase()),
        None => p.eq_ignore_ascii_case(name),
    })
}

/// A Medium post id: the last path segment is `<id>` after `/p/`, or ends in `-<id>`; an id is
/// 10–12 hex digits.
fn medium_post_id(url: &Url) -> Option<String> {
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let last = *segments.last()?;
    let candidate = match segments.as_slice() {
        ["p", id] => *id,
        _ => last.rsplit_once('-')?.1,
    };
    let is_id =
        (10..=12).contains(&candidate.len()) && candidate.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| candidate.to_ascii_lowercase())
}

/// The cross-host post key of a link whose path is exactly `/p/<slug>` (a Substack post, on
/// `*.substack.com` or on the publication's own domain), when the item has a title:
/// `substack:/p/<slug>|<title>`, the title lowercased with its whitespace collapsed. Within one
/// author, two such links are one article only when their titles are equal too, which keeps two
/// publications' `/p/coming-soon` apart.
pub fn post_key(url: &Url, title: Option<&str>) -> Option<String> {
    let mut segments = url.path_segments()?;
    let (Some("p"), Some(slug), None) = (segments.next(), segments.next(), segments.next()) else {
        return None;
    };
    let slug_ok = !slug.is_empty()
        && (slug.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let title = title?.split_whitespace().collect::<Vec<_>>().join(" ");
    (slug_ok && !title.is_empty()).then(|| {
        format!(
            "substack:/p/{}|{}",
            slug.to_ascii_lowercase(),
            title.to_lowercase()
        )
    })
}

/// How `decided` reads in `watcher check --explain-link`.
pub fn explain(decided: &Decided) -> String {
    match decided {
        Decided::Generic => "generic (no platform rule): the key is the canonical link".into(),
        Decided::CrossHostPost => {
            "cross-host post (path `/p/<slug>` on any host): the key is the slug and the title"
                .into()
        }
        Decided::Platform { rule, by, derived } => {
            let by = match by {
                Selected::Host(h) => format!("host {h}"),
                Selected::Generator => format!("feed generator `{}`", rule.generator),
            };
            let key = match (rule.key, derived) {
                (_, false) => "no key of its own found: the key is the canonical link",
                (KeyRule::MediumPostId, true) => "the key is the post id",
                (KeyRule::SubstackPost, true) => "the key is the `/p/<slug>` and the title",
            };
            let mut strip = rule.strip.join(", ");
            if !rule.keep.is_empty() {
                strip.push_str(&format!("; keeps {}", rule.keep.join(", ")));
            }
            format!("{} (by {by}): strips {strip}; {key}", rule.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str, generator: Option<&str>, title: Option<&str>) -> Link {
        let cx = Context {
            generator,
            title,
            guid: None,
        };
        link(&Canonicalizer::default(), &Url::parse(url).unwrap(), cx)
    }

    #[test]
    fn medium_links_lose_source_keep_sk_and_are_keyed_by_post_id() {
        let author = read(
            "https://medium.com/@ada/analytical-engines-0123456789ab?source=rss-b4981c59ffa5------2",
            None,
            None,
        );
        assert_eq!(
            author.canonical.as_str(),
            "https://medium.com/@ada/analytical-engines-0123456789ab"
        );
        assert_eq!(author.key, "medium:0123456789ab");
        let publication = read(
            "https://medium.com/the-pub/analytical-engines-0123456789ab?source=rss----7f60cf5620c9---4&sk=abc",
            None,
            None,
        );
        assert_eq!(
            publication.canonical.as_str(),
            "https://medium.com/the-pub/analytical-engines-0123456789ab?sk=abc"
        );
        assert_eq!(publication.key, author.key);
        assert_eq!(
            read("https://ada.medium.com/p/0123456789ab", None, None).key,
            author.key
        );
        // An 11-digit id of the older posts (in the real capture `medium-lizmarley`).
        assert_eq!(
            read(
                "https://medium.com/@e/finding-value-20a90bf5ebf",
                None,
                None
            )
            .key,
            "medium:20a90bf5ebf"
        );
        // No id: the canonical link is the key.
        let profile = read("https://medium.com/@ada?source=rss", None, None);
        assert_eq!(profile.key, "https://medium.com/@ada");
    }

    #[test]
    fn sk_survives_even_when_configured_away_on_medium() {
        let c = Canonicalizer::new(&["sk".into()], &Default::default());
        let url = Url::parse("https://medium.com/@a/x-0123456789ab?sk=friend").unwrap();
        let got = link(&c, &url, Context::default());
        assert_eq!(got.canonical.query(), Some("sk=friend"));
        // Elsewhere the configured parameter goes.
        let other = Url::parse("https://blog.example/x?sk=1").unwrap();
        assert_eq!(link(&c, &other, Context::default()).canonical.query(), None);
    }

    #[test]
    fn medium_custom_domains_are_read_by_the_feed_marker_only() {
        let url = "https://engineering.example.com/scaling-it-0123456789ab?source=rss----1---4";
        let marked = read(url, Some("Medium"), None);
        assert_eq!(marked.key, "medium:0123456789ab");
        assert_eq!(
            marked.canonical.as_str(),
            "https://engineering.example.com/scaling-it-0123456789ab"
        );
        let plain = read(url, None, None);
        assert_eq!(plain.decided, Decided::Generic);
        assert_eq!(
            plain.canonical.as_str(),
            url,
            "other hosts keep today's behaviour"
        );
    }

    #[test]
    fn substack_links_lose_referral_parameters_and_meet_their_custom_domain() {
        let title = Some("Notes on  the Engine");
        let sub = read(
            "https://ada.substack.com/p/notes-on-the-engine?r=1ttoeh&triedRedirect=true&utm_source=x",
            None,
            title,
        );
        assert_eq!(
            sub.canonical.as_str(),
            "https://ada.substack.com/p/notes-on-the-engine"
        );
        let custom = read(
            "https://www.ada-lovelace.example/p/notes-on-the-engine",
            None,
            Some("notes on the engine"),
        );
        assert_eq!(custom.decided, Decided::CrossHostPost);
        assert_eq!(sub.key, custom.key);
        // The title guard: another publication's post of the same slug is another article.
        let other = read(
            "https://bob.substack.com/p/notes-on-the-engine",
            None,
            Some("Bob's engine"),
        );
        assert_ne!(other.key, sub.key);
        // Marked feeds strip on the custom domain too; unmarked ones keep `r` there.
        let with_r = "https://www.ada-lovelace.example/p/notes-on-the-engine?r=1ttoeh";
        assert_eq!(
            read(with_r, Some("Substack"), title).canonical.query(),
            None
        );
        assert_eq!(
            read(with_r, None, title).canonical.query(),
            Some("r=1ttoeh")
        );
        // Not a post path, or no title: the canonical link is the key.
        let home = read("https://ada.substack.com/archive?r=x", None, title);
        assert_eq!(home.key, "https://ada.substack.com/archive");
        assert_eq!(
            read("https://ada.substack.com/p/x", None, None).key,
            "https://ada.substack.com/p/x"
        );
    }

    #[test]
    fn the_guid_gives_the_medium_id_when_the_link_has_none() {
        let cx = Context {
            generator: Some("Medium"),
            title: None,
            guid: Some("https://medium.com/p/0123456789ab"),
        };
        let url = Url::parse("https://blog.example/a-story").unwrap();
        assert_eq!(
            link(&Canonicalizer::default(), &url, cx).key,
            "medium:0123456789ab"
        );
    }

    #[test]
    fn canonical_links_are_idempotent_and_hosts_match_whole_labels() {
        for (url, generator) in [
            (
                "https://medium.com/@a/x-0123456789ab?source=a&sk=b&gi=c#f",
                None,
            ),
            ("https://x.substack.com/p/y?r=1&ok=2", None),
            ("https://x.example/p/y?r=1&ok=2", Some("Substack")),
        ] {
            let once = read(url, generator, Some("t"));
            let twice = read(once.canonical.as_str(), generator, Some("t"));
            assert_eq!(
                once,
                Link {
                    generic: once.generic.clone(),
                    ..twice
                }
            );
        }
        assert!(host_matches("ada.medium.com", "medium.com"));
        assert!(!host_matches("notmedium.com", "medium.com"));
        assert!(!host_matches("medium.com.evil.example", "medium.com"));
    }
}
