//! corpus.rs: parses every feed of the real-world corpus in `testdata/corpus/` and checks the item
//! count against Python feedparser's (the `entries_feedparser` column of the manifest).
//!
//! The fixtures are byte-for-byte copies of `../shared/corpus/public` (checked against the
//! manifest's sha256, since encodings and BOMs are the point); the manifest rows are copied
//! unchanged. HTML and sitemap fixtures are kept for the discovery code but not tested here.
//! Run the throughput measurement with
//! `cargo test --release -p watcher --test corpus -- --ignored --nocapture`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;
use watcher::parse::{ParsedFeed, parse_feed};

/// feedparser can't read JSON Feed (the manifest shows 0), so these counts come from reading each
/// file: the length of its `items` array (which the manifest's notes also state as `items=N`).
const JSON_FEED_ITEMS: &[(&str, usize)] = &[
    ("public/cowboyprogrammer-hugo.jsonfeed.json", 10),
    ("public/inessential.jsonfeed.json", 20),
    ("public/journal-3960-jsonfeed11.json", 20),
    ("public/leancrew-allthis.jsonfeed.json", 12),
    ("public/lukedorny-jsonfeed11.json", 30),
    ("public/pxlnv-jsonfeed.json", 20),
];

/// Files where our count differs from feedparser's on purpose; each has its own test below.
const EXCEPTIONS: &[(&str, usize, &str)] = &[(
    "public/pcmag-illegally-nested.rss.xml",
    10,
    "feedparser also counts the 10 empty `<item />` nested inside the real items \
     (see `pcmag_illegally_nested_counts_only_real_items`)",
)];

struct Row {
    file: String,
    format: String,
    feedparser: usize,
    sha256: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus")
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, format, entries, sha256) = (
        column("file"),
        column("format"),
        column("entries_feedparser"),
        column("sha256"),
    );
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            Row {
                file: cells[file].to_owned(),
                format: cells[format].to_owned(),
                feedparser: cells[entries].parse().unwrap(),
                sha256: cells[sha256].to_owned(),
            }
        })
        .collect()
}

/// An error and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        write!(text, ": {cause}").unwrap();
        source = cause.source();
    }
    text
}

fn is_feed(row: &Row) -> bool {
    !matches!(row.format.as_str(), "html" | "sitemap")
}

fn read_fixture(row: &Row) -> Vec<u8> {
    let body = std::fs::read(corpus_dir().join(&row.file)).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        row.sha256,
        "{} differs from the corpus copy (line endings or encoding changed?)",
        row.file
    );
    body
}

fn base_url(file: &str) -> Url {
    Url::parse("https://feeds.example/")
        .unwrap()
        .join(file)
        .unwrap()
}

fn parse_fixture(file: &str) -> ParsedFeed {
    let row = manifest().into_iter().find(|row| row.file == file).unwrap();
    parse_feed(&read_fixture(&row), None, &base_url(file)).unwrap()
}

/// What we must produce for a row, and why.
fn expected(row: &Row) -> (usize, &'static str) {
    if let Some((_, count, why)) = EXCEPTIONS.iter().find(|(file, ..)| *file == row.file) {
        return (*count, why);
    }
    if row.format == "json" {
        let (_, count) = JSON_FEED_ITEMS
            .iter()
            .find(|(file, _)| *file == row.file)
            .unwrap_or_else(|| panic!("{}: add its item count to JSON_FEED_ITEMS", row.file));
        return (*count, "items in the file");
    }
    (row.feedparser, "feedparser")
}

#[test]
fn every_feed_yields_as_many_items_as_feedparser() {
    let mut mismatches = String::new();
    let mut checked = 0;
    for row in manifest().iter().filter(|row| is_feed(row)) {
        let body = read_fixture(row);
        let (want, why) = expected(row);
        let got = parse_feed(&body, None, &base_url(&row.file));
        let problem = match &got {
            Ok(feed) if feed.items.len() == want => None,
            Ok(feed) => Some(format!("{} items", feed.items.len())),
            // A feed feedparser finds nothing in may also be one clear error for us.
            Err(_) if want == 0 => None,
            Err(err) => Some(format!("error: {}", chain(err))),
        };
        if let Some(problem) = problem {
            writeln!(
                mismatches,
                "{:<48} {:<7} want {:>3} ({why}), got {problem}",
                row.file, row.format, want
            )
            .unwrap();
        }
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} feeds in the manifest");
    assert!(
        mismatches.is_empty(),
        "item counts differ:\n{:<48} {:<7} expected / got\n{mismatches}",
        "file",
        "format"
    );
}

/// Every feed we parse keeps its text intact: no U+FFFD from a wrong charset (the fixtures cover
/// BOM, ISO-8859-1/-7/-9, windows-1251, GB2312, undeclared Latin-1 and a lying prolog) and, where
/// the feed has links, absolute http(s) ones.
#[test]
fn text_survives_charsets_and_links_are_absolute() {
    let mut problems = String::new();
    for row in manifest().iter().filter(|row| is_feed(row)) {
        let Ok(feed) = parse_feed(&read_fixture(row), None, &base_url(&row.file)) else {
            continue;
        };
        for (i, item) in feed.items.iter().enumerate() {
            let text = [&feed.title, &item.title, &item.content];
            if text
                .iter()
                .any(|t| t.as_deref().is_some_and(|t| t.contains('\u{fffd}')))
            {
                writeln!(problems, "{} item {i}: replacement character", row.file).unwrap();
            }
            let bad_link = item
                .link
                .as_ref()
                .filter(|link| !matches!(link.scheme(), "http" | "https") || link.host().is_none());
            if let Some(link) = bad_link {
                writeln!(problems, "{} item {i}: link {link}", row.file).unwrap();
            }
        }
    }
    assert!(problems.is_empty(), "{problems}");
}

/// A body cut off anywhere (a dropped connection, a body cap) gives an error or fewer items, never
/// a panic: cut every feed at 24 points, some inside multi-byte characters and tags.
#[test]
fn truncated_bodies_never_panic() {
    for row in manifest().iter().filter(|row| is_feed(row)) {
        let body = read_fixture(row);
        let url = base_url(&row.file);
        for cut in (1..24).map(|k| body.len() * k / 24 + k % 3) {
            let _ = parse_feed(&body[..cut.min(body.len())], None, &url);
        }
    }
}

#[test]
fn legacy_charsets_decode_to_the_right_text() {
    let title = |file: &str, i: usize| parse_fixture(file).items[i].title.clone().unwrap();
    // windows-1251 declared in the prolog (and an RSS 2.0 namespace feed-rs doesn't know).
    assert!(
        title("public/ru-windows1251.rss.xml", 0)
            .chars()
            .any(|c| matches!(c, 'а'..='я'))
    );
    // Latin-1 bytes, nothing declared.
    let feed = parse_fixture("public/cerclepsy-undeclared-latin1.rss.xml");
    assert!(
        feed.items
            .iter()
            .any(|i| i.title.as_deref().unwrap_or("").contains('é'))
    );
    // The prolog says ISO-8859-1 but the bytes are UTF-8.
    let feed = parse_fixture("public/incorrect-prolog-latin1-but-utf8.atom.xml");
    assert_eq!(feed.title.as_deref(), Some("테스트 피드"));
    assert_eq!(feed.items[0].title.as_deref(), Some("Café"));
}

#[test]
fn wrapped_and_rss090_feeds_keep_their_fields() {
    let feed = parse_fixture("public/atom-wrapped-in-xhtml.xml");
    assert_eq!(feed.title.as_deref(), Some("Avian’s Blog"));
    let first = &feed.items[0];
    assert_eq!(
        first.guid.as_deref(),
        Some("http://www.tablix.org/~avian/blog/archives/2014/07/down_time/")
    );
    assert_eq!(first.link.as_ref().map(Url::as_str), first.guid.as_deref());
    assert!(first.published.is_some());

    for file in [
        "public/heise-online-rss090.rdf.xml",
        "public/mozilla-rss090.rdf.xml",
    ] {
        let feed = parse_fixture(file);
        assert!(
            feed.items
                .iter()
                .all(|i| i.title.is_some() && i.link.is_some() && i.guid.is_none()),
            "{file}: RSS 0.90 items have a title and a link, and no guid"
        );
    }
}

/// The exception: PCMag's feed has 10 real `<item>`s, and inside each one, illegally, an empty
/// `<item />`. feedparser's flat SAX handler starts a new entry at every `<item>`, so it reports
/// 20 entries of which 10 are empty (no title, link, guid, date or content). Those are not articles:
/// as items they would have no identity but a hash of nothing, all alike. We report the 10 real
/// ones, complete. (A nested item that has content of its own is moved out and counted; see the
/// `repair` unit tests.)
#[test]
fn pcmag_illegally_nested_counts_only_real_items() {
    let file = "public/pcmag-illegally-nested.rss.xml";
    let raw = String::from_utf8(std::fs::read(corpus_dir().join(file)).unwrap()).unwrap();
    assert_eq!(raw.matches("<item>").count(), 10);
    assert_eq!(raw.matches("<item />").count(), 10);

    let feed = parse_fixture(file);
    assert_eq!(feed.items.len(), 10);
    for item in &feed.items {
        assert!(item.title.is_some() && item.link.is_some() && item.content.is_some());
        assert!(item.published.is_some());
    }
}

/// Prints one line per feed: our count next to feedparser's, and how many items carry a GUID, a
/// link and a date. With `WATCHER_TEST_LOG=debug` the charset decision and repairs are logged.
#[test]
#[ignore = "report: run with --ignored --nocapture"]
fn report() {
    if let Ok(filter) = std::env::var("WATCHER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    println!(
        "{:<48} {:<7} {:>10} {:>4} {:>5} {:>5} {:>5}",
        "file", "format", "feedparser", "ours", "guid", "link", "date"
    );
    for row in manifest().iter().filter(|row| is_feed(row)) {
        let body = read_fixture(row);
        match parse_feed(&body, None, &base_url(&row.file)) {
            Ok(feed) => {
                let count = |f: fn(&watcher::parse::RawItem) -> bool| {
                    feed.items.iter().filter(|i| f(i)).count()
                };
                println!(
                    "{:<48} {:<7} {:>10} {:>4} {:>5} {:>5} {:>5}",
                    row.file,
                    row.format,
                    row.feedparser,
                    feed.items.len(),
                    count(|i| i.guid.is_some()),
                    count(|i| i.link.is_some()),
                    count(|i| i.published.is_some() || i.updated.is_some()),
                );
            }
            Err(err) => println!(
                "{:<48} {:<7} {:>10} error: {}",
                row.file,
                row.format,
                row.feedparser,
                chain(&err)
            ),
        }
    }
}

/// Rough parse throughput over every feed fixture (no timing assertion).
#[test]
#[ignore = "measurement: run in release with --ignored --nocapture"]
fn throughput() {
    let bodies: Vec<(Vec<u8>, Url)> = manifest()
        .iter()
        .filter(|row| is_feed(row))
        .map(|row| (read_fixture(row), base_url(&row.file)))
        .collect();
    let bytes: usize = bodies.iter().map(|(body, _)| body.len()).sum();
    let rounds = 20;
    let started = std::time::Instant::now();
    let mut items = 0;
    for _ in 0..rounds {
        for (body, url) in &bodies {
            items += parse_feed(body, None, url).map_or(0, |feed| feed.items.len());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "parsed {} feeds ({:.1} MB) x{rounds} in {elapsed:.2}s: {:.1} MB/s, {:.0} feeds/s, {} items/round",
        bodies.len(),
        bytes as f64 / 1e6,
        (bytes * rounds) as f64 / 1e6 / elapsed,
        (bodies.len() * rounds) as f64 / elapsed,
        items / rounds
    );
}

/// Inputs the fuzzer (`fuzz/`, target `feed`) crashed on, kept in `testdata/fuzz/feed/`: each
/// parses without a panic (overflow checks are on in tests).
#[test]
fn fuzz_crashes_parse_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz/feed");
    let base = Url::parse("https://feeds.example.com/blog/feed.xml").unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let _ = parse_feed(&std::fs::read(&path).unwrap(), None, &base);
    }
}

/// feed-rs's XML reader (quick-xml 0.42) panics in `set_encoding` on this body (found by the
/// fuzzer): the panic stays inside the parser and the body fails as a malformed feed, in one
/// line, instead of taking its poll down.
#[test]
fn declarations_the_xml_reader_would_panic_on_are_neutralized() {
    // Found by the `feed` fuzz target: a second XML declaration mid-document (the second input:
    // after an attribute value holding `<![CDATA[`), and, built from them, a long or late first
    // one made quick-xml panic in `set_encoding()`.
    let fuzzed = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/fuzz/feed")
            .join(name);
        let body = std::fs::read(&path).unwrap();
        // The fuzz target's header line is the HTTP content type.
        match body.strip_prefix(b"content-type: ".as_slice()) {
            Some(rest) => {
                let end = rest.iter().position(|&b| b == b'\n').unwrap();
                let content_type = String::from_utf8(rest[..end].to_vec()).unwrap();
                (Some(content_type), rest[end + 1..].to_vec())
            }
            None => (None, body),
        }
    };
    let base = Url::parse("https://feeds.example.com/blog/feed.xml").unwrap();
    let rss = |prolog: &str| {
        format!(
            "{prolog}<rss version=\"2.0\"><channel><title>t</title><item><title>caf\u{e9}</title>\
             <link>https://example.com/a</link></item></channel></rss>"
        )
        .into_bytes()
    };
    let pasted = rss("<?xml version=\"1.0\"?>\n<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>");
    let late = rss(&format!(
        "{}<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
        " ".repeat(100)
    ));
    let long = rss(&format!(
        "<?xml version=\"1.0\"{} encoding=\"ISO-8859-1\"?>",
        " ".repeat(100)
    ));
    let inputs = [
        ("fuzzed", fuzzed("quick-xml-set-encoding.xml")),
        ("fuzzed", fuzzed("quick-xml-set-encoding-2.xml")),
        ("fuzzed", fuzzed("declaration-scan-char-boundary.xml")),
        ("pasted", (None, pasted)),
        ("late", (None, late)),
        ("long", (None, long)),
    ];
    for (name, (content_type, body)) in inputs {
        match parse_feed(&body, content_type.as_deref(), &base) {
            Err(watcher::parse::ParseError::ParserPanicked { .. }) => {
                panic!("{name}: the XML reader panicked")
            }
            Err(err) => assert!(name == "fuzzed", "{name}: {err}"),
            Ok(feed) if name != "fuzzed" => {
                assert_eq!(feed.items.len(), 1, "{name}");
                assert_eq!(feed.items[0].title.as_deref(), Some("caf\u{e9}"), "{name}");
            }
            Ok(_) => {}
        }
    }
}

#[test]
fn an_author_beside_a_multibyte_delimiter_does_not_fail_the_feed() {
    // Found by the `feed` fuzz target: feed-rs 3.0.0 cut the name beside an e-mail address with
    // byte arithmetic and panicked inside a multi-byte character (fixed in vendor/feed-rs).
    let base = Url::parse("https://feeds.example.com/blog/feed.xml").unwrap();
    let fuzzed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/fuzz/feed/feed-rs-person-char-boundary.xml"),
    )
    .unwrap();
    // The fuzzed body is ill-formed further on: a malformed feed, not a panic.
    let result = parse_feed(&fuzzed, None, &base);
    assert!(
        !matches!(
            result,
            Err(watcher::parse::ParseError::ParserPanicked { .. })
        ),
        "{result:?}"
    );
    for author in [
        "Ada «ada@example.com»",
        "ada@example.com—Ada",
        "edi¡tor@example.com",
    ] {
        let rss = format!(
            "<rss version=\"2.0\"><channel><title>t</title><managingEditor>{author}</managingEditor>\
             <item><title>a</title><author>{author}</author><link>https://example.com/a</link></item>\
             </channel></rss>"
        );
        let feed = parse_feed(rss.as_bytes(), None, &base).expect(author);
        assert_eq!(feed.items.len(), 1, "{author}");
        let json = format!(
            r#"{{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[{{"id":"1","url":"https://example.com/a","authors":[{{"name":"{author}"}}]}}]}}"#
        );
        let feed = parse_feed(json.as_bytes(), Some("application/feed+json"), &base).expect(author);
        assert_eq!(feed.items.len(), 1, "{author}");
    }
}
