//! feedparser_suite.rs: Python feedparser's own test feeds (`tests/wellformed/` and
//! `tests/illformed/` of its 6.0.14 sdist, minus `sanitize/` and `cdf/`) read through the
//! watcher's feed reader (`read::feed::read`, what a poll calls), each with the HTTP headers its
//! `Header:` lines document. It prints the files rejected and which of the files' `Expect:`
//! statements about entries' link, id and title hold (entry counts beside them), and fails when a
//! well-formed file is rejected, when fewer than 95% of those expectations are met, or when any
//! file panics the reader. The `tests/entities/` files (one character reference each in the
//! feed's title) must all resolve.
//!
//! The sdist is downloaded (never vendored) by `scripts/feedparser-suite.sh`, which runs this test
//! with `FEEDPARSER_SUITE` pointing at the unpacked `tests/` directory.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;
use url::Url;
use watcher::fetch::{Fetched, Validators};
use watcher::parse::RawItem;
use watcher::work::{DEFAULT_PARSE_BUDGET, WorkBudget};

/// Where feedparser's test server served the files from: its expectations name this origin.
const ORIGIN: &str = "http://127.0.0.1:8097/";

/// The directories left out: HTML sanitizing is not the watcher's job, CDF died in the 2000s.
const SKIPPED_DIRS: &[&str] = &["sanitize", "cdf"];

/// Expectations the watcher differs from on purpose: (file under `tests/`, field, reason).
/// `entries` is the entry-count expectation; a file listed with it may also be rejected.
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "wellformed/base/cdf_item_abstract_xml_base.xml",
        "entries",
        "a CDF channel (the format `cdf/` holds) is no feed the watcher reads",
    ),
    (
        "wellformed/namespace/unknown-namespace.xml",
        "entries",
        "`<item>` is no Atom element: an Atom feed's entries are its `<entry>` elements",
    ),
    (
        "wellformed/base/http_entry_contributor_url_base_content_location.xml",
        "entries",
        "`<item>` is no Atom element: an Atom feed's entries are its `<entry>` elements",
    ),
    (
        "wellformed/base/http_entry_contributor_url_base_docuri.xml",
        "entries",
        "`<item>` is no Atom element: an Atom feed's entries are its `<entry>` elements",
    ),
    (
        "wellformed/base/http_entry_id_base_content_location.xml",
        "id",
        RELATIVE_ID,
    ),
    (
        "wellformed/base/http_entry_id_base_docuri.xml",
        "id",
        RELATIVE_ID,
    ),
    (
        "wellformed/rdf/rdf_item_rdf_about.xml",
        "id",
        "an RSS 1.0 item's `rdf:about` stands in for its link, not its GUID: RSS 1.0 items \
         were always identified by their link here, and a new GUID would change known items' ids",
    ),
    (
        "wellformed/rss/entity_in_doctype.xml",
        "id",
        "entities declared in a DTD are never expanded (a hostile DTD can blow up)",
    ),
    (
        "wellformed/rss/item_image_link_conflict.xml",
        "link",
        "hosts are lowercased on purpose (the URL standard's form; ids compare canonical URLs)",
    ),
    (
        "wellformed/base/http_entry_title_base64_base_content_location.xml",
        "title",
        TITLE_MARKUP,
    ),
    (
        "wellformed/base/http_entry_title_base64_base_docuri.xml",
        "title",
        TITLE_MARKUP,
    ),
    (
        "wellformed/base/http_entry_title_base_content_location.xml",
        "title",
        TITLE_MARKUP,
    ),
    (
        "wellformed/base/http_entry_title_base_docuri.xml",
        "title",
        TITLE_MARKUP,
    ),
    (
        "wellformed/base/http_entry_title_inline_base_content_location.xml",
        "title",
        TITLE_MARKUP,
    ),
    (
        "wellformed/base/http_entry_title_inline_base_docuri.xml",
        "title",
        TITLE_MARKUP,
    ),
];

const RELATIVE_ID: &str = "an id is a name, kept as the feed gives it: resolving it against \
                           xml:base would change the ids of items already known";
const TITLE_MARKUP: &str = "titles keep their markup as the feed gives it: feedparser rewrites \
                            relative URLs inside it, the watcher does not touch markup";

#[test]
#[ignore = "needs feedparser's sdist: run scripts/feedparser-suite.sh"]
fn feedparser_suite() {
    let root = PathBuf::from(
        std::env::var_os("FEEDPARSER_SUITE")
            .expect("FEEDPARSER_SUITE names feedparser's tests/ dir (scripts/feedparser-suite.sh)"),
    );
    let mut files = Vec::new();
    for dir in ["wellformed", "illformed"] {
        collect(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(
        files.len() > 900,
        "only {} files under {root:?}",
        files.len()
    );

    let mut tally = Tally::default();
    for path in &files {
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let body = std::fs::read(path).unwrap();
        let case = Case::parse(&body);
        let outcome = std::panic::catch_unwind(|| read(&name, &body, &case.headers));
        tally.record(&name, &case, outcome);
    }
    tally.report();

    assert!(tally.panicked.is_empty(), "files panicked the reader");
    assert!(
        tally.rejected_wellformed() == 0,
        "well-formed files rejected"
    );
    let (met, counted) = tally.fields;
    assert!(
        met * 100 >= counted * 95,
        "link/id/title expectations met: {met} of {counted}, below 95%"
    );

    // `tests/entities/`: one named or numeric character reference per file, in the feed's
    // title. Every one resolves (named ones from HTML's fixed table, which holds RSS 0.91's).
    let (met, counted, missed) = entities(&root.join("entities"));
    println!("entity expectations (feed titles in entities/) met: {met} of {counted}");
    for line in &missed {
        println!("  missed {line}");
    }
    assert!(counted > 200 && missed.is_empty(), "entities not resolved");
}

/// The feed-title expectations of `dir`'s files against the parse path's feed title:
/// (met, counted, the misses).
fn entities(dir: &Path) -> (usize, usize, Vec<String>) {
    let (mut met, mut counted, mut missed) = (0, 0, Vec::new());
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    for path in files {
        let body = std::fs::read(&path).unwrap();
        let case = Case::parse(&body);
        let Some(want) = top_level(&case.line, " and ")
            .into_iter()
            .find_map(|clause| {
                let (left, right) = clause.split_once("==")?;
                (left.trim() == "feed['title']").then(|| python_str(right.trim()))?
            })
        else {
            continue;
        };
        counted += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let base = Url::parse(ORIGIN).unwrap();
        let got = watcher::parse::parse_feed(&body, None, &base)
            .ok()
            .and_then(|feed| feed.title);
        if got.as_deref() == Some(want.trim()) {
            met += 1;
        } else {
            missed.push(format!("entities/{name}: title {got:?}, expected {want:?}"));
        }
    }
    (met, counted, missed)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy();
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                collect(&path, files);
            }
        } else if path.extension().is_some_and(|e| e == "xml") {
            files.push(path);
        }
    }
}

/// The watcher's reader on one file, as a poll of `ORIGIN/tests/<name>` answered with the
/// file's documented headers.
fn read(name: &str, body: &[u8], headers: &HeaderMap) -> Result<Vec<RawItem>, String> {
    let fetched = Fetched {
        status: StatusCode::OK,
        final_url: Url::parse(ORIGIN)
            .unwrap()
            .join(&format!("tests/{name}"))
            .unwrap(),
        content_type: headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        validators: Validators::default(),
        headers: headers.clone(),
        body: Bytes::copy_from_slice(body),
    };
    let budget = WorkBudget::new(DEFAULT_PARSE_BUDGET, CancellationToken::new());
    watcher::read::feed::read(fetched, &budget)
        .map(|read| read.items)
        .map_err(|err| {
            let mut chain = err.to_string();
            let mut cause = std::error::Error::source(&err);
            while let Some(c) = cause {
                chain.push_str(&format!(": {c}"));
                cause = c.source();
            }
            chain
        })
}

/// A test file's documented headers and its expectations.
struct Case {
    headers: HeaderMap,
    expects: Vec<Expect>,
    /// The whole `Expect:` line, for the report.
    line: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// `entries[i][field] == value`, field one of link, id (or guid), title.
    Field {
        entry: usize,
        field: &'static str,
        value: String,
    },
    /// At least this many entries: feedparser found `entries[n - 1]`, which the line names.
    Entries(usize),
}

impl Case {
    fn parse(body: &[u8]) -> Case {
        let text = String::from_utf8_lossy(body);
        let mut headers = HeaderMap::new();
        let mut line = String::new();
        for l in text.lines() {
            if let Some(header) = l.strip_prefix("Header:") {
                if let Some((name, value)) = header.trim().split_once(':') {
                    let (Ok(name), Ok(value)) = (
                        HeaderName::try_from(name.trim()),
                        HeaderValue::try_from(value.trim()),
                    ) else {
                        continue;
                    };
                    headers.append(name, value);
                }
            } else if let Some(expect) = l.trim_start().strip_prefix("Expect:")
                && line.is_empty()
            {
                line = expect.trim().to_owned();
            }
        }
        let mut expects: Vec<Expect> = top_level(&line, " and ")
            .into_iter()
            .flat_map(|clause| clause_expects(clause.trim()))
            .collect();
        let entries = line
            .match_indices("entries[")
            .filter_map(|(at, key)| {
                let rest = &line[at + key.len()..];
                rest[..rest.find(']')?].parse::<usize>().ok()
            })
            .max();
        if let Some(last) = entries {
            expects.push(Expect::Entries(last + 1));
        }
        Case {
            headers,
            expects,
            line,
        }
    }
}

/// `text` split at `sep` where it is outside string literals and brackets.
fn top_level<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    let bytes = text.as_bytes();
    let (mut parts, mut start, mut depth, mut quote) = (Vec::new(), 0, 0i32, None);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b"([{".contains(&b) => depth += 1,
            None if b")]}".contains(&b) => depth -= 1,
            None if depth == 0 && text[i..].starts_with(sep) => {
                parts.push(&text[start..i]);
                i += sep.len();
                start = i;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

enum Operand {
    Field(usize, &'static str),
    Str(String),
}

/// The expectations one `and`-clause states: a chain `a == b == ...` of entry fields and string
/// literals; anything else states none we check.
fn clause_expects(clause: &str) -> Vec<Expect> {
    let mut operands = Vec::new();
    for operand in top_level(clause, "==") {
        let operand = operand.trim();
        let parsed = if let Some(s) = python_str(operand) {
            Operand::Str(s)
        } else if let Some((entry, field)) = entry_field(operand) {
            Operand::Field(entry, field)
        } else {
            return Vec::new();
        };
        operands.push(parsed);
    }
    let Some(value) = operands.iter().find_map(|o| match o {
        Operand::Str(s) => Some(s.clone()),
        Operand::Field(..) => None,
    }) else {
        return Vec::new();
    };
    operands
        .iter()
        .filter_map(|o| match o {
            Operand::Field(entry, field) => Some(Expect::Field {
                entry: *entry,
                field,
                value: value.clone(),
            }),
            Operand::Str(_) => None,
        })
        .collect()
}

/// `entries[i]['link' | 'id' | 'guid' | 'title']` (a guid is feedparser's name for the id), or
/// `entries[i].link` and so on.
fn entry_field(operand: &str) -> Option<(usize, &'static str)> {
    let rest = operand.strip_prefix("entries[")?;
    let (index, rest) = rest.split_once(']')?;
    // `entries[0]['link']`, or the attribute form `entries[0].link`.
    let key = match rest.strip_prefix('.') {
        Some(attribute) => attribute.to_owned(),
        None => python_str(rest.strip_prefix('[')?.strip_suffix(']')?)?,
    };
    let field = match key.as_str() {
        "link" => "link",
        "id" | "guid" => "id",
        "title" => "title",
        _ => return None,
    };
    Some((index.parse().ok()?, field))
}

/// A Python string literal (`'..'`, `".."`, optionally `u`-prefixed) with its escapes decoded.
fn python_str(operand: &str) -> Option<String> {
    let operand = operand.strip_prefix('u').unwrap_or(operand);
    let quote = operand.chars().next().filter(|q| *q == '\'' || *q == '"')?;
    let inner = operand.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next()?;
        let hex = |n: usize, chars: &mut std::str::Chars<'_>| {
            let digits: String = chars.by_ref().take(n).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
        };
        out.push(match escaped {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'x' => hex(2, &mut chars)?,
            'u' => hex(4, &mut chars)?,
            'U' => hex(8, &mut chars)?,
            other => other,
        });
    }
    Some(out)
}

/// What the run found.
#[derive(Default)]
struct Tally {
    files: usize,
    /// (file, error) of every file the reader refused.
    rejected: Vec<(String, String)>,
    panicked: Vec<String>,
    /// (met, counted) link/id/title expectations, deliberate differences left out.
    fields: (usize, usize),
    /// (met, counted) entry-count expectations (files where feedparser found entries).
    counts: (usize, usize),
    /// Per field: (met, counted).
    per_field: std::collections::BTreeMap<&'static str, (usize, usize)>,
    missed: Vec<String>,
    deliberate: Vec<String>,
}

impl Tally {
    fn record(
        &mut self,
        name: &str,
        case: &Case,
        outcome: std::thread::Result<Result<Vec<RawItem>, String>>,
    ) {
        self.files += 1;
        let items = match outcome {
            Err(_) => {
                self.panicked.push(name.to_owned());
                None
            }
            Ok(Err(error)) => {
                self.rejected.push((name.to_owned(), error));
                None
            }
            Ok(Ok(items)) => Some(items),
        };
        for expect in &case.expects {
            match expect {
                Expect::Entries(n) => {
                    if let Some(reason) = deliberate(name, "entries") {
                        let got = items.as_ref().map(Vec::len);
                        if got < Some(*n) {
                            self.deliberate.push(format!(
                                "{name}: {} entries, expected at least {n} ({reason})",
                                show(got)
                            ));
                        }
                        continue;
                    }
                    self.counts.1 += 1;
                    let got = items.as_ref().map(Vec::len);
                    if got >= Some(*n) {
                        self.counts.0 += 1;
                    } else {
                        self.missed.push(format!(
                            "{name}: {} entries, expected at least {n}",
                            show(got)
                        ));
                    }
                }
                Expect::Field {
                    entry,
                    field,
                    value,
                } => {
                    let got = items
                        .as_ref()
                        .and_then(|items| items.get(*entry))
                        .and_then(|item| match *field {
                            "link" => item.link.as_ref().map(|l| l.as_str().to_owned()),
                            "id" => item.guid.clone(),
                            _ => item.title.clone(),
                        });
                    let met = got.as_deref().map(str::trim) == Some(value.trim());
                    let line = format!(
                        "{name}: entries[{entry}] {field} {:?}, expected {value:?}",
                        got.as_deref().unwrap_or("(none)")
                    );
                    if let Some(reason) = deliberate(name, field) {
                        if !met {
                            self.deliberate.push(format!("{line} ({reason})"));
                        }
                        continue;
                    }
                    let tally = self.per_field.entry(field).or_default();
                    tally.1 += 1;
                    self.fields.1 += 1;
                    if met {
                        tally.0 += 1;
                        self.fields.0 += 1;
                    } else {
                        self.missed.push(line);
                    }
                }
            }
        }
        if case.line.is_empty() {
            self.missed.push(format!("{name}: no Expect line"));
        }
    }

    /// Well-formed files rejected, deliberate differences aside.
    fn rejected_wellformed(&self) -> usize {
        self.rejected
            .iter()
            .filter(|(name, _)| name.starts_with("wellformed"))
            .filter(|(name, _)| deliberate(name, "entries").is_none())
            .count()
    }

    fn report(&self) {
        println!(
            "feedparser suite: {} files (sanitize/ and cdf/ left out)",
            self.files
        );
        println!(
            "rejected: {} well-formed (deliberate differences aside), {} in all; panicked: {}",
            self.rejected_wellformed(),
            self.rejected.len(),
            self.panicked.len()
        );
        for (name, error) in &self.rejected {
            println!("  rejected {name}: {error}");
        }
        for name in &self.panicked {
            println!("  panicked {name}");
        }
        let (met, counted) = self.fields;
        println!(
            "link/id/title expectations met: {met} of {counted} ({:.1}%){}",
            percent(met, counted),
            self.per_field
                .iter()
                .map(|(field, (m, c))| format!(" {field} {m}/{c}"))
                .collect::<String>()
        );
        println!(
            "entry-count expectations (entries feedparser found) met: {} of {}",
            self.counts.0, self.counts.1
        );
        for line in &self.missed {
            println!("  missed {line}");
        }
        println!("deliberate differences: {}", self.deliberate.len());
        for line in &self.deliberate {
            println!("  deliberate {line}");
        }
    }
}

fn deliberate(name: &str, field: &str) -> Option<&'static str> {
    DELIBERATE
        .iter()
        .find(|(file, f, _)| *file == name && *f == field)
        .map(|(.., reason)| *reason)
}

fn show(n: Option<usize>) -> String {
    n.map_or("rejected, no".into(), |n| n.to_string())
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
