//! limits.rs: slots for work in flight: at most `[watcher] concurrency` in all and
//! `[watcher] per_host` to one host. The watcher keeps two sets of the same size: poll slots (a
//! poll holds one on the host of its source, and a global one, from start to end) and request
//! slots (each request, every redirect hop, sitemap child and discovery probe included, holds one
//! on the host it goes to, and a global one, until its body is read; see `fetch`). Request slots
//! are only ever taken one at a time and never while waiting for a poll slot, so the two cannot
//! wait on each other.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The global and per-host limits on requests in flight.
pub struct Limits {
    global: Arc<Semaphore>,
    per_host: usize,
    hosts: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limits {
    pub fn new(global: usize, per_host: usize) -> Limits {
        Limits {
            global: Arc::new(Semaphore::new(global)),
            per_host,
            hosts: Default::default(),
        }
    }

    /// Waits for a slot on `host` (first, so a busy host holds no global slot) and a global one.
    pub async fn acquire(&self, host: &str) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let host_sem = {
            let mut hosts = self.hosts.lock().expect("not poisoned");
            // Looked up before inserting, so a known host costs no allocation.
            match hosts.get(host) {
                Some(sem) => sem.clone(),
                None => hosts
                    .entry(host.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                    .clone(),
            }
        };
        let h = host_sem.acquire_owned().await.expect("never closed");
        let g = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        (h, g)
    }
}
