//! watch.rs: the watcher as a whole: its sources, and one pass (`once`): poll what is due, group
//! staged items into batches, deliver pending batches. The daemon loop (`run`) is [`daemon`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::config::SourceConfig;
use crate::deadline::PollBounds;
use crate::deliver::Deliverer;
use crate::embedded::Embedded;
use crate::error::WatcherError;
use crate::fetch::Fetcher;
use crate::identity::Canonicalizer;
use crate::limits::Limits;
use crate::outbox::{self, DeliveryReport};
use crate::poll::{Planned, PollOptions, PollOutcome, PollReport, poll_source};
use crate::ssrf::NetworkRule;

mod daemon;
mod observe;
use crate::status::StatusReport;
use crate::store::{Store, StoreError};

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
    /// Sources not due yet, and those stopped for good (410 for 30 days): not polled.
    pub not_due: usize,
    pub deliveries: Vec<DeliveryReport>,
    /// Dry run: the batches that would be delivered.
    pub would_deliver: Vec<crate::delivery::Delivery>,
    /// Cancelled (SIGTERM) before it delivered: sources not polled yet were skipped.
    pub interrupted: bool,
}

impl PassReport {
    /// One line per problem: failed sources and failed delivery attempts.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.interrupted {
            out.push(
                "interrupted by a signal: sources not polled yet were skipped and nothing was delivered; what was found stays staged for the next pass".to_string(),
            );
        }
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
    /// Poll slots (the request slots are the fetcher's).
    limits: Limits,
    /// The daemon's store health (`/healthz`).
    health: crate::health::Health,
    /// WebSub push (`[websub]`), and the pushes it receives (taken by the daemon).
    push: Option<Arc<crate::websub::Push>>,
    pushed: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    /// Prometheus metrics (`/metrics`) and the daemon's vitals (`/healthz` ages, `/readyz`,
    /// the systemd watchdog): see `watch/observe.rs`.
    metrics: Arc<crate::metrics::Metrics>,
    vitals: Arc<crate::vitals::Vitals>,
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
        let templates = crate::emit::Templates::load(&w.config).map_err(|problems| {
            crate::config::ConfigError::Invalid {
                path: w.config.path.clone(),
                problems,
            }
        })?;
        w.deliverer = Some(Arc::new(deliverer.with_templates(templates)));
        w.embedded = embedded;
        if let Some(websub) = &w.config.websub {
            let (push, pushed) = crate::websub::Push::new(
                websub.clone(),
                &w.config.fetch,
                w.fetcher.rule().clone(),
                Store::clone(&w.store),
                w.metrics.push.clone(),
            )?;
            w.push = Some(Arc::new(push));
            w.pushed = std::sync::Mutex::new(Some(pushed));
        }
        Ok(w)
    }

    /// Opens the store only: for reading status and re-queueing batches; cannot poll or deliver.
    pub fn inspect(config: Config) -> Result<Watcher, WatcherError> {
        let store = Store::open(&config.watcher.state_dir)?;
        let (concurrency, per_host) = (config.watcher.concurrency, config.watcher.per_host);
        let requests = Arc::new(Limits::new(concurrency, per_host));
        let sources = config.sources();
        let rule = NetworkRule::new(&config.fetch, sources.iter().map(|s| s.url.as_str()));
        let fetcher = Fetcher::new(&config.fetch, rule, requests)?;
        let canon = Canonicalizer::new(
            &config.watcher.tracking_params,
            &config.watcher.tracking_params_by_host,
        );
        Ok(Watcher {
            store: Arc::new(store),
            fetcher,
            canon,
            limits: Limits::new(concurrency, per_host),
            deliverer: None,
            embedded: None,
            health: crate::health::Health::default(),
            push: None,
            pushed: std::sync::Mutex::new(None),
            metrics: Arc::default(),
            vitals: Arc::default(),
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
        let report =
            sled_gate::blocking(move || StatusReport::build(&store, failing_after)).await?;
        Ok(match &self.config.websub {
            Some(websub) => report.with_push(websub.safety_interval),
            None => report,
        })
    }

    /// How runs are followed: asked about at most once per `min_age`.
    fn following(&self, min_age: Duration) -> outbox::Following {
        outbox::Following {
            min_age,
            lost_after: self.config.trigger.run_lost_after,
        }
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
        self.poll_unless(&planned, opts, &never, &never)
            .await
            .expect("never cancelled")
    }

    /// Polls one source within the limits and its bounds (`[fetch] poll_deadline`,
    /// `parse_budget`), unless `cancel` fires while it waits for a slot, or `abort` fires before
    /// its result is stored (`None`: nothing recorded). The per-host slot is taken for the host
    /// actually polled (after a permanent redirect, or the feed autodiscovery found).
    async fn poll_unless(
        &self,
        source: &Planned,
        opts: PollOptions,
        cancel: &CancellationToken,
        abort: &CancellationToken,
    ) -> Option<Result<PollReport, StoreError>> {
        let host = source.host_now(&self.store);
        let _permits = tokio::select! {
            _ = cancel.cancelled() => return None,
            permits = self.limits.acquire(&host) => permits,
        };
        let bounds = PollBounds::new(&self.config.fetch, abort.clone());
        let started = std::time::Instant::now();
        // Boxed: the poll's state (fetch, read, parse) is allocated only once it runs, not for
        // every source of a round waiting for a slot.
        let result = Box::pin(poll_source(
            &self.store,
            &self.fetcher,
            &self.canon,
            &source.config,
            &source.policy,
            opts,
            &bounds,
        ))
        .await
        .transpose();
        if let Some(Ok(report)) = &result {
            self.metrics.polled(&report.outcome, started.elapsed());
        }
        result
    }

    /// One pass: polls every source that is due (every one with `all`), groups what it found
    /// into batches and delivers every pending batch that is due. `progress` is called after each
    /// poll with its report, the number done and the number to do.
    pub async fn once(
        &self,
        opts: OnceOptions,
        progress: impl FnMut(&PollReport, usize, usize),
    ) -> Result<PassReport, WatcherError> {
        self.once_until(opts, &CancellationToken::new(), progress)
            .await
    }

    /// [`Watcher::once`] until `cancel` (SIGTERM): then polls not started yet are skipped, those
    /// in flight finish, and nothing is delivered (what was found stays staged, durable).
    pub async fn once_until(
        &self,
        opts: OnceOptions,
        cancel: &CancellationToken,
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
            let wait = crate::schedule::wait_until_due(last.as_ref(), source.interval, now);
            // `--all` forces sources waiting on their schedule, not the daily re-check of a gone one.
            let gone = last.as_ref().is_some_and(|d| d.gone);
            if wait == Some(Duration::ZERO) || (wait.is_some() && opts.all && !gone) {
                due.push(source);
            } else {
                not_due += 1;
            }
        }
        let total = due.len();
        let planned: Vec<Planned> = due
            .into_iter()
            .map(|source| Planned::new(source, &self.config.watcher))
            .collect();
        // Polls in flight at the signal finish (each within its deadline).
        let finish = CancellationToken::new();
        let mut running: FuturesUnordered<_> = planned
            .iter()
            .map(|source| self.poll_unless(source, poll_opts, cancel, &finish))
            .collect();
        let mut polls = Vec::with_capacity(total);
        while let Some(result) = running.next().await {
            let Some(result) = result else { continue };
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
            interrupted: cancel.is_cancelled(),
            ..PassReport::default()
        };
        let now = Utc::now();
        if report.interrupted {
            return Ok(report);
        }
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
            self.following(self.config.trigger.follow_interval),
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
        outbox::follow_runs(
            &self.store,
            self.deliverer(),
            self.following(Duration::ZERO),
        )
        .await?;
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

    /// Queues a batch whose run failed again, with a new idempotency key (a lost run only with
    /// `force`).
    pub async fn redeliver(
        &self,
        batch: &str,
        force: bool,
    ) -> Result<crate::delivery::Delivery, outbox::RedeliverError> {
        outbox::redeliver(&self.store, batch, force).await
    }

    /// Removes old done deliveries (`[watcher] keep_deliveries`).
    async fn prune(&self) -> Result<(), StoreError> {
        // `check` bounds keep_deliveries; a cutoff before the calendar starts prunes nothing.
        let Some(cutoff) = chrono::Duration::from_std(self.config.watcher.keep_deliveries)
            .ok()
            .and_then(|keep| Utc::now().checked_sub_signed(keep))
        else {
            return Ok(());
        };
        let n = self.store.prune_deliveries(cutoff).await?;
        if n > 0 {
            info!(removed = n, "old done deliveries pruned");
        }
        Ok(())
    }
}
