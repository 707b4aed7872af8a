//! A chain's environment policy: `env_clear = true` starts each stage from an empty environment
//! that holds only the `env_allow` variables (plus what the runner always sets); checked here.
//! An `env_allow` entry is a name or a prefix ending in `*` (`ZENML_*`: every variable of a tool).

use super::problem::ChainError;
use std::path::Path;

/// The project's own secret variables: never passed to a stage, whatever the settings say.
pub const PROJECT_SECRETS: &[&str] = &[runner_api::TOKEN_ENV, "WATCHER_WEBHOOK_SECRET"];

/// `env_clear` and `env_allow`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPolicy {
    /// Stages start from an empty environment.
    pub clear: bool,
    /// With `clear`: the runner's variables copied in (secrets never are); `PREFIX*` copies
    /// every variable whose name starts with `PREFIX`.
    pub allow: Vec<String>,
}

impl EnvPolicy {
    /// Checks the raw keys; every problem is pushed to `errors` with its key.
    pub(super) fn check(
        clear: bool,
        allow: Vec<String>,
        file: &Path,
        errors: &mut Vec<ChainError>,
    ) -> Self {
        let mut error = |message: String| {
            errors.push(ChainError {
                file: file.to_owned(),
                key: Some("env_allow".into()),
                message,
            })
        };
        if !clear && !allow.is_empty() {
            error(
                "has no effect without `env_clear = true` (stages get the runner's environment minus its secrets); set env_clear or remove env_allow".into(),
            );
        }
        for name in &allow {
            let stem = name.strip_suffix('*').unwrap_or(name);
            if stem.is_empty() || stem.contains(['=', '\0', '*']) {
                error(format!(
                    "bad variable name `{}`; expected a name or a prefix ending in `*` (`ZENML_*`), without `=`",
                    name.escape_debug()
                ));
            } else if PROJECT_SECRETS.contains(&name.as_str()) {
                error(format!(
                    "`{name}` is the runner's own secret and is never passed to stages; remove it"
                ));
            }
        }
        EnvPolicy { clear, allow }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn problems(text: &str) -> String {
        match crate::chain::parse(text, Path::new("c.toml")) {
            Ok(chain) => panic!("accepted: {:?}", chain.env_policy()),
            Err(errors) => errors.to_string(),
        }
    }

    const STAGE: &str = "[[stages]]\nname = \"a\"\nrun = [\"true\"]\n";

    #[test]
    fn env_allow_is_checked() {
        let text = format!("name = \"c\"\nenv_clear = true\nenv_allow = [\"HOME\"]\n{STAGE}");
        let chain = crate::chain::parse(&text, Path::new("c.toml")).unwrap();
        assert!(chain.env_policy().clear);
        assert_eq!(chain.env_policy().allow, ["HOME"]);

        let text = format!("name = \"c\"\nenv_allow = [\"HOME\"]\n{STAGE}");
        assert!(problems(&text).contains("without `env_clear = true`"));
        let text = format!(
            "name = \"c\"\nenv_clear = true\nenv_allow = [\"A=B\", \"PIPELINES_TOKEN\"]\n{STAGE}"
        );
        let text = problems(&text);
        assert!(text.contains("bad variable name `A=B`"), "{text}");

        assert!(
            text.contains("`PIPELINES_TOKEN` is the runner's own secret"),
            "{text}"
        );

        let text = format!("name = \"c\"\nenv_clear = true\nenv_allow = [\"ZENML_*\"]\n{STAGE}");
        let chain = crate::chain::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(chain.env_policy().allow, ["ZENML_*"]);
        for bad in ["*", "A*B*", "*A"] {
            let text = format!("name = \"c\"\nenv_clear = true\nenv_allow = [\"{bad}\"]\n{STAGE}");
            assert!(problems(&text).contains("bad variable name"), "{bad}");
        }
    }
}
