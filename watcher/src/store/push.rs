//! store/push.rs: the `websub` tree: one record per WebSub subscription, keyed by its callback
//! id (the unguessable last segment of its callback URL), holding the hub, the topic, the secret
//! that signs its deliveries, its state and lease, and its counters. A tree of its own, apart
//! from the item layout; the secret is never part of any `Debug` output or log line.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, from_json, to_json};

/// Where a subscription stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PushState {
    /// Asked for; waiting for the hub's verification. Recorded before the request is sent.
    Subscribing,
    /// Verified: deliveries are expected until `lease_until`.
    Live,
    /// Replaced (renewed with a fresh callback) or no longer wanted: asked to end, waiting for
    /// the hub's unsubscribe verification.
    Unsubscribing,
    /// The hub refused it (`hub.mode=denied`): the source is polled.
    Denied { reason: Option<String> },
    /// The request failed (or was never verified): the source is polled.
    Failed { error: String },
    /// Verified, but a safety poll at `at` found `items` new item(s) no push announced: the
    /// source is polled at its normal interval again (pushes still poll it at once, and the
    /// lease is still renewed).
    Missed { at: DateTime<Utc>, items: usize },
}

impl PushState {
    /// The state as `status` and the metrics name it: `pending`, `live`, `ending`, `denied`,
    /// `failed` or `missed`.
    pub fn label(&self) -> &'static str {
        match self {
            PushState::Subscribing => "pending",
            PushState::Live => "live",
            PushState::Unsubscribing => "ending",
            PushState::Denied { .. } => "denied",
            PushState::Failed { .. } => "failed",
            PushState::Missed { .. } => "missed",
        }
    }

    /// Which of a source's subscriptions says most (lowest first): live or missed, then being
    /// subscribed, then denied or failed, then being ended.
    fn rank(&self) -> u8 {
        match self {
            PushState::Live | PushState::Missed { .. } => 0,
            PushState::Subscribing => 1,
            PushState::Denied { .. } | PushState::Failed { .. } => 2,
            PushState::Unsubscribing => 3,
        }
    }
}

/// One subscription.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscription {
    /// The source's store key.
    pub source_key: String,
    pub hub: String,
    /// The feed's `rel=self` URL, as the hub knows it.
    pub topic: String,
    /// Hex, signs deliveries (HMAC). Never logged.
    pub secret: String,
    #[serde(flatten)]
    pub state: PushState,
    /// When the last request for it was sent.
    pub asked_at: DateTime<Utc>,
    /// When it was verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// The end of the lease the hub granted.
    pub lease_until: Option<DateTime<Utc>>,
    /// The callback id of the subscription this one renews (ended once this one is verified).
    pub replaces: Option<String>,
    /// Consecutive failed requests.
    #[serde(default)]
    pub failures: u32,
    /// The last delivery with a good signature.
    #[serde(default)]
    pub last_push: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pushes: u64,
    /// Deliveries dropped: unsigned or badly signed.
    #[serde(default)]
    pub bad_deliveries: u64,
}

impl std::fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSubscription")
            .field("source_key", &self.source_key)
            .field("hub", &self.hub)
            .field("topic", &self.topic)
            .field("secret", &"<redacted>")
            .field("state", &self.state)
            .field("lease_until", &self.lease_until)
            .field("replaces", &self.replaces)
            .finish_non_exhaustive()
    }
}

impl Store {
    fn push_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("websub")?)
    }

    /// The subscription whose callback id is `id`.
    pub fn push_subscription(&self, id: &str) -> Result<Option<PushSubscription>, StoreError> {
        (self.push_tree()?.get(id)?)
            .map(|v| from_json(id.as_bytes(), &v))
            .transpose()
    }

    /// Every subscription, by callback id.
    pub fn push_subscriptions(&self) -> Result<Vec<(String, PushSubscription)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.push_tree()?.iter() {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), from_json(&k, &v)?));
        }
        Ok(out)
    }

    /// Per source key, the subscription that says most about it (see [`PushState::rank`]): a
    /// renewal overlaps its predecessor for a while.
    pub fn push_by_source(&self) -> Result<HashMap<String, PushSubscription>, StoreError> {
        let mut out: HashMap<String, PushSubscription> = HashMap::new();
        for (_, sub) in self.push_subscriptions()? {
            if (out.get(&sub.source_key)).is_none_or(|have| sub.state.rank() < have.state.rank()) {
                out.insert(sub.source_key.clone(), sub);
            }
        }
        Ok(out)
    }

    /// Stores a subscription and makes it durable (a pending one must be on disk before its
    /// request is sent: some hubs verify before they answer).
    pub async fn put_push_subscription(
        &self,
        id: &str,
        sub: &PushSubscription,
    ) -> Result<(), StoreError> {
        self.put_push_subscription_lazy(id, sub).await?;
        self.flush().await
    }

    /// Stores a subscription's counters without waiting for the disk.
    pub async fn put_push_subscription_lazy(
        &self,
        id: &str,
        sub: &PushSubscription,
    ) -> Result<(), StoreError> {
        let (tree, key, value) = (self.push_tree()?, id.to_owned(), to_json(sub));
        sled_gate::blocking(move || sled_gate::shared(|| tree.insert(key, value))).await?;
        Ok(())
    }

    /// Forgets a subscription.
    pub async fn remove_push_subscription(&self, id: &str) -> Result<(), StoreError> {
        let (tree, key) = (self.push_tree()?, id.to_owned());
        sled_gate::blocking(move || sled_gate::shared(|| tree.remove(key))).await?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> PushSubscription {
        PushSubscription {
            source_key: "A\u{1f}https://x/feed".into(),
            hub: "https://hub.example/".into(),
            topic: "https://x/feed".into(),
            secret: "5ec7e75ec7e7".into(),
            state: PushState::Subscribing,
            asked_at: Utc::now(),
            verified_at: None,
            lease_until: None,
            replaces: None,
            failures: 0,
            last_push: None,
            pushes: 0,
            bad_deliveries: 0,
        }
    }

    #[tokio::test]
    async fn subscriptions_round_trip_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut s = sub();
        store.put_push_subscription("id1", &s).await.unwrap();
        s.state = PushState::Denied {
            reason: Some("no".into()),
        };
        store.put_push_subscription("id2", &s).await.unwrap();
        assert_eq!(store.push_subscription("id2").unwrap(), Some(s.clone()));
        assert_eq!(store.push_subscriptions().unwrap().len(), 2);
        store.remove_push_subscription("id1").await.unwrap();
        assert_eq!(store.push_subscription("id1").unwrap(), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", sub());
        assert!(!shown.contains("5ec7e7"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
