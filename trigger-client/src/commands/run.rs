//! `trigger-client run [PIPELINE]`: start a run with an idempotency key, print its handle, and
//! with `--wait` follow it; the exit status then tells how it ended (0 succeeded, 1 not).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use trigger_client::{Client, Error, RunRequest, RunState, exit};

use super::failure::Failure;
use super::output;
use crate::cli::RunArgs;

pub async fn run(client: &Client, args: RunArgs) -> Result<i32, Failure> {
    let config = match &args.config {
        Some(path) => RunRequest::config_from_file(path)?,
        None => json!({}),
    };
    let idempotency_key = args.idempotency_key.clone().unwrap_or_else(fresh_key);
    let req = RunRequest {
        pipeline: args.pipeline.clone().unwrap_or_default(),
        idempotency_key: idempotency_key.clone(),
        config,
        params: args.params.iter().cloned().collect(),
        payload: None,
    };
    let handle = client.trigger(&req).await?;
    let started = json!({
        "run": handle.to_string(), "kind": handle.kind, "id": handle.id,
        "idempotency_key": idempotency_key,
    });
    if !args.json {
        output::result(&handle)?;
    }
    if !args.wait {
        if args.json {
            output::json(&started)?;
        }
        return Ok(exit::SUCCESS);
    }
    let mut progress = Ok(());
    let waited = client
        .wait(&handle, args.timeout, |status| {
            if progress.is_ok() {
                progress = output::progress(format_args!("{handle}: {status}"));
            }
        })
        .await;
    progress?;
    let status = match waited {
        Ok(status) => status,
        Err(err @ Error::WaitTimeout { .. }) => {
            if args.json {
                output::json(&with(
                    started,
                    json!({"state": "timeout", "message": err.to_string()}),
                ))?;
            }
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        output::json(&with(
            started,
            json!({"state": status.state, "raw_state": status.raw_state, "message": status.message}),
        ))?;
    }
    if status.state == RunState::Succeeded {
        return Ok(exit::SUCCESS);
    }
    let message = status
        .message
        .as_deref()
        .map(|message| format!(": {message}"))
        .unwrap_or_default();
    output::progress(format_args!("run {handle} {}{message}", status.state))?;
    Ok(exit::RUN_FAILED)
}

/// `object` with the fields of `more` added (both JSON objects).
fn with(mut object: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    if let (Some(object), serde_json::Value::Object(more)) = (object.as_object_mut(), more) {
        object.extend(more);
    }
    object
}

/// `cli-<unix seconds>-<8 random hex digits>`: a new run per invocation.
fn fresh_key() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    format!("cli-{seconds}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_differ() {
        assert_ne!(fresh_key(), fresh_key());
    }

    #[test]
    fn with_adds_the_fields() {
        let merged = with(json!({"run": "x"}), json!({"state": "failed"}));
        assert_eq!(merged.to_string(), r#"{"run":"x","state":"failed"}"#);
    }
}
