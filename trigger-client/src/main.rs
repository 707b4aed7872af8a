//! The `trigger-client` binary: parse flags, start logging, run the command (`commands`), and
//! map the outcome to the exit status — here alone. The contract (0 ok, 1 run failed, 2 bad
//! input, 3 engine unreachable, 4 store failed: unused) is stated in `cli`'s help.

mod cli;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(commands::execute(cli)),
        Err(err) => Err(commands::Failure::Runtime(err)),
    };
    let code = match outcome {
        Ok(code) => code,
        Err(failure) => {
            let code = failure.exit_code();
            // The whole cause chain on one line: each cause is a `#[source]`, said once; what
            // an engine sent is in it, so control characters are escaped.
            let line = format!("{:#}", anyhow::Error::new(failure));
            eprintln!("error: {}", trigger_client::escape_controls(&line));
            code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "trigger_client=info",
        _ => "trigger_client=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .init();
}
