//! `pipelines run`: start one run, through a runner's API (`--url`) or in this process, and
//! follow it with one loop for both: show stage changes, wait for the next change, stop on
//! cancel.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client_token::client_token;
use super::exit::Status;
use super::request::run_request;
use super::tables::{self, Progress};
use crate::cli::RunArgs;
use crate::client::Client;
use crate::engine::Engine;
use crate::error::Error;
use runner_api::{Run, RunRequest, RunStatus, Trigger};

/// How often a run is polled through the API.
const POLL: Duration = Duration::from_secs(1);

/// Where the run executes.
enum Target {
    /// In a runner, through its API at `url`.
    Remote { client: Client, url: url::Url },
    /// In this process.
    Local(Engine),
}

/// Starts the run and, unless it is remote without `--wait`, follows it to its end.
pub async fn run(
    args: RunArgs,
    token: Option<String>,
    cancel: CancellationToken,
) -> Result<Status, Error> {
    let request = run_request(&args)?;
    let target = match &args.remote.url {
        Some(url) => {
            let token = client_token(
                token,
                args.remote.token_file.as_deref(),
                &args.dirs.state_dir,
            )?;
            Target::Remote {
                client: Client::new(url.clone(), &token),
                url: url.clone(),
            }
        }
        None => Target::Local(Engine::open(
            &args.stopping.runner_settings(&args.dirs, None),
        )?),
    };
    let outcome = start_and_follow(&target, &args, request, cancel).await;
    if let Target::Local(engine) = &target {
        engine.shutdown().await;
    }
    outcome
}

async fn start_and_follow(
    target: &Target,
    args: &RunArgs,
    request: RunRequest,
    cancel: CancellationToken,
) -> Result<Status, Error> {
    let run = match target {
        Target::Remote { client, url } => {
            let (run, created) = client.create_run(&args.chain, &request).await?;
            let verb = if created {
                "started"
            } else {
                "already exists (same idempotency key)"
            };
            println!("run {} of chain `{}` {verb}", run.id, run.chain);
            if !args.wait {
                println!("follow it: pipelines runs {} --url {url}", run.id);
                return Ok(Status::Success);
            }
            run
        }
        Target::Local(engine) => {
            let run = engine
                .submit(&args.chain, request, Trigger::Cli)
                .await?
                .run()
                .clone();
            println!(
                "run {} of chain `{}` started in this process",
                run.id, run.chain
            );
            run
        }
    };
    follow(target, run, cancel).await
}

/// Shows the run's progress until it ends. On cancel, a local run is cancelled and followed to
/// its end; for a remote one this stops waiting (the run goes on in the runner).
async fn follow(target: &Target, started: Run, cancel: CancellationToken) -> Result<Status, Error> {
    let mut progress = Progress::default();
    let mut cancelled = false;
    let mut current = started;
    loop {
        // Armed before reading, so a change between the read and the wait is not missed.
        let changed = match target {
            Target::Local(engine) => Some(engine.changed()),
            Target::Remote { .. } => None,
        };
        tokio::pin!(changed);
        if let Some(changed) = changed.as_mut().as_pin_mut() {
            changed.enable();
        }
        current = match target {
            Target::Local(engine) => engine.run(&current.id)?.unwrap_or(current),
            Target::Remote { .. } => current,
        };
        progress.show(&current);
        if current.status.is_finished() {
            tables::print_finished(&current);
            return Ok(if current.status == RunStatus::Succeeded {
                Status::Success
            } else {
                Status::RunFailed
            });
        }
        let next_change = async {
            match changed.as_mut().as_pin_mut() {
                Some(changed) => changed.await,
                None => tokio::time::sleep(POLL).await,
            }
        };
        tokio::select! {
            () = next_change => {}
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                match target {
                    Target::Remote { .. } => {
                        println!("stopped waiting; run {} goes on in the runner", current.id);
                        return Ok(Status::RunFailed);
                    }
                    Target::Local(engine) => {
                        println!("cancelling run {} ...", current.id);
                        let engine = engine.clone();
                        let id = current.id.clone();
                        tokio::spawn(async move { engine.cancel(&id).await });
                    }
                }
                continue;
            }
        }
        if let Target::Remote { client, .. } = target {
            current = client.run(&current.id).await?;
        }
    }
}
