//! What a stage process's environment holds: the runner's own environment minus every secret
//! variable (with a chain's `env_clear = true`: only its `env_allow` list and `PATH`), then the
//! run's `PIPELINES_*` variables and the stage's `env` table.

use crate::chain::EnvPolicy;
pub use crate::chain::PROJECT_SECRETS;

/// What the runner sets for every stage, `env_clear` or not (`PATH` copied from the runner's
/// own environment, the rest describing the run).
pub const ALWAYS_SET: &[&str] = &[
    "PATH",
    "PIPELINES_RUN_ID",
    "PIPELINES_CHAIN",
    "PIPELINES_STAGE",
    "PIPELINES_CONFIG",
    "PIPELINES_RUN_DIR",
];

/// How to build one stage's environment from the runner's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageEnv {
    /// Start from an empty environment instead of the runner's.
    pub clear: bool,
    /// Variables copied from the runner's environment (only with `clear`).
    pub inherit: Vec<String>,
    /// Variables removed from the runner's environment (only without `clear`).
    pub remove: Vec<String>,
}

impl StageEnv {
    /// The plan for a chain with `policy`, the runner stripping `secrets` (names from its
    /// settings' `*_env` keys) on top of [`PROJECT_SECRETS`]. A secret is never inherited, even
    /// when `env_allow` names it.
    pub fn new(policy: &EnvPolicy, secrets: &[String]) -> Self {
        let secret =
            |name: &str| PROJECT_SECRETS.contains(&name) || secrets.iter().any(|s| s == name);
        if policy.clear {
            let mut inherit = vec!["PATH".to_owned()];
            inherit.extend(
                policy
                    .allow
                    .iter()
                    .filter(|name| !secret(name) && name.as_str() != "PATH")
                    .cloned(),
            );
            Self {
                clear: true,
                inherit,
                remove: Vec::new(),
            }
        } else {
            let mut remove: Vec<String> = PROJECT_SECRETS.iter().map(|s| (*s).to_owned()).collect();
            remove.extend(
                secrets
                    .iter()
                    .filter(|s| !PROJECT_SECRETS.contains(&s.as_str()))
                    .cloned(),
            );
            Self {
                clear: false,
                inherit: Vec::new(),
                remove,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_and_never_inherited() {
        let secrets = vec!["ENGINE_KEY".to_owned()];
        let plain = StageEnv::new(&EnvPolicy::default(), &secrets);
        assert!(!plain.clear);
        assert!(plain.remove.iter().any(|n| n == runner_api::TOKEN_ENV));
        assert!(plain.remove.iter().any(|n| n == "ENGINE_KEY"));

        let policy = EnvPolicy {
            clear: true,
            allow: vec![
                "HOME".into(),
                "ENGINE_KEY".into(),
                runner_api::TOKEN_ENV.into(),
            ],
        };
        let cleared = StageEnv::new(&policy, &secrets);
        assert!(cleared.clear);
        assert_eq!(cleared.inherit, ["PATH", "HOME"]);
    }
}
