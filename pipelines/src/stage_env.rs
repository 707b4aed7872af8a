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
    /// Variables copied from the runner's environment (only with `clear`); `PREFIX*` stands for
    /// every variable whose name starts with `PREFIX`.
    pub inherit: Vec<String>,
    /// Variables removed from the runner's environment (only without `clear`), and never
    /// copied by a `PREFIX*` of `inherit`.
    pub remove: Vec<String>,
}

impl StageEnv {
    /// The plan for a chain with `policy`, the runner stripping `secrets` (names from its
    /// settings' `*_env` keys) on top of [`PROJECT_SECRETS`]. A secret is never inherited, even
    /// when `env_allow` names it.
    pub fn new(policy: &EnvPolicy, secrets: &[String]) -> Self {
        let secret =
            |name: &str| PROJECT_SECRETS.contains(&name) || secrets.iter().any(|s| s == name);
        let mut remove: Vec<String> = PROJECT_SECRETS.iter().map(|s| (*s).to_owned()).collect();
        remove.extend(
            secrets
                .iter()
                .filter(|s| !PROJECT_SECRETS.contains(&s.as_str()))
                .cloned(),
        );
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
                remove,
            }
        } else {
            Self {
                clear: false,
                inherit: Vec::new(),
                remove,
            }
        }
    }

    /// The `inherit` variables found in `vars` (the runner's environment), in `vars`' order,
    /// secrets left out.
    pub fn inherited(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<(String, String)> {
        let wanted = |name: &str| {
            self.inherit
                .iter()
                .any(|rule| match rule.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => rule == name,
                })
                && !self.remove.iter().any(|secret| secret == name)
        };
        vars.into_iter().filter(|(name, _)| wanted(name)).collect()
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

    #[test]
    fn prefixes_inherit_a_tools_variables_but_not_secrets() {
        let secrets = vec!["ZENML_STORE_API_KEY".to_owned()];
        let policy = EnvPolicy {
            clear: true,
            allow: vec!["ZENML_*".into(), "HOME".into()],
        };
        let plan = StageEnv::new(&policy, &secrets);
        let vars = [
            ("ZENML_CONFIG_PATH", "/tmp/z"),
            ("ZENML_STORE_API_KEY", "ZENKEY_x"),
            ("HOME", "/root"),
            ("HOMEDIR", "/x"),
            ("ZENMLX", "no"),
            (runner_api::TOKEN_ENV, "t"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let names: Vec<String> = plan.inherited(vars).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["ZENML_CONFIG_PATH", "HOME"]);
    }
}
