//! preflight.rs: the checks of a config that need more than the file, run by `watcher check`
//! and at startup: the chain files of `kind = "embedded"` and the trigger client's reading of
//! the `[trigger]` target, and the config templates it names. Their problems are reported with
//! the file's own, under their keys.

use std::path::Path;

use crate::config::{Config, ConfigError, ConfigProblem, TriggerCheck, TriggerSettings};

/// Reads and validates the config at `path`, preflight checks included.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    with_templates(Config::load_with(path, &Preflight)?)
}

/// Validates `text` as if read from `path`, preflight checks included.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    with_templates(Config::parse_with(path, text, &Preflight)?)
}

/// The config, once the templates it names are found usable (`emit::template`).
fn with_templates(config: Config) -> Result<Config, ConfigError> {
    match crate::emit::Templates::load(&config) {
        Ok(_) => Ok(config),
        Err(problems) => Err(ConfigError::Invalid {
            path: config.path,
            problems,
        }),
    }
}

/// The checks of `[trigger]` against the chain files or the trigger client.
pub struct Preflight;

impl TriggerCheck for Preflight {
    fn check(&self, trigger: &TriggerSettings) -> Vec<ConfigProblem> {
        let result = match &trigger.embedded {
            Some(e) => crate::embedded::validate(&e.chains_dir, &trigger.pipeline)
                .map_err(|message| ConfigProblem::new("trigger.chains_dir", message)),
            None => crate::deliver::validate_target(&trigger.table)
                .map_err(|message| ConfigProblem::new("trigger", message)),
        };
        result.err().into_iter().collect()
    }
}
