//! `pipelines gates`: the gates and budgets report, from the state directory and the chain files
//! or from a runner (`--url`), as text or as the REST API's JSON.

use super::client_token::client_token;
use super::exit::Status;
use super::tables;
use crate::chain::{self, ChainError, ChainErrors};
use crate::cli::GatesArgs;
use crate::client::Client;
use crate::error::Error;
use crate::settings;
use crate::state::State;

/// Prints the report for `args.chain` (or every chain).
pub async fn gates(args: GatesArgs, token: Option<String>) -> Result<Status, Error> {
    let report = if let Some(url) = &args.remote.url {
        let token = client_token(
            token,
            args.remote.token_file.as_deref(),
            &args.dirs.state_dir,
        )?;
        Client::new(url.clone(), &token)
            .gates(args.chain.as_deref())
            .await?
    } else {
        let chains = chain::load(&args.dirs.chains)?;
        if let Some(name) = &args.chain
            && chains.get(name).is_none()
        {
            return Err(ChainErrors(vec![ChainError {
                file: args.dirs.chains.clone(),
                key: None,
                message: format!(
                    "no chain `{name}` here; its chains: {}",
                    crate::causes::list(chains.iter().map(|c| c.name()))
                ),
            }])
            .into());
        }
        let state = State::open(&settings::db_dir(&args.dirs.state_dir))?;
        let selected = chains
            .iter()
            .filter(|c| args.chain.as_ref().is_none_or(|name| c.name() == name));
        crate::gate_report::report(selected, &state, chrono::Utc::now())?
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises to JSON")
        );
    } else {
        tables::print_gates(&report);
    }
    Ok(Status::Success)
}
