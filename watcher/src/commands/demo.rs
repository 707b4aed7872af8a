//! commands/demo.rs: `watcher demo`: the demo (see `demo.rs`) in a directory of its own, a new
//! temp directory unless `--dir` names one, with the chains `--chains` names or those found in a
//! checkout or an installed package; its outcome as the exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Outcome, WatcherError};

/// The chains of a checkout, relative to the working directory.
const CHECKOUT_CHAINS: &str = "pipelines/chains";

/// Where the demo chain is: `given`, else a checkout's `pipelines/chains` when the working
/// directory is one, else the package's `<prefix>/share/watcher/chains` for a binary installed
/// in `<prefix>/bin` (`/usr/bin/watcher` → `/usr/share/watcher/chains`).
fn chains_dir(given: Option<&Path>, exe: Option<&Path>) -> PathBuf {
    if let Some(given) = given {
        return given.to_path_buf();
    }
    let checkout = Path::new(CHECKOUT_CHAINS);
    if checkout.join("demo.toml").exists() {
        return checkout.to_path_buf();
    }
    exe.and_then(Path::parent)
        .and_then(Path::parent)
        .map(|prefix| prefix.join("share/watcher/chains"))
        .filter(|installed| installed.join("demo.toml").exists())
        .unwrap_or_else(|| checkout.to_path_buf())
}

/// Runs the demo in `dir` (default: a new temp directory) with the chains in `chains` (default:
/// see [`chains_dir`]).
pub async fn demo(
    dir: Option<PathBuf>,
    chains: Option<&Path>,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let exe = std::env::current_exe().ok();
    let chains = &chains_dir(chains, exe.as_deref());
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("watcher-demo-{}", std::process::id()))
    });
    Ok(if crate::demo::run(&dir, chains, out).await? {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_chains_are_found_beside_the_binary() {
        let prefix = tempfile::tempdir().unwrap();
        let chains = prefix.path().join("share/watcher/chains");
        std::fs::create_dir_all(&chains).unwrap();
        let exe = prefix.path().join("bin/watcher");
        // Not installed yet: the checkout's path (whose error names it).
        assert_eq!(chains_dir(None, Some(&exe)), Path::new(CHECKOUT_CHAINS));
        std::fs::write(chains.join("demo.toml"), "").unwrap();
        assert_eq!(chains_dir(None, Some(&exe)), chains);
        assert_eq!(chains_dir(Some(Path::new("x")), Some(&exe)), Path::new("x"));
    }
}
