//! watch.rs: the watcher as a whole: its sources, one pass (`once`) and the daemon loop (`run`):
//! poll what is due, group staged items into batches, deliver pending batches, until cancelled;
//! then drain in-flight work and flush the store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::error::WatcherError;
use crate::fetch::Fetcher;
use crate::identity::Canonicalizer;
use crate::outbox::{self, DeliveryReport};
use crate::poll::{PollOptions, PollOutcome, PollReport, Source, poll_source};
use crate::status::StatusReport;
use crate::store::{Store, StoreError};

/// How often the daemon looks for due sources and deliveries when nothing is due sooner.
const TICK: Duration = Duration::from_secs(1);

/// Options of one pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnceOptions {
    pub backfill: bool,
    pub dry_run: bool,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub polls: Vec<PollReport>,
    pub deliveries: Vec<DeliveryReport>,
    /// Dry run: the batches that would be delivered.
    pub would_deliver: Vec<crate::store::Delivery>,
}

impl PassReport {
    /// One line per problem: failed sources and failed delivery attempts.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.polls {
            if let PollOutcome::Failed { error } = &p.outcome {
                out.push(format!(
                    "source `{}` ({}): {error}",
                    p.source.configured, p.source.author
                ));
            }
        }
        for d in &self.deliveries {
            if let Err(e) = &d.outcome {
                out.push(format!("delivery {}: {e}", d.batch_id));
            }
        }
        out
    }
}

/// The watcher: config, store, HTTP client and trigger.
pub struct Watcher {
    config: Config,
    store: Arc<Store>,
    fetcher: Fetcher,
    canon: Canonicalizer,
    deliverer: Arc<Deliverer>,
}

impl Watcher {
    /// Opens the store and builds the HTTP client and the trigger from `config`.
    pub fn open(config: Config) -> Result<Watcher, WatcherError> {
        let deliverer = Deliverer::new(&config.trigger)?;
        Watcher::with_deliverer(config, deliverer)
    }

    /// Like [`Watcher::open`], with an explicit trigger (the embedded runner's, or a test's).
    pub fn with_deliverer(config: Config, deliverer: Deliverer) -> Result<Watcher, WatcherError> {
        let store = Store::open(&config.watcher.state_dir)?;
        let fetcher = Fetcher::new(&config.fetch)?;
        let canon = Canonicalizer::new(
            &config.watcher.tracking_params,
            &config.watcher.tracking_params_by_host,
        );
        Ok(Watcher {
            config,
            store: Arc::new(store),
            fetcher,
            canon,
            deliverer: Arc::new(deliverer),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every configured source.
    pub fn sources(&self) -> Vec<Source> {
        sources(&self.config)
    }

    pub fn status(&self) -> Result<StatusReport, StoreError> {
        StatusReport::build(&self.store)
    }

    fn poll_options(&self, backfill: bool, dry_run: bool) -> PollOptions {
        PollOptions {
            backfill,
            trigger_on_update: self.config.watcher.trigger_on_update,
            dry_run,
            interval: self.config.watcher.interval,
        }
    }

    /// One pass: polls every source, groups what it found into batches and delivers every
    /// pending batch that is due.
    pub async fn once(&self, opts: OnceOptions) -> Result<PassReport, WatcherError> {
        let poll_opts = self.poll_options(opts.backfill, opts.dry_run);
        let polls: Vec<Result<PollReport, StoreError>> = futures_util::stream::iter(self.sources())
            .map(|source| {
                let store = &self.store;
                let fetcher = &self.fetcher;
                let canon = &self.canon;
                async move { poll_source(store, fetcher, canon, &source, poll_opts).await }
            })
            .buffer_unordered(self.config.watcher.concurrency)
            .collect()
            .await;
        let mut report = PassReport {
            polls: polls.into_iter().collect::<Result<_, _>>()?,
            ..PassReport::default()
        };
        report.polls.sort_by(|a, b| {
            (&a.source.author, &a.source.configured).cmp(&(&b.source.author, &b.source.configured))
        });
        let now = Utc::now();
        if opts.dry_run {
            report.would_deliver = self.preview(&report.polls, now)?;
            return Ok(report);
        }
        outbox::form_batches(
            &self.store,
            &self.config.watcher.output_dir,
            self.config.output.format,
            None,
            now,
        )
        .await?;
        report.deliveries = outbox::deliver_due(&self.store, &self.deliverer, Utc::now()).await?;
        Ok(report)
    }

    /// Dry run: the batches the staged items plus this pass's finds would form, and the pending
    /// deliveries that are due.
    fn preview(
        &self,
        polls: &[PollReport],
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        let mut staged: Vec<crate::store::StagedItem> =
            self.store.staged()?.into_iter().map(|(_, s)| s).collect();
        for p in polls {
            if let PollOutcome::Polled { new, .. } = &p.outcome {
                staged.extend(new.iter().map(|item| crate::store::StagedItem {
                    author: p.source.author.clone(),
                    source: p.source.configured.clone(),
                    found_at: now,
                    item: item.clone(),
                }));
            }
        }
        let format = self.config.output.format;
        let mut groups: std::collections::BTreeMap<String, Vec<crate::store::StagedItem>> =
            Default::default();
        for s in staged {
            let key = match format {
                crate::config::OutputFormat::DigitalDataEtl => s.author.clone(),
                crate::config::OutputFormat::EndToEndData => String::new(),
            };
            groups.entry(key).or_default().push(s);
        }
        let mut out: Vec<_> = self
            .store
            .deliveries()?
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| d.state == crate::store::DeliveryState::Pending && d.next_attempt_at <= now)
            .collect();
        out.extend(groups.values().map(|items| {
            outbox::new_delivery(format, &self.config.watcher.output_dir, items, now)
        }));
        Ok(out)
    }

    /// Re-queues failed deliveries (all, or one batch). Returns how many.
    pub async fn retry(&self, batch: Option<&str>) -> Result<usize, StoreError> {
        outbox::requeue_failed(&self.store, batch).await
    }

    /// The daemon: serves the status endpoint on `listener`, polls each source when due, forms
    /// batches after the batch window and delivers them, until `cancel` fires. Then it stops
    /// starting work, waits for in-flight polls and deliveries, and flushes the store.
    pub async fn run(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), WatcherError> {
        let this = Arc::new(self);
        let tracker = TaskTracker::new();
        let control = {
            let this = this.clone();
            let cancel = cancel.clone();
            tokio::spawn(crate::control::serve(listener, this, cancel))
        };
        let sources = this.sources();
        info!(
            sources = sources.len(),
            state_dir = %this.config.watcher.state_dir.display(),
            "watcher started"
        );
        let limit = Arc::new(tokio::sync::Semaphore::new(this.config.watcher.concurrency));
        let in_flight = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let poll_opts = this.poll_options(false, false);
        loop {
            let now = Utc::now();
            for source in &sources {
                let key = source.key();
                if in_flight.lock().expect("not poisoned").contains(&key) {
                    continue;
                }
                let due = match this.store.source(&key) {
                    Ok(s) => crate::schedule::is_due(s.as_ref(), this.config.watcher.interval, now),
                    Err(e) => {
                        error!(source = %source.configured, error = %e, "cannot read source state");
                        false
                    }
                };
                if !due {
                    continue;
                }
                in_flight.lock().expect("not poisoned").insert(key.clone());
                let (this, source, limit, in_flight) = (
                    this.clone(),
                    source.clone(),
                    limit.clone(),
                    in_flight.clone(),
                );
                tracker.spawn(async move {
                    let _permit = limit.acquire().await;
                    if let Err(e) =
                        poll_source(&this.store, &this.fetcher, &this.canon, &source, poll_opts)
                            .await
                    {
                        error!(source = %source.configured, error = %e, "cannot store poll result");
                    }
                    in_flight.lock().expect("not poisoned").remove(&key);
                });
            }
            if let Err(e) = this
                .batch_and_deliver(Some(this.config.watcher.batch_window))
                .await
            {
                error!(error = %crate::error::one_line(&e), "delivery pass failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        info!("shutting down: waiting for in-flight polls");
        tracker.close();
        tracker.wait().await;
        // Items found by the last polls stay staged (durable) and are batched on the next start.
        this.store.flush().await?;
        if let Err(e) = control.await {
            warn!(error = %e, "status endpoint task ended badly");
        }
        info!("watcher stopped");
        Ok(())
    }

    async fn batch_and_deliver(&self, window: Option<Duration>) -> Result<(), StoreError> {
        outbox::form_batches(
            &self.store,
            &self.config.watcher.output_dir,
            self.config.output.format,
            window,
            Utc::now(),
        )
        .await?;
        outbox::deliver_due(&self.store, &self.deliverer, Utc::now()).await?;
        Ok(())
    }
}

/// Every source in `config`, in config order.
pub fn sources(config: &Config) -> Vec<Source> {
    config
        .authors
        .iter()
        .flat_map(|a| {
            a.feeds.iter().filter_map(move |f| {
                Some(Source {
                    author: a.name.clone(),
                    url: crate::config::parse_source_url(f).ok()?,
                    configured: f.clone(),
                    backfill: a.backfill,
                })
            })
        })
        .collect()
}
