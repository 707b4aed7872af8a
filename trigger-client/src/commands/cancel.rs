//! `trigger-client cancel RUN`: ask the engine to cancel a run.

use serde_json::json;
use trigger_client::{Client, exit};

use super::failure::Failure;
use super::output;
use crate::cli::HandleArgs;

pub async fn cancel(client: &Client, args: HandleArgs) -> Result<i32, Failure> {
    client.cancel(&args.run).await?;
    if args.json {
        output::json(&json!({"run": args.run.to_string(), "cancel": "requested"}))?;
    } else {
        output::progress(format_args!("cancel requested for {}", args.run))?;
    }
    Ok(exit::SUCCESS)
}
