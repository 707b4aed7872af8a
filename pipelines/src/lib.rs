//! The pipelines runner: chain files (TOML DAGs of argv stages), an engine that runs them as
//! process groups with durable state in sled, and a REST API to trigger and follow runs.
//!
//! Embedding (what `pipelines serve` and the watcher do):
//!
//! ```no_run
//! # async fn example() -> Result<(), pipelines::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let settings = pipelines::RunnerSettings::new("pipelines/chains", "state/pipelines");
//! let runner = pipelines::Runner::build(listener, settings)?;
//! println!("{} token {}", runner.url(), runner.token().expose());
//! let cancel = tokio_util::sync::CancellationToken::new();
//! runner.run(cancel).await
//! # }
//! ```

pub mod api;
pub mod budget;
mod causes;
pub mod chain;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod dashboard;
pub mod engine;
pub mod error;
pub mod gate;
pub mod gate_report;
pub mod log_format;
pub mod metrics;
pub mod placeholder;
pub mod process;
pub mod schedule;
pub mod settings;
pub mod stage_env;
pub mod state;
pub mod token;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::chain::{Chain, ChainError, ChainErrors, Chains};
pub use crate::client::{Client, ClientError};
pub use crate::clock::Clock;
pub use crate::engine::{Engine, Submitted};
pub use crate::error::Error;
pub use crate::settings::RunnerSettings;
pub use crate::state::RunFilter;
pub use crate::token::{ApiToken, TokenSource};
/// The REST contract (bodies, paths, token conventions), shared with the clients.
pub use runner_api;
pub use runner_api::{Run, RunPage, RunRequest, RunStatus, StageRun, StageStatus, Trigger};

/// How long in-flight HTTP requests may take to finish once shutdown starts.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// A runner that is bound and has recovered its state, ready to [`run`](Runner::run).
#[derive(Debug)]
pub struct Runner {
    listener: TcpListener,
    addr: SocketAddr,
    engine: Engine,
    token: ApiToken,
    dashboard: bool,
}

impl Runner {
    /// Loads the chains, opens and recovers the state, resolves the token. Nothing runs yet.
    pub fn build(listener: TcpListener, settings: RunnerSettings) -> Result<Self, Error> {
        let addr = listener.local_addr().map_err(Error::ListenerAddr)?;
        let engine = Engine::open(&settings)?;
        let token = ApiToken::resolve(settings.token.as_deref(), &settings.state_dir)?;
        Ok(Self {
            listener,
            addr,
            engine,
            token,
            dashboard: settings.dashboard,
        })
    }

    /// The address the API listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8731`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &ApiToken {
        &self.token
    }

    /// The engine, for in-process use besides the API.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves the API and runs chains until `cancel`; then stops accepting, lets running stages
    /// finish for the shutdown grace period, stops what is left and returns.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        let Self {
            listener,
            addr,
            engine,
            token,
            dashboard,
        } = self;
        engine.start();
        tracing::info!(%addr, chains = engine.chains().len(), "runner listening");
        let mut app = api::router(engine.clone(), token.clone());
        if dashboard {
            app = app.merge(dashboard::router(engine.clone(), token));
        }
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .into_future();
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => {
                engine.shutdown().await;
                return served.map_err(Error::Serve);
            }
            () = cancel.cancelled() => {}
        }
        tracing::info!("shutting down: no new connections; waiting for running stages");
        let drain = async {
            match tokio::time::timeout(HTTP_DRAIN, &mut server).await {
                Ok(served) => served.map_err(Error::Serve),
                Err(_) => {
                    tracing::warn!(
                        "HTTP requests still open after the drain timeout; closing them"
                    );
                    Ok(())
                }
            }
        };
        let (served, ()) = tokio::join!(drain, engine.shutdown());
        tracing::info!("runner stopped");
        served
    }
}

/// Builds and runs a runner on `listener` until `cancel` (see [`Runner`]).
pub async fn serve(
    listener: TcpListener,
    settings: RunnerSettings,
    cancel: CancellationToken,
) -> Result<(), Error> {
    Runner::build(listener, settings)?.run(cancel).await
}
