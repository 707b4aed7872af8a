//! commands.rs: what each CLI command does and prints, one file per command under `commands/`.
//! `main` parses the command line, starts tracing and maps the result to an exit code (the
//! contract is in `error.rs`); [`dispatch`] loads the config and runs the command; everything a
//! user sees on stdout is written by the command's file.

pub mod check;
pub mod demo;
pub mod explain_link;
pub mod export_opml;
pub mod held;
pub mod import_opml;
pub mod once;
pub mod redeliver;
pub mod retry;
pub mod run;
pub mod status;

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::error::{Outcome, WatcherError};
use crate::hold::HeldAction;
use crate::watch::OnceOptions;

/// Runs `command` with the config at `config_path` (`demo` needs none), writing to `out`;
/// `cancel` (SIGINT, SIGTERM) stops the daemon and `once`.
pub async fn dispatch(
    command: Command,
    config_path: &std::path::Path,
    cancel: CancellationToken,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    if let Command::Demo { dir, chains } = command {
        return demo::demo(dir, chains.as_deref(), out).await;
    }
    let config = crate::preflight::load(config_path)?;
    match command {
        Command::Check {
            explain_link,
            title,
            generator,
        } if !explain_link.is_empty() => {
            let item = explain_link::Item {
                title: title.as_deref(),
                generator: generator.as_deref(),
            };
            explain_link::explain_links(&config, &explain_link, item, out)
        }
        Command::Check { .. } => check::check(&config, out),
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
            once::once(config, opts, &cancel, out).await
        }
        Command::Status { json } => status::status(config, json, out).await,
        Command::Held { json } => held::held(config, json, out).await,
        Command::Release { which } => {
            held::on_held(config, HeldAction::Release, which.into(), out).await
        }
        Command::Discard { which } => {
            held::on_held(config, HeldAction::Discard, which.into(), out).await
        }
        Command::Retry { batch } => retry::retry(config, batch, out).await,
        Command::Redeliver { batch, force } => {
            redeliver::redeliver(config, &batch, force, out).await
        }
        Command::ImportOpml {
            file,
            author,
            dry_run,
        } => import_opml::import_opml(&config, &file, author.as_deref(), dry_run, out),
        Command::ExportOpml => export_opml::export_opml(&config, out),
        Command::Run => run::run(config, cancel).await,
        Command::Demo { .. } => unreachable!("handled before the config is loaded"),
    }
}
