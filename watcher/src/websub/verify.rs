//! websub/verify.rs: what a hub's verification request (`GET <callback>?hub.mode=...`) gets,
//! decided from the subscription record alone: the bare challenge with 200 only for a matching
//! pending request (a subscribe for one being subscribed, an unsubscribe for one being ended, same
//! topic), a plain 200 for a denial of one we asked for, and 404 for anything else. Pure; the
//! caller stores the resulting record.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{PushState, PushSubscription};

/// The longest challenge echoed.
pub const MAX_CHALLENGE: usize = 1024;

/// The query of a verification request, as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Query {
    #[serde(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.topic")]
    pub topic: Option<String>,
    #[serde(rename = "hub.challenge")]
    pub challenge: Option<String>,
    #[serde(rename = "hub.lease_seconds")]
    pub lease_seconds: Option<String>,
    #[serde(rename = "hub.reason")]
    pub reason: Option<String>,
}

/// What to answer, and what becomes of the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 404: unknown callback, wrong topic, or nothing pending of that mode.
    NotFound,
    /// 200 with the bare challenge; the subscription is live until `lease_until`.
    Subscribed {
        challenge: String,
        record: PushSubscription,
    },
    /// 200 with the bare challenge; the record is removed.
    Unsubscribed { challenge: String },
    /// 200; the subscription is denied.
    Denied { record: PushSubscription },
}

/// The answer to `query` for `record`, at `now`; `asked_lease` when the hub names none.
pub fn answer(
    record: Option<&PushSubscription>,
    query: &Query,
    asked_lease: Duration,
    now: DateTime<Utc>,
) -> Verdict {
    let Some(record) = record else {
        return Verdict::NotFound;
    };
    if query.topic.as_deref() != Some(record.topic.as_str()) {
        return Verdict::NotFound;
    }
    let challenge = query
        .challenge
        .clone()
        .filter(|c| !c.is_empty() && c.len() <= MAX_CHALLENGE);
    match (query.mode.as_deref(), &record.state, challenge) {
        (Some("subscribe"), PushState::Subscribing, Some(challenge)) => {
            let lease = match query.lease_seconds.as_deref().map(str::parse::<u64>) {
                Some(Ok(secs)) => Duration::from_secs(secs.min(10 * 365 * 24 * 3600)),
                Some(Err(_)) => return Verdict::NotFound,
                None => asked_lease,
            };
            let mut record = record.clone();
            record.state = PushState::Live;
            record.verified_at = Some(now);
            record.lease_until = Some(now + chrono::Duration::from_std(lease).unwrap_or_default());
            record.failures = 0;
            Verdict::Subscribed { challenge, record }
        }
        (Some("unsubscribe"), PushState::Unsubscribing, Some(challenge)) => {
            Verdict::Unsubscribed { challenge }
        }
        (Some("denied"), PushState::Subscribing | PushState::Live, _) => {
            let mut record = record.clone();
            record.state = PushState::Denied {
                reason: (query.reason.as_deref())
                    .map(|r| crate::printable::printable_within(r, 200)),
            };
            Verdict::Denied { record }
        }
        _ => Verdict::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: PushState) -> PushSubscription {
        PushSubscription {
            source_key: "k".into(),
            hub: "https://hub/".into(),
            topic: "https://b/feed".into(),
            secret: "00".into(),
            state,
            asked_at: Utc::now(),
            verified_at: None,
            lease_until: None,
            replaces: None,
            failures: 2,
            last_push: None,
            pushes: 0,
            bad_deliveries: 0,
        }
    }

    fn query(mode: &str, topic: &str, lease: Option<&str>) -> Query {
        Query {
            mode: Some(mode.into()),
            topic: Some(topic.into()),
            challenge: Some("ch4ll".into()),
            lease_seconds: lease.map(Into::into),
            reason: None,
        }
    }

    const ASKED: Duration = Duration::from_secs(3600);

    #[test]
    fn a_pending_subscribe_is_confirmed_with_the_hubs_lease() {
        let now = Utc::now();
        let r = record(PushState::Subscribing);
        let v = answer(
            Some(&r),
            &query("subscribe", "https://b/feed", Some("60")),
            ASKED,
            now,
        );
        let Verdict::Subscribed { challenge, record } = v else {
            panic!("{v:?}")
        };
        assert_eq!(challenge, "ch4ll");
        assert_eq!(record.state, PushState::Live);
        assert_eq!(
            record.lease_until,
            Some(now + chrono::Duration::seconds(60))
        );
        assert_eq!(record.failures, 0);
        let v = answer(
            Some(&r),
            &query("subscribe", "https://b/feed", None),
            ASKED,
            now,
        );
        let Verdict::Subscribed { record, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(record.lease_until, Some(now + chrono::Duration::hours(1)));
    }

    #[test]
    fn anything_not_pending_is_not_found() {
        let now = Utc::now();
        let sub = query("subscribe", "https://b/feed", Some("60"));
        assert_eq!(answer(None, &sub, ASKED, now), Verdict::NotFound);
        // Already live (a replayed verification), being ended, denied.
        for state in [
            PushState::Live,
            PushState::Unsubscribing,
            PushState::Denied { reason: None },
        ] {
            assert_eq!(
                answer(Some(&record(state)), &sub, ASKED, now),
                Verdict::NotFound
            );
        }
        let pending = record(PushState::Subscribing);
        let other_topic = query("subscribe", "https://evil/feed", Some("60"));
        assert_eq!(
            answer(Some(&pending), &other_topic, ASKED, now),
            Verdict::NotFound
        );
        let unsub = query("unsubscribe", "https://b/feed", None);
        assert_eq!(
            answer(Some(&pending), &unsub, ASKED, now),
            Verdict::NotFound
        );
        let bad_lease = query("subscribe", "https://b/feed", Some("abc"));
        assert_eq!(
            answer(Some(&pending), &bad_lease, ASKED, now),
            Verdict::NotFound
        );
        let mut no_challenge = sub.clone();
        no_challenge.challenge = None;
        assert_eq!(
            answer(Some(&pending), &no_challenge, ASKED, now),
            Verdict::NotFound
        );
    }

    #[test]
    fn unsubscribe_and_denial_of_what_we_asked() {
        let now = Utc::now();
        let ending = record(PushState::Unsubscribing);
        assert_eq!(
            answer(
                Some(&ending),
                &query("unsubscribe", "https://b/feed", None),
                ASKED,
                now
            ),
            Verdict::Unsubscribed {
                challenge: "ch4ll".into()
            }
        );
        let mut denied = query("denied", "https://b/feed", None);
        denied.reason = Some("not\u{1b}[31m welcome".into());
        let v = answer(Some(&record(PushState::Subscribing)), &denied, ASKED, now);
        let Verdict::Denied { record } = v else {
            panic!("{v:?}")
        };
        let PushState::Denied {
            reason: Some(reason),
        } = record.state
        else {
            panic!()
        };
        assert!(!reason.contains('\u{1b}'), "{reason}");
    }
}
