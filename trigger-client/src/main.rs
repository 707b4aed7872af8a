//! The `trigger-client` binary: parse flags, start logging, run the command, and map the
//! outcome to an exit status (0 ok, 1 run failed, 2 usage/config, 3 unreachable).

mod cli;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => match runtime.block_on(cli.execute()) {
            Ok(code) => code,
            Err(err) => {
                let code = err.exit_code();
                eprintln!("error: {:#}", anyhow::Error::new(err));
                code
            }
        },
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            trigger_client::exit::USAGE
        }
    };
    std::process::exit(code);
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
