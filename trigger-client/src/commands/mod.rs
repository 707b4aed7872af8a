//! What the binary does once its flags are parsed: build the client the flags name, then run
//! one subcommand. Each subcommand has its own file; `target` turns flags into a validated
//! target, `output` prints (every write checked), `failure` is what a command can end in.

mod cancel;
mod failure;
mod output;
mod run;
mod status;
mod target;

pub use failure::Failure;

use crate::cli::{Cli, Command};

/// Runs the parsed command line; `Ok` carries the exit status (see `trigger_client::exit`).
pub async fn execute(cli: Cli) -> Result<i32, Failure> {
    let kind_from_handle = match &cli.command {
        Command::Status(args) | Command::Cancel(args) => args.run.kind.parse().ok(),
        Command::Run(_) => None,
    };
    let client = target::client(&cli.target, kind_from_handle)?;
    match cli.command {
        Command::Run(args) => run::run(&client, args).await,
        Command::Status(args) => status::status(&client, args).await,
        Command::Cancel(args) => cancel::cancel(&client, args).await,
    }
}
