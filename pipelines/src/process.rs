//! Stage processes: spawning one argv (never through a shell) in its own process group, copying
//! its stdout and stderr into a size-capped log file, and ending the whole group: SIGTERM, a grace
//! period, then SIGKILL, on cancel, timeout, shutdown, and for anything left in the group once its
//! main process has exited. Also kills the groups a crashed runner left behind.
//!
//! Identity of a recorded group survives a runner crash through the machine's boot id and the
//! leader's start time (`/proc`), so a recycled pid is never signalled.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a terminating group is checked for live members.
const POLL: Duration = Duration::from_millis(25);
/// How long the log copier may run on after the group is gone (a pipe held open elsewhere).
const LOG_DRAIN: Duration = Duration::from_secs(2);

/// What to run for one attempt of a stage.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Start from an empty environment (then only `env` is set).
    pub env_clear: bool,
    /// Variables of the runner's own environment the stage must not see (secrets).
    pub env_remove: Vec<String>,
    pub log: PathBuf,
    /// Bytes the log file may grow to; the rest of the output is dropped.
    pub log_cap: u64,
    /// A line written to the log before the process starts.
    pub header: String,
}

/// A process group recorded in the state, so that a restarted runner can kill it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub pgid: i32,
    pub run_id: String,
    pub stage: String,
    pub boot_id: Option<String>,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: Option<u64>,
    pub started_at: DateTime<Utc>,
}

/// Why a stage process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("working directory `{path}` does not exist; create it or fix `workdir`")]
    NoWorkdir { path: PathBuf },
    #[error("cannot open log file `{path}`")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot start `{program}` in `{workdir}`; check `run[0]` is installed and on PATH (or a path relative to `workdir`)"
    )]
    Spawn {
        program: String,
        workdir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The main process exited with this code.
    Exited(i32),
    /// The main process was killed by this signal (not by us).
    Signalled(i32),
    /// It ran longer than the stage timeout and was stopped.
    TimedOut(Duration),
    /// The run was cancelled and the stage stopped.
    Cancelled,
    /// The runner shut down and the stage was stopped after the shutdown grace period.
    Killed,
}

impl Outcome {
    pub fn succeeded(self) -> bool {
        self == Self::Exited(0)
    }
    /// Exit code for the run record.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Self::Exited(code) => Some(code),
            _ => None,
        }
    }
    /// A sentence for the run record, `None` for success.
    pub fn describe(self) -> Option<String> {
        match self {
            Self::Exited(0) => None,
            Self::Exited(code) => Some(format!("exited with code {code}")),
            Self::Signalled(signal) => Some(format!("killed by signal {}", signal_name(signal))),
            Self::TimedOut(limit) => Some(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            )),
            Self::Cancelled => Some("cancelled".into()),
            Self::Killed => Some("stopped at runner shutdown".into()),
        }
    }
}

fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned())
}

/// What ends an attempt early.
#[derive(Debug, Clone)]
pub struct Stops {
    pub timeout: Option<Duration>,
    /// The run was cancelled.
    pub cancel: CancellationToken,
    /// The runner's shutdown grace period is over.
    pub kill: CancellationToken,
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
}

/// A started stage process and the task copying its output into the log.
#[derive(Debug)]
pub struct StageProcess {
    child: Child,
    pgid: Pid,
    log: JoinHandle<()>,
    /// Set once [`wait`](Self::wait) has ended the whole group; until then, dropping this (the
    /// stage's task was aborted or panicked) kills the group.
    ended: bool,
}

/// Starts `spec` as the leader of a new process group with its output going to the log file.
pub async fn spawn(spec: &Spec) -> Result<StageProcess, SpawnError> {
    if !tokio::fs::metadata(&spec.workdir)
        .await
        .is_ok_and(|meta| meta.is_dir())
    {
        return Err(SpawnError::NoWorkdir {
            path: spec.workdir.clone(),
        });
    }
    let log_error = |source| SpawnError::Log {
        path: spec.log.clone(),
        source,
    };
    let log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .await
        .map_err(log_error)?;
    let written = log.metadata().await.map_err(log_error)?.len();
    let mut log = CappedLog {
        file: log,
        written,
        cap: spec.log_cap,
        truncated: written >= spec.log_cap,
    };
    log.write(spec.header.as_bytes()).await.map_err(log_error)?;

    let program = if spec.program.contains('/') {
        spec.workdir.join(&spec.program)
    } else {
        PathBuf::from(&spec.program)
    };
    let mut command = Command::new(&program);
    if spec.env_clear {
        command.env_clear();
    }
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    let mut child = command
        .args(&spec.args)
        .current_dir(&spec.workdir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SpawnError::Spawn {
            program: spec.program.clone(),
            workdir: spec.workdir.clone(),
            source,
        })?;
    let pid = child.id().expect("a just-spawned child has a pid");
    let pgid = Pid::from_raw(i32::try_from(pid).expect("pids fit in i32"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = tokio::spawn(async move {
        if let Err(err) = copy_output(stdout, stderr, &mut log).await {
            tracing::warn!(error = %err, "writing a stage log failed");
        }
    });
    Ok(StageProcess {
        child,
        pgid,
        log,
        ended: false,
    })
}

impl StageProcess {
    /// The process group id (= the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// What to record so a restarted runner can find and kill this group.
    pub fn record(&self, run_id: &str, stage: &str) -> GroupRecord {
        GroupRecord {
            pgid: self.pgid.as_raw(),
            run_id: run_id.to_owned(),
            stage: stage.to_owned(),
            boot_id: boot_id(),
            start_ticks: start_ticks(self.pgid.as_raw()),
            started_at: Utc::now(),
        }
    }

    /// Waits for the main process, stopping the group on timeout, cancel or kill; afterwards no
    /// process of the group is left and the log is complete.
    pub async fn wait(mut self, stops: &Stops) -> Outcome {
        let timeout = async {
            match stops.timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            status = self.child.wait() => exit_outcome(status),
            () = timeout => {
                tracing::warn!(pgid = self.pgid.as_raw(), "stage timed out; stopping its process group");
                terminate(&mut self.child, self.pgid, stops.grace).await;
                Outcome::TimedOut(stops.timeout.unwrap_or_default())
            }
            () = stops.cancel.cancelled() => {
                terminate(&mut self.child, self.pgid, stops.grace).await;
                Outcome::Cancelled
            }
            () = stops.kill.cancelled() => {
                terminate(&mut self.child, self.pgid, stops.grace).await;
                Outcome::Killed
            }
        };
        // Whatever the main process left running in its group goes too.
        terminate(&mut self.child, self.pgid, stops.grace).await;
        if tokio::time::timeout(LOG_DRAIN, &mut self.log)
            .await
            .is_err()
        {
            tracing::warn!(
                pgid = self.pgid.as_raw(),
                "a stage's output pipe is still open after its group ended; the log may be incomplete"
            );
            self.log.abort();
        }
        self.ended = true;
        outcome
    }
}

impl Drop for StageProcess {
    /// Kills the whole group if the stage's task stopped before [`wait`](Self::wait) ended it, so
    /// no stage process outlives its run.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // While the leader is not reaped (alive or a zombie) its pid, and so the group id, cannot
        // be reused: the signal reaches this group only. Once it is reaped, live members still
        // hold the group id; with none left there is nothing to kill.
        let leader_unreaped = self.child.id().is_some();
        if leader_unreaped || group_alive(self.pgid) {
            tracing::warn!(
                pgid = self.pgid.as_raw(),
                "a stage's task ended before its process group did; killing the group"
            );
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

fn exit_outcome(status: io::Result<ExitStatus>) -> Outcome {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Signalled(signal),
            (None, None) => Outcome::Exited(-1),
        },
        Err(err) => {
            tracing::error!(error = %err, "waiting for a stage process failed");
            Outcome::Exited(-1)
        }
    }
}

/// SIGTERM to the group, up to `grace` for every member to exit, then SIGKILL; reaps the leader.
async fn terminate(child: &mut Child, pgid: Pid, grace: Duration) {
    let _ = child.try_wait();
    if !group_alive_async(pgid).await {
        let _ = child.wait().await;
        return;
    }
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let _ = child.try_wait();
        if !group_alive_async(pgid).await {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                pgid = pgid.as_raw(),
                grace = %humantime::format_duration(grace),
                "process group still alive after SIGTERM; sending SIGKILL"
            );
            let _ = killpg(pgid, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = child.wait().await;
}

/// [`group_alive`] off the async runtime's threads (it reads all of `/proc`).
async fn group_alive_async(pgid: Pid) -> bool {
    tokio::task::spawn_blocking(move || group_alive(pgid))
        .await
        .unwrap_or(true)
}

/// Whether any process of the group is alive (zombies do not count).
fn group_alive(pgid: Pid) -> bool {
    match live_members(pgid.as_raw()) {
        Some(count) => count > 0,
        None => !matches!(killpg(pgid, None), Err(Errno::ESRCH)),
    }
}

/// Counts the non-zombie processes of group `pgid` by reading `/proc`; `None` without `/proc`.
fn live_members(pgid: i32) -> Option<usize> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut count = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(info) = parse_stat(&stat)
            && info.pgrp == pgid
            && info.state != 'Z'
            && info.state != 'X'
        {
            count += 1;
        }
    }
    Some(count)
}

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatInfo {
    state: char,
    pgrp: i32,
    start_ticks: u64,
}

/// Parses `/proc/<pid>/stat` (the command name may contain spaces and parentheses).
fn parse_stat(stat: &str) -> Option<StatInfo> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3]
    Some(StatInfo {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|info| info.start_ticks)
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
}

/// What happened to a group a previous runner left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Members were alive and got SIGKILL.
    Killed,
    /// Nothing of the group was alive.
    Gone,
    /// The machine rebooted or the pid now belongs to another process: not touched.
    NotOurs,
}

/// Kills a group recorded by an earlier runner process, if it is still the same group.
pub fn kill_leftover(record: &GroupRecord) -> Leftover {
    if record.boot_id.is_some() && record.boot_id != boot_id() {
        return Leftover::NotOurs;
    }
    // A live process whose pid is the pgid but that started at another time is a recycled pid;
    // the kernel never reuses a pid while a group of that id has members, so our group is empty.
    if let (Some(recorded), Some(now)) = (record.start_ticks, start_ticks(record.pgid))
        && recorded != now
    {
        return Leftover::NotOurs;
    }
    let pgid = Pid::from_raw(record.pgid);
    if !group_alive(pgid) {
        return Leftover::Gone;
    }
    match killpg(pgid, Signal::SIGKILL) {
        Ok(()) => Leftover::Killed,
        Err(_) => Leftover::Gone,
    }
}

/// A log file that stops growing at `cap` bytes and says so once.
struct CappedLog {
    file: tokio::fs::File,
    written: u64,
    cap: u64,
    truncated: bool,
}

impl CappedLog {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.truncated {
            return Ok(());
        }
        let room = usize::try_from(self.cap.saturating_sub(self.written)).unwrap_or(usize::MAX);
        if bytes.len() <= room {
            self.file.write_all(bytes).await?;
            self.written += bytes.len() as u64;
        } else {
            self.file.write_all(&bytes[..room]).await?;
            self.written += room as u64;
            let note = format!(
                "\n[pipelines] log truncated at {} bytes; the rest of the output was dropped\n",
                self.cap
            );
            self.file.write_all(note.as_bytes()).await?;
            self.truncated = true;
        }
        self.file.flush().await
    }
}

/// Copies stdout and stderr into the log until both are closed.
async fn copy_output(
    mut stdout: impl AsyncRead + Unpin,
    mut stderr: impl AsyncRead + Unpin,
    log: &mut CappedLog,
) -> io::Result<()> {
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => log.write(&out_buf[..n]).await?,
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => log.write(&err_buf[..n]).await?,
            },
        }
    }
    Ok(())
}

/// The log file of `stage` inside a run directory.
pub fn log_path(run_dir: &Path, stage: &str) -> PathBuf {
    run_dir.join("logs").join(format!("{stage}.log"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_command_names() {
        let stat = "15839 (my (weird) cmd) S 15835 15835 6642 0 -1 4194304 103 0 0 0 0 0 0 0 20 0 1 0 59168 3133440 387";
        assert_eq!(
            parse_stat(stat),
            Some(StatInfo {
                state: 'S',
                pgrp: 15835,
                start_ticks: 59168
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(start_ticks(me).is_some());
        assert!(boot_id().is_some());
    }

    #[test]
    fn outcome_descriptions() {
        assert_eq!(Outcome::Exited(0).describe(), None);
        assert_eq!(
            Outcome::Exited(3).describe().as_deref(),
            Some("exited with code 3")
        );
        assert_eq!(
            Outcome::Signalled(9).describe().as_deref(),
            Some("killed by signal SIGKILL")
        );
        assert_eq!(
            Outcome::TimedOut(Duration::from_secs(90))
                .describe()
                .as_deref(),
            Some("timed out after 1m 30s")
        );
    }

    /// Whether `pid` is alive (a zombie is dead).
    /// Whether `pid` is a live process (not a zombie); also used by the engine's stage tests.
    pub(crate) fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .is_some_and(|info| !matches!(info.state, 'Z' | 'X'))
    }

    /// The pid a stage wrote into `path` (a line ending in a newline); also used by the engine's
    /// stage tests.
    pub(crate) async fn read_pid(path: &Path) -> i32 {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text.trim().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    #[tokio::test]
    async fn a_stage_whose_waiting_task_is_aborted_loses_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let (leader, child) = (dir.path().join("leader"), dir.path().join("child"));
        let script = format!(
            "sleep 30 & echo $! > '{}'; echo $$ > '{}'; wait",
            child.display(),
            leader.display()
        );
        let spec = Spec {
            program: "sh".into(),
            args: vec!["-c".into(), script],
            workdir: dir.path().to_owned(),
            env: vec![],
            env_clear: false,
            env_remove: vec![],
            log: dir.path().join("stage.log"),
            log_cap: 1024,
            header: String::new(),
        };
        let process = spawn(&spec).await.unwrap();
        let stops = Stops {
            timeout: None,
            cancel: CancellationToken::new(),
            kill: CancellationToken::new(),
            grace: Duration::from_secs(5),
        };
        let waiting = tokio::spawn(async move { process.wait(&stops).await });
        let pids = [read_pid(&leader).await, read_pid(&child).await];

        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        for _ in 0..250 {
            if !pids.iter().any(|&pid| alive(pid)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        panic!("the stage's processes outlived the aborted task: {pids:?}");
    }

    #[tokio::test]
    async fn log_is_capped_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let file = tokio::fs::File::create(&path).await.unwrap();
        let mut log = CappedLog {
            file,
            written: 0,
            cap: 10,
            truncated: false,
        };
        log.write(b"12345").await.unwrap();
        log.write(b"67890abc").await.unwrap();
        log.write(b"more").await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("1234567890\n[pipelines] log truncated at 10 bytes"));
        assert!(!text.contains("abc") && !text.contains("more"));
    }
}
