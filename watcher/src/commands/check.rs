//! commands/check.rs: `watcher check`: the config is valid (loading it checked it); says what it
//! holds, and warns about what is valid but will not work as meant (an embedded chain that
//! outlasts `once`'s `wait_timeout`).

use std::io::Write;

use crate::config::Config;
use crate::embedded::{RunBound, run_bound};
use crate::error::{Outcome, WatcherError};

/// `watcher check`
pub fn check(config: &Config, out: &mut impl Write) -> Result<Outcome, WatcherError> {
    let sources = config.sources();
    writeln!(
        out,
        "{}: ok ({} author(s), {} source(s), trigger {} → {})",
        config.path.display(),
        config.authors.len(),
        sources.len(),
        config
            .trigger
            .table
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?"),
        config.trigger.pipeline
    )?;
    for warning in warnings(config) {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(Outcome::Ok)
}

/// What is valid but will not work as meant.
fn warnings(config: &Config) -> Vec<String> {
    let Some(embedded) = &config.trigger.embedded else {
        return Vec::new();
    };
    let (chain, wait) = (&config.trigger.pipeline, config.trigger.wait_timeout);
    let longest = match run_bound(&embedded.chains_dir, chain) {
        Some(RunBound::Within(longest)) if longest > wait => format!(
            "a run of chain `{chain}` may take up to {} by its stage timeouts",
            humantime::format_duration(longest)
        ),
        Some(RunBound::Unbounded { stage }) => {
            format!("stage `{stage}` of chain `{chain}` has no timeout, so a run may take any time")
        }
        _ => return Vec::new(),
    };
    vec![format!(
        "trigger.wait_timeout: {longest}, but `watcher once` stops the embedded runner, and the stages still running, after waiting {}; hint: for long chains from cron, run `pipelines serve` as a service and set [trigger] kind = \"pipelines\" with its url (or run the `watcher run` daemon, or raise wait_timeout)",
        humantime::format_duration(wait)
    )]
}
