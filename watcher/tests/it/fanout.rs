//! fanout.rs: what one poll may fetch beyond its source, end to end: every request (redirect
//! hops, sitemap children, discovery probes) counts against the per-host limit of the host it
//! goes to, and autodiscovery tries at most 3 candidates, same host first, each once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use watcher::poll::PollOutcome;

use crate::helpers::*;

/// What a path answers, after its delay.
#[derive(Clone)]
enum Answer {
    Xml(String),
    Html(String),
    Redirect(String),
}

#[derive(Default)]
struct Seen {
    routes: HashMap<String, (Answer, Duration)>,
    /// (host, path) of every request, in order.
    log: Vec<(String, String)>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

/// One router served on two loopback hosts, 127.0.0.1 and 127.0.0.2 (two hosts to the watcher),
/// counting requests in flight per host.
#[derive(Clone)]
struct TwoHosts {
    ports: [u16; 2],
    seen: Arc<Mutex<Seen>>,
}

impl TwoHosts {
    async fn spawn() -> TwoHosts {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut ports = [0; 2];
        for (i, ip) in ["127.0.0.1", "127.0.0.2"].into_iter().enumerate() {
            let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
            ports[i] = listener.local_addr().unwrap().port();
            let app = axum::Router::new()
                .fallback(answer)
                .with_state(seen.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        TwoHosts { ports, seen }
    }

    /// The URL of `path` on host `n` (1 or 2).
    fn url(&self, n: usize, path: &str) -> String {
        format!("http://127.0.0.{n}:{}{path}", self.ports[n - 1])
    }

    fn set(&self, path: &str, answer: Answer, delay: Duration) {
        self.seen
            .lock()
            .unwrap()
            .routes
            .insert(path.into(), (answer, delay));
    }

    fn max_in_flight(&self, host: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.max_in_flight.get(host).copied().unwrap_or(0)
    }

    /// Paths requested, in order.
    fn paths(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.log.iter().map(|(_, p)| p.clone()).collect()
    }
}

async fn answer(State(seen): State<Arc<Mutex<Seen>>>, req: Request) -> Response {
    let host = (req.headers().get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(':').next())
        .unwrap_or_default()
        .to_string();
    let path = req.uri().path().to_string();
    let route = {
        let mut s = seen.lock().unwrap();
        s.log.push((host.clone(), path.clone()));
        let n = {
            let n = s.in_flight.entry(host.clone()).or_default();
            *n += 1;
            *n
        };
        let max = s.max_in_flight.entry(host.clone()).or_default();
        *max = (*max).max(n);
        s.routes.get(&path).cloned()
    };
    if let Some((_, delay)) = &route {
        tokio::time::sleep(*delay).await;
    }
    *seen.lock().unwrap().in_flight.get_mut(&host).unwrap() -= 1;
    match route {
        None => StatusCode::NOT_FOUND.into_response(),
        Some((Answer::Xml(body), _)) => {
            ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
        }
        Some((Answer::Html(body), _)) => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
        }
        Some((Answer::Redirect(to), _)) => {
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
    }
}

/// watcher.toml in `dir` for one author whose sources are raw TOML lines, with `watcher` lines
/// added to `[watcher]`.
fn config(dir: &std::path::Path, watcher: &str, sources: &str) -> std::path::PathBuf {
    let cfg = write_config(dir, &[], "http://127.0.0.1:9/hook", "");
    let mut text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[watcher]\n", &format!("[watcher]\n{watcher}\n"));
    text.push_str(&format!(
        "\n[[authors]]\nname = \"Site Author\"\n{sources}\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

const RSS: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>One</title><link>https://example.org/one/</link><guid>one</guid></item>
</channel></rss>"#;

fn urlset(n: usize) -> String {
    format!(
        "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><url><loc>https://example.org/{n}/</loc></url></urlset>"
    )
}

#[tokio::test]
async fn redirect_hops_and_sitemap_children_count_against_the_per_host_limit() {
    let hosts = TwoHosts::spawn().await;
    let short = Duration::from_millis(300);
    // A sitemap index on host 1 whose children live on host 2.
    let index: String = (0..3)
        .map(|i| {
            format!(
                "<sitemap><loc>{}</loc></sitemap>",
                hosts.url(2, &format!("/c{i}.xml"))
            )
        })
        .collect();
    hosts.set(
        "/index.xml",
        Answer::Xml(format!(
            "<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">{index}</sitemapindex>"
        )),
        short,
    );
    for i in 0..3 {
        hosts.set(&format!("/c{i}.xml"), Answer::Xml(urlset(i)), short);
    }
    // A feed on host 2 that takes its time, and one on host 1 that redirects to host 2.
    hosts.set("/slow.xml", Answer::Xml(RSS.into()), Duration::from_secs(2));
    hosts.set(
        "/moved",
        Answer::Redirect(hosts.url(2, "/feed.xml")),
        Duration::ZERO,
    );
    hosts.set("/feed.xml", Answer::Xml(RSS.into()), short);

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "per_host = 1\nconcurrency = 8",
        &format!(
            "feeds = [\"{}\", \"{}\"]\nsitemaps = [\"{}\"]",
            hosts.url(2, "/slow.xml"),
            hosts.url(1, "/moved"),
            hosts.url(1, "/index.xml"),
        ),
    );
    let report = pass(&cfg).await;
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(report.polls.len(), 3);
    assert_eq!(
        hosts.max_in_flight("127.0.0.2"),
        1,
        "children, redirect targets and the source on host 2 are fetched one at a time"
    );
    assert_eq!(hosts.max_in_flight("127.0.0.1"), 1);
}

#[tokio::test]
async fn autodiscovery_tries_three_candidates_same_host_first_and_each_only_once() {
    let hosts = TwoHosts::spawn().await;
    let page = |links: &[String]| {
        let links: String = links
            .iter()
            .map(|l| format!("<link rel=\"alternate\" type=\"application/rss+xml\" href=\"{l}\">"))
            .collect();
        Answer::Html(format!("<html><head>{links}</head><body>hi</body></html>"))
    };
    let advertised = vec![
        hosts.url(2, "/elsewhere-1.xml"),
        "/a.xml".to_string(),
        hosts.url(2, "/elsewhere-2.xml"),
        "/b.xml".to_string(),
        "/c.xml".to_string(),
        "/d.xml".to_string(),
    ];
    hosts.set("/site/", page(&advertised), Duration::ZERO);
    // The candidates answer, but with pages, not feeds.
    for p in ["/a.xml", "/b.xml", "/c.xml", "/d.xml", "/elsewhere-1.xml"] {
        hosts.set(p, Answer::Html("<p>not a feed</p>".into()), Duration::ZERO);
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "",
        &format!("sites = [\"{}\"]", hosts.url(1, "/site/")),
    );

    let first = pass(&cfg).await;
    assert!(
        matches!(&first.polls[0].outcome, PollOutcome::Failed { error } if error.contains("no feed found")),
        "{:?}",
        first.polls[0].outcome
    );
    assert_eq!(hosts.paths(), ["/site/", "/a.xml", "/b.xml", "/c.xml"]);

    // Tried once: the next poll fetches the page only.
    pass(&cfg).await;
    assert_eq!(hosts.paths().len(), 5);
    assert_eq!(hosts.paths()[4], "/site/");

    // The page names a new candidate first: that one is tried, and it is the feed.
    hosts.set("/feed.xml", Answer::Xml(RSS.into()), Duration::ZERO);
    let mut newer = vec!["/feed.xml".to_string()];
    newer.extend(advertised);
    hosts.set("/site/", page(&newer), Duration::ZERO);
    let third = pass(&cfg).await;
    assert_eq!(
        third.polls[0].outcome,
        PollOutcome::Baseline { recorded: 1 }
    );
    assert_eq!(hosts.paths()[5..], ["/site/", "/feed.xml"]);
    let s = &status(&cfg).await.sources[0];
    assert_eq!(
        s.discovered_feed.as_deref(),
        Some(hosts.url(1, "/feed.xml").as_str())
    );
}
