//! embedded.rs: `[trigger] kind = "embedded"`: the pipelines runner inside the watcher process,
//! on loopback with a random port and a generated token kept in memory only (no token file: a
//! stage process cannot read it), its state in its own sled directory under the watcher's state
//! dir. The watcher triggers it through the same REST client as a remote
//! runner (`kind = "pipelines"`): one code path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use trigger_client::{Kind, TargetConfig};

use crate::config::EmbeddedSettings;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot bind the embedded runner on loopback")]
    Bind(#[source] std::io::Error),
    #[error("cannot start the embedded pipelines runner")]
    Runner(#[source] pipelines::Error),
}

/// Checks that `chain` exists and every chain in `chains_dir` is valid (for `watcher check`).
pub fn validate(chains_dir: &Path, chain: &str) -> Result<(), String> {
    let chains = pipelines::chain::load(chains_dir)
        .map_err(|e| format!("the chains in `{}` are invalid:\n{e}", chains_dir.display()))?;
    if chains.get(chain).is_none() {
        let mut names: Vec<&str> = chains.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        return Err(format!(
            "no chain `{chain}` in `{}`; expected one of {}; hint: set [trigger] pipeline",
            chains_dir.display(),
            names.join(", ")
        ));
    }
    Ok(())
}

/// How long one run of a chain may take, by its stages' timeouts (and retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunBound {
    /// The longest path through the stages takes at most this long.
    Within(Duration),
    /// This stage has no timeout: a run may take any time.
    Unbounded { stage: String },
}

/// The [`RunBound`] of `chain` in `chains_dir` (`None` when the chains do not load; `check`
/// reports that on its own).
pub fn run_bound(chains_dir: &Path, chain: &str) -> Option<RunBound> {
    let chains = pipelines::chain::load(chains_dir).ok()?;
    let stages = chains.get(chain)?.stages();
    let order = pipelines::chain::topological_order(stages).ok()?;
    let mut finish = vec![Duration::ZERO; stages.len()];
    for i in order {
        let stage = &stages[i];
        let Some(timeout) = stage.timeout() else {
            return Some(RunBound::Unbounded {
                stage: stage.name().to_string(),
            });
        };
        let start = stage
            .deps()
            .iter()
            .map(|&d| finish[d])
            .max()
            .unwrap_or_default();
        finish[i] = start.saturating_add(timeout.saturating_mul(stage.retries().saturating_add(1)));
    }
    Some(RunBound::Within(
        finish.into_iter().max().unwrap_or_default(),
    ))
}

/// A running embedded runner.
pub struct Embedded {
    url: String,
    token: trigger_client::Secret,
    run_dirs: PathBuf,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), pipelines::Error>>,
    engine: pipelines::Engine,
}

impl Embedded {
    /// Starts the runner on 127.0.0.1 (random port); its state lives in `<state_dir>/pipelines`.
    /// Needs a tokio runtime.
    pub fn start(settings: &EmbeddedSettings, state_dir: &Path) -> Result<Embedded, EmbeddedError> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(EmbeddedError::Bind)?;
        std_listener
            .set_nonblocking(true)
            .map_err(EmbeddedError::Bind)?;
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(EmbeddedError::Bind)?;
        let runner_state = state_dir.join("pipelines");
        // The token lives in this process only: given to the runner and to the REST client,
        // never written to disk (stages run as this user and could read a file).
        let token = pipelines::token::generate();
        let runner_settings = pipelines::RunnerSettings::new(&settings.chains_dir, &runner_state)
            .with_token(token.clone())
            .with_shutdown_grace(settings.shutdown_grace);
        let runner =
            pipelines::Runner::build(listener, runner_settings).map_err(EmbeddedError::Runner)?;
        let url = runner.url();
        let engine = runner.engine().clone();
        info!(%url, chains = %settings.chains_dir.display(), "embedded pipelines runner started");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(runner.run(cancel.clone()));
        Ok(Embedded {
            url,
            token: trigger_client::Secret::new(token, "the embedded runner (in memory)"),
            run_dirs: runner_state,
            cancel,
            task,
            engine,
        })
    }

    /// The trigger-client target that reaches this runner over REST.
    pub fn target(&self, chain: &str) -> TargetConfig {
        let mut target = TargetConfig::new(
            Kind::Pipelines,
            self.url.parse().expect("the runner's URL is valid"),
        );
        target.pipeline = Some(chain.to_string());
        target.token = Some(self.token.clone());
        // A local runner is cheap to ask: follow runs closely.
        target.poll_interval = Some(Duration::from_millis(200));
        target
    }

    /// The runner's engine, for in-process reads (its metrics).
    pub fn engine(&self) -> &pipelines::Engine {
        &self.engine
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The runner's API token, for in-process clients only (never print it).
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// Where the runner keeps its runs (each run's directory holds its config, logs and outputs).
    pub fn state_dir(&self) -> &Path {
        &self.run_dirs
    }

    /// Stops the runner: no new runs; running stages may finish for the shutdown grace.
    pub async fn stop(self) {
        self.cancel.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %crate::causes::one_line(&e), "embedded runner stopped with an error")
            }
            Err(e) => warn!(error = %e, "embedded runner task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(dir: &Path, stages: &str) {
        std::fs::write(dir.join("c.toml"), format!("name = \"c\"\n{stages}")).unwrap();
    }

    /// A stage that dumps its environment and lists the runner's state dir: the token is in
    /// neither, and the watcher's REST client still reaches the runner with it.
    #[tokio::test]
    async fn the_embedded_runner_keeps_its_token_in_memory_only() {
        let dir = tempfile::tempdir().unwrap();
        let chains = dir.path().join("chains");
        std::fs::create_dir_all(&chains).unwrap();
        let out = dir.path().join("seen");
        chain(
            &chains,
            &format!(
                "[[stages]]\nname = \"dump\"\nrun = [\"sh\", \"-c\", \"(env; ls -a \\\"$2\\\") > \\\"$1.tmp\\\" && mv \\\"$1.tmp\\\" \\\"$1\\\"\", \"sh\", \"{}\", \"{}\"]\n",
                out.display(),
                dir.path().join("state/pipelines").display()
            ),
        );
        let settings = EmbeddedSettings {
            chains_dir: chains,
            shutdown_grace: Duration::from_secs(1),
        };
        let runner = Embedded::start(&settings, &dir.path().join("state")).unwrap();
        let client = trigger_client::Client::new(&runner.target("c")).unwrap();
        let mut req = trigger_client::RunRequest::new("c", "key-1");
        req.config = serde_json::json!({"x": 1});
        client
            .trigger(&req)
            .await
            .expect("the client reaches the runner with the in-memory token");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !out.exists() {
            assert!(std::time::Instant::now() < deadline, "the stage never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = std::fs::read_to_string(&out).unwrap();
        assert!(
            !seen.contains(runner.token()),
            "the stage saw the token:\n{seen}"
        );
        assert!(!seen.contains(pipelines::runner_api::TOKEN_FILE), "{seen}");
        assert!(
            !dir.path()
                .join("state/pipelines")
                .join(pipelines::runner_api::TOKEN_FILE)
                .exists()
        );
        runner.stop().await;
    }

    #[test]
    fn a_run_is_bounded_by_its_longest_path_of_stage_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let stage = |name: &str, after: &str, timeout: &str, retries: u32| {
            format!(
                "[[stages]]\nname = \"{name}\"\nafter = [{after}]\nrun = [\"true\"]\ntimeout = \"{timeout}\"\nretries = {retries}\n"
            )
        };
        let diamond = [
            stage("a", "", "1h", 0),
            stage("b", "\"a\"", "2h", 0),
            stage("c", "\"a\"", "30m", 1),
            stage("d", "\"b\", \"c\"", "1h", 0),
        ]
        .concat();
        chain(dir.path(), &diamond);
        assert_eq!(
            run_bound(dir.path(), "c"),
            Some(RunBound::Within(Duration::from_secs(4 * 3600)))
        );
        chain(
            dir.path(),
            "[[stages]]\nname = \"train\"\nrun = [\"true\"]\n",
        );
        assert_eq!(
            run_bound(dir.path(), "c"),
            Some(RunBound::Unbounded {
                stage: "train".into()
            })
        );
        assert_eq!(run_bound(dir.path(), "missing"), None);
    }
}
