//! websub: push through WebSub hubs, polling kept as the safety net. A feed that names a hub
//! (see [`discover`]) is subscribed to with an unguessable callback and a random secret
//! ([`Push::after_poll`]); the hub's verification is answered only for a matching pending request
//! ([`verify`]); a delivery with a good signature ([`signature`]) is answered at once and becomes
//! "poll this source now" for the daemon, coalesced ([`coalesce`]), so identity, diff, the outbox
//! and batch ids work exactly as for polls. Leases are renewed with a fresh callback before they
//! end ([`Push::maintain`]); a denial or a failure leaves the source to polling, shown in
//! `status`, and so does a safety poll that finds items no push announced (`missed`, see
//! [`track`]). The callback server is [`callback`]; requests to hubs are [`hub`]'s; the records
//! live in the store's `websub` tree (`store/push.rs`).

pub mod callback;
pub mod coalesce;
pub mod discover;
pub mod hub;
pub mod signature;
pub mod telemetry;
pub mod track;
pub mod verify;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::RngCore;
use tokio::sync::mpsc;
use tracing::{info, warn};
use url::Url;

use self::discover::PushLinks;
use self::hub::{HubClient, HubError, Request};
use crate::config::{FetchSettings, SourceConfig, SourceKind, WebsubSettings};
use crate::ssrf::NetworkRule;
use crate::store::{PushState, PushSubscription, Store, StoreError};

/// A request the hub accepted but never verified is given up after this long.
const PENDING_TIMEOUT: Duration = Duration::from_secs(300);

/// Pushes waiting for the daemon (more are dropped: the ones waiting already poll).
const QUEUE: usize = 1024;

/// The push side of the daemon: subscriptions, verification, deliveries.
pub struct Push {
    settings: WebsubSettings,
    store: Store,
    hub: HubClient,
    /// The body cap of a delivery (`[fetch] max_body_bytes`).
    max_body: u64,
    pushed: mpsc::Sender<String>,
    /// Source keys with a live subscription (kept from the store's records).
    live: Mutex<HashSet<String>>,
    /// Which polls pushes asked for (misses, the latency share).
    track: track::Tracker,
    metrics: telemetry::PushMetrics,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Signed right: the source is polled.
    Accepted,
    /// Unsigned or badly signed: counted, not acted on (the hub is told the same as for a good
    /// one).
    Dropped,
    /// No such callback (or one denied or failed).
    Unknown,
}

impl Delivered {
    /// The `outcome` label of `watcher_push_deliveries_total`.
    pub fn label(self) -> &'static str {
        match self {
            Delivered::Accepted => "accepted",
            Delivered::Dropped => "bad_signature",
            Delivered::Unknown => "unknown_callback",
        }
    }
}

impl Push {
    /// The push side for `settings`, and the receiver of the source keys pushed.
    pub fn new(
        settings: WebsubSettings,
        fetch: &FetchSettings,
        rule: NetworkRule,
        store: Store,
        metrics: telemetry::PushMetrics,
    ) -> Result<(Push, mpsc::Receiver<String>), HubError> {
        let (pushed, rx) = mpsc::channel(QUEUE);
        let push = Push {
            hub: HubClient::new(fetch, rule)?,
            max_body: fetch.max_body_bytes,
            settings,
            store,
            pushed,
            live: Mutex::default(),
            track: track::Tracker::default(),
            metrics,
        };
        Ok((push, rx))
    }

    pub fn settings(&self) -> &WebsubSettings {
        &self.settings
    }

    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Whether the source has a live subscription.
    pub fn is_live(&self, key: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// The wait until the next poll of a source: while push is live, at least the safety
    /// interval (the adaptive interval does not shorten it, `max_interval` does not cut it).
    pub fn safety_wait(&self, key: &str, wait: Duration) -> Duration {
        if self.is_live(key) {
            wait.max(self.settings.safety_interval)
        } else {
            wait
        }
    }

    /// Rebuilds the live set from the store.
    pub fn refresh_live(&self) -> Result<(), StoreError> {
        self.refresh_live_demoting().map(drop)
    }

    /// Rebuilds the live set from the store; returns the sources no longer live.
    fn refresh_live_demoting(&self) -> Result<Vec<String>, StoreError> {
        let now = Utc::now();
        let live: HashSet<String> = (self.store.push_subscriptions()?.into_iter())
            .filter(|(_, s)| s.state == PushState::Live && s.lease_until.is_some_and(|u| u > now))
            .map(|(_, s)| s.source_key)
            .collect();
        let mut was = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let demoted = was.difference(&live).cloned().collect();
        *was = live;
        Ok(demoted)
    }

    /// Rebuilds the live set, and has the daemon poll at once the sources whose push just
    /// stopped (a lapsed lease, a denial): their next poll was the safety poll, hours away, and
    /// from now on they are polled at their own interval.
    fn refresh_live_waking(&self) -> Result<(), StoreError> {
        for key in self.refresh_live_demoting()? {
            info!(source = %key_url(&key), "push stopped: polling the source now and at its interval from now on");
            // A full queue already holds pushes enough to poll.
            let _ = self.pushed.try_send(key);
        }
        Ok(())
    }

    /// A poll of source `key` starts (in the daemon): it takes the push waiting, if any.
    pub fn poll_started(&self, key: &str) -> track::PollMark {
        self.track.poll_started(key)
    }

    /// After a poll of `source` (key `key`, its start marked `mark`) that found `found` new
    /// items: a live subscription whose poll found items no push announced is `missed`; then
    /// subscribe when the feed names a hub and no subscription to it stands, and end the ones to
    /// a hub or topic the feed no longer names. `links` is what the response named; `read` is
    /// false when nothing was read (a 304, a failure), and then no subscription changes.
    pub async fn after_poll(
        &self,
        source: &SourceConfig,
        key: &str,
        links: Option<&PushLinks>,
        (read, found): (bool, usize),
        mark: track::PollMark,
    ) -> Result<(), StoreError> {
        if let Some(unannounced) = self.track.poll_ended(key, mark, found) {
            self.missed(key, unannounced, found).await?;
        }
        if !read {
            return Ok(());
        }
        let wanted = wants_push(source).then_some(links).flatten();
        let mut standing = false;
        let mut retry: Option<(String, u32)> = None;
        for (id, sub) in self.store.push_subscriptions()? {
            if sub.source_key != key {
                continue;
            }
            let same =
                wanted.is_some_and(|l| l.hub.as_str() == sub.hub && l.topic.as_str() == sub.topic);
            match (&sub.state, same) {
                (PushState::Failed { .. }, true) => {
                    if Utc::now() - sub.asked_at >= retry_after(sub.failures) {
                        retry = Some((id, sub.failures));
                    } else {
                        standing = true;
                    }
                }
                (PushState::Unsubscribing, _) => {}
                (_, true) => standing = true,
                (PushState::Failed { .. } | PushState::Denied { .. }, false) => {
                    self.store.remove_push_subscription(&id).await?;
                }
                (_, false) => self.unsubscribe(&id, sub).await?,
            }
        }
        let Some(links) = wanted else {
            return self.refresh_live();
        };
        if standing {
            return Ok(());
        }
        let failures = match retry {
            Some((id, failures)) => {
                self.store.remove_push_subscription(&id).await?;
                failures
            }
            None => 0,
        };
        self.subscribe(key, links, None, failures).await
    }

    /// `found` items no push announced turned up in a poll of `key`: its subscription, if live
    /// since before the previous poll, is `missed` and the source is polled normally again.
    async fn missed(
        &self,
        key: &str,
        unannounced: track::Unannounced,
        found: usize,
    ) -> Result<(), StoreError> {
        for (id, mut sub) in self.store.push_subscriptions()? {
            let live_before = sub.verified_at.is_some_and(|v| v < unannounced.previous);
            if sub.source_key != key || sub.state != PushState::Live || !live_before {
                continue;
            }
            warn!(source = %key_url(key), hub = %sub.hub, items = found, "a safety poll found items no push announced: push marked missed, the source is polled at its normal interval");
            sub.state = PushState::Missed {
                at: Utc::now(),
                items: found,
            };
            self.store.put_push_subscription(&id, &sub).await?;
        }
        self.refresh_live()
    }

    /// A delivery pass that started at `pass_started` sent a trigger: the pushed items it took
    /// (staged a batch `window` before it) are timed from their delivery's receipt.
    pub fn triggered(&self, pass_started: tokio::time::Instant, window: Duration) {
        for share in self.track.triggered(pass_started, window) {
            self.metrics.share(share);
        }
    }

    /// Counts a delivery by what became of it (`watcher_push_deliveries_total`).
    pub fn count_delivery(&self, outcome: &'static str) {
        self.metrics.delivery(outcome);
    }

    /// Asks the hub for a subscription with a fresh callback and secret, recorded (durably) as
    /// pending before the request goes.
    async fn subscribe(
        &self,
        key: &str,
        links: &PushLinks,
        replaces: Option<String>,
        failures: u32,
    ) -> Result<(), StoreError> {
        let id = random_hex(24);
        let sub = PushSubscription {
            source_key: key.to_owned(),
            hub: links.hub.to_string(),
            topic: links.topic.to_string(),
            secret: random_hex(32),
            state: PushState::Subscribing,
            asked_at: Utc::now(),
            verified_at: None,
            lease_until: None,
            replaces,
            failures,
            last_push: None,
            pushes: 0,
            bad_deliveries: 0,
        };
        self.store.put_push_subscription(&id, &sub).await?;
        let callback = self.settings.callback(&id);
        let request = Request::Subscribe {
            topic: &links.topic,
            callback: &callback,
            secret: &sub.secret,
            lease: self.settings.lease,
        };
        match self.hub.send(&links.hub, request).await {
            Ok(_) => {
                info!(source = %key_url(key), hub = %links.hub, "subscription asked of the hub");
                Ok(())
            }
            Err(e) => {
                let error = crate::causes::one_line(&e);
                warn!(source = %key_url(key), hub = %links.hub, %error, "subscribing failed: the source is polled");
                // The hub may have verified (or denied) meanwhile: only a pending one fails.
                if let Some(mut now) = self.store.push_subscription(&id)?
                    && now.state == PushState::Subscribing
                {
                    now.state = PushState::Failed { error };
                    now.failures += 1;
                    self.store.put_push_subscription(&id, &now).await?;
                }
                self.refresh_live()
            }
        }
    }

    /// Ends subscription `id`: recorded as ending, then asked of the hub; when the hub cannot
    /// be asked, the record goes (the lease runs out on its own).
    async fn unsubscribe(&self, id: &str, mut sub: PushSubscription) -> Result<(), StoreError> {
        sub.state = PushState::Unsubscribing;
        sub.asked_at = Utc::now();
        self.store.put_push_subscription(id, &sub).await?;
        self.refresh_live()?;
        let (Ok(hub), Ok(topic)) = (Url::parse(&sub.hub), Url::parse(&sub.topic)) else {
            return self.store.remove_push_subscription(id).await;
        };
        let callback = self.settings.callback(id);
        let request = Request::Unsubscribe {
            topic: &topic,
            callback: &callback,
        };
        if let Err(e) = self.hub.send(&hub, request).await {
            warn!(source = %key_url(&sub.source_key), hub = %hub, error = %crate::causes::one_line(&e), "unsubscribing failed: the subscription is forgotten and lapses with its lease");
            self.store.remove_push_subscription(id).await?;
        }
        Ok(())
    }

    /// Ends the subscriptions of sources no longer configured for push (`keys`: the configured
    /// sources that want it).
    pub async fn reconcile(&self, keys: &HashSet<String>) -> Result<(), StoreError> {
        for (id, sub) in self.store.push_subscriptions()? {
            if keys.contains(&sub.source_key) {
                continue;
            }
            match sub.state {
                PushState::Subscribing | PushState::Live | PushState::Missed { .. } => {
                    info!(source = %key_url(&sub.source_key), "source removed or `push = false`: unsubscribing");
                    self.unsubscribe(&id, sub).await?;
                }
                PushState::Unsubscribing => {}
                PushState::Denied { .. } | PushState::Failed { .. } => {
                    self.store.remove_push_subscription(&id).await?;
                }
            }
        }
        self.refresh_live()
    }

    /// Renews leases near their end ([`renew_margin`]) (with a fresh callback; the old one ends once
    /// the new one is verified), gives up requests never verified, and marks lapsed leases.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        let subs = self.store.push_subscriptions()?;
        let renewing: HashSet<&str> = subs
            .iter()
            .filter_map(|(_, s)| s.replaces.as_deref())
            .collect();
        let mut renew = Vec::new();
        let mut changed = false;
        for (id, sub) in &subs {
            let waited = now - sub.asked_at;
            match &sub.state {
                PushState::Subscribing | PushState::Unsubscribing
                    if waited
                        >= chrono::Duration::from_std(PENDING_TIMEOUT).unwrap_or_default() =>
                {
                    changed = true;
                    if sub.state == PushState::Unsubscribing {
                        self.store.remove_push_subscription(id).await?;
                    } else {
                        let mut s = sub.clone();
                        s.state = PushState::Failed {
                            error: "the hub accepted the request but never verified it".into(),
                        };
                        s.failures += 1;
                        self.store.put_push_subscription(id, &s).await?;
                    }
                }
                PushState::Live | PushState::Missed { .. } => {
                    let (Some(until), Some(from)) = (sub.lease_until, sub.verified_at) else {
                        continue;
                    };
                    if until <= now {
                        changed = true;
                        let mut s = sub.clone();
                        s.state = PushState::Failed {
                            error: "the lease ran out before it was renewed".into(),
                        };
                        self.store.put_push_subscription(id, &s).await?;
                    } else if until - now <= renew_margin(until - from)
                        && !renewing.contains(id.as_str())
                    {
                        renew.push((id.clone(), sub.clone()));
                    }
                }
                _ => {}
            }
        }
        for (id, sub) in renew {
            let (Ok(hub), Ok(topic)) = (Url::parse(&sub.hub), Url::parse(&sub.topic)) else {
                continue;
            };
            info!(source = %key_url(&sub.source_key), "renewing the lease with a fresh callback");
            self.subscribe(&sub.source_key, &PushLinks { hub, topic }, Some(id), 0)
                .await?;
        }
        if changed {
            self.refresh_live_waking()?;
        }
        Ok(())
    }

    /// Answers a hub's verification request for callback `id`: the challenge, or `None` (404).
    pub async fn verification(
        self: &Arc<Self>,
        id: &str,
        query: &verify::Query,
    ) -> Result<Option<String>, StoreError> {
        let record = self.store.push_subscription(id)?;
        match verify::answer(record.as_ref(), query, self.settings.lease, Utc::now()) {
            verify::Verdict::NotFound => Ok(None),
            verify::Verdict::Subscribed {
                challenge,
                mut record,
            } => {
                // A renewal keeps a miss: push is not trusted again by renewing it.
                let replaced = (record.replaces.as_deref())
                    .map(|old| self.store.push_subscription(old))
                    .transpose()?
                    .flatten();
                if let Some(old) = &replaced
                    && let PushState::Missed { .. } = old.state
                {
                    record.state = old.state.clone();
                }
                self.store.put_push_subscription(id, &record).await?;
                info!(source = %key_url(&record.source_key), lease_until = ?record.lease_until, "subscription verified: push is live");
                self.refresh_live()?;
                if let Some(old) = &record.replaces
                    && let Some(old_sub) = replaced
                    && matches!(old_sub.state, PushState::Live | PushState::Missed { .. })
                {
                    // The renewed subscription is verified: the old one ends (its callback
                    // still answers the unsubscribe verification). In the background: the hub
                    // may verify synchronously, on this very callback server.
                    let (store_old, old) = (old_sub, old.clone());
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.unsubscribe(&old, store_old).await {
                            warn!(error = %crate::causes::one_line(&e), "cannot record the end of a renewed subscription");
                        }
                    });
                }
                Ok(Some(challenge))
            }
            verify::Verdict::Unsubscribed { challenge } => {
                self.store.remove_push_subscription(id).await?;
                Ok(Some(challenge))
            }
            verify::Verdict::Denied { record } => {
                warn!(source = %key_url(&record.source_key), hub = %record.hub, "the hub denied the subscription: the source is polled");
                self.store.put_push_subscription(id, &record).await?;
                self.refresh_live_waking()?;
                Ok(Some(String::new()))
            }
        }
    }

    /// A delivery to callback `id`, received at `received`: its signature checked over the raw
    /// `body`; a good one is counted and queued for the daemon, a bad one counted and dropped.
    pub async fn delivery(
        &self,
        id: &str,
        signature: Option<&[u8]>,
        body: &[u8],
        received: tokio::time::Instant,
    ) -> Result<Delivered, StoreError> {
        let Some(mut sub) = self.store.push_subscription(id)? else {
            return Ok(Delivered::Unknown);
        };
        if matches!(
            sub.state,
            PushState::Denied { .. } | PushState::Failed { .. }
        ) {
            return Ok(Delivered::Unknown);
        }
        if let Err(e) = signature::verify(signature, sub.secret.as_bytes(), body) {
            sub.bad_deliveries += 1;
            warn!(source = %key_url(&sub.source_key), reason = %e, "delivery dropped: not acted on");
            self.store.put_push_subscription_lazy(id, &sub).await?;
            return Ok(Delivered::Dropped);
        }
        sub.pushes += 1;
        sub.last_push = Some(Utc::now());
        self.store.put_push_subscription_lazy(id, &sub).await?;
        self.track.received(&sub.source_key, received);
        // A full queue already holds pushes enough to poll.
        let _ = self.pushed.try_send(sub.source_key);
        Ok(Delivered::Accepted)
    }
}

/// How often leases are looked at for renewal.
const UPKEEP: Duration = Duration::from_secs(1);

/// Starts the callback server on `listener` and the upkeep of subscriptions (first ending those
/// of sources no longer configured for push, `keys` being those that are), both until `cancel`.
pub fn start(
    push: Arc<Push>,
    listener: tokio::net::TcpListener,
    keys: HashSet<String>,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let server = tokio::spawn(callback::serve(listener, push.clone(), cancel.clone()));
    tokio::spawn(async move {
        let upkeep = async {
            if let Err(e) = push.reconcile(&keys).await {
                return e;
            }
            loop {
                tokio::time::sleep(UPKEEP).await;
                if let Err(e) = push.maintain().await {
                    return e;
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            e = upkeep => {
                tracing::error!(error = %crate::causes::one_line(&e), "websub upkeep stopped: leases are no longer renewed (sources are still polled)");
                cancel.cancelled().await;
            }
        }
        let _ = server.await;
    })
}

/// Whether `source` takes push: a feed (or a site read through its discovered feed) that does
/// not say `push = false`.
pub fn wants_push(source: &SourceConfig) -> bool {
    source.push && matches!(source.kind, SourceKind::Feed | SourceKind::Discover)
}

/// The next push from `rx`, or never when push is off.
pub async fn next_push(rx: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How long before a lease ends it is renewed: a quarter of it, and never less than two
/// upkeep rounds (so a short lease is not missed between two of them).
fn renew_margin(lease: chrono::Duration) -> chrono::Duration {
    (lease / 4).max(chrono::Duration::from_std(2 * UPKEEP).unwrap_or_default())
}

/// How long after a failed request the next one may go: 1 min, doubling, at most a day.
fn retry_after(failures: u32) -> chrono::Duration {
    chrono::Duration::seconds(60i64.saturating_mul(1i64 << failures.min(11)).min(86_400))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The URL part of a source key, for logs.
fn key_url(key: &str) -> &str {
    key.split_once('\u{1f}').map_or(key, |(_, url)| url)
}
