//! From the target flags to a ready [`Client`] in one step: the target from `--target` (a
//! table of the targets file) or from `--kind`/`--url`, flags overriding the file, then the
//! retry policy and poll interval the flags ask for.

use std::time::Duration;

use trigger_client::{Client, Error, Kind, RetryPolicy, TargetConfig};

use crate::cli::TargetArgs;

/// The client for the target the flags name. `kind_from_handle` (a `status`/`cancel` run's
/// kind) stands in for `--kind` when neither `--kind` nor `--target` is given.
pub fn client(args: &TargetArgs, kind_from_handle: Option<Kind>) -> Result<Client, Error> {
    let target = resolve(args, kind_from_handle)?;
    let poll_interval = args
        .poll_interval
        .unwrap_or_else(|| target.poll_interval.unwrap_or(Duration::from_secs(2)));
    Ok(Client::new(&target)?
        .with_retry(RetryPolicy {
            max_attempts: args.max_attempts.max(1),
            ..RetryPolicy::default()
        })
        .with_poll_interval(poll_interval))
}

/// The target from --target (file) or --kind/--url, with flags overriding the file.
fn resolve(args: &TargetArgs, kind_from_handle: Option<Kind>) -> Result<TargetConfig, Error> {
    let mut target = match &args.target {
        Some(name) => {
            let (target, unknown) = TargetConfig::load_named(&args.targets_file, name)?;
            if !unknown.is_empty() {
                tracing::debug!(keys = ?unknown, "ignoring keys trigger-client does not use");
            }
            target
        }
        None => {
            let kind = args
                .kind
                .or(kind_from_handle)
                .ok_or_else(|| Error::Config {
                    key: "kind".into(),
                    problem: "is missing (hint: pass --kind and --url, or --target NAME)".into(),
                })?;
            let url = args.url.clone().ok_or_else(|| Error::Config {
                key: "url".into(),
                problem: "is missing (hint: pass --url, or --target NAME)".into(),
            })?;
            TargetConfig::new(kind, url)
        }
    };
    if let Some(kind) = args.kind {
        target.kind = kind;
    }
    let overrides = [
        (&args.token_env, &mut target.token_env),
        (&args.username, &mut target.username),
        (&args.password_env, &mut target.password_env),
        (&args.auth_string_env, &mut target.auth_string_env),
        (&args.secret_env, &mut target.secret_env),
        (&args.zenml_pipeline, &mut target.zenml_pipeline),
        (&args.project, &mut target.project),
    ];
    for (flag, key) in overrides {
        if flag.is_some() {
            key.clone_from(flag);
        }
    }
    if args.url.is_some() {
        target.url.clone_from(&args.url);
    }
    if args.token_file.is_some() {
        target.token_file.clone_from(&args.token_file);
    }
    if let Some(version) = args.airflow_version {
        target.airflow_version = version;
    }
    Ok(target)
}
