//! Deleting finished runs past their retention (`keep_runs`): records, idempotency keys and run
//! directories, and run directories left without a record.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use super::Engine;
use crate::causes::error_chain;
use crate::state::StateError;

/// How often finished runs past the retention (`keep_runs`) are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The least age of a run directory without a run record before it is deleted (a run being
/// created has its directory before its record).
const ORPHAN_MIN_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl Engine {
    /// Deletes the finished runs that ended longer than the `keep_runs` setting ago: record,
    /// idempotency key and run directory; also run directories without a record (left by a
    /// crash while a run was being created) once they are that old and at least an hour old.
    /// Queued and running runs are never touched. Returns how many runs were deleted.
    pub async fn prune_runs(&self) -> Result<usize, StateError> {
        let Some(cutoff) = chrono::TimeDelta::from_std(self.inner.keep_runs)
            .ok()
            .and_then(|keep| Utc::now().checked_sub_signed(keep))
        else {
            return Ok(0);
        };
        let engine = self.clone();
        let pruned = tokio::task::spawn_blocking(move || engine.prune_blocking(cutoff))
            .await
            .unwrap_or_else(|join| {
                tracing::error!(error = %join, "pruning old runs crashed");
                Ok(0)
            })?;
        if pruned > 0 {
            self.inner.state.flush().await?;
        }
        Ok(pruned)
    }

    fn prune_blocking(&self, cutoff: chrono::DateTime<Utc>) -> Result<usize, StateError> {
        let runs_dir = &self.inner.runs_dir;
        let pruned = self.inner.state.prune_runs(cutoff)?;
        for run in &pruned {
            // The run's directory under this state directory (never a path read from the record).
            remove_run_dir(&runs_dir.join(&run.id));
            tracing::info!(chain = %run.chain, run_id = %run.id, status = %run.status, "deleted an old run");
        }
        let orphan_cutoff = cutoff.min(Utc::now() - ORPHAN_MIN_AGE);
        let entries = match std::fs::read_dir(runs_dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(error = %err, dir = %runs_dir.display(), "cannot list run directories");
                return Ok(pruned.len());
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|id| uuid::Uuid::parse_str(id).is_ok()) else {
                continue;
            };
            let modified = entry.metadata().and_then(|meta| meta.modified());
            let old = modified.is_ok_and(|at| chrono::DateTime::<Utc>::from(at) < orphan_cutoff);
            if old && matches!(self.inner.state.get_run(id), Ok(None)) {
                tracing::info!(dir = %entry.path().display(), "deleting a run directory that has no run");
                remove_run_dir(&entry.path());
            }
        }
        Ok(pruned.len())
    }

    /// Prunes old runs now and every [`PRUNE_EVERY`] until shutdown.
    pub(super) async fn prune_periodically(&self) {
        loop {
            match self.prune_runs().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(
                    count,
                    keep = %humantime::format_duration(self.inner.keep_runs),
                    "deleted finished runs older than the retention"
                ),
                Err(err) => tracing::error!(error = %error_chain(&err), "pruning old runs failed"),
            }
            tokio::select! {
                () = self.inner.stopping.cancelled() => return,
                () = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
    }
}

/// Deletes a run directory; a missing one is fine.
fn remove_run_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(error = %err, dir = %dir.display(), "cannot delete a run directory");
        }
    }
}
