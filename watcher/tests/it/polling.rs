//! polling.rs: baseline, new articles, conditional GET across restarts, broken sources, body cap.

use watcher::poll::PollOutcome;

use crate::helpers::*;

const MEDIUM: &str = "medium-lizmarley.rss.xml";

#[tokio::test]
async fn baseline_then_one_new_article_gives_exactly_one_delivery() {
    let t = spawn_one_author("Liz Marley", MEDIUM).await;
    let (feeds, rx, cfg) = (&t.feeds, &t.rx, &t.cfg);

    let first = pass(cfg).await;
    assert_eq!(
        first.polls[0].outcome,
        PollOutcome::Baseline { recorded: 10 }
    );
    assert!(first.deliveries.is_empty());
    assert!(rx.received().is_empty(), "the first run triggers nothing");

    let link = "https://medium.com/@lizmarley/a-new-article-0123?utm_source=rss&source=rss";
    t.publish(link, "A new article");
    let second = pass(cfg).await;
    assert!(second.problems().is_empty(), "{:?}", second.problems());
    assert_eq!(second.deliveries.len(), 1);
    let d = &second.deliveries[0];
    // Medium's `source` goes too (README "Links and identity").
    let canonical = "https://medium.com/@lizmarley/a-new-article-0123";
    assert_eq!(config_links(&d.config_path), [canonical]);
    let name = d.config_path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("digital_data_etl_liz_marley_"), "{name}");
    assert!(
        name.ends_with(&format!("_{}.yaml", &d.batch_id[..12])),
        "{name}"
    );

    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(rx.keys(), vec![d.batch_id.clone()]);
    let body = &got[0].body;
    assert_eq!(body["config"]["parameters"]["user_full_name"], "Liz Marley");
    assert_eq!(body["config"]["parameters"]["links"][0], canonical);
    assert_eq!(body["items"][0]["title"], "A new article");
    assert_eq!(body["items"][0]["source"], feeds.url(FEED_PATH));

    let third = pass(cfg).await;
    assert!(third.deliveries.is_empty());
    assert_eq!(rx.received().len(), 1, "a second pass delivers nothing");
}

#[tokio::test]
async fn restart_keeps_state_and_a_304_does_no_parse_work() {
    let t = spawn_one_author("Liz", MEDIUM).await;
    // Each pass opens and closes the store: a restart between passes.
    pass(&t.cfg).await;
    let again = pass(&t.cfg).await;
    assert_eq!(again.polls[0].outcome, PollOutcome::NotModified);
    let reqs = t.feeds.requests(FEED_PATH);
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].get("if-none-match").is_none());
    assert!(
        reqs[1].get("if-none-match").is_some(),
        "the stored ETag is sent after a restart"
    );
    let status = status(&t.cfg).await;
    assert_eq!(status.sources[0].items_known, 10);
    assert_eq!(
        status.sources[0].last_result.as_deref(),
        Some("not modified")
    );
}

#[tokio::test]
async fn broken_sources_fail_alone_and_show_in_status() {
    let scene = spawn_scene().await;
    let (feeds, rx) = (&scene.feeds, &scene.rx);
    let good = fixture("rubenerd-hugo.rss.xml");
    feeds.set_feed("/good", &good);
    feeds.set("/500", Route::Status(500));
    feeds.set_feed("/garbage", "\u{1}\u{2} this is not a feed <<<");
    feeds.set(
        "/html",
        Route::Feed {
            body: fixture("sixcolors-home.html"),
            content_type: "text/html".into(),
        },
    );
    let cfg = scene.config(&[
        scene.author("Broken", &["/500", "/garbage", "/html"]),
        scene.author("Ruben", &["/good"]),
    ]);
    pass(&cfg).await;
    feeds.set_feed(
        "/good",
        &publish_rss(&good, "https://rubenerd.com/new/", "New"),
    );
    let report = pass(&cfg).await;
    assert_eq!(report.deliveries.len(), 1, "the good source still delivers");
    assert_eq!(rx.received().len(), 1);
    let problems = report.problems();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/500") && p.contains("HTTP 500"))
    );
    assert!(problems.iter().all(|p| !p.contains('\n')), "one line each");

    let status = status(&cfg).await;
    let broken: Vec<_> = status
        .sources
        .iter()
        .filter(|s| s.author == "Broken")
        .collect();
    assert_eq!(broken.len(), 3);
    for s in broken {
        assert_eq!(s.consecutive_failures, 2, "{}", s.url);
        assert!(s.last_result.as_deref().unwrap().starts_with("error: "));
    }
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_the_cap() {
    let scene = spawn_scene().await;
    scene.feeds.set("/endless", Route::Endless);
    let cfg = scene.one_author_config("Endless", &["/endless"]);
    let report = pass(&cfg).await;
    let PollOutcome::Failed { error } = &report.polls[0].outcome else {
        panic!("{:?}", report.polls[0].outcome)
    };
    assert!(
        error.contains("larger than the 1048576-byte cap"),
        "{error}"
    );
}

#[tokio::test]
async fn a_feed_that_rewrites_all_its_guids_triggers_nothing() {
    let t = spawn_one_author("Liz", MEDIUM).await;
    pass(&t.cfg).await;
    let rewritten = t
        .original
        .replace("https://medium.com/p/", "https://medium.com/p/v2-");
    assert_ne!(rewritten, t.original, "the fixture's GUIDs were rewritten");
    t.feeds.set_feed(FEED_PATH, &rewritten);
    let report = pass(&t.cfg).await;
    assert!(report.deliveries.is_empty());
    assert_eq!(
        report.polls[0].outcome,
        PollOutcome::Polled {
            new: vec![],
            held: 0,
            updated: 0
        }
    );
}

#[tokio::test]
async fn backfill_delivers_what_the_first_poll_finds() {
    let t = spawn_one_author("Liz", MEDIUM).await;
    let w = open_watcher(&t.cfg);
    let report = w
        .once(
            watcher::watch::OnceOptions {
                backfill: true,
                dry_run: false,
                all: true,
            },
            |_, _, _| {},
        )
        .await
        .unwrap();
    assert_eq!(report.deliveries.len(), 1);
    assert_eq!(config_links(&report.deliveries[0].config_path).len(), 10);
}

#[tokio::test]
async fn dry_run_shows_the_batch_and_changes_nothing() {
    let t = spawn_one_author("Liz", MEDIUM).await;
    t.baseline_then_publish("https://medium.com/@l/new", "New")
        .await;
    let dry = watcher::watch::OnceOptions {
        backfill: false,
        dry_run: true,
        all: true,
    };
    let w = open_watcher(&t.cfg);
    let report = w.once(dry, |_, _, _| {}).await.unwrap();
    assert_eq!(report.would_deliver.len(), 1);
    assert_eq!(
        report.would_deliver[0].items[0].url,
        "https://medium.com/@l/new"
    );
    assert!(!report.would_deliver[0].config_path.exists());
    drop(w);
    assert!(t.rx.received().is_empty());
    // The real pass still finds the article: the dry run recorded nothing.
    let real = pass(&t.cfg).await;
    assert_eq!(real.deliveries.len(), 1);
}
