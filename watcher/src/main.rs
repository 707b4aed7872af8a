//! main.rs: parse the command line, start tracing, load the config, run the command, map the
//! result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use watcher::cli::{Cli, Command};
use watcher::commands::{self, Outcome};
use watcher::config::ConfigError;
use watcher::error::{WatcherError, one_line};
use watcher::store::StoreError;
use watcher::watch::OnceOptions;

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Cancels `token` on SIGINT or SIGTERM.
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

fn exit_code(e: &WatcherError) -> u8 {
    match e {
        WatcherError::Config(_) | WatcherError::Usage(_) => 2,
        WatcherError::Store(StoreError::Locked { .. } | StoreError::NewerSchema { .. }) => 2,
        _ => 1,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout; its logs only say what went wrong.
    let demo = matches!(cli.command, Command::Demo { .. });
    init_tracing(cli.verbose, cli.quiet || (demo && cli.verbose == 0));
    if let Command::Demo { dir, chains } = &cli.command {
        let dir = dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("watcher-demo-{}", std::process::id()))
        });
        return match watcher::demo::run(&dir, chains, &mut std::io::stdout()).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {}", one_line(&e));
                ExitCode::from(exit_code(&e))
            }
        };
    }
    let config = match watcher::preflight::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if matches!(e, ConfigError::Read { .. }) && cli.config.as_os_str() == "watcher.toml" {
                eprintln!("hint: run from the repository root, where watcher.toml lives");
            }
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout();
    let result = match cli.command {
        Command::Check => {
            commands::check(&config, &mut out).map_err(|e| WatcherError::Usage(e.to_string()))
        }
        Command::Once {
            backfill,
            dry_run,
            all,
        } => {
            let opts = OnceOptions {
                backfill,
                dry_run,
                all,
            };
            commands::once(config, opts, &mut out).await
        }
        Command::Status { json } => commands::status(config, json, &mut out).await,
        Command::Retry { batch } => commands::retry(config, batch, &mut out).await,
        Command::Redeliver { batch } => commands::redeliver(config, &batch, &mut out).await,
        Command::ImportOpml {
            file,
            author,
            dry_run,
        } => commands::import_opml(&config, &file, author.as_deref(), dry_run, &mut out),
        Command::ExportOpml => commands::export_opml(&config, &mut out),
        Command::Demo { .. } => unreachable!("handled before the config is loaded"),
        Command::Run => {
            let cancel = CancellationToken::new();
            cancel_on_signals(cancel.clone());
            commands::run(config, cancel).await
        }
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
