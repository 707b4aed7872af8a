//! sources.rs: the parsing behind sources that are not feeds, against the real HTML pages and
//! sitemaps of the corpus (`testdata/corpus/public`, formats `html` and `sitemap` in its
//! manifest): CSS-selector link extraction, feed autodiscovery, sitemaps (plain, index, gzip and a
//! gzip bomb), and OPML import/export.
//!
//! Every expected count and URL below was read off the fixture itself; each test says how.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use url::Url;
use watcher::config::CssSelector;
use watcher::opml::{OpmlAuthor, OpmlFeed, parse_opml, write_opml};
use watcher::parse::RawItem;
use watcher::read::{
    SiteError, Sitemap, discover_feeds, extract_links, looks_like_feed, parse_sitemap,
};

const CAP: u64 = 10 * 1024 * 1024;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = corpus_dir().join("public").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn css(selector: &str) -> CssSelector {
    CssSelector::parse(selector).unwrap_or_else(|err| panic!("{err}"))
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

/// The fixture read through `selector` as if fetched from `page_url` with no HTTP charset.
fn page_links(name: &str, page_url: &str, selector: &str) -> Vec<RawItem> {
    let items = extract_links(&fixture(name), None, &url(page_url), &css(selector))
        .unwrap_or_else(|err| panic!("{name} with `{selector}`: {err}"));
    for item in &items {
        assert_eq!(item.guid, None, "{name}: a page link has no GUID");
        assert!(item.link.is_some(), "{name}: every item has a link");
    }
    items
}

fn links(items: &[RawItem]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item.link.as_ref().unwrap().as_str())
        .collect()
}

fn titles(items: &[RawItem]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item.title.as_deref().unwrap_or("<none>"))
        .collect()
}

fn discovered(name: &str, page_url: &str) -> Vec<String> {
    discover_feeds(&fixture(name), None, &url(page_url))
        .into_iter()
        .map(String::from)
        .collect()
}

fn at(text: &str) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn sitemap_urls(body: &[u8], sitemap_url: &str, include: Option<&str>) -> Vec<RawItem> {
    match parse_sitemap(body, &url(sitemap_url), include, CAP).unwrap() {
        Sitemap::Urls(items) => items,
        Sitemap::Index(children) => panic!("expected a urlset, got an index of {children:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// CSS selectors over real pages

/// Hugo (icarus theme): each `<article>` has `<header class="article-header"><a href><h1>`.
/// `grep -A1 'class="article-header"'` shows the 5 post links.
#[test]
fn cowboyprogrammer_post_headers() {
    const POSTS: [&str; 5] = [
        "https://cowboyprogrammer.org/2016/10/reduce-colors-in-images/",
        "https://cowboyprogrammer.org/2016/10/dont-start-service-on-install-of-debian-package/",
        "https://cowboyprogrammer.org/2016/09/reboot_machine_on_wrong_password/",
        "https://cowboyprogrammer.org/2016/08/zopfli_all_the_things/",
        "https://cowboyprogrammer.org/2016/07/migrating_from_ghost_to_hugo/",
    ];
    let page = "https://cowboyprogrammer.org/";
    let items = page_links(
        "cowboyprogrammer-home.html",
        page,
        "header.article-header > a",
    );
    assert_eq!(links(&items), POSTS);
    assert_eq!(
        titles(&items)[..2],
        [
            "Reduce the size of images even further by reducing number of colors with Gimp",
            "Don't start service on installation of Debian package",
        ]
    );

    // Selecting the heading, which sits inside the link, finds the same links.
    let headings = page_links("cowboyprogrammer-home.html", page, "h1.article-title");
    assert_eq!(headings, items);

    // A broad selector: the banner image links first (no text), then the headline links to the
    // same post, which lends its title; tag links repeat across posts and count once.
    let broad = page_links("cowboyprogrammer-home.html", page, "article a");
    assert_eq!(links(&broad)[0], POSTS[0]);
    assert_eq!(
        broad[0].title.as_deref(),
        Some("Reduce the size of images even further by reducing number of colors with Gimp")
    );
    let tag_links = links(&broad)
        .into_iter()
        .filter(|link| link.contains("/tags/"))
        .count();
    // Counted independently from the HTML text by `unique_tags_in_articles`.
    assert_eq!(tag_links, unique_tags_in_articles());
    assert!(links(&broad).iter().all(|link| !link.contains('#')));
}

/// The distinct `/tags/` links inside the `<article>`s, counted straight from the HTML text.
fn unique_tags_in_articles() -> usize {
    let html = String::from_utf8(fixture("cowboyprogrammer-home.html")).unwrap();
    let mut tags: Vec<&str> = Vec::new();
    for article in html.split("<article").skip(1) {
        let article = &article[..article.find("</article>").unwrap()];
        for piece in article.split("href=\"").skip(1) {
            let href = &piece[..piece.find('"').unwrap()];
            if href.contains("/tags/") && !tags.contains(&href) {
                tags.push(href);
            }
        }
    }
    tags.len()
}

/// A hand-made weblog: 10 `<div class="weblogPost">`, each `<h3><a href>Title</a></h3>`.
#[test]
fn inessential_weblog_posts() {
    let page = "http://inessential.com/";
    let items = page_links("inessential-home.html", page, ".weblogPost h3");
    assert_eq!(items.len(), 10);
    assert_eq!(
        (links(&items)[0], titles(&items)[0]),
        ("http://inessential.com/2016/03/04/lizcast", "Lizcast")
    );
    assert_eq!(
        (links(&items)[5], titles(&items)[5]),
        (
            "http://inessential.com/2016/02/09/origin_of_good_and_bad_hair_day",
            "Origin of Good (and Bad) Hair Day"
        )
    );
    assert_eq!(
        links(&items)[9],
        "http://inessential.com/2016/02/05/cocoaconf_podcast_with_me"
    );

    // The dateline links to the same posts, titled by their date.
    let datelines = page_links("inessential-home.html", page, ".weblogPostDisplayDate a");
    assert_eq!(links(&datelines), links(&items));
    assert_eq!(titles(&datelines)[0], "04 Mar 2016");

    // The UTF-8 meta is honoured: body links carry curly quotes in their text.
    let body = page_links("inessential-home.html", page, ".weblogPostBody a");
    assert!(
        titles(&body).contains(&"We’re hiring"),
        "{:?}",
        titles(&body)
    );

    // An HTTP charset beats the page's meta, even a wrong one: the same bytes read as
    // windows-1252 give the classic mojibake.
    let misdeclared = extract_links(
        &fixture("inessential-home.html"),
        Some("text/html; charset=windows-1252"),
        &url(page),
        &css(".weblogPostBody a"),
    )
    .unwrap();
    assert!(titles(&misdeclared).contains(&"Weâ€™re hiring"));
}

/// A project page: a blog aggregator list (absolute links to other sites) and a nav of
/// page-relative links (`href="nixos/about.html"`).
#[test]
fn nixos_blog_list_and_relative_nav() {
    let page = "https://nixos.org/";
    let blogs = page_links("nixos-home.html", page, ".nixos-blog-title a");
    assert_eq!(
        links(&blogs),
        [
            "http://ocharles.org.uk/blog/posts/2018-12-25-fast-downward.html",
            "https://matthewbauer.us/blog/build-systems.html",
            "https://nixos.mayflower.consulting/blog/2018/11/08/the-nixops-default-module/",
            "http://sandervanderburg.blogspot.com/2018/10/auto-patching-prebuilt-binary-software.html",
            "https://nixos.mayflower.consulting/blog/2018/10/26/nixops-machine-configs/",
        ]
    );
    assert_eq!(
        titles(&blogs)[0],
        "Solving Planning Problems with Fast Downward and Haskell"
    );

    let nav = page_links("nixos-home.html", page, "ul.nav.pull-left a");
    assert_eq!(nav.len(), 7);
    assert_eq!(links(&nav)[0], "https://nixos.org/nixos/about.html");
    assert_eq!(titles(&nav)[6], "Security");

    // The dropdown holds `href="#"` (skipped) and `href=""` (the page itself, skipped).
    let dropdown = page_links("nixos-home.html", page, "li.dropdown a");
    assert_eq!(
        links(&dropdown),
        [
            "https://nixos.org/nix",
            "https://nixos.org/nixops",
            "https://nixos.org/nixpkgs",
            "https://nixos.org/hydra",
            "https://nixos.org/disnix",
        ]
    );
}

/// A linkblog: each post's `<div class="column2"><h1><a href>` (20 of them) points at the
/// linked article; one has `href=""` and is skipped; one carries `&amp;` in its URL.
#[test]
fn sixcolors_headlines() {
    let page = "https://sixcolors.com/";
    let items = page_links("sixcolors-home.html", page, "div.column2 h1");
    assert_eq!(items.len(), 19);
    assert_eq!(
        links(&items)[0],
        "http://researchcenter.paloaltonetworks.com/2016/03/new-os-x-ransomware-keranger-infected-transmission-bittorrent-client-installer/"
    );
    assert!(
        links(&items).contains(&"https://www.youtube.com/watch?v=w3ugHP-yZXw&feature=youtu.be")
    );
    assert_eq!(
        links(&items)[18],
        "http://nymag.com/following/2016/03/julieanne-smolinski-quitting-twitter.html"
    );
    // `&nbsp;` collapses like any whitespace; entities decode.
    assert!(titles(&items).contains(&"3 ways Apple could improve email ↦"));
    assert!(
        titles(&items).contains(&"San Bernardino DA: iPhone may hold “dormant cyber pathogen”")
    );
}

/// A WordPress (Astra) static export: three `<h2 class="entry-title">` around the post links.
#[test]
fn wordpress_entry_titles() {
    let items = page_links(
        "wordpress-static-home.html",
        "https://adcert.local/",
        "h2.entry-title",
    );
    assert_eq!(items.len(), 3);
    assert!(
        links(&items)
            .iter()
            .all(|link| link.starts_with("https://adcert.local/google_ads_search_certification/"))
    );
    assert_eq!(
        links(&items)[1],
        "https://adcert.local/google_ads_search_certification/your-marketing-company-has-created-an-enticing-ad-that-receives-many-clicks-relative-to-impressions-what-effect-could-the-ad-have-on-the-google-ads-auction/index.html"
    );
    // `a[rel=bookmark]` is the same set, selected directly.
    let bookmarks = page_links(
        "wordpress-static-home.html",
        "https://adcert.local/",
        "a[rel=bookmark]",
    );
    assert_eq!(links(&bookmarks), links(&items));
}

/// A YouTube channel page (430 KB, mostly script): its 12 footer links
/// (`<a slot="guide-links-…">`), two of them root-relative.
#[test]
fn youtube_footer_links() {
    let page = "https://www.youtube.com/user/TheVolvorocks";
    let items = page_links("youtube-channel-page.html", page, "a[slot^=guide-links]");
    assert_eq!(items.len(), 12);
    assert_eq!(
        (links(&items)[0], titles(&items)[0]),
        ("https://www.youtube.com/about/", "About")
    );
    assert_eq!(links(&items)[7], "https://www.youtube.com/t/terms");
    assert_eq!(
        (links(&items)[9], titles(&items)[9]),
        ("https://www.youtube.com/about/policies/", "Policy & Safety")
    );
    assert_eq!(links(&items)[11], "https://www.youtube.com/new");
}

#[test]
fn selector_problems_on_a_real_page_are_errors() {
    let page = url("https://sixcolors.com/");
    let body = fixture("sixcolors-home.html");
    let err = CssSelector::parse("div.column2 h1[").unwrap_err();
    assert!(err.to_string().contains("`div.column2 h1[`"), "{err}");
    let err =
        extract_links(&body, None, &page, &css("article.post-that-was-renamed a")).unwrap_err();
    assert!(matches!(err, SiteError::NoMatch { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Autodiscovery

#[test]
fn autodiscovery_on_every_html_fixture() {
    // Three alternates with Hugo's truncated types (`application/rss`, `application/atom`).
    assert_eq!(
        discovered(
            "cowboyprogrammer-home.html",
            "https://cowboyprogrammer.org/"
        ),
        [
            "https://cowboyprogrammer.org/index.xml",
            "https://cowboyprogrammer.org/feed.json",
            "https://cowboyprogrammer.org/atom.xml",
        ]
    );
    assert_eq!(
        discovered("inessential-home.html", "http://inessential.com/"),
        ["http://inessential.com/xml/rss.xml"]
    );
    // Root-relative, and in `<body>`.
    assert_eq!(
        discovered("nixos-home.html", "https://nixos.org/"),
        ["https://nixos.org/news-rss.xml"]
    );
    assert_eq!(
        discovered("sixcolors-home.html", "https://sixcolors.com/"),
        ["http://feedpress.me/sixcolors"]
    );
    // The posts feed, then the comments feed, in document order.
    assert_eq!(
        discovered("wordpress-static-home.html", "https://adcert.local/"),
        [
            "https://adcert.local/feed/index.html",
            "https://adcert.local/comments/feed/index.html",
        ]
    );
    // Four other `rel="alternate"`s (mobile site, app deep links) have no feed type.
    assert_eq!(
        discovered(
            "youtube-channel-page.html",
            "https://www.youtube.com/user/TheVolvorocks"
        ),
        ["https://www.youtube.com/feeds/videos.xml?channel_id=UCct7QF2jcWRY6dhXWMSq9LQ"]
    );
}

/// The sniff against the whole corpus: every feed fixture looks like a feed except those that
/// are known not to start like one; no page or sitemap does.
#[test]
fn looks_like_feed_across_the_corpus() {
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut wrongly_sniffed = Vec::new();
    for row in manifest
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
    {
        let cells: Vec<&str> = row.split('\t').collect();
        let (file, format) = (cells[0], cells[2]);
        let is_feed = !matches!(format, "html" | "sitemap");
        let body = std::fs::read(corpus_dir().join(file)).unwrap();
        if looks_like_feed(&body) != is_feed {
            wrongly_sniffed.push(file.to_owned());
        }
    }
    assert_eq!(wrongly_sniffed, NOT_SNIFFED_AS_FEEDS);
}

/// Feeds the sniff does not recognise, on purpose: an Atom `<feed>` inside an XHTML page has the
/// root `<html>` (the feed parser unwraps it; a sniff that looked inside pages would take pages
/// that quote a feed for feeds).
const NOT_SNIFFED_AS_FEEDS: &[&str] = &["public/atom-wrapped-in-xhtml.xml"];

// ---------------------------------------------------------------------------------------------
// Sitemaps

/// xml-sitemaps.com generator output for a Blogger site: 271 `<url>`s, every one with the same
/// `<lastmod>`; 266 posts under `/2025/` and 4 pages under `/p/` (one of them twice, once with a
/// bare `?`, which is a different URL).
#[test]
fn blogspot_urlset() {
    let body = fixture("blogspot-eurovision.sitemap.xml");
    let sitemap = "https://actualidadeurovision.blogspot.com/sitemap.xml";
    let items = sitemap_urls(&body, sitemap, None);
    assert_eq!(items.len(), 271);
    assert_eq!(
        links(&items)[..4],
        [
            "https://actualidadeurovision.blogspot.com/",
            "https://actualidadeurovision.blogspot.com/p/sobre-nosotros.html",
            "https://actualidadeurovision.blogspot.com/p/politica-de-privacidad.html",
            "https://actualidadeurovision.blogspot.com/p/contacto.html?",
        ]
    );
    assert_eq!(
        links(&items)[270],
        "https://actualidadeurovision.blogspot.com/2025/05/exclusion-israel-eurovision-2025.html"
    );
    let lastmod = at("2025-05-31T10:49:28Z");
    assert!(
        items
            .iter()
            .all(|item| item.updated == lastmod && item.published == lastmod)
    );
    assert!(
        items
            .iter()
            .all(|item| item.title.is_none() && item.guid.is_none())
    );

    assert_eq!(sitemap_urls(&body, sitemap, Some("/2025/")).len(), 266);
    assert_eq!(sitemap_urls(&body, sitemap, Some("/p/")).len(), 4);
}

/// jekyll-sitemap: 107 `<url>`s, 81 with a `<lastmod>` (posts; pages and pagination have none);
/// 59 under `/hack-the-box/`.
#[test]
fn jekyll_urlset() {
    let body = fixture("oxrick-jekyll.sitemap.xml");
    let sitemap = "https://0xrick.github.io/sitemap.xml";
    let items = sitemap_urls(&body, sitemap, None);
    assert_eq!(items.len(), 107);
    assert_eq!(
        items.iter().filter(|item| item.updated.is_some()).count(),
        81
    );
    assert_eq!(
        links(&items)[0],
        "https://0xrick.github.io/hack-the-box/jerry/"
    );
    assert_eq!(items[0].updated, at("2018-11-17T05:00:00Z"));
    let about = items
        .iter()
        .find(|item| item.link.as_ref().unwrap().path() == "/about/")
        .unwrap();
    assert_eq!(about.updated, None);
    assert_eq!(
        links(&items)[106],
        "https://0xrick.github.io/google90dd4fd60799c009.html"
    );

    let boxes = sitemap_urls(&body, sitemap, Some("/hack-the-box/"));
    assert_eq!(boxes.len(), 59);
    assert!(
        links(&boxes)
            .iter()
            .all(|link| link.contains("/hack-the-box/"))
    );
}

/// Yoast: an xml-stylesheet PI, a comment after the root, 4 child sitemaps with relative
/// `<loc>`s, listed newest `<lastmod>` first (post and category share the newest date and keep
/// their document order).
#[test]
fn yoast_sitemap_index() {
    let body = fixture("yoast-sitemap-index.xml");
    let parsed = parse_sitemap(
        &body,
        &url("https://adcert.local/sitemap_index.xml"),
        None,
        CAP,
    );
    assert_eq!(
        parsed.unwrap(),
        Sitemap::Index(vec![
            url("https://adcert.local/post-sitemap.xml"),
            url("https://adcert.local/category-sitemap.xml"),
            url("https://adcert.local/author-sitemap.xml"),
            url("https://adcert.local/page-sitemap.xml"),
        ])
    );
    // `include` filters pages, never the child sitemaps to fetch.
    let filtered = parse_sitemap(
        &body,
        &url("https://adcert.local/sitemap_index.xml"),
        Some("/blog/"),
        CAP,
    );
    assert!(matches!(filtered.unwrap(), Sitemap::Index(children) if children.len() == 4));
}

/// A `.xml.gz` is recognised by the gzip magic, not the name: the same bytes parse the same
/// under either URL, and a plain body under a `.gz` name is read as plain.
#[test]
fn gzip_sitemaps_are_decompressed() {
    let plain = fixture("oxrick-jekyll.sitemap.xml");
    let compressed = gzip(&plain);
    assert!(compressed.len() < plain.len() / 4);
    let expected = sitemap_urls(&plain, "https://0xrick.github.io/sitemap.xml", None);
    assert_eq!(
        sitemap_urls(&compressed, "https://0xrick.github.io/sitemap.xml.gz", None),
        expected
    );
    assert_eq!(
        sitemap_urls(&compressed, "https://0xrick.github.io/sitemap.xml", None),
        expected
    );
    assert_eq!(
        sitemap_urls(&plain, "https://0xrick.github.io/sitemap.xml.gz", None),
        expected
    );

    let index = gzip(&fixture("yoast-sitemap-index.xml"));
    let parsed = parse_sitemap(
        &index,
        &url("https://adcert.local/sitemap_index.xml.gz"),
        None,
        CAP,
    );
    assert!(matches!(parsed.unwrap(), Sitemap::Index(children) if children.len() == 4));

    // The cap applies to the decompressed size: the fixture itself is 11,157 bytes.
    let err = parse_sitemap(
        &compressed,
        &url("https://x.example/s.xml.gz"),
        None,
        8 * 1024,
    )
    .unwrap_err();
    assert!(
        matches!(err, SiteError::DecompressedTooLarge { max_bytes: 8192 }),
        "{err}"
    );
}

/// About 1 MB of gzip that would inflate to 1 GiB: it is refused at the cap (1 MiB) without
/// inflating the rest. Built from one compressed MiB of spaces repeated as gzip members (a
/// multi-member gzip file is valid, and decompresses to the concatenation).
#[test]
fn gzip_bomb_is_refused_at_the_cap() {
    let head =
        br#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#;
    let mut first = head.to_vec();
    first.resize(1 << 20, b' ');
    let mut bomb = gzip(&first);
    let member = gzip(&vec![b' '; 1 << 20]);
    for _ in 1..1024 {
        bomb.extend_from_slice(&member);
    }
    assert!(bomb.len() < 2 << 20, "compressed: {} bytes", bomb.len());

    let started = std::time::Instant::now();
    let err = parse_sitemap(
        &bomb,
        &url("https://x.example/sitemap.xml.gz"),
        None,
        1 << 20,
    )
    .unwrap_err();
    assert!(
        matches!(err, SiteError::DecompressedTooLarge { max_bytes } if max_bytes == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("gzip bomb"), "{err}");
    // Inflating the whole GiB would take far longer than stopping at the cap.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

// ---------------------------------------------------------------------------------------------
// OPML

/// Shaped like a feed reader's export: nested folders, `title` and `text` that differ, a
/// lowercase `xmlurl`, a feed in two folders, escaped text, HTML entities a reader left in, a
/// folder with no feeds and a plain link outline.
const READER_EXPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head>
    <title>Subscriptions in Feeder</title>
    <dateCreated>Mon, 03 Mar 2025 10:00:00 GMT</dateCreated>
  </head>
  <body>
    <outline text="Engineering" title="Engineering">
      <outline type="rss" text="Julia Evans" title="Julia Evans" xmlUrl="https://jvns.ca/atom.xml" htmlUrl="https://jvns.ca/"/>
      <outline text="Rust">
        <outline type="rss" text="This Week in Rust" xmlurl="https://this-week-in-rust.org/rss.xml" htmlurl="https://this-week-in-rust.org/"/>
        <outline type="rss" text="fasterthanli.me" title="fasterthanlime" xmlUrl="https://fasterthanli.me/index.xml"/>
      </outline>
      <outline type="rss" text="Dan Luu" xmlUrl="https://danluu.com/atom.xml"/>
    </outline>
    <outline text="ML &amp; Data">
      <outline text="Papers">
        <outline type="rss" text="Lil&#39;Log" xmlUrl="https://lilianweng.github.io/index.xml" htmlUrl="https://lilianweng.github.io/"/>
        <outline type="rss" text="Caf&eacute; ML" xmlUrl="https://cafe.example/feed?format=rss&amp;lang=en"/>
      </outline>
      <outline type="rss" text="Julia Evans (again)" xmlUrl="https://jvns.ca/atom.xml"/>
    </outline>
    <outline text="Empty folder"/>
    <outline type="rss" text="Uncategorised" xmlUrl="https://example.org/feed"/>
    <outline type="link" text="A bookmark" url="https://example.org/page"/>
  </body>
</opml>
"#;

fn opml_feed(
    title: Option<&str>,
    xml_url: &str,
    html_url: Option<&str>,
    category: Option<&str>,
) -> OpmlFeed {
    OpmlFeed {
        title: title.map(str::to_owned),
        xml_url: xml_url.to_owned(),
        html_url: html_url.map(str::to_owned),
        category: category.map(str::to_owned),
    }
}

#[test]
fn reader_export_flattens_nested_folders() {
    assert_eq!(
        parse_opml(READER_EXPORT).unwrap(),
        [
            opml_feed(
                Some("Julia Evans"),
                "https://jvns.ca/atom.xml",
                Some("https://jvns.ca/"),
                Some("Engineering")
            ),
            opml_feed(
                Some("This Week in Rust"),
                "https://this-week-in-rust.org/rss.xml",
                Some("https://this-week-in-rust.org/"),
                Some("Rust")
            ),
            opml_feed(
                Some("fasterthanlime"),
                "https://fasterthanli.me/index.xml",
                None,
                Some("Rust")
            ),
            opml_feed(
                Some("Dan Luu"),
                "https://danluu.com/atom.xml",
                None,
                Some("Engineering")
            ),
            opml_feed(
                Some("Lil'Log"),
                "https://lilianweng.github.io/index.xml",
                Some("https://lilianweng.github.io/"),
                Some("Papers")
            ),
            opml_feed(
                Some("Caf&eacute; ML"),
                "https://cafe.example/feed?format=rss&lang=en",
                None,
                Some("Papers")
            ),
            opml_feed(
                Some("Uncategorised"),
                "https://example.org/feed",
                None,
                None
            ),
        ]
    );
}

fn authors() -> Vec<OpmlAuthor<'static>> {
    vec![
        OpmlAuthor {
            name: "Julia Evans",
            feeds: vec!["https://jvns.ca/atom.xml"],
        },
        OpmlAuthor {
            name: "Paul \"Iusztin\" & <Decoding ML>",
            feeds: vec![
                "https://decodingml.substack.com/feed",
                "https://medium.com/feed/@pauliusztin",
                "https://example.com/rss?author=paul&format=xml",
            ],
        },
        OpmlAuthor {
            name: "Site-only author",
            feeds: vec![],
        },
    ]
}

#[test]
fn write_opml_output() {
    insta::assert_snapshot!(write_opml("watcher: authors & feeds", &authors()), @r#"
    <?xml version="1.0" encoding="UTF-8"?>
    <opml version="2.0">
      <head>
        <title>watcher: authors &amp; feeds</title>
      </head>
      <body>
        <outline text="Julia Evans" title="Julia Evans">
          <outline type="rss" text="https://jvns.ca/atom.xml" xmlUrl="https://jvns.ca/atom.xml"/>
        </outline>
        <outline text="Paul &quot;Iusztin&quot; &amp; &lt;Decoding ML&gt;" title="Paul &quot;Iusztin&quot; &amp; &lt;Decoding ML&gt;">
          <outline type="rss" text="https://decodingml.substack.com/feed" xmlUrl="https://decodingml.substack.com/feed"/>
          <outline type="rss" text="https://medium.com/feed/@pauliusztin" xmlUrl="https://medium.com/feed/@pauliusztin"/>
          <outline type="rss" text="https://example.com/rss?author=paul&amp;format=xml" xmlUrl="https://example.com/rss?author=paul&amp;format=xml"/>
        </outline>
      </body>
    </opml>
    "#);
}

#[test]
fn opml_round_trip() {
    let authors = authors();
    let parsed = parse_opml(&write_opml("round trip", &authors)).unwrap();
    let expected: Vec<OpmlFeed> = authors
        .iter()
        .flat_map(|author| {
            author
                .feeds
                .iter()
                .map(|feed| opml_feed(None, feed, None, Some(author.name)))
        })
        .collect();
    assert_eq!(parsed, expected);

    // And a reader's export, regrouped by category and written back, reads back the same feeds.
    let imported = parse_opml(READER_EXPORT).unwrap();
    let mut by_category: Vec<(&str, Vec<&str>)> = Vec::new();
    for feed in &imported {
        let category = feed.category.as_deref().unwrap_or("Unsorted");
        match by_category.iter_mut().find(|(name, _)| *name == category) {
            Some((_, feeds)) => feeds.push(&feed.xml_url),
            None => by_category.push((category, vec![&feed.xml_url])),
        }
    }
    let regrouped: Vec<OpmlAuthor<'_>> = by_category
        .into_iter()
        .map(|(name, feeds)| OpmlAuthor { name, feeds })
        .collect();
    let reread = parse_opml(&write_opml("again", &regrouped)).unwrap();
    let urls = |feeds: &[OpmlFeed]| {
        let mut urls: Vec<String> = feeds.iter().map(|feed| feed.xml_url.clone()).collect();
        urls.sort();
        urls
    };
    assert_eq!(urls(&reread), urls(&imported));
}

#[test]
fn non_opml_is_a_clear_error() {
    let err =
        parse_opml(&String::from_utf8(fixture("inessential-home.html")).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("not OPML: the root element is `<html>`"),
        "{err}"
    );
    let feed = String::from_utf8(fixture("daringfireball.atom.xml")).unwrap();
    let err = parse_opml(&feed).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("not OPML: the root element is `<feed>`"),
        "{err}"
    );
}
