//! The commands behind the CLI, one module per subcommand (`serve`, `run`, `runs`, `gates`,
//! `check`),
//! with what they share beside them: the exit-code contract, the tables and progress lines they
//! print, how `--url` finds its token, how flags become a run request, and the chain preflight.

mod check;
mod client_token;
pub mod exit;
mod gates;
mod preflight;
mod request;
mod run;
mod runs;
mod serve;
mod tables;

use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::error::Error;

pub use self::exit::{ExitCode, Status};

/// Runs the parsed command until it ends or `cancel` fires.
pub async fn execute(command: Command, cancel: CancellationToken) -> Result<Status, Error> {
    let token = std::env::var(runner_api::TOKEN_ENV).ok();
    match command {
        Command::Serve(args) => serve::serve(args, token, cancel).await,
        Command::Run(args) => run::run(args, token, cancel).await,
        Command::Runs(args) => runs::runs(args, token).await,
        Command::Gates(args) => gates::gates(args, token).await,
        Command::Check(args) => check::check(&args.path),
    }
}
