//! store/open.rs: getting hold of a state dir: the flock'd `lock` file that records the owner's
//! pid (so a second watcher is refused with that pid), and opening sled behind it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::StoreError;

/// sled's settings for a store (measured: see `examples/store_size.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// sled's page cache, bytes (sled's default is 1 GiB).
    pub cache_capacity: u64,
    /// How often sled's background thread flushes, ms (`None`: only explicit flushes).
    pub flush_every_ms: Option<u64>,
    /// sled's log segment size, bytes: fixed when a db is created (a power of 2).
    pub segment_size: usize,
    /// `LowSpace` (sled's default) or `HighThroughput`.
    pub high_throughput: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            cache_capacity: 64 << 20,
            flush_every_ms: Some(500),
            segment_size: 512 << 10,
            high_throughput: false,
        }
    }
}

/// Opens sled. We hold the state dir's lock, so no other live watcher uses it; a sled lock that
/// is still taken belongs to a store this process (or one that just exited) is closing, whose
/// background flusher lets go within moments: wait for it, briefly.
pub(super) fn open_sled(path: &Path, tuning: &Tuning) -> Result<sled::Db, StoreError> {
    let mut wait = std::time::Duration::from_millis(10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mode = if tuning.high_throughput {
        sled::Mode::HighThroughput
    } else {
        sled::Mode::LowSpace
    };
    loop {
        match sled::Config::new()
            .path(path)
            .mode(mode)
            .cache_capacity(tuning.cache_capacity)
            .flush_every_ms(tuning.flush_every_ms)
            .segment_size(tuning.segment_size)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(200));
            }
            other => return Ok(other?),
        }
    }
}

/// Takes the exclusive lock on `dir/lock` and writes our pid into it.
pub(super) fn acquire_lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, StoreError> {
    use nix::fcntl::{Flock, FlockArg};
    let io = |source| StoreError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0).map_err(io)?;
            lock.rewind().map_err(io)?;
            writeln!(lock, "{}", std::process::id()).map_err(io)?;
            lock.sync_data().map_err(io)?;
            Ok(lock)
        }
        Err((mut file, _errno)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                pid: if pid.is_empty() {
                    "?".into()
                } else {
                    pid.into()
                },
            })
        }
    }
}
