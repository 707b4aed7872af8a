//! poll.rs: one poll of one source, top to bottom: fetch (conditional GET) → read (per kind, see
//! `read`) → identify → diff against the store → one [`Change`] applied to the source's state →
//! hold a flood (see `hold`) → commit the items, staged (or held) deliveries, validators and the
//! next poll time in one transaction. Before any of it, the attempt is recorded ([`attempt`]), so
//! a poll that never finishes backs off.

mod attempt;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tracing::{info, warn};
use url::Url;

use crate::config::{SourceConfig, SourceKind, WatcherSettings};
use crate::deadline::{PollBounds, Stopped, within};
use crate::diff::diff;
use crate::fetch::{FetchError, FetchOutcome, Fetcher, Validators, cache_lifetime};
use crate::hold;
use crate::identity::{Canonicalizer, IDENTITY_VERSION, IdentityMode, Item, identify};
use crate::read::bounds::{Budget, Cuts};
use crate::read::{Known, Learned, Read, ReadError};
use crate::schedule::{self, Next, Policy};
use crate::store::{PollCommit, SourceState, StagedItem, Store, StoreError, source_key};
use crate::work::WorkBudget;

/// One source with what every poll of it needs worked out once: its store key, the host its
/// config names and its scheduling policy (a cron expression parsed once, not per poll).
pub struct Planned {
    pub config: SourceConfig,
    pub key: String,
    host: String,
    pub policy: Policy,
}

impl Planned {
    pub fn new(config: SourceConfig, settings: &WatcherSettings) -> Planned {
        Planned {
            key: source_key(&config.author, &config.url),
            host: config.host(),
            policy: Policy::for_source(&config, settings),
            config,
        }
    }

    /// The host the next poll goes to (for the per-host limit): the one of the URL
    /// [`SourceState::poll_url`] picks, else the configured one.
    pub fn host_now(&self, store: &Store) -> String {
        let polled = match store.source(&self.key) {
            Ok(Some(state)) => state.poll_url().ok(),
            _ => None,
        };
        polled
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_else(|| self.host.clone())
    }
}

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
        /// New items held as a flood (see `hold`), not delivered.
        held: usize,
        updated: usize,
    },
    /// 429/503 with Retry-After: not a failure.
    Throttled {
        retry_after: Duration,
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
    /// A response read (200): the WebSub hub it named (see `websub::discover`).
    pub push: Option<crate::websub::discover::PushLinks>,
}

/// Why a poll got no items.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "the poll did not finish within its {} deadline (`[fetch] poll_deadline`); the source is \
         slow or endless: it is polled again later, with backoff",
        humantime::format_duration(*deadline)
    )]
    Deadline { deadline: Duration },
}

/// What fetching and reading the source came to.
enum Got {
    /// 304: nothing changed.
    NotModified { headers: HeaderMap },
    /// A response read; `moved_to` when every redirect on the way was permanent.
    Read {
        read: Box<Read>,
        moved_to: Option<Url>,
    },
}

/// Polls `source` once within `bounds` and stores the result. A failure (the deadline passing
/// too) is reported in the outcome and stored in the source's state; only a store failure is an
/// `Err`. `None`: cancelled before anything was stored (the daemon is shutting down).
#[tracing::instrument(skip_all, fields(source = %source.url, author = %source.author))]
pub async fn poll_source(
    store: &Store,
    fetcher: &Fetcher,
    canon: &Canonicalizer,
    source: &SourceConfig,
    policy: &Policy,
    opts: PollOptions,
    bounds: &PollBounds,
) -> Result<Option<PollReport>, StoreError> {
    let key = source_key(&source.author, &source.url);
    let mut state = store.source(&key)?.unwrap_or_else(|| SourceState {
        author: source.author.clone(),
        url: source.url.clone(),
        identity_version: IDENTITY_VERSION,
        ..SourceState::default()
    });
    let url = state.poll_url()?;
    let now = Utc::now();
    if !opts.dry_run {
        // Durable before the first request: a poll killed at once backs off too.
        (store.put_source_durable(&key, &attempt::interrupted(&state, policy, now))).await?;
    }
    let held_before = store.held_count(&key, hold::SLOW_ABOVE + 1)?;

    let got = within(bounds, |work| {
        fetch_and_read(fetcher, source, &state, &url, work)
    })
    .await;
    let got = match got {
        Ok(got) => got,
        Err(Stopped::Cancelled) => {
            // Shutting down: the poll did not happen. Its attempt gives way to the state as it
            // was, so the source neither counts a failure nor backs off for it.
            if !opts.dry_run {
                store.put_source(&key, &state).await?;
            }
            return Ok(None);
        }
        Err(Stopped::Deadline(deadline)) => Err(PollError::Deadline { deadline }),
    };
    let (mut refused, mut push) = (0, None);
    let (change, found) = match got {
        Err(e) => (failure(source, &state, e), None),
        Ok(Got::NotModified { headers }) => (not_modified(&state, &headers), None),
        Ok(Got::Read { mut read, moved_to }) => {
            push = read.learned.push.take();
            let generator = read.learned.generator.as_deref();
            let identified = identify(&read.items, state.identity_mode, canon, generator);
            // From here on only the items' dates are needed: the raw items (up to
            // `max_poll_items` of them) are freed before the store is asked about them.
            let dates: Vec<_> = read.items.iter().filter_map(|i| i.published).collect();
            read.items = Vec::new();
            if identified.switched {
                warn!(
                    "more than 5% of this source's GUIDs are empty or repeated: identifying its items by canonical URL from now on"
                );
            }
            let (ids, keys) = store.known_for(&key, &source.author, &identified.items)?;
            let d = diff(&identified.items, &ids, &keys);
            let baseline = !(state.baseline_done || opts.backfill || source.backfill);
            let mut found = Found::sort(d, baseline, opts.trigger_on_update);
            refused = crate::ssrf::drop_refused_links(fetcher.rule(), &mut found.stage);
            let counts = hold::PollCounts {
                new: found.stage.len(),
                returned: identified.items.len(),
                held_before,
                consent: !state.baseline_done,
            };
            if let Some(why) = hold::decide(source.hold.as_ref(), counts) {
                found.hold = std::mem::take(&mut found.stage);
                hold::log(why, counts);
            }
            let change = fetched(&state, *read, &dates, moved_to, identified.mode, &found);
            (change, Some(found))
        }
    };
    let next = schedule::next_wait(policy, &change.schedule, Utc::now(), &mut rand::rng());
    let held_now = held_before + found.as_ref().map_or(0, |f| f.hold.len());
    let next = hold::slow_down(next, held_now, policy.max_interval);
    let outcome = change.outcome(found.as_ref());
    change.apply(&mut state, &next, now);
    state.links_refused += refused as u64;

    if !opts.dry_run {
        match found {
            Some(found) => {
                let found_at = Utc::now();
                let waiting = |items: Vec<Item>| {
                    (items.into_iter())
                        .map(|item| StagedItem {
                            author: source.author.clone(),
                            source: source.url.clone(),
                            found_at,
                            item,
                        })
                        .collect()
                };
                let commit = PollCommit {
                    source_key: key,
                    state,
                    record: found.record,
                    stage: waiting(found.stage),
                    hold: waiting(found.hold),
                    baseline: found.baseline,
                };
                store.commit_poll(commit).await?;
            }
            // Only the source's bookkeeping changed: sled's background flush (every 500 ms) is
            // durable enough, and a 304 every few minutes for months costs no fsync.
            None => store.put_source(&key, &state).await?,
        }
    }
    Ok(Some(PollReport {
        source: source.clone(),
        outcome,
        next,
        push,
    }))
}

/// Fetches the source (with its validators, except a sitemap index whose children may change
/// while it does not) and reads the response as its kind says.
async fn fetch_and_read(
    fetcher: &Fetcher,
    source: &SourceConfig,
    state: &SourceState,
    url: &Url,
    work: WorkBudget,
) -> Result<Got, PollError> {
    let validators = if state.sitemap_index {
        Validators::default()
    } else {
        Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        }
    };
    let mut budget = Budget::new(fetcher.settings());
    let cap = crate::read::first_cap(&source.kind, fetcher, &budget);
    let resp = fetcher.get_capped(url, &validators, cap).await?;
    let fetched = match resp.outcome {
        FetchOutcome::NotModified { headers } => return Ok(Got::NotModified { headers }),
        FetchOutcome::Fetched(f) => f,
    };
    let known = Known {
        feed_known: state.discovered_feed.is_some(),
        discovery_tried: &state.discovery_tried,
    };
    let read = crate::read::read(fetcher, &source.kind, known, fetched, &mut budget, &work).await?;
    Ok(Got::Read {
        read: Box::new(read),
        moved_to: resp.moved_to,
    })
}

/// What the diff means for this poll: the items to record as known and those to stage for
/// delivery.
struct Found {
    baseline: bool,
    /// New, aliases and updated: recorded (their hash refreshed).
    record: Vec<Item>,
    /// What goes to the outbox (nothing on a baseline).
    stage: Vec<Item>,
    /// What would have gone to the outbox but is held as a flood.
    hold: Vec<Item>,
    new: usize,
    updated: usize,
}

impl Found {
    fn sort(d: crate::diff::Diff, baseline: bool, trigger_on_update: bool) -> Found {
        let record: Vec<Item> = (d.new.iter().chain(&d.aliases).chain(&d.updated))
            .cloned()
            .collect();
        let mut stage: Vec<Item> = Vec::new();
        if baseline {
            info!(
                items = record.len(),
                "baseline: {} items recorded",
                record.len()
            );
        } else {
            stage.extend(d.new.iter().cloned());
            if trigger_on_update {
                stage.extend(d.updated.iter().cloned());
            }
            // The pipelines crawl links: an item without one is recorded, never delivered.
            let before = stage.len();
            stage.retain(|i| i.canonical_url.is_some());
            if stage.len() < before {
                warn!(
                    items = before - stage.len(),
                    "new item(s) without a link: recorded, not delivered"
                );
            }
            if !d.new.is_empty() {
                info!(new = d.new.len(), "new articles found");
            }
        }
        Found {
            baseline,
            record,
            stage,
            hold: Vec::new(),
            new: d.new.len(),
            updated: d.updated.len(),
        }
    }
}

/// Everything one poll changes in the source's state, applied at once by [`Change::apply`].
struct Change {
    health: Health,
    /// What the schedule makes of this poll.
    schedule: schedule::Outcome,
    /// A 200: what the response taught.
    fetched: Option<Fetched>,
    /// The discovered feed answered 404/410: discover again next time.
    forget_discovered_feed: bool,
    /// Autodiscovery found no feed: the candidates it tried, not fetched again.
    discovery_tried: Option<Vec<String>>,
}

enum Health {
    /// 200 or 304.
    Ok,
    Throttled {
        retry_after: Duration,
    },
    Gone,
    Failed {
        error: String,
    },
}

/// What a 200 teaches about the source.
struct Fetched {
    validators: Validators,
    feed_ttl: Option<Duration>,
    identity_mode: IdentityMode,
    adaptive: Option<Duration>,
    /// Follow a permanent move.
    moved_to: Option<Url>,
    learned: Learned,
    /// `last_result`: "baseline: ..." or "ok: ...".
    result: String,
}

fn not_modified(state: &SourceState, headers: &HeaderMap) -> Change {
    let feed_ttl = (state.feed_ttl_secs).map(|secs| (Duration::from_secs(secs), "feed ttl"));
    let ttl = [feed_ttl, cache_lifetime(headers)]
        .into_iter()
        .flatten()
        .max_by_key(|(d, _)| *d);
    let adaptive = state.adaptive_secs.map(Duration::from_secs);
    Change {
        health: Health::Ok,
        schedule: schedule::Outcome::Ok { ttl, adaptive },
        fetched: None,
        forget_discovered_feed: false,
        discovery_tried: None,
    }
}

fn fetched(
    state: &SourceState,
    read: Read,
    dates: &[DateTime<Utc>],
    moved_to: Option<Url>,
    identity_mode: IdentityMode,
    found: &Found,
) -> Change {
    let feed_ttl = read.ttl.map(|d| (d, "feed ttl"));
    let ttl = [feed_ttl, cache_lifetime(&read.headers)]
        .into_iter()
        .flatten()
        .max_by_key(|(d, _)| *d);
    let adaptive = schedule::adaptive_interval(dates);
    // Follow a permanent move only once the new place answered with something readable (not a
    // parking page for a lapsed domain), and not for a site whose feed is what is polled.
    let moved_to = moved_to
        .filter(|_| state.discovered_feed.is_none() && read.learned.discovered_feed.is_none());
    Change {
        health: Health::Ok,
        schedule: schedule::Outcome::Ok { ttl, adaptive },
        fetched: Some(Fetched {
            validators: read.validators,
            feed_ttl: read.ttl,
            identity_mode,
            adaptive,
            moved_to,
            learned: read.learned,
            result: if found.baseline {
                format!("baseline: {} items recorded", found.record.len())
            } else if !found.hold.is_empty() {
                format!(
                    "ok: {} new, {} updated; {} HELD as a flood (see `watcher held`)",
                    found.new,
                    found.updated,
                    found.hold.len()
                )
            } else {
                format!("ok: {} new, {} updated", found.new, found.updated)
            } + &cuts_note(read.cuts),
        }),
        forget_discovered_feed: false,
        discovery_tried: None,
    }
}

/// What `last_result` adds when the field-length limits changed items.
fn cuts_note(cuts: Cuts) -> String {
    if cuts.is_empty() {
        return String::new();
    }
    format!(
        "; over the field-length limits: {} item(s) with a GUID or title cut, {} with a URL too long skipped",
        cuts.cut, cuts.skipped
    )
}

/// What a failed poll means for the source: throttled, gone, or a failure that counts.
fn failure(source: &SourceConfig, state: &SourceState, e: PollError) -> Change {
    let change = |health, schedule| Change {
        health,
        schedule,
        fetched: None,
        forget_discovered_feed: false,
        discovery_tried: None,
    };
    match e {
        PollError::Fetch(FetchError::Status {
            status: StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(retry_after),
        }) => {
            info!(?retry_after, "throttled by the server");
            change(
                Health::Throttled { retry_after },
                schedule::Outcome::Throttled { retry_after },
            )
        }
        PollError::Fetch(FetchError::Status {
            status: StatusCode::GONE,
            ..
        }) if source.kind != SourceKind::Discover || state.discovered_feed.is_none() => {
            warn!(
                "source answered 410 Gone: asked again daily for 30 days, then never; remove it from the config or fix its URL"
            );
            change(Health::Gone, schedule::Outcome::Gone)
        }
        e => {
            let forget = matches!(&e, PollError::Fetch(FetchError::Status { status, .. }) if *status == StatusCode::NOT_FOUND || *status == StatusCode::GONE)
                && state.discovered_feed.is_some();
            if forget {
                info!("the discovered feed is gone: discovering again next time");
            }
            let error = crate::causes::one_line(&e);
            let failures = state.consecutive_failures + 1;
            warn!(failures, %error, "poll failed");
            let discovery_tried = match e {
                PollError::Read(ReadError::NoFeed { tried, .. }) => {
                    Some(tried.into_iter().map(String::from).collect())
                }
                _ => None,
            };
            Change {
                forget_discovered_feed: forget,
                discovery_tried,
                ..change(
                    Health::Failed { error },
                    schedule::Outcome::Failed { failures },
                )
            }
        }
    }
}

impl Change {
    /// The poll's outcome, as reported.
    fn outcome(&self, found: Option<&Found>) -> PollOutcome {
        match (&self.health, found) {
            (Health::Ok, None) => PollOutcome::NotModified,
            (Health::Ok, Some(found)) if found.baseline => PollOutcome::Baseline {
                recorded: found.record.len(),
            },
            (Health::Ok, Some(found)) => PollOutcome::Polled {
                new: found.stage.clone(),
                held: found.hold.len(),
                updated: found.updated,
            },
            (Health::Throttled { retry_after }, _) => PollOutcome::Throttled {
                retry_after: *retry_after,
            },
            (Health::Gone, _) => PollOutcome::Gone,
            (Health::Failed { error }, _) => PollOutcome::Failed {
                error: error.clone(),
            },
        }
    }

    /// Writes this poll into the source's state: the one place a poll changes it.
    fn apply(self, state: &mut SourceState, next: &Next, now: DateTime<Utc>) {
        // A source stored as gone before `gone_since` existed has been gone since its last poll.
        let gone_before = state.gone.then_some(state.last_poll).flatten();
        state.last_poll = Some(now);
        match self.health {
            Health::Ok => {
                state.consecutive_failures = 0;
                state.last_error = None;
                state.gone = false;
                state.gone_since = None;
                state.last_success = Some(now);
                state.last_result = Some("not modified".into());
            }
            Health::Throttled { retry_after } => {
                state.last_result = Some(format!(
                    "throttled: Retry-After {}",
                    humantime::format_duration(retry_after)
                ));
            }
            Health::Gone => {
                state.gone = true;
                state.gone_since.get_or_insert(gone_before.unwrap_or(now));
                state.last_result = Some(
                    "gone (410): asked again daily for 30 days; remove it from the config".into(),
                );
            }
            Health::Failed { error } => {
                state.consecutive_failures += 1;
                state.last_result = Some(format!("error: {error}"));
                state.last_error = Some(error);
            }
        }
        if self.forget_discovered_feed {
            state.discovered_feed = None;
        }
        if let Some(tried) = self.discovery_tried {
            state.discovery_tried = tried;
        }
        if let Some(f) = self.fetched {
            state.etag = f.validators.etag;
            state.last_modified = f.validators.last_modified;
            state.feed_ttl_secs = f.feed_ttl.map(|d| d.as_secs());
            state.identity_mode = f.identity_mode;
            state.identity_version = IDENTITY_VERSION;
            state.adaptive_secs = f.adaptive.map(|d| d.as_secs());
            if let Some(index) = f.learned.sitemap_index {
                state.sitemap_index = index;
            }
            if let Some(feed) = f.learned.discovered_feed {
                state.discovered_feed = Some(feed.to_string());
                state.discovery_tried.clear();
            }
            if let Some(moved) = f.moved_to {
                warn!(to = %moved, "source moved permanently: polling the new URL from now on (update the config)");
                state.current_url = Some(moved.to_string());
            }
            state.last_result = Some(f.result);
            state.baseline_done = true;
        }
        state.next_due =
            Some(Utc::now() + chrono::Duration::from_std(next.wait).unwrap_or_default());
        state.next_due_reason = Some(next.reason.clone());
    }
}
