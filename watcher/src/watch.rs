//! watch.rs: the watcher as a whole: its sources, one pass (`once`) and the daemon loop (`run`):
//! poll what is due, group staged items into batches, deliver pending batches, until cancelled;
//! then drain in-flight work and flush the store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::config::SourceConfig;
use crate::deliver::Deliverer;
use crate::due::DueQueue;
use crate::embedded::Embedded;
use crate::error::WatcherError;
use crate::fetch::Fetcher;
use crate::identity::Canonicalizer;
use crate::limits::Limits;
use crate::outbox::{self, DeliveryReport};
use crate::poll::{Planned, PollOptions, PollOutcome, PollReport, poll_source};
use crate::status::StatusReport;
use crate::store::{Store, StoreError};

/// How often the daemon looks for due sources and deliveries when nothing is due sooner.
const TICK: Duration = Duration::from_secs(1);

/// How often the daemon prunes old done deliveries.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// At shutdown, how long a delivery in flight may take before it is cut off.
const DELIVERY_DRAIN: Duration = Duration::from_secs(20);

/// Options of one pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnceOptions {
    pub backfill: bool,
    pub dry_run: bool,
    /// Poll every source, due or not.
    pub all: bool,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub polls: Vec<PollReport>,
    /// Sources not due yet, and stopped (410) ones: not polled.
    pub not_due: usize,
    pub deliveries: Vec<DeliveryReport>,
    /// Dry run: the batches that would be delivered.
    pub would_deliver: Vec<crate::delivery::Delivery>,
}

impl PassReport {
    /// One line per problem: failed sources and failed delivery attempts.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.polls {
            if let PollOutcome::Failed { error } = &p.outcome {
                out.push(format!(
                    "source `{}` ({}): {error}",
                    p.source.url, p.source.author
                ));
            }
        }
        for d in &self.deliveries {
            if let Err(e) = &d.outcome {
                out.push(format!(
                    "delivery {}: {}",
                    d.batch_id,
                    crate::causes::one_line(e)
                ));
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
    /// `None` when opened only to inspect or edit the store (`status`, `retry`, `redeliver`).
    deliverer: Option<Arc<Deliverer>>,
    embedded: Option<Embedded>,
    limits: Limits,
}

impl Watcher {
    /// Opens the store, builds the HTTP client and the trigger from `config`; with
    /// `kind = "embedded"` it starts the pipelines runner inside this process (needs a tokio
    /// runtime).
    pub fn open(config: Config) -> Result<Watcher, WatcherError> {
        let mut w = Watcher::inspect(config)?;
        let (deliverer, embedded) = match &w.config.trigger.embedded {
            Some(settings) => {
                let embedded = Embedded::start(settings, &w.config.watcher.state_dir)?;
                let target = embedded.target(&w.config.trigger.pipeline);
                (
                    Deliverer::with_target(&w.config.trigger, &target)?,
                    Some(embedded),
                )
            }
            None => (Deliverer::new(&w.config.trigger)?, None),
        };
        w.deliverer = Some(Arc::new(deliverer));
        w.embedded = embedded;
        Ok(w)
    }

    /// Opens the store only: for reading status and re-queueing batches; cannot poll or deliver.
    pub fn inspect(config: Config) -> Result<Watcher, WatcherError> {
        let store = Store::open(&config.watcher.state_dir)?;
        let fetcher = Fetcher::new(&config.fetch)?;
        let canon = Canonicalizer::new(
            &config.watcher.tracking_params,
            &config.watcher.tracking_params_by_host,
        );
        Ok(Watcher {
            store: Arc::new(store),
            fetcher,
            canon,
            limits: Limits::new(config.watcher.concurrency, config.watcher.per_host),
            deliverer: None,
            embedded: None,
            config,
        })
    }

    fn deliverer(&self) -> &Deliverer {
        self.deliverer
            .as_deref()
            .expect("opened with Watcher::open, which builds the trigger")
    }

    /// The embedded runner, with `kind = "embedded"`.
    pub fn embedded(&self) -> Option<&Embedded> {
        self.embedded.as_ref()
    }

    /// Stops what the watcher started (the embedded runner lets running stages finish for its
    /// shutdown grace) and flushes the store.
    pub async fn shutdown(self) -> Result<(), WatcherError> {
        if let Some(embedded) = self.embedded {
            embedded.stop().await;
        }
        self.store.flush().await?;
        Ok(())
    }

    fn batching(&self, window: Option<Duration>) -> outbox::Batching<'_> {
        outbox::Batching {
            output_dir: &self.config.watcher.output_dir,
            format: self.config.output.format,
            window,
            min_interval: self.config.trigger.min_interval,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every configured source.
    pub fn sources(&self) -> Vec<SourceConfig> {
        self.config.sources()
    }

    /// The status report: a scan of the store, on the blocking pool (the daemon's status
    /// endpoint answers while polls and deliveries write).
    pub async fn status(&self) -> Result<StatusReport, StoreError> {
        let (store, failing_after) = (Store::clone(&self.store), self.config.watcher.failing_after);
        sled_gate::blocking(move || StatusReport::build(&store, failing_after)).await
    }

    fn poll_options(&self, backfill: bool, dry_run: bool) -> PollOptions {
        PollOptions {
            backfill,
            trigger_on_update: self.config.watcher.trigger_on_update,
            dry_run,
        }
    }

    /// Polls one source within the limits.
    pub async fn poll(
        &self,
        source: &SourceConfig,
        opts: PollOptions,
    ) -> Result<PollReport, StoreError> {
        let never = CancellationToken::new();
        let planned = Planned::new(source.clone(), &self.config.watcher);
        self.poll_unless(&planned, opts, &never)
            .await
            .expect("never cancelled")
    }

    /// Polls one source within the limits, unless `cancel` fires while it waits for a slot
    /// (`None`). The per-host slot is taken for the host actually polled (after a permanent
    /// redirect, or the feed autodiscovery found).
    async fn poll_unless(
        &self,
        source: &Planned,
        opts: PollOptions,
        cancel: &CancellationToken,
    ) -> Option<Result<PollReport, StoreError>> {
        let host = source.host_now(&self.store);
        let _permits = tokio::select! {
            _ = cancel.cancelled() => return None,
            permits = self.limits.acquire(&host) => permits,
        };
        Some(
            poll_source(
                &self.store,
                &self.fetcher,
                &self.canon,
                &source.config,
                &source.policy,
                opts,
            )
            .await,
        )
    }

    /// One pass: polls every source that is due (every one with `all`), groups what it found
    /// into batches and delivers every pending batch that is due. `progress` is called after each
    /// poll with its report, the number done and the number to do.
    pub async fn once(
        &self,
        opts: OnceOptions,
        mut progress: impl FnMut(&PollReport, usize, usize),
    ) -> Result<PassReport, WatcherError> {
        let poll_opts = self.poll_options(opts.backfill, opts.dry_run);
        let now = Utc::now();
        let mut due = Vec::new();
        let mut not_due = 0;
        for source in self.sources() {
            let last = self
                .store
                .source(&crate::store::source_key(&source.author, &source.url))?
                .map(|s| s.due());
            let gone = last.as_ref().is_some_and(|d| d.gone);
            if !gone && (opts.all || crate::schedule::is_due(last.as_ref(), source.interval, now)) {
                due.push(source);
            } else {
                not_due += 1;
            }
        }
        let total = due.len();
        let mut running: FuturesUnordered<_> = due
            .iter()
            .map(|source| self.poll(source, poll_opts))
            .collect();
        let mut polls = Vec::with_capacity(total);
        while let Some(result) = running.next().await {
            let report = result?;
            progress(&report, polls.len() + 1, total);
            polls.push(report);
        }
        drop(running);
        polls.sort_by(|a: &PollReport, b: &PollReport| {
            (&a.source.author, &a.source.url).cmp(&(&b.source.author, &b.source.url))
        });
        let mut report = PassReport {
            polls,
            not_due,
            ..PassReport::default()
        };
        let now = Utc::now();
        if opts.dry_run {
            report.would_deliver = self.preview(&report.polls, now)?;
            return Ok(report);
        }
        outbox::form_batches(&self.store, &self.batching(None), now).await?;
        report.deliveries = outbox::deliver_due(&self.store, self.deliverer(), Utc::now()).await?;
        self.prune().await?;
        // One look at the runs earlier passes started (engines that report status).
        outbox::follow_runs(
            &self.store,
            self.deliverer(),
            self.config.trigger.follow_interval,
        )
        .await?;
        Ok(report)
    }

    /// Follows the runs this pass started until they end or `timeout` (`once` with the embedded
    /// runner, which stops with the process), calling `on_change` per run state change. Stores
    /// each run's outcome.
    pub async fn wait_for_runs(
        &self,
        report: &PassReport,
        timeout: Duration,
        mut on_change: impl FnMut(&str, &trigger_client::RunStatus),
    ) -> Result<
        Vec<(
            String,
            Result<trigger_client::RunStatus, trigger_client::Error>,
        )>,
        StoreError,
    > {
        let mut out = Vec::new();
        for d in &report.deliveries {
            let Ok(run) = &d.outcome else { continue };
            let result = self
                .deliverer()
                .wait(run, timeout, |s| on_change(&d.batch_id, s))
                .await;
            out.push((d.batch_id.clone(), result));
        }
        // Record the outcomes (a zero min age asks about every open run once more).
        outbox::follow_runs(&self.store, self.deliverer(), Duration::ZERO).await?;
        Ok(out)
    }

    /// Dry run: the pending deliveries that are due and the batches the staged items plus this
    /// pass's finds would form.
    fn preview(
        &self,
        polls: &[PollReport],
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::delivery::Delivery>, StoreError> {
        let mut found = Vec::new();
        for p in polls {
            if let PollOutcome::Polled { new, .. } = &p.outcome {
                found.extend(new.iter().map(|item| crate::store::StagedItem {
                    author: p.source.author.clone(),
                    source: p.source.url.clone(),
                    found_at: now,
                    item: item.clone(),
                }));
            }
        }
        outbox::preview(
            &self.store,
            self.config.output.format,
            &self.config.watcher.output_dir,
            found,
            now,
        )
    }

    /// Re-queues failed deliveries (all, or one batch). Returns how many.
    pub async fn retry(&self, batch: Option<&str>) -> Result<usize, StoreError> {
        outbox::requeue_failed(&self.store, batch).await
    }

    /// Queues a batch whose run failed again, with a new idempotency key.
    pub async fn redeliver(
        &self,
        batch: &str,
    ) -> Result<crate::delivery::Delivery, outbox::RedeliverError> {
        outbox::redeliver(&self.store, batch).await
    }

    /// The daemon: serves the status endpoint on `listener`, polls each source when due (within
    /// the global and per-host limits), forms batches after the batch window and delivers them,
    /// until `cancel` fires. Then it stops starting work, waits for in-flight polls, and flushes
    /// the store. Timers use tokio's clock, so tests can pause and advance it.
    pub async fn run(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), WatcherError> {
        let this = Arc::new(self);
        let tracker = TaskTracker::new();
        let control = tokio::spawn(crate::control::serve(
            listener,
            this.clone(),
            cancel.clone(),
        ));
        // Sources are known by their index in `sources` from here on: the due queue and the
        // polls' completions carry it, so no step of a poll walks every source.
        let sources: Arc<[Planned]> = this
            .sources()
            .into_iter()
            .map(|s| Planned::new(s, &this.config.watcher))
            .collect();
        let mut due = this.initial_due(&sources)?;
        info!(
            sources = sources.len(),
            scheduled = due.len(),
            state_dir = %this.config.watcher.state_dir.display(),
            "watcher started"
        );
        let (done_tx, mut done_rx) =
            tokio::sync::mpsc::unbounded_channel::<(usize, Option<Duration>)>();
        let poll_opts = this.poll_options(false, false);
        let mut delivering: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_delivery = Instant::now();
        let mut next_prune = Instant::now();
        loop {
            // A source leaves the queue while it is being polled; its completion puts it back.
            while let Some(index) = due.pop_due(Instant::now()) {
                let (this, sources, done_tx, cancel) = (
                    this.clone(),
                    sources.clone(),
                    done_tx.clone(),
                    cancel.clone(),
                );
                tracker.spawn(async move {
                    let source = &sources[index];
                    let poll = std::panic::AssertUnwindSafe(
                        this.poll_in_daemon(source, poll_opts, &cancel),
                    );
                    let next = match poll.catch_unwind().await {
                        Ok(next) => next,
                        Err(_) => {
                            error!(source = %source.config.url, "poll panicked; polling it again after its interval");
                            Some(source.config.interval)
                        }
                    };
                    let _ = done_tx.send((index, next));
                });
            }
            // Deliveries run beside polling, one pass at a time, so a slow engine delays
            // neither polls nor shutdown.
            if delivering.as_ref().is_none_or(|d| d.is_finished())
                && Instant::now() >= next_delivery
            {
                next_delivery = Instant::now() + TICK;
                if Instant::now() >= next_prune {
                    next_prune = Instant::now() + PRUNE_EVERY;
                    if let Err(e) = this.prune().await {
                        error!(error = %crate::causes::one_line(&e), "pruning old deliveries failed");
                    }
                }
                let this = this.clone();
                delivering = Some(tokio::spawn(async move {
                    if let Err(e) = this
                        .batch_and_deliver(Some(this.config.watcher.batch_window))
                        .await
                    {
                        error!(error = %crate::causes::one_line(&e), "delivery pass failed");
                    }
                }));
            }
            let tick = Instant::now() + TICK;
            let wake = due.next().map_or(tick, |at| at.min(tick));
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = done_rx.recv() => {
                    // Every poll that finished meanwhile, so a burst of completions costs one
                    // turn of the loop.
                    let now = Instant::now();
                    let mut done = Some(done);
                    while let Some((index, next)) = done {
                        if let Some(wait) = next {
                            due.insert(now + wait, index);
                        }
                        done = done_rx.try_recv().ok();
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        info!("shutting down: waiting for in-flight polls and deliveries");
        tracker.close();
        tracker.wait().await;
        if let Some(mut d) = delivering {
            // A delivery cut off here is sent again, with the same key, on the next start.
            if tokio::time::timeout(DELIVERY_DRAIN, &mut d).await.is_err() {
                warn!(
                    "a delivery is still in flight after {DELIVERY_DRAIN:?}; it is retried on the next start"
                );
                d.abort();
                let _ = d.await;
            }
        }
        if let Err(e) = control.await {
            warn!(error = %e, "status endpoint task ended badly");
        }
        // Items found by the last polls stay staged (durable) and are batched on the next start.
        match Arc::try_unwrap(this) {
            Ok(w) => w.shutdown().await?,
            Err(this) => this.store.flush().await?,
        }
        info!("watcher stopped");
        Ok(())
    }

    /// When each source (by its index in `sources`) is first due, on tokio's clock, from the
    /// stored schedule. Stopped (410) sources are left out: they are never polled again.
    fn initial_due(&self, sources: &[Planned]) -> Result<DueQueue, StoreError> {
        let start = Instant::now();
        let wall = Utc::now();
        let mut due = DueQueue::default();
        for (index, source) in sources.iter().enumerate() {
            let last = self.store.source(&source.key)?.map(|s| s.due());
            let Some(wait) =
                crate::schedule::wait_until_due(last.as_ref(), source.config.interval, wall)
            else {
                warn!(source = %source.config.url, "source is stopped (410 Gone); remove it from the config");
                continue;
            };
            due.insert(start + wait, index);
        }
        Ok(due)
    }

    /// One daemon poll; returns how long until the next one (`None`: never again).
    async fn poll_in_daemon(
        &self,
        source: &Planned,
        opts: PollOptions,
        cancel: &CancellationToken,
    ) -> Option<Duration> {
        match self.poll_unless(source, opts, cancel).await? {
            Ok(report) => {
                // A fetched (200, 304) poll reset the failure count: no need to read it back.
                let fetched = matches!(
                    report.outcome,
                    PollOutcome::NotModified
                        | PollOutcome::Baseline { .. }
                        | PollOutcome::Polled { .. }
                );
                if !fetched
                    && let Ok(Some(s)) = self.store.source(&source.key)
                    && s.consecutive_failures == self.config.watcher.failing_after
                {
                    warn!(
                        source = %source.config.url,
                        failures = s.consecutive_failures,
                        "source is failing; it keeps being polled, less often (see `watcher status`)"
                    );
                }
                (report.outcome != PollOutcome::Gone).then_some(report.next.wait)
            }
            Err(e) => {
                error!(source = %source.config.url, error = %crate::causes::one_line(&e), "cannot store poll result");
                Some(self.config.watcher.interval)
            }
        }
    }

    /// Removes old done deliveries (`[watcher] keep_deliveries`).
    async fn prune(&self) -> Result<(), StoreError> {
        let keep = chrono::Duration::from_std(self.config.watcher.keep_deliveries)
            .unwrap_or(chrono::Duration::MAX);
        let n = self.store.prune_deliveries(Utc::now() - keep).await?;
        if n > 0 {
            info!(removed = n, "old done deliveries pruned");
        }
        Ok(())
    }

    async fn batch_and_deliver(&self, window: Option<Duration>) -> Result<(), StoreError> {
        outbox::form_batches(&self.store, &self.batching(window), Utc::now()).await?;
        outbox::deliver_due(&self.store, self.deliverer(), Utc::now()).await?;
        outbox::follow_runs(
            &self.store,
            self.deliverer(),
            self.config.trigger.follow_interval,
        )
        .await?;
        Ok(())
    }
}

impl crate::control::Daemon for Watcher {
    async fn status(&self) -> Result<StatusReport, StoreError> {
        Watcher::status(self).await
    }

    async fn retry(&self, batch: Option<&str>) -> Result<usize, StoreError> {
        Watcher::retry(self, batch).await
    }

    async fn redeliver(
        &self,
        batch: &str,
    ) -> Result<crate::delivery::Delivery, outbox::RedeliverError> {
        Watcher::redeliver(self, batch).await
    }
}
