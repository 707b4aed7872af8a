//! health.rs: whether the daemon's store still works. sled refuses every operation after one
//! failed write (a full disk, an I/O error), so the first such failure ends the daemon: it is
//! recorded here with its reason, `/healthz` answers 503 with it, the run loop stops polling and
//! delivering, and `watcher run` exits with `exit::STORE` so the service manager restarts it on
//! a fresh store handle. Unreadable records are not failures of the store: they are skipped.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// The daemon's store health: fine until the first store failure, failed for good after it.
#[derive(Debug, Default)]
pub struct Health {
    failure: OnceLock<String>,
    failed: CancellationToken,
}

impl Health {
    /// Records `e` if it means the store can no longer be used; returns whether it did.
    pub fn store_failed(&self, e: &StoreError) -> bool {
        if !is_fatal(e) {
            return false;
        }
        let reason = crate::causes::one_line(e);
        if self.failure.set(reason.clone()).is_ok() {
            tracing::error!(error = %reason, "the store failed; stopping (the service manager restarts the watcher)");
        }
        self.failed.cancel();
        true
    }

    /// Why the store failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Completes when the store has failed.
    pub async fn failed(&self) {
        self.failed.cancelled().await
    }
}

/// Whether `e` leaves the store unusable (sled or the file system failed), as opposed to one
/// record that cannot be read.
pub fn is_fatal(e: &StoreError) -> bool {
    matches!(e, StoreError::Sled(_) | StoreError::Io { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fatal_error_is_kept_and_a_corrupt_record_is_not_fatal() {
        let health = Health::default();
        let corrupt = StoreError::Corrupt {
            key: "staged/1".into(),
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        };
        assert!(!health.store_failed(&corrupt));
        assert_eq!(health.failure(), None);
        let full = StoreError::Sled(sled::Error::Io(std::io::Error::other("No space left")));
        assert!(health.store_failed(&full));
        let other = StoreError::Sled(sled::Error::Io(std::io::Error::other("later")));
        assert!(health.store_failed(&other));
        assert!(health.failure().unwrap().contains("No space left"));
    }
}
