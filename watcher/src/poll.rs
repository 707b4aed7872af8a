//! poll.rs: one poll of one source, top to bottom: fetch (conditional GET) → read items (feed,
//! page by selector, discovered feed, sitemap) → identify → diff against the store → commit items,
//! staged deliveries, validators and the next poll time in one transaction.

use chrono::Utc;
use reqwest::StatusCode;
use tracing::{info, warn};
use url::Url;

use crate::config::{SourceConfig, SourceKind};
use crate::diff::diff;
use crate::fetch::{FetchError, FetchOutcome, Fetched, Fetcher, Validators, cache_lifetime};
use crate::identity::{Canonicalizer, IDENTITY_VERSION, Item, identify};
use crate::parse::{RawItem, parse_feed};
use crate::schedule::{self, Next, Policy};
use crate::sites;
use crate::store::{PollCommit, SourceState, StagedItem, Store, StoreError};

/// Child sitemaps read from one sitemap index.
const MAX_CHILD_SITEMAPS: usize = 50;

/// Per-poll switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollOptions {
    /// Treat a first poll's items as new instead of recording a baseline.
    pub backfill: bool,
    /// Stage content updates of known items too.
    pub trigger_on_update: bool,
    /// Report what would happen; write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    NotModified,
    Baseline {
        recorded: usize,
    },
    Polled {
        new: Vec<Item>,
        updated: usize,
    },
    /// 429/503 with Retry-After: not a failure.
    Throttled {
        retry_after: std::time::Duration,
    },
    /// 410 Gone: the source is stopped.
    Gone,
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone)]
pub struct PollReport {
    pub source: SourceConfig,
    pub outcome: PollOutcome,
    /// When to poll again, and why.
    pub next: Next,
}

/// Items read from a response.
struct Read {
    items: Vec<RawItem>,
    ttl: Option<(std::time::Duration, &'static str)>,
}

/// Polls `source` once and stores the result. A failure is reported in the outcome (and stored
/// in the source's state); only a store failure is an `Err`.
#[tracing::instrument(skip_all, fields(source = %source.url, author = %source.author))]
pub async fn poll_source(
    store: &Store,
    fetcher: &Fetcher,
    canon: &Canonicalizer,
    source: &SourceConfig,
    policy: &Policy,
    opts: PollOptions,
) -> Result<PollReport, StoreError> {
    let key = crate::store::source_key(&source.author, &source.url);
    let mut state = store.source(&key)?.unwrap_or_else(|| SourceState {
        author: source.author.clone(),
        url: source.url.clone(),
        identity_version: IDENTITY_VERSION,
        ..SourceState::default()
    });
    let now = Utc::now();
    state.last_poll = Some(now);
    let url = state.poll_url()?;

    let fetched = fetch_items(fetcher, source, &mut state, &url).await;
    let (outcome, sched) = match fetched {
        Err(e) => failure(source, &mut state, e),
        Ok((response_headers, None)) => {
            state.consecutive_failures = 0;
            state.last_error = None;
            state.last_success = Some(now);
            state.last_result = Some("not modified".into());
            let feed_ttl = state
                .feed_ttl_secs
                .map(|secs| (std::time::Duration::from_secs(secs), "feed ttl"));
            let ttl = [feed_ttl, cache_lifetime(&response_headers)]
                .into_iter()
                .flatten()
                .max_by_key(|(d, _)| *d);
            let adaptive = state.adaptive_secs.map(std::time::Duration::from_secs);
            (
                PollOutcome::NotModified,
                schedule::Outcome::Ok { ttl, adaptive },
            )
        }
        Ok((response_headers, Some((read, validators)))) => {
            state.consecutive_failures = 0;
            state.last_error = None;
            state.last_success = Some(now);
            state.etag = validators.etag;
            state.last_modified = validators.last_modified;
            state.feed_ttl_secs = read.ttl.map(|(d, _)| d.as_secs());
            let ttl = [read.ttl, cache_lifetime(&response_headers)]
                .into_iter()
                .flatten()
                .max_by_key(|(d, _)| *d);
            let dates: Vec<_> = read.items.iter().filter_map(|i| i.published).collect();
            let identified = identify(&read.items, state.identity_mode, canon);
            if identified.switched {
                warn!(
                    url = %source.url,
                    "more than 5% of this source's GUIDs are empty or repeated: identifying its items by canonical URL from now on"
                );
            }
            state.identity_mode = identified.mode;
            state.identity_version = IDENTITY_VERSION;
            let adaptive = schedule::adaptive_interval(&dates);
            state.adaptive_secs = adaptive.map(|d| d.as_secs());
            let sched = schedule::Outcome::Ok { ttl, adaptive };
            let next = schedule::next_wait(policy, &sched, Utc::now(), &mut rand::rng());
            return record(store, source, state, key, identified.items, next, opts).await;
        }
    };
    let next = schedule::next_wait(policy, &sched, Utc::now(), &mut rand::rng());
    set_next(&mut state, &next);
    if !opts.dry_run {
        // Only the source's bookkeeping changed: sled's background flush (every 500 ms) is
        // durable enough, and a 304 every few minutes for months costs no fsync.
        store.put_source(&key, &state).await?;
    }
    Ok(PollReport {
        source: source.clone(),
        outcome,
        next,
    })
}

fn set_next(state: &mut SourceState, next: &Next) {
    state.next_due = Some(Utc::now() + chrono::Duration::from_std(next.wait).unwrap_or_default());
    state.next_due_reason = Some(next.reason.clone());
}

/// What a fetch error means for the source: throttled, gone, or a failure that counts.
fn failure(
    source: &SourceConfig,
    state: &mut SourceState,
    e: FetchError,
) -> (PollOutcome, schedule::Outcome) {
    match e {
        FetchError::Status {
            status: StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(retry_after),
        } => {
            state.last_result = Some(format!(
                "throttled: Retry-After {}",
                humantime::format_duration(retry_after)
            ));
            info!(url = %source.url, ?retry_after, "throttled by the server");
            (
                PollOutcome::Throttled { retry_after },
                schedule::Outcome::Throttled { retry_after },
            )
        }
        FetchError::Status {
            status: StatusCode::GONE,
            ..
        } if source.kind != SourceKind::Discover || state.discovered_feed.is_none() => {
            state.gone = true;
            state.last_result =
                Some("gone (410): no longer polled; remove it from the config".into());
            warn!(url = %source.url, "source answered 410 Gone: it will not be polled again; remove it from the config or fix its URL");
            (PollOutcome::Gone, schedule::Outcome::Failed { failures: 0 })
        }
        e => {
            let error = e.to_string();
            if matches!(&e, FetchError::Status { status, .. } if *status == StatusCode::NOT_FOUND || *status == StatusCode::GONE)
                && state.discovered_feed.take().is_some()
            {
                info!(url = %source.url, "the discovered feed is gone: discovering again next time");
            }
            state.consecutive_failures += 1;
            state.last_error = Some(error.clone());
            state.last_result = Some(format!("error: {error}"));
            warn!(url = %source.url, failures = state.consecutive_failures, %error, "poll failed");
            let failures = state.consecutive_failures;
            (
                PollOutcome::Failed { error },
                schedule::Outcome::Failed { failures },
            )
        }
    }
}

/// Diffs `items` against the store and commits (baseline or new items) in one transaction.
async fn record(
    store: &Store,
    source: &SourceConfig,
    mut state: SourceState,
    key: String,
    items: Vec<Item>,
    next: Next,
    opts: PollOptions,
) -> Result<PollReport, StoreError> {
    let (known_ids, known_urls) = store.known_for(&key, &source.author, &items)?;
    let d = diff(&items, &known_ids, &known_urls);
    let baseline = !(state.baseline_done || opts.backfill || source.backfill);
    state.baseline_done = true;
    let record: Vec<Item> = d
        .new
        .iter()
        .chain(&d.aliases)
        .chain(&d.updated)
        .cloned()
        .collect();
    let mut stage: Vec<Item> = Vec::new();
    let outcome = if baseline {
        state.last_result = Some(format!("baseline: {} items recorded", record.len()));
        info!(url = %source.url, items = record.len(), "baseline: {} items recorded", record.len());
        PollOutcome::Baseline {
            recorded: record.len(),
        }
    } else {
        stage.extend(d.new.iter().cloned());
        if opts.trigger_on_update {
            stage.extend(d.updated.iter().cloned());
        }
        // The pipelines crawl links: an item without one is recorded, never delivered.
        let before = stage.len();
        stage.retain(|i| i.canonical_url.is_some());
        if stage.len() < before {
            warn!(url = %source.url, items = before - stage.len(), "new item(s) without a link: recorded, not delivered");
        }
        state.last_result = Some(format!(
            "ok: {} new, {} updated",
            d.new.len(),
            d.updated.len()
        ));
        if !d.new.is_empty() {
            info!(url = %source.url, new = d.new.len(), "new articles found");
        }
        PollOutcome::Polled {
            new: stage.clone(),
            updated: d.updated.len(),
        }
    };
    set_next(&mut state, &next);
    if !opts.dry_run {
        let found_at = Utc::now();
        store
            .commit_poll(PollCommit {
                source_key: key,
                state,
                record,
                stage: stage
                    .into_iter()
                    .map(|item| StagedItem {
                        author: source.author.clone(),
                        source: source.url.clone(),
                        found_at,
                        item,
                    })
                    .collect(),
            })
            .await?;
    }
    Ok(PollReport {
        source: source.clone(),
        outcome,
        next,
    })
}

type Fetch = (reqwest::header::HeaderMap, Option<(Read, Validators)>);

/// Fetches the source (following its kind) and reads its items; `None` for a 304.
async fn fetch_items(
    fetcher: &Fetcher,
    source: &SourceConfig,
    state: &mut SourceState,
    url: &Url,
) -> Result<Fetch, FetchError> {
    let validators = if state.sitemap_index {
        Validators::default()
    } else {
        Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        }
    };
    let resp = fetcher.get(url, &validators).await?;
    let moved_to = resp.moved_to.clone();
    let headers = resp.headers().clone();
    let fetched = match resp.outcome {
        FetchOutcome::NotModified { .. } => return Ok((headers, None)),
        FetchOutcome::Fetched(f) => f,
    };
    let validators = fetched.validators.clone();
    let read = match &source.kind {
        SourceKind::Feed => read_feed(&fetched)?,
        SourceKind::Page { selector } => Read {
            items: sites::extract_links(
                &fetched.body,
                fetched.content_type.as_deref(),
                &fetched.final_url,
                selector,
            )
            .map_err(|e| FetchError::Other(e.to_string()))?,
            ttl: None,
        },
        SourceKind::Sitemap { include } => {
            let (read, index) = read_sitemap(fetcher, &fetched, include.as_deref()).await?;
            state.sitemap_index = index;
            read
        }
        SourceKind::Discover if state.discovered_feed.is_some() => read_feed(&fetched)?,
        SourceKind::Discover => {
            let (feed_url, feed) = discover(fetcher, &fetched).await?;
            info!(site = %source.url, feed = %feed_url, "feed discovered");
            state.discovered_feed = Some(feed_url.to_string());
            let validators = feed.validators.clone();
            return Ok((feed.headers.clone(), Some((read_feed(&feed)?, validators))));
        }
    };
    // Follow a permanent move only once the new place answered with something readable (not a
    // parking page for a lapsed domain).
    if let Some(moved) = moved_to
        && state.discovered_feed.is_none()
    {
        warn!(from = %url, to = %moved, "source moved permanently: polling the new URL from now on (update the config)");
        state.current_url = Some(moved.to_string());
    }
    Ok((headers, Some((read, validators))))
}

fn read_feed(fetched: &Fetched) -> Result<Read, FetchError> {
    let parsed = parse_feed(
        &fetched.body,
        fetched.content_type.as_deref(),
        &fetched.final_url,
    )
    .map_err(|e| FetchError::Other(crate::causes::one_line(&e)))?;
    Ok(Read {
        items: parsed.items,
        ttl: parsed.ttl.map(|t| (t, "feed ttl")),
    })
}

/// Reads a sitemap, or every child of a sitemap index; says which it was.
async fn read_sitemap(
    fetcher: &Fetcher,
    fetched: &Fetched,
    include: Option<&str>,
) -> Result<(Read, bool), FetchError> {
    let cap = fetcher.max_body_bytes();
    let parse = |f: &Fetched| {
        sites::parse_sitemap(&f.body, &f.final_url, include, cap)
            .map_err(|e| FetchError::Other(e.to_string()))
    };
    let (items, index) = match parse(fetched)? {
        sites::Sitemap::Urls(items) => (items, false),
        sites::Sitemap::Index(children) => {
            // A child that fails is skipped (its articles stay known); all failing is an error.
            let mut items = Vec::new();
            let mut first_error = None;
            let children: Vec<_> = children.into_iter().take(MAX_CHILD_SITEMAPS).collect();
            for child in &children {
                let read = async {
                    let resp = fetcher.get(child, &Validators::default()).await?;
                    match resp.outcome {
                        FetchOutcome::Fetched(f) => match parse(&f)? {
                            sites::Sitemap::Urls(more) => Ok(more),
                            sites::Sitemap::Index(_) => Ok(Vec::new()),
                        },
                        FetchOutcome::NotModified { .. } => Ok(Vec::new()),
                    }
                };
                match read.await {
                    Ok(more) => items.extend(more),
                    Err(e) => {
                        warn!(sitemap = %child, error = %e, "child sitemap skipped");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error
                && items.is_empty()
            {
                return Err(e);
            }
            (items, true)
        }
    };
    Ok((Read { items, ttl: None }, index))
}

/// Finds a site's feed: the page itself, its `<link rel="alternate">`s, then well-known paths.
async fn discover(fetcher: &Fetcher, page: &Fetched) -> Result<(Url, Fetched), FetchError> {
    if sites::looks_like_feed(&page.body) {
        return Ok((page.final_url.clone(), page.clone()));
    }
    let mut candidates =
        sites::discover_feeds(&page.body, page.content_type.as_deref(), &page.final_url);
    for path in sites::WELL_KNOWN_FEED_PATHS {
        if let Ok(u) = page.final_url.join(path)
            && !candidates.contains(&u)
        {
            candidates.push(u);
        }
    }
    for candidate in &candidates {
        let Ok(resp) = fetcher.get(candidate, &Validators::default()).await else {
            continue;
        };
        if let FetchOutcome::Fetched(f) = resp.outcome
            && sites::looks_like_feed(&f.body)
            && parse_feed(&f.body, f.content_type.as_deref(), &f.final_url).is_ok()
        {
            return Ok((f.final_url.clone(), f));
        }
    }
    Err(FetchError::Other(format!(
        "no feed found at `{}`: no <link rel=\"alternate\"> feed and none of {} answered with a feed; hint: put the feed URL in `feeds`, or give this site a `selector`",
        page.final_url,
        sites::WELL_KNOWN_FEED_PATHS.join(", ")
    )))
}
