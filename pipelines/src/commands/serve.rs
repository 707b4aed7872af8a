//! `pipelines serve`: bind, build the runner, say where it listens and how to authenticate, then
//! serve until cancelled.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::exit::Status;
use crate::Runner;
use crate::cli::ServeArgs;
use crate::error::Error;
use crate::settings;
use crate::token::TokenSource;
use runner_api::paths;

/// Serves the REST API and runs chains until `cancel`.
pub async fn serve(
    args: ServeArgs,
    token: Option<String>,
    cancel: CancellationToken,
) -> Result<Status, Error> {
    if settings::is_remote(args.listen) {
        if !args.allow_remote {
            return Err(Error::RemoteListen { addr: args.listen });
        }
        tracing::warn!(addr = %args.listen, "listening beyond loopback: anyone who can reach this address and has the token can run chains");
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: args.listen,
            source,
        })?;
    let settings = args
        .stopping
        .runner_settings(&args.dirs, token)
        .with_keep_runs(args.keep_runs)
        .with_secret_env(args.secret_env.clone())
        .with_dashboard();
    let runner = Runner::build(listener, settings)?;
    println!("pipelines runner listening on {}", runner.url());
    println!(
        "dashboard: {}/ (log in with the token; from another machine, through an SSH tunnel)",
        runner.url()
    );
    println!(
        "chains: {} from {}",
        runner
            .engine()
            .chains()
            .iter()
            .map(|chain| chain.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.dirs.chains.display()
    );
    match runner.token().source() {
        TokenSource::Given => println!("token: from PIPELINES_TOKEN"),
        TokenSource::File { path, created } => {
            let note = if *created {
                " (generated now, mode 0600)"
            } else {
                ""
            };
            println!("token: {}{note}", path.display());
            println!(
                "try: curl -H \"Authorization: Bearer $(cat {})\" {}{}",
                path.display(),
                runner.url(),
                paths::CHAINS
            );
        }
    }
    runner.run(cancel).await?;
    Ok(Status::Success)
}
