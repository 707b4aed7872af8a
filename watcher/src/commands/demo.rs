//! commands/demo.rs: `watcher demo`: the demo (see `demo.rs`) in a directory of its own, a new
//! temp directory unless `--dir` names one; its outcome as the exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Outcome, WatcherError};

/// Runs the demo in `dir` (default: a new temp directory) with the chains in `chains`.
pub async fn demo(
    dir: Option<PathBuf>,
    chains: &Path,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("watcher-demo-{}", std::process::id()))
    });
    Ok(if crate::demo::run(&dir, chains, out).await? {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}
