//! watch/daemon.rs: the daemon loop (`watcher run`): serve the status endpoint, poll each
//! source when due, group and deliver beside polling, until cancelled or the store fails; then
//! drain in-flight work and flush. A store failure ends it (see [`crate::health`]): `/healthz`
//! says why while it drains, and `run` returns the failure, which `main` maps to `exit::STORE`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::Watcher;
use crate::due::{DueQueue, GATHER_MAX, Grid};
use crate::error::WatcherError;
use crate::outbox;
use crate::poll::{Planned, PollOptions, PollOutcome};
use crate::status::StatusReport;
use crate::store::{Store, StoreError};

/// How often the daemon looks for due sources and deliveries when nothing is due sooner.
const TICK: Duration = Duration::from_secs(1);

/// How often the daemon prunes old done deliveries.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// At shutdown, how long a delivery in flight may take before it is cut off.
const DELIVERY_DRAIN: Duration = Duration::from_secs(20);

/// After a store failure, `/healthz` keeps answering 503 with the reason at least this long
/// before the process exits, so a health check sees why it is about to restart.
const FAILURE_LINGER: Duration = Duration::from_secs(3);

impl Watcher {
    /// The daemon: serves the status endpoint on `listener`, polls each source when due (within
    /// the global and per-host limits), forms batches after the batch window and delivers them,
    /// until `cancel` fires. Then it stops starting work, stops the polls in flight (they record
    /// nothing; their parses stop at the next budget check) and waits for them, and flushes the
    /// store. A store failure stops it the same way (`/healthz` answers 503 meanwhile) and
    /// is returned. Timers use tokio's clock, so tests can pause and advance it.
    pub async fn run(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), WatcherError> {
        let this = Arc::new(self);
        let tracker = TaskTracker::new();
        // The endpoint outlives the loop after a store failure, to say why.
        let endpoint = cancel.child_token();
        let (dashboard, mut poll_requests) = crate::dashboard::Dashboard::new(
            &this.config,
            this.deliverer.clone().expect("opened with Watcher::open"),
            this.store.clone(),
        );
        let control = tokio::spawn(crate::control::serve(
            listener,
            this.clone(),
            crate::dashboard::router(this.clone(), Arc::new(dashboard)),
            endpoint.clone(),
        ));
        // Sources are known by their index in `sources` from here on: the due queue and the
        // polls' completions carry it, so no step of a poll walks every source.
        let sources: Arc<[Planned]> = this
            .sources()
            .into_iter()
            .map(|s| Planned::new(s, &this.config.watcher))
            .collect();
        let push_task = this.start_push(&sources, &endpoint).await?;
        let mut pushed = this.pushed.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut coalescer = crate::websub::coalesce::Coalescer::new(
            (this.config.websub.as_ref()).map_or(Duration::ZERO, |w| w.coalesce),
        );
        let mut due = this.initial_due(&sources)?;
        // Sources a push asked for: polled when due, off the grid (a push does not wait for it).
        let mut pushed_due = DueQueue::default();
        // Polls start on a grid (see `Grid`): sources due close together share their flushes.
        let shortest = (sources.iter().map(|s| s.config.interval).min()).unwrap_or(GATHER_MAX);
        let grid = Grid::for_interval(Instant::now(), shortest);
        this.remember_last_success()?;
        info!(
            sources = sources.len(),
            scheduled = due.len(),
            state_dir = %this.config.watcher.state_dir.display(),
            "watcher started"
        );
        this.vitals.set_ready();
        crate::sdnotify::ready(sources.len());
        let watchdog = crate::sdnotify::Watchdog::start(this.vitals.clone());
        let (done_tx, mut done_rx) =
            tokio::sync::mpsc::unbounded_channel::<(usize, Option<Duration>)>();
        let poll_opts = this.poll_options(false, false);
        let mut delivering: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_delivery = Instant::now();
        let mut next_prune = Instant::now();
        loop {
            this.vitals.turned();
            // A source leaves the queue while it is being polled; its completion puts it back.
            while let Some(index) = (due.pop_due(grid.last(Instant::now())))
                .or_else(|| pushed_due.pop_due(Instant::now()))
            {
                this.vitals.poll_started();
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
                    this.vitals.poll_ended();
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
                        this.health.store_failed(&e);
                    }
                }
                let this = this.clone();
                delivering = Some(tokio::spawn(async move {
                    if let Err(e) = this
                        .batch_and_deliver(Some(this.config.watcher.batch_window))
                        .await
                    {
                        error!(error = %crate::causes::one_line(&e), "delivery pass failed");
                        this.health.store_failed(&e);
                    }
                }));
            }
            let tick = Instant::now() + TICK;
            let wake = due.next().map_or(tick, |at| grid.next(at).min(tick));
            let wake = pushed_due.next().map_or(wake, |at| at.min(wake));
            // A pass asked for now (after a pushed poll) while one runs: start it when that ends.
            let pass_wanted = Instant::now() >= next_delivery
                && delivering.as_ref().is_some_and(|d| !d.is_finished());
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = this.health.failed() => break,
                Some(done) = done_rx.recv() => {
                    // Every poll that finished meanwhile, so a burst of completions costs one
                    // turn of the loop.
                    let now = Instant::now();
                    let mut done = Some(done);
                    while let Some((index, next)) = done {
                        let (pushed, again) = coalescer.finished(index, now);
                        if pushed {
                            // What a push found is batched and delivered now, not on the tick.
                            next_delivery = now;
                        }
                        if let Some(at) = again {
                            pushed_due.insert(at, index);
                        } else if let Some(wait) = next {
                            due.insert(now + wait, index);
                        }
                        done = done_rx.try_recv().ok();
                    }
                }
                Some(asked) = poll_requests.recv() => {
                    // The dashboard's "Poll now".
                    let answer = match sources.iter().position(|s| s.key == asked.key) {
                        None => crate::dashboard::PollAnswer::Unknown,
                        Some(index) if due.advance(index, Instant::now()) || pushed_due.advance(index, Instant::now()) => crate::dashboard::PollAnswer::Scheduled,
                        Some(_) => crate::dashboard::PollAnswer::NotWaiting,
                    };
                    let _ = asked.reply.send(answer);
                }
                Some(key) = crate::websub::next_push(&mut pushed) => {
                    // A signed delivery: poll the source now (coalesced).
                    if let Some(index) = sources.iter().position(|s| s.key == key)
                        && let Some(at) = coalescer.pushed(index, Instant::now())
                    {
                        if due.remove(index) {
                            pushed_due.insert(at, index);
                        } else if !pushed_due.advance(index, at) {
                            coalescer.in_flight(index);
                        }
                    }
                }
                _ = async {
                    if let Some(d) = delivering.as_mut() {
                        let _ = d.await;
                    }
                }, if pass_wanted => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        let failed_at = this.health.failure().map(|_| Instant::now());
        this.vitals.set_stopping();
        crate::sdnotify::stopping();
        drop(watchdog);
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
        if let Some(at) = failed_at {
            tokio::time::sleep_until(at + FAILURE_LINGER).await;
        }
        endpoint.cancel();
        if let Some(task) = push_task {
            let _ = task.await;
        }
        if let Err(e) = control.await {
            warn!(error = %e, "status endpoint task ended badly");
        }
        let failure = this.health.failure().map(str::to_owned);
        // Items found by the last polls stay staged (durable) and are batched on the next start.
        let stopped = match Arc::try_unwrap(this) {
            Ok(w) => w.shutdown().await,
            Err(this) => this.store.flush().await.map_err(WatcherError::from),
        };
        if let Some(reason) = failure {
            if let Err(e) = stopped {
                warn!(error = %crate::causes::one_line(&e), "the store could not be flushed either");
            }
            return Err(WatcherError::StoreFailed { reason });
        }
        stopped?;
        info!("watcher stopped");
        Ok(())
    }

    /// When each source (by its index in `sources`) is first due, on tokio's clock, from the
    /// stored schedule. Sources stopped for good (410 for 30 days) are left out.
    fn initial_due(&self, sources: &[Planned]) -> Result<DueQueue, StoreError> {
        let start = Instant::now();
        let wall = Utc::now();
        let mut due = DueQueue::default();
        for (index, source) in sources.iter().enumerate() {
            let last = self.store.source(&source.key)?.map(|s| s.due());
            let Some(wait) =
                crate::schedule::wait_until_due(last.as_ref(), source.config.interval, wall)
            else {
                warn!(source = %source.config.url, "source is stopped (410 Gone for 30 days); remove it from the config");
                continue;
            };
            // Pushes sent while the daemon was down are lost: a push-live source is polled now.
            let wait = match &self.push {
                Some(push) if push.is_live(&source.key) => Duration::ZERO,
                _ => wait,
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
        let mark = (self.push.as_ref()).map(|push| push.poll_started(&source.key));
        // At shutdown a poll in flight stops where it is and records nothing.
        match self.poll_unless(source, opts, cancel, cancel).await? {
            Ok(report) => {
                if let (Some(push), Some(mark)) = (&self.push, mark) {
                    let links = report.push.as_ref();
                    // Only a response read tells whether the feed names a hub.
                    let (read, found) = match &report.outcome {
                        PollOutcome::Baseline { .. } => (true, 0),
                        PollOutcome::Polled { new, held, .. } => (true, new.len() + held),
                        _ => (false, 0),
                    };
                    if let Err(e) = push
                        .after_poll(&source.config, &source.key, links, (read, found), mark)
                        .await
                    {
                        error!(source = %source.config.url, error = %crate::causes::one_line(&e), "cannot store a push subscription");
                        self.health.store_failed(&e);
                    }
                }
                // A fetched (200, 304) poll reset the failure count: no need to read it back.
                let fetched = matches!(
                    report.outcome,
                    PollOutcome::NotModified
                        | PollOutcome::Baseline { .. }
                        | PollOutcome::Polled { .. }
                );
                if fetched {
                    self.vitals.poll_succeeded();
                }
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
                if report.outcome == PollOutcome::Gone {
                    // Asked again daily, until it has been gone for too long.
                    return match self.store.source(&source.key) {
                        Ok(Some(s)) => crate::schedule::wait_until_due(
                            Some(&s.due()),
                            source.config.interval,
                            Utc::now(),
                        ),
                        _ => Some(report.next.wait),
                    };
                }
                Some(match &self.push {
                    Some(push) => push.safety_wait(&source.key, report.next.wait),
                    None => report.next.wait,
                })
            }
            Err(e) => {
                error!(source = %source.config.url, error = %crate::causes::one_line(&e), "cannot store poll result");
                self.health.store_failed(&e);
                Some(self.config.watcher.interval)
            }
        }
    }

    /// With `[websub]`: binds its listener and starts the callback server and the upkeep of
    /// subscriptions, until `cancel`.
    async fn start_push(
        &self,
        sources: &[Planned],
        cancel: &CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, WatcherError> {
        let Some(push) = &self.push else {
            return Ok(None);
        };
        let addr = push.settings().listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| WatcherError::CallbackListen { addr, source })?;
        push.refresh_live()?;
        let keys = (sources.iter())
            .filter(|s| crate::websub::wants_push(&s.config))
            .map(|s| s.key.clone())
            .collect();
        info!(listen = %addr, "WebSub callback server started");
        Ok(Some(crate::websub::start(
            push.clone(),
            listener,
            keys,
            cancel.clone(),
        )))
    }

    async fn batch_and_deliver(&self, window: Option<Duration>) -> Result<(), StoreError> {
        let started = Instant::now();
        outbox::form_batches(&self.store, &self.batching(window), Utc::now()).await?;
        let reports = outbox::deliver_due(&self.store, self.deliverer(), Utc::now()).await?;
        self.metrics.delivered(&reports);
        if let Some(push) = &self.push
            && reports.iter().any(|r| r.outcome.is_ok())
        {
            push.triggered(started, window.unwrap_or_default());
        }
        outbox::follow_runs(
            &self.store,
            self.deliverer(),
            self.following(self.config.trigger.follow_interval),
        )
        .await?;
        Ok(())
    }
}

impl crate::control::Daemon for Watcher {
    fn store_failure(&self) -> Option<String> {
        self.health.failure().map(str::to_owned)
    }

    // A store failure met while answering the endpoint stops the daemon like any other.
    async fn status(&self) -> Result<StatusReport, StoreError> {
        Watcher::status(self)
            .await
            .inspect_err(|e| _ = self.health.store_failed(e))
    }

    async fn retry(&self, batch: Option<&str>) -> Result<usize, StoreError> {
        Watcher::retry(self, batch)
            .await
            .inspect_err(|e| _ = self.health.store_failed(e))
    }

    async fn redeliver(
        &self,
        batch: &str,
        force: bool,
    ) -> Result<crate::delivery::Delivery, outbox::RedeliverError> {
        Watcher::redeliver(self, batch, force)
            .await
            .inspect_err(|e| {
                if let outbox::RedeliverError::Store(e) = e {
                    self.health.store_failed(e);
                }
            })
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn not_ready(&self) -> Option<&'static str> {
        self.vitals.not_ready()
    }

    async fn age_problem(&self) -> Result<Option<String>, StoreError> {
        Watcher::age_problem(self)
            .await
            .inspect_err(|e| _ = self.health.store_failed(e))
    }

    async fn metrics(&self) -> Result<String, StoreError> {
        Watcher::metrics_text(self)
            .await
            .inspect_err(|e| _ = self.health.store_failed(e))
    }
}
