//! store/manual.rs: the `manual` tree: the runs started from the dashboard's "Run now", keyed by
//! the form's one-time key, so a restart neither forgets them nor lets a form posted again after
//! it start a second run. A record is written (durably) before the trigger is sent and gets its
//! run handle once the engine answered; the tree keeps the newest [`KEPT`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, from_json, to_json};

/// How many manual runs the store remembers (the page shows fewer).
pub const KEPT: usize = 100;

/// One "Run now".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualRecord {
    /// The form's one-time key, also the trigger's idempotency key.
    pub key: String,
    /// Which config it was started with, as the page names it.
    pub config: String,
    pub started_at: DateTime<Utc>,
    /// The engine's run handle; `None` while the trigger has not answered (or never did: a
    /// crash in between; posting the form again resends it under the same key).
    pub run: Option<String>,
}

impl Store {
    fn manual_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("manual")?)
    }

    /// The manual run started with `key`.
    pub fn manual_run(&self, key: &str) -> Result<Option<ManualRecord>, StoreError> {
        (self.manual_tree()?.get(key)?)
            .map(|v| from_json(key.as_bytes(), &v))
            .transpose()
    }

    /// The manual runs remembered, newest first (at most [`KEPT`]: the tree is pruned on write).
    pub fn manual_runs(&self) -> Result<Vec<ManualRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.manual_tree()?.iter() {
            let (k, v) = kv?;
            out.push(from_json::<ManualRecord>(&k, &v)?);
        }
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.key.cmp(&a.key)));
        Ok(out)
    }

    /// Stores a manual run durably (before its trigger is sent, and again with its handle), then
    /// forgets the oldest beyond [`KEPT`].
    pub async fn put_manual_run(&self, record: &ManualRecord) -> Result<(), StoreError> {
        let (tree, key, value) = (self.manual_tree()?, record.key.clone(), to_json(record));
        sled_gate::blocking(move || sled_gate::shared(|| tree.insert(key, value))).await?;
        let runs = self.manual_runs()?;
        if runs.len() > KEPT {
            let tree = self.manual_tree()?;
            let old: Vec<String> = runs[KEPT..].iter().map(|r| r.key.clone()).collect();
            sled_gate::blocking(move || {
                old.iter()
                    .try_for_each(|k| sled_gate::shared(|| tree.remove(k.as_bytes()).map(drop)))
            })
            .await?;
        }
        self.flush().await
    }

    /// Forgets a manual run whose trigger failed (the form can be posted again).
    pub async fn remove_manual_run(&self, key: &str) -> Result<(), StoreError> {
        let (tree, key) = (self.manual_tree()?, key.to_owned());
        sled_gate::blocking(move || sled_gate::shared(|| tree.remove(key))).await?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, secs: i64) -> ManualRecord {
        ManualRecord {
            key: key.into(),
            config: "default_config".into(),
            started_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            run: Some(format!("pipelines:{key}")),
        }
    }

    #[tokio::test]
    async fn manual_runs_survive_a_reopen_newest_first_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for i in 0..(KEPT as i64 + 5) {
                store
                    .put_manual_run(&record(&format!("manual-{i:04}"), i))
                    .await
                    .unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        let runs = store.manual_runs().unwrap();
        assert_eq!(runs.len(), KEPT);
        assert_eq!(runs[0].key, format!("manual-{:04}", KEPT + 4));
        assert!(store.manual_run("manual-0000").unwrap().is_none(), "pruned");
        store.remove_manual_run(&runs[0].key).await.unwrap();
        assert!(store.manual_run(&runs[0].key).unwrap().is_none());
    }
}
