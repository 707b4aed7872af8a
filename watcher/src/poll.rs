//! poll.rs: one poll of one source, top to bottom: fetch (conditional GET) → parse → identify →
//! diff against the store → commit items, staged deliveries and validators in one transaction.

use chrono::Utc;
use tracing::{info, warn};
use url::Url;

use crate::diff::diff;
use crate::fetch::{FetchOutcome, Fetcher, Validators};
use crate::identity::{Canonicalizer, IDENTITY_VERSION, Item, identify};
use crate::parse::parse_feed;
use crate::schedule;
use crate::store::{PollCommit, SourceState, StagedItem, Store, StoreError, source_key};

/// One configured source of one author.
#[derive(Debug, Clone)]
pub struct Source {
    pub author: String,
    pub url: Url,
    /// The URL as configured (the source's key in the store).
    pub configured: String,
    pub backfill: bool,
}

impl Source {
    pub fn key(&self) -> String {
        source_key(&self.author, &self.configured)
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
    /// The source's poll interval (for its next due time).
    pub interval: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    NotModified,
    Baseline { recorded: usize },
    Polled { new: Vec<Item>, updated: usize },
    Failed { error: String },
}

#[derive(Debug, Clone)]
pub struct PollReport {
    pub source: Source,
    pub outcome: PollOutcome,
}

/// What the poll found, before anything is stored.
enum Found {
    NotModified,
    Items {
        items: Vec<Item>,
        validators: Validators,
        identity_switched: bool,
        mode: crate::identity::IdentityMode,
    },
}

/// Polls `source` once and stores the result. A failure is reported in the outcome (and stored
/// in the source's state); only a store failure is an `Err`.
#[tracing::instrument(skip_all, fields(source = %source.configured, author = %source.author))]
pub async fn poll_source(
    store: &Store,
    fetcher: &Fetcher,
    canon: &Canonicalizer,
    source: &Source,
    opts: PollOptions,
) -> Result<PollReport, StoreError> {
    let key = source.key();
    let mut state = store.source(&key)?.unwrap_or_else(|| SourceState {
        author: source.author.clone(),
        url: source.configured.clone(),
        identity_version: IDENTITY_VERSION,
        ..SourceState::default()
    });
    let now = Utc::now();
    state.last_poll = Some(now);
    let report = |outcome| PollReport {
        source: source.clone(),
        outcome,
    };

    let found = match fetch_and_identify(fetcher, canon, source, &state).await {
        Ok(found) => found,
        Err(error) => {
            state.consecutive_failures += 1;
            state.last_error = Some(error.clone());
            state.last_result = Some(format!("error: {error}"));
            warn!(url = %source.url, failures = state.consecutive_failures, %error, "poll failed");
            let outcome = PollOutcome::Failed { error };
            schedule_next(&mut state, &outcome, opts.interval);
            if !opts.dry_run {
                store.put_source(&key, &state)?;
                store.flush().await?;
            }
            return Ok(report(outcome));
        }
    };
    state.consecutive_failures = 0;
    state.last_error = None;
    state.last_success = Some(now);

    let (items, validators, switched, mode) = match found {
        Found::NotModified => {
            state.last_result = Some("not modified".into());
            schedule_next(&mut state, &PollOutcome::NotModified, opts.interval);
            if !opts.dry_run {
                store.put_source(&key, &state)?;
                store.flush().await?;
            }
            return Ok(report(PollOutcome::NotModified));
        }
        Found::Items {
            items,
            validators,
            identity_switched,
            mode,
        } => (items, validators, identity_switched, mode),
    };
    if switched {
        warn!(
            url = %source.url,
            "more than 5% of this feed's GUIDs are empty or repeated: identifying its items by canonical URL from now on"
        );
    }
    state.identity_mode = mode;
    state.identity_version = IDENTITY_VERSION;
    state.etag = validators.etag;
    state.last_modified = validators.last_modified;

    let (known_ids, known_urls) = store.known_for(&key, &source.author, &items)?;
    let d = diff(&items, &known_ids, &known_urls);
    let baseline = !(state.baseline_done || opts.backfill || source.backfill);
    state.baseline_done = true;

    let mut record: Vec<Item> = Vec::new();
    let mut stage: Vec<Item> = Vec::new();
    let outcome = if baseline {
        record = d
            .new
            .iter()
            .chain(&d.aliases)
            .chain(&d.updated)
            .cloned()
            .collect();
        state.last_result = Some(format!("baseline: {} items recorded", record.len()));
        info!(url = %source.url, items = record.len(), "baseline: {} items recorded", record.len());
        PollOutcome::Baseline {
            recorded: record.len(),
        }
    } else {
        record.extend(d.new.iter().cloned());
        record.extend(d.aliases.iter().cloned());
        record.extend(d.updated.iter().cloned());
        stage.extend(d.new.iter().cloned());
        if opts.trigger_on_update {
            stage.extend(d.updated.iter().cloned());
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
    schedule_next(&mut state, &outcome, opts.interval);
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
                        source: source.configured.clone(),
                        found_at,
                        item,
                    })
                    .collect(),
            })
            .await?;
    }
    Ok(report(outcome))
}

fn schedule_next(state: &mut SourceState, outcome: &PollOutcome, interval: std::time::Duration) {
    let (due, reason) =
        schedule::next_due(Utc::now(), interval, outcome, state.consecutive_failures);
    state.next_due = Some(due);
    state.next_due_reason = Some(reason);
}

async fn fetch_and_identify(
    fetcher: &Fetcher,
    canon: &Canonicalizer,
    source: &Source,
    state: &SourceState,
) -> Result<Found, String> {
    let validators = Validators {
        etag: state.etag.clone(),
        last_modified: state.last_modified.clone(),
    };
    let fetched = match fetcher
        .get(&source.url, &validators)
        .await
        .map_err(|e| e.to_string())?
    {
        FetchOutcome::NotModified { .. } => return Ok(Found::NotModified),
        FetchOutcome::Fetched(f) => f,
    };
    let parsed = parse_feed(
        &fetched.body,
        fetched.content_type.as_deref(),
        &fetched.final_url,
    )
    .map_err(|e| e.to_string())?;
    let identified = identify(&parsed.items, state.identity_mode, canon);
    Ok(Found::Items {
        items: identified.items,
        validators: fetched.validators,
        identity_switched: identified.switched,
        mode: identified.mode,
    })
}
