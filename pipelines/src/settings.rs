//! The runner's settings (what `pipelines serve` flags and an embedding program provide), their
//! defaults, and the state directory's layout.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;

/// Default `--listen` address (not 8237, which ZenML's local server uses).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8731";
/// Default SIGTERM → SIGKILL grace for a stage's process group.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Default time running stages get to finish when the runner shuts down.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// Default cap of one stage's log file.
pub const DEFAULT_LOG_CAP: u64 = 10 * 1024 * 1024;
/// Default time a finished run (record, run directory, idempotency key) is kept.
pub const DEFAULT_KEEP_RUNS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Everything the runner needs besides its listener and its cancellation token.
#[derive(Clone)]
pub struct RunnerSettings {
    /// Directory of chain files (`*.toml`), or one chain file.
    pub chains_dir: PathBuf,
    /// Where the run database, the token file and the run directories live.
    pub state_dir: PathBuf,
    /// The API bearer token; `None` reads or generates `<state_dir>/api-token`.
    pub token: Option<String>,
    /// SIGTERM → SIGKILL grace when a stage is cancelled, times out or is stopped.
    pub kill_grace: Duration,
    /// At shutdown, how long running stages may go on before they are stopped.
    pub shutdown_grace: Duration,
    /// Bytes one stage's log file may grow to.
    pub log_cap: u64,
    /// How long a finished run (succeeded, failed or cancelled) is kept, counted from its end:
    /// then its record, its run directory and its idempotency key are deleted.
    pub keep_runs: Duration,
    /// Variables of the runner's own environment no stage may see, on top of
    /// [`crate::stage_env::PROJECT_SECRETS`]: the embedding program's `*_env` secrets.
    pub secret_env: Vec<String>,
    /// The wall clock gates and budgets read (tests pass a manual clock).
    pub clock: Clock,
    /// Serve the web page at `/` beside the API (`pipelines serve` does; the watcher's embedded
    /// runner does not: the watcher's own page shows its runs).
    pub dashboard: bool,
}

impl fmt::Debug for RunnerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerSettings")
            .field("chains_dir", &self.chains_dir)
            .field("state_dir", &self.state_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("kill_grace", &self.kill_grace)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("log_cap", &self.log_cap)
            .field("keep_runs", &self.keep_runs)
            .field("secret_env", &self.secret_env)
            .field("clock", &self.clock)
            .field("dashboard", &self.dashboard)
            .finish()
    }
}

impl RunnerSettings {
    /// Settings with the defaults for everything but the two directories.
    pub fn new(chains_dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            chains_dir: chains_dir.into(),
            state_dir: state_dir.into(),
            token: None,
            kill_grace: DEFAULT_KILL_GRACE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            log_cap: DEFAULT_LOG_CAP,
            keep_runs: DEFAULT_KEEP_RUNS,
            secret_env: Vec::new(),
            clock: Clock::system(),
            dashboard: false,
        }
    }

    /// Serves the web page at `/` too (see [`crate::dashboard`]).
    pub fn with_dashboard(mut self) -> Self {
        self.dashboard = true;
        self
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
    pub fn with_log_cap(mut self, bytes: u64) -> Self {
        self.log_cap = bytes;
        self
    }
    /// Names variables (secrets) of the runner's environment its stages must not see.
    pub fn with_secret_env(mut self, names: Vec<String>) -> Self {
        self.secret_env = names;
        self
    }
    /// Reads gate and budget time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    pub fn with_keep_runs(mut self, keep: Duration) -> Self {
        self.keep_runs = keep;
        self
    }
}

/// The sled database directory inside a state directory.
pub fn db_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("db")
}

/// The directory holding one directory per run.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// Whether serving on `addr` needs the explicit `--allow-remote`.
pub fn is_remote(addr: SocketAddr) -> bool {
    !addr.ip().is_loopback()
}
