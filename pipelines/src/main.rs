//! The `pipelines` binary: parses the command line, starts logging, turns SIGINT/SIGTERM into a
//! cancellation, runs the command from the library and exits with the code its outcome maps to
//! (`pipelines::commands::ExitCode`).

use clap::Parser;
use pipelines::cli::Cli;
use pipelines::commands::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    pipelines::log_format::init(
        cli.log_format,
        EnvFilter::try_new(cli.log_filter()).unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::BadInput.into();
        }
    };
    let outcome = runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(cancel_on_signal(cancel.clone()));
        pipelines::commands::execute(cli.command, cancel).await
    });
    let code = ExitCode::of(&outcome);
    if let Err(err) = outcome {
        eprintln!("error: {:#}", anyhow::Error::from(err));
    }
    code.into()
}

/// Cancels on the first SIGINT or SIGTERM.
async fn cancel_on_signal(cancel: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the runner");
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
    cancel.cancel();
}
