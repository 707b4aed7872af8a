//! sites.rs: sources that are not feeds, end to end: a page read by CSS selector, sitemaps
//! (plain, index, gzip) and feed autodiscovery each turn a newly added article into a delivery.

use std::io::Write;

use crate::helpers::*;

/// A config in the scene with one author whose sources are given as raw TOML lines.
fn site_config(scene: &Scene, sources: &str) -> std::path::PathBuf {
    let path = scene.config(&[]);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Site Author\"\n{sources}\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn html(body: String) -> Route {
    Route::Feed {
        body,
        content_type: "text/html; charset=utf-8".into(),
    }
}

fn xml(body: String) -> Route {
    Route::Feed {
        body,
        content_type: "application/xml".into(),
    }
}

/// The one link of the one delivery the pass made.
fn delivered_link(report: &watcher::watch::PassReport) -> Vec<String> {
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(report.deliveries.len(), 1, "{:?}", report.deliveries);
    config_links(&report.deliveries[0].config_path)
}

#[tokio::test]
async fn a_page_read_by_css_selector_delivers_a_new_article() {
    let scene = spawn_scene().await;
    let feeds = &scene.feeds;
    let page = fixture("cowboyprogrammer-home.html");
    feeds.set("/", html(page.clone()));
    let cfg = site_config(
        &scene,
        &format!(
            "sites = [{{ url = \"{}\", selector = \"h1.article-title\" }}]",
            feeds.url("/")
        ),
    );
    let first = pass(&cfg).await;
    assert!(matches!(
        first.polls[0].outcome,
        watcher::poll::PollOutcome::Baseline { recorded } if recorded >= 5
    ));
    let at = page.find("<article").unwrap();
    let added = format!(
        "{}<article><a href=\"/2026/11/a-new-post/\"><h1 class=\"article-title\">A new post</h1></a></article>{}",
        &page[..at],
        &page[at..]
    );
    feeds.set("/", html(added));
    let links = delivered_link(&pass(&cfg).await);
    assert_eq!(links, [feeds.url("/2026/11/a-new-post/")]);
}

fn sitemap_with(extra_url: Option<&str>) -> String {
    let sitemap = fixture("oxrick-jekyll.sitemap.xml");
    match extra_url {
        None => sitemap,
        Some(u) => {
            let at = sitemap.find("<url>").unwrap();
            format!(
                "{}<url><loc>{u}</loc><lastmod>2026-11-25T07:00:00+00:00</lastmod></url>{}",
                &sitemap[..at],
                &sitemap[at..]
            )
        }
    }
}

#[tokio::test]
async fn a_plain_sitemap_delivers_a_new_url_matching_include() {
    let scene = spawn_scene().await;
    let feeds = &scene.feeds;
    feeds.set("/sitemap.xml", xml(sitemap_with(None)));
    let cfg = site_config(
        &scene,
        &format!(
            "sitemaps = [{{ url = \"{}\", include = \"/hack-the-box/\" }}]",
            feeds.url("/sitemap.xml")
        ),
    );
    let first = pass(&cfg).await;
    assert_eq!(
        first.polls[0].outcome,
        watcher::poll::PollOutcome::Baseline { recorded: 59 }
    );
    // A new page outside `include` and a new one inside it: only the second is delivered.
    let both = sitemap_with(Some("https://0xrick.github.io/hack-the-box/new-box/")).replacen(
        "<url>",
        "<url><loc>https://0xrick.github.io/about-me/</loc></url><url>",
        1,
    );
    feeds.set("/sitemap.xml", xml(both));
    assert_eq!(
        delivered_link(&pass(&cfg).await),
        ["https://0xrick.github.io/hack-the-box/new-box/"]
    );
}

#[tokio::test]
async fn a_sitemap_index_with_a_gzipped_child_delivers_a_new_url() {
    let scene = spawn_scene().await;
    let feeds = &scene.feeds;
    // The real Yoast index names four relative children; two are served, gzipped and plain.
    feeds.set(
        "/sitemap_index.xml",
        xml(fixture("yoast-sitemap-index.xml")),
    );
    let gz = |text: &str| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    feeds.set_bytes(
        "/post-sitemap.xml",
        gz(&sitemap_with(None)),
        "application/gzip",
    );
    feeds.set(
        "/page-sitemap.xml",
        xml("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><url><loc>https://example.org/about/</loc></url></urlset>".into()),
    );
    let cfg = site_config(
        &scene,
        &format!("sitemaps = [\"{}\"]", feeds.url("/sitemap_index.xml")),
    );
    let first = pass(&cfg).await;
    assert_eq!(
        first.polls[0].outcome,
        watcher::poll::PollOutcome::Baseline { recorded: 108 },
        "107 + 1 URLs; the two missing children are skipped"
    );
    feeds.set_bytes(
        "/post-sitemap.xml",
        gz(&sitemap_with(Some("https://0xrick.github.io/posts/fresh/"))),
        "application/gzip",
    );
    assert_eq!(
        delivered_link(&pass(&cfg).await),
        ["https://0xrick.github.io/posts/fresh/"]
    );
}

#[tokio::test]
async fn autodiscovery_finds_the_feed_remembers_it_and_delivers_a_new_article() {
    let scene = spawn_scene().await;
    let feeds = &scene.feeds;
    // A real page whose <link rel="alternate"> is made relative, so it points at this server.
    let page = fixture("inessential-home.html")
        .replace("http://inessential.com/xml/rss.xml", "/xml/rss.xml");
    feeds.set("/", html(page));
    let feed = fixture("medium-lizmarley.rss.xml");
    feeds.set_feed("/xml/rss.xml", &feed);
    // A second site has no <link>: the well-known /feed path answers.
    feeds.set(
        "/other/",
        html("<html><head><title>x</title></head><body>hi</body></html>".into()),
    );
    feeds.set_feed("/feed", &fixture("rubenerd-hugo.rss.xml"));
    let cfg = site_config(
        &scene,
        &format!(
            "sites = [\"{}\", \"{}\"]",
            feeds.url("/"),
            feeds.url("/other/")
        ),
    );
    let first = pass(&cfg).await;
    assert!(first.problems().is_empty(), "{:?}", first.problems());
    let status = status(&cfg).await;
    let discovered: Vec<_> = status
        .sources
        .iter()
        .map(|s| s.discovered_feed.clone().unwrap())
        .collect();
    assert!(
        discovered.contains(&feeds.url("/xml/rss.xml")),
        "{discovered:?}"
    );
    assert!(discovered.contains(&feeds.url("/feed")), "{discovered:?}");
    feeds.set_feed(
        "/xml/rss.xml",
        &publish_rss(
            &feed,
            "https://medium.com/@lizmarley/discovered",
            "Discovered",
        ),
    );
    let pages_before = feeds.times("/").len();
    assert_eq!(
        delivered_link(&pass(&cfg).await),
        ["https://medium.com/@lizmarley/discovered"]
    );
    assert_eq!(
        feeds.times("/").len(),
        pages_before,
        "the discovered feed is reused"
    );
}

#[tokio::test]
async fn a_site_without_any_feed_is_one_clear_error() {
    let scene = spawn_scene().await;
    let feeds = &scene.feeds;
    feeds.set("/", html("<html><body>no feed here</body></html>".into()));
    let cfg = site_config(&scene, &format!("sites = [\"{}\"]", feeds.url("/")));
    let problems = pass(&cfg).await.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("no feed found at"), "{}", problems[0]);
    assert!(problems[0].contains("hint:"), "{}", problems[0]);
}
