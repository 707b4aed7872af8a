//! `trigger-client status RUN`: print a run's state; exits 0 whenever the state could be read.

use serde_json::json;
use trigger_client::{Client, exit};

use super::failure::Failure;
use super::output;
use crate::cli::HandleArgs;

pub async fn status(client: &Client, args: HandleArgs) -> Result<i32, Failure> {
    let status = client.status(&args.run).await?;
    if args.json {
        output::json(&json!({
            "run": args.run.to_string(), "state": status.state,
            "raw_state": status.raw_state, "message": status.message,
        }))?;
    } else {
        output::result(&status)?;
    }
    Ok(exit::SUCCESS)
}
