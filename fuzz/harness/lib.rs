//! The fuzz entry points: one function per cargo-fuzz target, each feeding hostile bytes to the
//! same public function the watcher or the runner calls on them, and asserting what that
//! function promises beyond "no panic".
//!
//! Shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly, libFuzzer) and by the stable
//! replay of the committed corpora (`tests/it/fuzz_replay.rs`, which includes this file), so a
//! corpus input is replayed exactly as it was fuzzed.
//!
//! An input may start with one header line that sets what the network or the config would give
//! beside the body (`content-type: …`, `include: …`, `selector: …`); the rest is the body.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use url::{Host, Url};
use watcher::config::{CssSelector, FetchSettings};
use watcher::identity::Canonicalizer;
use watcher::parse::parse_feed_within;
use watcher::platform::{self, Context};
use watcher::read::discover::discover_feeds_within;
use watcher::read::extract_links_within;
use watcher::read::sitemap::{Caps, Sitemap, parse_sitemap_within};
use watcher::ssrf::{NetworkRule, is_non_public};
use watcher::work::WorkBudget;

/// Work units one input may spend: real documents spend 2 to 6 a byte (see `watcher::work`).
fn budget_for(len: usize) -> (WorkBudget, u64) {
    let limit = 64 * len as u64 + 65_536;
    (WorkBudget::new(limit, CancellationToken::new()), limit)
}

/// Once spent, a budget stops its parser at the next check: the work done stays within a
/// small multiple of the limit, whatever the input.
fn assert_bounded(budget: &WorkBudget, limit: u64, len: usize) {
    let bound = 2 * limit + 16 * len as u64 + (1 << 20);
    assert!(
        budget.used() <= bound,
        "spent {} work units on {len} bytes (limit {limit})",
        budget.used()
    );
}

/// Splits a leading `name: value` line off `data`; the value trimmed, `None` when absent.
fn header<'a>(data: &'a [u8], name: &str) -> (Option<&'a str>, &'a [u8]) {
    let prefix = name.as_bytes();
    if data.len() > prefix.len() + 1
        && data[..prefix.len()].eq_ignore_ascii_case(prefix)
        && data[prefix.len()] == b':'
    {
        let rest = &data[prefix.len() + 1..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        if let Ok(value) = std::str::from_utf8(&rest[..end]) {
            return (Some(value.trim()), &rest[(end + 1).min(rest.len())..]);
        }
    }
    (None, data)
}

fn is_web(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// Feed parsing as the watcher does it on a fetched body: charset choice, the repair pre-pass,
/// the markup pass and feed-rs, within a work budget (`read::feed::read`).
pub fn feed(data: &[u8]) {
    let (content_type, body) = header(data, "content-type");
    let base = Url::parse("https://feeds.example.com/blog/feed.xml").unwrap();
    let (budget, limit) = budget_for(body.len());
    if let Ok(feed) = parse_feed_within(body, content_type, &base, &budget) {
        for item in &feed.items {
            if let Some(link) = &item.link {
                assert!(is_web(link), "item link `{link}` is not http(s)");
            }
            if let Some(guid) = &item.guid {
                assert!(
                    !guid.is_empty() && guid.trim() == guid,
                    "guid {guid:?} not trimmed"
                );
            }
        }
    }
    assert_bounded(&budget, limit, body.len());
}

/// A sitemap or sitemap index, plain or gzip, as the sitemap reader parses it.
pub fn sitemap(data: &[u8]) {
    let (include, body) = header(data, "include");
    let url = Url::parse("https://www.example.com/sitemap.xml").unwrap();
    let caps = Caps {
        max_bytes: 1 << 20,
        max_urls: 1_000,
    };
    let (budget, limit) = budget_for(body.len());
    let parsed = parse_sitemap_within(body, &url, include, caps, &budget);
    assert_bounded(&budget, limit, body.len());
    if let Ok((sitemap, parsed)) = parsed {
        assert!(
            parsed <= caps.max_bytes,
            "parsed {parsed} bytes over the cap"
        );
        match sitemap {
            Sitemap::Urls(items) => {
                assert!(items.len() <= caps.max_urls, "{} urls", items.len());
                for link in items.iter().filter_map(|item| item.link.as_ref()) {
                    assert!(is_web(link), "page `{link}` is not http(s)");
                }
            }
            Sitemap::Index(children) => {
                assert!(
                    children.len() <= caps.max_urls,
                    "{} children",
                    children.len()
                );
                for child in &children {
                    assert!(is_web(child), "child sitemap `{child}` is not http(s)");
                }
            }
        }
    }
}

/// A page read through a CSS selector (`[[authors]] sites`), and the feeds it advertises
/// (autodiscovery), both within a work budget.
pub fn page(data: &[u8]) {
    let (selector, html) = header(data, "selector");
    let Ok(selector) = CssSelector::parse(selector.unwrap_or("a")) else {
        return;
    };
    let url = Url::parse("https://www.example.com/blog/").unwrap();
    let (budget, limit) = budget_for(html.len());
    if let Ok(items) = extract_links_within(html, None, &url, &selector, &budget) {
        for link in items.iter().filter_map(|item| item.link.as_ref()) {
            assert!(is_web(link) && link.fragment().is_none(), "link `{link}`");
        }
    }
    assert_bounded(&budget, limit, html.len());
    let (budget, limit) = budget_for(html.len());
    if let Ok(feeds) = discover_feeds_within(html, Some("text/html"), &url, &budget) {
        for feed in &feeds {
            assert!(is_web(feed), "discovered feed `{feed}` is not http(s)");
        }
    }
    assert_bounded(&budget, limit, html.len());
}

/// URL canonicalization (idempotent, as documented; the platform rules' canonical link too, whose
/// identity key reads the same again), the address rule (`ssrf`) on IP-literal hosts, and the
/// source URL check of the config.
pub fn canonical(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let by_host = BTreeMap::from([("example.com".to_owned(), vec!["id".to_owned()])]);
    let canon = Canonicalizer::new(&["ref".to_owned()], &by_host);
    let rule = NetworkRule::new(
        &FetchSettings::default(),
        ["https://Feeds.Example.com/feed"],
    );
    if let Ok(url) = Url::parse(text) {
        let once = canon.canonical(&url);
        let twice = canon.canonical(&once);
        assert_eq!(once, twice, "canonical is not idempotent on {text:?}");
        assert!(once.fragment().is_none());
        for generator in [None, Some("Medium"), Some("Substack")] {
            let cx = Context {
                generator,
                title: Some("t"),
                guid: Some(text),
            };
            let link = platform::link(&canon, &url, cx);
            let again = platform::link(&canon, &link.canonical, cx);
            assert_eq!(link.canonical, again.canonical, "platform link of {text:?}");
            assert_eq!(link.key, again.key, "identity key of {text:?}");
        }
        // The address rule: a non-public IP literal is refused, as a request and as a link,
        // and canonicalizing a URL never changes the verdict.
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(ip) = ip {
            let refused = is_non_public(ip);
            assert_eq!(rule.check_url(&url).is_err(), refused, "check_url on {url}");
            if refused {
                assert!(rule.link_refusal(&url).is_some(), "link {url} not refused");
            }
        }
        assert_eq!(rule.check_url(&url), rule.check_url(&once));
        assert_eq!(rule.link_refusal(&url), rule.link_refusal(&once));
    }
    if let Ok(url) = watcher::config::parse_source_url(text) {
        assert!(is_web(&url), "source url `{url}` is not http(s)");
    }
}

/// `watcher.toml` from text: parsing and every file-only validation.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = watcher::config::Config::parse(Path::new("/nonexistent/fuzz/watcher.toml"), text);
}

/// A minimal config the OPML is imported into.
const IMPORT_CONFIG: &str = "# fuzz\n[trigger]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n\n[[authors]]\nname = \"Known\"\nfeeds = [\"https://example.com/feed\"]\n";

/// `import-opml`: the OPML parsed and merged into a config; importing the same OPML into the
/// result again adds nothing (the result is well-formed TOML that keeps every feed).
pub fn opml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let config = Path::new("watcher.toml");
    let file = Path::new("subs.opml");
    for author in [None, Some("Fuzz")] {
        let Ok(first) =
            watcher::subscriptions::import_text(config, IMPORT_CONFIG, file, &text, author)
        else {
            continue;
        };
        let again = watcher::subscriptions::import_text(config, &first.text, file, &text, author)
            .expect("importing into the imported config");
        assert!(
            again.added.is_empty(),
            "second import added {:?}",
            again.added
        );
    }
}

/// A runner chain file: parsing and validation, then every stage's `run` and `env` templates
/// rendered with the chain's params and a value for each required one; and one template alone.
pub fn chain(data: &[u8]) {
    use pipelines::placeholder::{Template, Values};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let render = |template: &Template, params: &BTreeMap<String, String>| {
        let values = Values {
            config: Path::new("/state/runs/r1/config.yaml"),
            run_id: "r1",
            stage: "stage",
            chain: "chain",
            run_dir: Path::new("/state/runs/r1"),
            params,
        };
        template.render(&values).expect("every param has a value")
    };
    if let Ok(chain) = pipelines::chain::parse(text, Path::new("/fuzz/chains/chain.toml")) {
        let mut params = chain.params().clone();
        for name in chain.required_params() {
            params.insert(name.to_owned(), format!("{{{name}}}"));
        }
        for stage in chain.stages() {
            for template in stage.run().iter().chain(stage.env().iter().map(|(_, t)| t)) {
                render(template, &params);
            }
        }
    }
    if let Ok(template) = Template::parse(text) {
        let params: BTreeMap<String, String> = template
            .placeholders()
            .filter_map(|p| match p {
                pipelines::placeholder::Placeholder::Param(name) => {
                    Some((name.clone(), "{param.x}".to_owned()))
                }
                _ => None,
            })
            .collect();
        render(&template, &params);
    }
}
