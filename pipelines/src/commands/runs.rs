//! `pipelines runs`: list runs or show one, from the state directory or a runner (`--url`).

use super::client_token::client_token;
use super::exit::Status;
use super::tables;
use crate::cli::RunsArgs;
use crate::client::Client;
use crate::error::Error;
use crate::settings;
use crate::state::{RunFilter, State, StateError};

/// Lists runs (or shows `args.id`) as a table or as the REST API's JSON.
pub async fn runs(args: RunsArgs, token: Option<String>) -> Result<Status, Error> {
    let filter = RunFilter {
        chain: args.chain.clone(),
        status: args.status,
        limit: args.limit.max(1),
        cursor: None,
    };
    let (one, page) = if let Some(url) = &args.remote.url {
        let token = client_token(token, args.remote.token_file.as_deref(), &args.state_dir)?;
        let client = Client::new(url.clone(), &token);
        match &args.id {
            Some(id) => (Some(client.run(id).await?), None),
            None => (None, Some(client.runs(&filter).await?)),
        }
    } else {
        let state = State::open(&settings::db_dir(&args.state_dir))?;
        match &args.id {
            Some(id) => {
                let run = state
                    .get_run(id)?
                    .ok_or_else(|| StateError::RunNotFound { id: id.clone() })?;
                (Some(run), None)
            }
            None => (None, Some(state.list_runs_blocking(&filter)?)),
        }
    };
    if args.json {
        let value = match (one, page) {
            (Some(run), _) => serde_json::to_value(run),
            (None, page) => serde_json::to_value(page),
        }
        .expect("runs serialise to JSON");
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON prints")
        );
        return Ok(Status::Success);
    }
    if let Some(run) = one {
        tables::print_run(&run);
    } else if let Some(page) = page {
        tables::print_runs(&page);
    }
    Ok(Status::Success)
}
