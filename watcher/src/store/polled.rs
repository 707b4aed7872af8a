//! store/polled.rs: the part of a source's state that every poll rewrites (when it was polled,
//! how it went, the failure count, when it is due next), kept apart from the rest. The rest
//! (validators, identity, counts: `sources`, a serde record) changes only when a feed does and is
//! written only then; this part goes to the `polled` tree as a small binary record (~70 bytes
//! for a 304, against ~700 for the whole JSON record), so a poll's two writes (its attempt and
//! its result) rewrite small sled pages. A store without a `polled` record for a source (written
//! before it existed) reads these fields from `sources`, as before.
//!
//! Record (version 1): version, flags, failures (u32 BE), then per flag that is set: last poll,
//! last success, next due (each i64 seconds + u32 nanoseconds, BE), next due reason, last error,
//! last result (each u32 BE length + UTF-8). The attempt's error text ([`INTERRUPTED`]) and a
//! result that repeats the error (`error: <last error>`) are flags, not bytes.

use chrono::{DateTime, Utc};
use sled_gate::Durability;

use super::{SourceState, Store, StoreError, from_json};

/// What `last_error` says of a poll that never finished (and, for its few seconds, of a poll in
/// flight: both read true). See `poll/attempt.rs`.
pub const INTERRUPTED: &str = "interrupted: the last poll did not finish (unless it is running now, the watcher was killed, crashed or ran out of memory during it); backing off";

const VERSION: u8 = 1;
const LAST_POLL: u8 = 1;
const LAST_SUCCESS: u8 = 2;
const NEXT_DUE: u8 = 4;
const NEXT_DUE_REASON: u8 = 8;
const LAST_ERROR: u8 = 16;
const LAST_RESULT: u8 = 32;
/// `last_error` is [`INTERRUPTED`].
const ERROR_INTERRUPTED: u8 = 64;
/// `last_result` is `error: ` + `last_error`.
const RESULT_IS_ERROR: u8 = 128;

impl Store {
    /// What the store knows about the source `key` (`None`: it was never polled).
    pub fn source(&self, key: &str) -> Result<Option<SourceState>, StoreError> {
        let Some(cold) = self.sources.get(key)? else {
            return Ok(None);
        };
        let state = from_json(key.as_bytes(), &cold)?;
        Ok(Some(self.joined(key.as_bytes(), state)?))
    }

    /// Every source the store knows, by key.
    pub fn sources(&self) -> Result<Vec<(String, SourceState)>, StoreError> {
        self.sources
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let state = self.joined(&k, from_json(&k, &v)?)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), state))
            })
            .collect()
    }

    /// `state` (read from `sources`) with its `polled` record laid over it.
    fn joined(&self, key: &[u8], mut state: SourceState) -> Result<SourceState, StoreError> {
        if let Some(hot) = self.polled.get(key)? {
            join(&mut state, &hot).ok_or_else(|| StoreError::CorruptPolled {
                key: String::from_utf8_lossy(key).replace('\u{1f}', "/"),
                len: hot.len(),
            })?;
        }
        Ok(state)
    }

    /// Stores a source's state without waiting for the disk (a crash means one refetch). The
    /// `sources` record is written only when it changed (a new source, new validators): a poll
    /// that changed only what `polled` keeps writes that small record alone.
    pub async fn put_source(&self, key: &str, state: &SourceState) -> Result<(), StoreError> {
        let (this, key, records) = (self.clone(), key.to_owned(), split(state));
        (self.writer)
            .write(Durability::Lazy, move || this.put_records(&key, records))
            .await
    }

    /// [`Store::put_source`], durable when it returns (a poll's attempt: see `poll/attempt.rs`).
    /// One message to the store's writer thread, whose one flush covers every attempt queued
    /// with it.
    pub async fn put_source_durable(
        &self,
        key: &str,
        state: &SourceState,
    ) -> Result<(), StoreError> {
        let (this, key, records) = (self.clone(), key.to_owned(), split(state));
        (self.writer)
            .write(Durability::Durable, move || this.put_records(&key, records))
            .await
    }

    fn put_records(&self, key: &str, (cold, hot): (Vec<u8>, Vec<u8>)) -> Result<(), StoreError> {
        sled_gate::shared(|| {
            // `sources` first: a crash between the two leaves the attempt's record (the poll
            // reads as interrupted), never a result without its validators.
            if self.sources.get(key)?.as_deref() != Some(cold.as_slice()) {
                self.sources.insert(key, cold)?;
            }
            self.polled.insert(key, hot)
        })?;
        Ok(())
    }
}

/// `state` as its two records: the JSON for `sources` (without the fields `polled` keeps) and
/// the `polled` record.
pub(super) fn split(state: &SourceState) -> (Vec<u8>, Vec<u8>) {
    let cold = SourceState {
        last_poll: None,
        last_success: None,
        last_result: None,
        last_error: None,
        consecutive_failures: 0,
        next_due: None,
        next_due_reason: None,
        ..state.clone()
    };
    (super::to_json(&cold), encode(state))
}

fn encode(s: &SourceState) -> Vec<u8> {
    let mut flags = 0;
    let mut out = vec![VERSION, 0];
    out.extend_from_slice(&s.consecutive_failures.to_be_bytes());
    for (bit, at) in [
        (LAST_POLL, s.last_poll),
        (LAST_SUCCESS, s.last_success),
        (NEXT_DUE, s.next_due),
    ] {
        if let Some(at) = at {
            flags |= bit;
            out.extend_from_slice(&at.timestamp().to_be_bytes());
            out.extend_from_slice(&at.timestamp_subsec_nanos().to_be_bytes());
        }
    }
    if let Some(reason) = &s.next_due_reason {
        flags |= NEXT_DUE_REASON;
        text(reason, &mut out);
    }
    match s.last_error.as_deref() {
        Some(INTERRUPTED) => flags |= LAST_ERROR | ERROR_INTERRUPTED,
        Some(error) => {
            flags |= LAST_ERROR;
            text(error, &mut out);
        }
        None => {}
    }
    match (s.last_result.as_deref(), s.last_error.as_deref()) {
        (Some(result), Some(error)) if result.strip_prefix("error: ") == Some(error) => {
            flags |= LAST_RESULT | RESULT_IS_ERROR;
        }
        (Some(result), _) => {
            flags |= LAST_RESULT;
            text(result, &mut out);
        }
        (None, _) => {}
    }
    out[1] = flags;
    out
}

/// Appends `s`, length first.
fn text(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Lays the `polled` record `bytes` over `state`. `None`: it cannot be read.
pub(super) fn join(state: &mut SourceState, bytes: &[u8]) -> Option<()> {
    let mut r = Reader(bytes);
    if r.take(1)? != [VERSION] {
        return None;
    }
    let flags = r.take(1)?[0];
    state.consecutive_failures = u32::from_be_bytes(r.array()?);
    let mut at = |bit: u8| -> Option<Option<DateTime<Utc>>> {
        if flags & bit == 0 {
            return Some(None);
        }
        let secs = i64::from_be_bytes(r.array()?);
        let nanos = u32::from_be_bytes(r.array()?);
        DateTime::from_timestamp(secs, nanos).map(Some)
    };
    state.last_poll = at(LAST_POLL)?;
    state.last_success = at(LAST_SUCCESS)?;
    state.next_due = at(NEXT_DUE)?;
    state.next_due_reason = r.text(flags & NEXT_DUE_REASON != 0)?;
    state.last_error = if flags & ERROR_INTERRUPTED != 0 {
        Some(INTERRUPTED.to_owned())
    } else {
        r.text(flags & LAST_ERROR != 0)?
    };
    state.last_result = if flags & RESULT_IS_ERROR != 0 {
        Some(format!("error: {}", state.last_error.as_deref()?))
    } else {
        r.text(flags & LAST_RESULT != 0)?
    };
    r.0.is_empty().then_some(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A length-prefixed string when `present` (`Some(None)` when not).
    fn text(&mut self, present: bool) -> Option<Option<String>> {
        if !present {
            return Some(None);
        }
        let len = u32::from_be_bytes(self.array()?) as usize;
        let s = std::str::from_utf8(self.take(len)?).ok()?;
        Some(Some(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read_back(state: &SourceState) -> (SourceState, usize) {
        let (cold, hot) = split(state);
        let mut back: SourceState = serde_json::from_slice(&cold).unwrap();
        join(&mut back, &hot).unwrap();
        (back, hot.len())
    }

    #[test]
    fn a_state_split_in_two_records_reads_back_the_same() {
        let now = Utc::now();
        let polled = SourceState {
            author: "A".into(),
            url: "https://x/feed".into(),
            etag: Some("\"v1\"".into()),
            last_poll: Some(now),
            last_success: Some(now),
            last_result: Some("not modified".into()),
            next_due: Some(now + chrono::Duration::seconds(300)),
            next_due_reason: Some("interval".into()),
            items_known: 20,
            baseline_done: true,
            ..SourceState::default()
        };
        let (back, len) = read_back(&polled);
        assert_eq!(back, polled);
        assert!(len < 80, "{len} bytes");

        let attempt = SourceState {
            consecutive_failures: 3,
            last_error: Some(INTERRUPTED.into()),
            last_result: Some(format!("error: {INTERRUPTED}")),
            next_due_reason: Some("backoff".into()),
            ..polled.clone()
        };
        let (back, len) = read_back(&attempt);
        assert_eq!(back, attempt);
        assert!(len < 80, "{len} bytes");

        for (error, result) in [
            (Some("timeout"), Some("error: timeout")),
            (Some("timeout"), Some("throttled: Retry-After 5s")),
            (None, Some("error: ")),
            (Some(""), Some("error: ")),
            (None, None),
        ] {
            let other = SourceState {
                last_error: error.map(Into::into),
                last_result: result.map(Into::into),
                last_poll: None,
                ..polled.clone()
            };
            assert_eq!(read_back(&other).0, other);
        }
    }

    #[test]
    fn the_rest_of_the_record_does_not_change_with_a_poll() {
        let state = SourceState {
            author: "A".into(),
            etag: Some("\"v1\"".into()),
            ..SourceState::default()
        };
        let polled = SourceState {
            last_poll: Some(Utc::now()),
            consecutive_failures: 2,
            last_error: Some(INTERRUPTED.into()),
            ..state.clone()
        };
        assert_eq!(split(&state).0, split(&polled).0);
        assert_ne!(split(&state).1, split(&polled).1);
    }

    #[test]
    fn a_damaged_record_is_refused() {
        let (_, hot) = split(&SourceState {
            last_poll: Some(Utc::now()),
            last_result: Some("not modified".into()),
            ..SourceState::default()
        });
        let mut state = SourceState::default();
        for cut in 0..hot.len() {
            assert!(join(&mut state, &hot[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = hot.clone();
        longer.push(0);
        assert!(join(&mut state, &longer).is_none());
        let mut newer = hot;
        newer[0] = VERSION + 1;
        assert!(join(&mut state, &newer).is_none());
    }

    #[tokio::test]
    async fn a_poll_that_changed_no_validator_writes_the_small_record_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = "A\u{1f}https://x/feed";
        let state = SourceState {
            author: "A".into(),
            url: "https://x/feed".into(),
            etag: Some("\"v1\"".into()),
            last_poll: Some(Utc::now()),
            ..SourceState::default()
        };
        store.put_source(key, &state).await.unwrap();
        // sled tells a subscriber of every write, before the write returns.
        let mut writes = store.sources.watch_prefix(key);
        let moved = SourceState {
            etag: Some("\"v2\"".into()),
            ..state.clone()
        };
        store.put_source(key, &moved).await.unwrap();
        assert!(
            writes.next_timeout(Duration::ZERO).is_ok(),
            "new validators"
        );
        let polled = SourceState {
            last_poll: Some(Utc::now()),
            last_result: Some("not modified".into()),
            ..moved.clone()
        };
        store.put_source(key, &polled).await.unwrap();
        assert!(writes.next_timeout(Duration::ZERO).is_err(), "no write");
        assert_eq!(store.source(key).unwrap(), Some(polled.clone()));
        assert_eq!(store.sources().unwrap(), vec![(key.to_owned(), polled)]);
    }

    #[tokio::test]
    async fn a_source_stored_whole_before_the_split_reads_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = "A\u{1f}https://x/feed";
        let whole = SourceState {
            author: "A".into(),
            last_poll: Some(Utc::now()),
            last_result: Some("not modified".into()),
            consecutive_failures: 2,
            ..SourceState::default()
        };
        (store.sources.insert(key, super::super::to_json(&whole))).unwrap();
        assert_eq!(store.source(key).unwrap(), Some(whole.clone()));
        let next = SourceState {
            consecutive_failures: 0,
            ..whole
        };
        store.put_source(key, &next).await.unwrap();
        assert_eq!(store.source(key).unwrap(), Some(next));
    }
}
