//! main.rs: parse the command line, start tracing, run the command, map the result to an exit
//! code (the contract is `watcher::error::exit`).

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use watcher::cli::{Cli, Command};
use watcher::config::ConfigError;
use watcher::error::{WatcherError, one_line};

fn init_tracing(verbose: u8, quiet: bool, format: pipelines::log_format::LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    pipelines::log_format::init(format, filter);
}

/// Cancels `token` on SIGINT or SIGTERM (`run` and `once` drain, stop the embedded runner's
/// stages within `shutdown_grace` and flush the store).
fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: shutting down");
        token.cancel();
    });
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout; its logs only say what went wrong.
    let demo = matches!(cli.command, Command::Demo { .. });
    init_tracing(
        cli.verbose,
        cli.quiet || (demo && cli.verbose == 0),
        cli.log_format,
    );
    let cancel = CancellationToken::new();
    if matches!(cli.command, Command::Run | Command::Once { .. }) {
        cancel_on_signals(cancel.clone());
    }
    let result =
        watcher::commands::dispatch(cli.command, &cli.config, cancel, &mut std::io::stdout()).await;
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            // A config error is about the user's own file: its lines (a syntax error's caret)
            // stay; every other error may quote network text and is printed on one line.
            let line = match &e {
                WatcherError::Config(_) => watcher::causes::local_lines(&e),
                _ => one_line(&e),
            };
            eprintln!("error: {line}");
            if matches!(e, WatcherError::Config(ConfigError::Read { .. }))
                && cli.config.as_os_str() == watcher::config::DEFAULT_CONFIG
            {
                eprintln!("hint: run from the repository root, where watcher.toml lives");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
