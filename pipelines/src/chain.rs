//! Chain files: the TOML format, loading a chains directory, and validating every file into a
//! [`Chain`] that cannot be invalid afterwards (known placeholders, a DAG without cycles, good
//! cron and durations, absolute paths).
//!
//! Every problem is reported with the file, the key and what was expected; all problems of all
//! files are reported at once. The problems themselves are in `problem`, the stage order in
//! `dag`, how relative paths resolve in `paths`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::placeholder::{self, Placeholder, Template};
use crate::schedule::Schedule;

mod dag;
mod env;
mod gate;
mod paths;
mod problem;

pub use self::env::{EnvPolicy, PROJECT_SECRETS};
pub use self::gate::{Amount, Budget, DEFAULT_GATE_RETRY, Gate, MAX_MIN_NEW_LINKS};
use self::gate::{RawBudget, RawGate};
use self::paths::resolve;
pub use self::problem::{ChainError, ChainErrors};

/// The chain file as written (before validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    name: String,
    #[serde(default)]
    description: String,
    schedule: Option<String>,
    timezone: Option<String>,
    default_config: Option<PathBuf>,
    concurrency: Option<i64>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    env_clear: bool,
    #[serde(default)]
    env_allow: Vec<String>,
    budget: Option<RawBudget>,
    #[serde(default)]
    stages: Vec<RawStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: String,
    run: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    workdir: Option<PathBuf>,
    timeout: Option<String>,
    #[serde(default)]
    retries: u32,
    config_dir: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    gate: Option<RawGate>,
    gate_retry: Option<String>,
    cost: Option<f64>,
}

/// A validated chain.
#[derive(Debug, Clone)]
pub struct Chain {
    name: String,
    description: String,
    file: PathBuf,
    schedule: Option<Schedule>,
    default_config: Option<PathBuf>,
    concurrency: usize,
    params: BTreeMap<String, String>,
    env: EnvPolicy,
    budget: Option<Budget>,
    stages: Vec<Stage>,
}

/// A validated stage.
#[derive(Debug, Clone)]
pub struct Stage {
    name: String,
    run: Vec<Template>,
    after: Vec<String>,
    deps: Vec<usize>,
    workdir: PathBuf,
    timeout: Option<Duration>,
    retries: u32,
    config_dir: Option<PathBuf>,
    env: Vec<(String, Template)>,
    gate: Option<Gate>,
    cost: Option<Amount>,
}

impl Chain {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The chain file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }
    /// The config a run gets when its trigger sends none (absolute path).
    pub fn default_config(&self) -> Option<&Path> {
        self.default_config.as_deref()
    }
    /// How many runs of this chain may run at once; more wait in FIFO order.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
    /// Defaults for `{param.NAME}`.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }
    /// `env_clear` and `env_allow`: what of the runner's environment its stages get.
    pub fn env_policy(&self) -> &EnvPolicy {
        &self.env
    }
    /// Stages in file order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Names of params some stage uses that have no default.
    pub fn required_params(&self) -> BTreeSet<&str> {
        self.stages
            .iter()
            .flat_map(Stage::templates)
            .flat_map(Template::placeholders)
            .filter_map(|placeholder| match placeholder {
                Placeholder::Param(name) if !self.params.contains_key(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl Stage {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The argv templates.
    pub fn run(&self) -> &[Template] {
        &self.run
    }
    /// Names of the stages this one waits for.
    pub fn after(&self) -> &[String] {
        &self.after
    }
    /// Indices (into [`Chain::stages`]) of the stages this one waits for.
    pub fn deps(&self) -> &[usize] {
        &self.deps
    }
    /// Absolute working directory.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// Extra attempts after a failure (not after a cancel or a shutdown).
    pub fn retries(&self) -> u32 {
        self.retries
    }
    /// Where the run's config is copied before the stage starts (absolute).
    pub fn config_dir(&self) -> Option<&Path> {
        self.config_dir.as_deref()
    }
    pub fn env(&self) -> &[(String, Template)] {
        &self.env
    }

    fn templates(&self) -> impl Iterator<Item = &Template> {
        self.run
            .iter()
            .chain(self.env.iter().map(|(_, value)| value))
    }
}

/// One problem in one chain file.
/// The chains of one directory, by name.
#[derive(Debug, Clone, Default)]
pub struct Chains {
    by_name: BTreeMap<String, Arc<Chain>>,
}

impl Chains {
    pub fn get(&self, name: &str) -> Option<&Arc<Chain>> {
        self.by_name.get(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Chain>> {
        self.by_name.values()
    }
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Loads every `*.toml` file of `path` (a directory), or the single file `path`.
pub fn load(path: &Path) -> Result<Chains, ChainErrors> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let whole = |message: String| {
        ChainErrors(vec![ChainError {
            file: path.clone(),
            key: None,
            message,
        }])
    };
    let files = if path.is_dir() {
        let entries = std::fs::read_dir(&path)
            .map_err(|err| whole(format!("cannot read the chains directory: {err}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|file| file.extension().is_some_and(|ext| ext == "toml") && file.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(whole(
                "no chain files (`*.toml`) in this directory; expected at least one, see pipelines/README.md".into(),
            ));
        }
        files
    } else if path.is_file() {
        vec![path.clone()]
    } else {
        return Err(whole(
            "no such file or directory; expected a chains directory or a chain file".into(),
        ));
    };

    let mut errors = Vec::new();
    let mut by_name: BTreeMap<String, Arc<Chain>> = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) => {
                errors.push(ChainError {
                    file,
                    key: None,
                    message: format!("cannot read the file: {err}"),
                });
                continue;
            }
        };
        match parse(&text, &file) {
            Ok(chain) => {
                if let Some(other) = by_name.get(chain.name()) {
                    errors.push(ChainError {
                        file: file.clone(),
                        key: Some("name".into()),
                        message: format!(
                            "chain name `{}` is already used by `{}`; expected names unique in a directory",
                            chain.name(),
                            other.file().display()
                        ),
                    });
                } else {
                    by_name.insert(chain.name().to_owned(), Arc::new(chain));
                }
            }
            Err(ChainErrors(found)) => errors.extend(found),
        }
    }
    if errors.is_empty() {
        Ok(Chains { by_name })
    } else {
        Err(ChainErrors(errors))
    }
}

/// Parses and validates one chain file's text; relative paths resolve against `file`'s directory.
pub fn parse(text: &str, file: &Path) -> Result<Chain, ChainErrors> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let raw: RawChain = toml::from_str(text).map_err(|err| {
        ChainErrors(vec![ChainError {
            file: file.clone(),
            key: None,
            message: format!("invalid TOML: {}", err.to_string().trim_end()),
        }])
    })?;
    let mut check = Checker {
        file: file.clone(),
        errors: Vec::new(),
    };
    let base = file.parent().unwrap_or(Path::new("/")).to_owned();
    let chain = check.chain(raw, &base);
    if check.errors.is_empty() {
        Ok(chain)
    } else {
        Err(ChainErrors(check.errors))
    }
}

/// Whether `name` may name a chain or a stage (it appears in URLs and log file names).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with('.')
}

const NAME_RULE: &str = "expected 1-100 letters, digits, `_`, `-` or `.`, not starting with `.`";

struct Checker {
    file: PathBuf,
    errors: Vec<ChainError>,
}

impl Checker {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ChainError {
            file: self.file.clone(),
            key: Some(key.into()),
            message: message.into(),
        });
    }

    fn chain(&mut self, raw: RawChain, base: &Path) -> Chain {
        if !is_valid_name(&raw.name) {
            self.error(
                "name",
                format!("bad chain name `{}`; {NAME_RULE}", raw.name),
            );
        }
        let timezone = raw.timezone.as_deref().unwrap_or("UTC");
        let schedule = match &raw.schedule {
            Some(expr) => match Schedule::parse(expr, timezone) {
                Ok(schedule) => Some(schedule),
                Err(err @ crate::schedule::ScheduleError::Timezone { .. }) => {
                    self.error("timezone", err.to_string());
                    None
                }
                Err(err) => {
                    self.error("schedule", err.to_string());
                    None
                }
            },
            None => {
                if let Err(err) = Schedule::parse("0 0 * * *", timezone) {
                    self.error("timezone", err.to_string());
                }
                None
            }
        };
        if raw.schedule.is_some() && raw.default_config.is_none() {
            self.error(
                "default_config",
                "missing; a chain with a `schedule` needs a `default_config` (the config scheduled runs get)",
            );
        }
        let concurrency = match raw.concurrency {
            None => 1,
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(n) => {
                self.error(
                    "concurrency",
                    format!("got {n}; expected a whole number of at least 1"),
                );
                1
            }
        };
        for name in raw.params.keys() {
            if !placeholder::is_param_name(name) {
                self.error(
                    format!("params.{name}"),
                    "bad param name; expected letters, digits, `_` or `-`",
                );
            }
        }
        let chain_workdir = resolve(base, raw.workdir.as_deref());
        if raw.stages.is_empty() {
            self.error(
                "stages",
                "no stages; expected at least one [[stages]] table with `name` and `run`",
            );
        }

        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, stage) in raw.stages.iter().enumerate() {
            let key = stage_key(index, &stage.name);
            if !is_valid_name(&stage.name) {
                self.error(
                    format!("{key}.name"),
                    format!("bad stage name `{}`; {NAME_RULE}", stage.name),
                );
            } else if seen.insert(stage.name.clone(), index).is_some() {
                self.error(
                    format!("{key}.name"),
                    format!(
                        "stage `{}` is defined twice; expected unique stage names",
                        stage.name
                    ),
                );
            }
        }

        let mut stages = Vec::with_capacity(raw.stages.len());
        for (index, stage) in raw.stages.into_iter().enumerate() {
            let key = stage_key(index, &stage.name);
            stages.push(self.stage(stage, &key, base, &chain_workdir, &seen));
        }

        let mut chain = Chain {
            name: raw.name,
            description: raw.description,
            file: self.file.clone(),
            schedule,
            default_config: raw.default_config.map(|path| resolve(base, Some(&path))),
            concurrency,
            params: raw.params,
            env: EnvPolicy::check(raw.env_clear, raw.env_allow, &self.file, &mut self.errors),
            budget: self.budget(raw.budget),
            stages,
        };
        if self.errors.is_empty() {
            self.check_acyclic(&chain);
        }
        if raw.schedule.is_some() {
            for name in chain.required_params() {
                let message = format!(
                    "stages use `{{param.{name}}}` but scheduled runs have no params; add a default: `[params] {name} = \"...\"`"
                );
                self.errors.push(ChainError {
                    file: self.file.clone(),
                    key: Some("params".into()),
                    message,
                });
            }
        }
        chain.description = chain.description.trim().to_owned();
        chain
    }

    fn stage(
        &mut self,
        raw: RawStage,
        key: &str,
        base: &Path,
        chain_workdir: &Path,
        names: &HashMap<String, usize>,
    ) -> Stage {
        let mut run = Vec::with_capacity(raw.run.len());
        if raw.run.is_empty() {
            self.error(
                format!("{key}.run"),
                "empty; expected an argv array such as [\"python3\", \"script.py\", \"{config}\"]",
            );
        } else if raw.run[0].trim().is_empty() {
            self.error(
                format!("{key}.run[0]"),
                "empty program name; expected the program to run",
            );
        }
        for (i, arg) in raw.run.iter().enumerate() {
            match Template::parse(arg) {
                Ok(template) => run.push(template),
                Err(err) => self.error(format!("{key}.run[{i}]"), err.to_string()),
            }
        }
        let mut env = Vec::with_capacity(raw.env.len());
        for (name, value) in raw.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.error(
                    format!("{key}.env"),
                    format!("bad variable name `{name}`; expected no `=` and not empty"),
                );
            }
            match Template::parse(&value) {
                Ok(template) => env.push((name, template)),
                Err(err) => self.error(format!("{key}.env.{name}"), err.to_string()),
            }
        }
        let timeout = raw.timeout.as_deref().and_then(|text| {
            match humantime::parse_duration(text) {
                Ok(duration) if !duration.is_zero() => Some(duration),
                Ok(_) => {
                    self.error(
                        format!("{key}.timeout"),
                        "zero; expected a positive duration such as \"90s\", \"30m\" or \"2h\" (or leave it out for no timeout)",
                    );
                    None
                }
                Err(err) => {
                    self.error(
                        format!("{key}.timeout"),
                        format!(
                            "bad duration `{text}`: {err}; expected e.g. \"90s\", \"30m\", \"2h\" or \"1h 30m\""
                        ),
                    );
                    None
                }
            }
        });
        let mut deps = Vec::with_capacity(raw.after.len());
        let mut listed = BTreeSet::new();
        for dep in &raw.after {
            if !listed.insert(dep.as_str()) {
                self.error(
                    format!("{key}.after"),
                    format!("`{dep}` is listed twice; expected each stage once"),
                );
                continue;
            }
            if *dep == raw.name {
                self.error(
                    format!("{key}.after"),
                    format!("stage `{dep}` waits for itself; remove it from its own `after`"),
                );
                continue;
            }
            match names.get(dep) {
                Some(&index) => deps.push(index),
                None => {
                    let mut known: Vec<_> = names.keys().map(|n| format!("`{n}`")).collect();
                    known.sort();
                    self.error(
                        format!("{key}.after"),
                        format!(
                            "unknown stage `{dep}`; expected one of {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        let gate = self.gate(key, raw.gate, raw.gate_retry.as_deref());
        let cost = self.cost(key, raw.cost);
        Stage {
            gate,
            cost,
            name: raw.name,
            run,
            after: raw.after,
            deps,
            workdir: match raw.workdir {
                Some(dir) => resolve(base, Some(&dir)),
                None => chain_workdir.to_owned(),
            },
            timeout,
            retries: raw.retries,
            config_dir: raw.config_dir.map(|dir| resolve(base, Some(&dir))),
            env,
        }
    }

    fn check_acyclic(&mut self, chain: &Chain) {
        if let Err(cycle) = topological_order(&chain.stages) {
            let names: Vec<_> = cycle
                .iter()
                .map(|&i| format!("`{}`", chain.stages[i].name))
                .collect();
            self.error(
                "stages",
                format!(
                    "the `after` lists form a cycle through {}; expected a DAG (no stage may wait for itself, even indirectly)",
                    names.join(", ")
                ),
            );
        }
    }
}

fn stage_key(index: usize, name: &str) -> String {
    if is_valid_name(name) {
        format!("stages[{name}]")
    } else {
        format!("stages[#{}]", index + 1)
    }
}

/// Stage indices in an order where each comes after its deps, or the stages left in a cycle
/// (see [`dag::order`]).
pub fn topological_order(stages: &[Stage]) -> Result<Vec<usize>, Vec<usize>> {
    let deps: Vec<&[usize]> = stages.iter().map(|stage| stage.deps.as_slice()).collect();
    dag::order(&deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Chain {
        parse(text, Path::new("/chains/test.toml")).unwrap()
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text, Path::new("/chains/test.toml"))
            .unwrap_err()
            .0
            .into_iter()
            .map(|err| err.to_string())
            .collect()
    }

    const GOOD: &str = r#"
        name = "demo"
        description = "three stages"
        schedule = "0 3 * * *"
        timezone = "Europe/Berlin"
        default_config = "demo/config.yaml"
        concurrency = 2
        [params]
        who = "Paul"

        [[stages]]
        name = "extract"
        run = ["python3", "x.py", "{config}", "{param.who}"]
        timeout = "2h"
        retries = 1
        config_dir = "../configs"

        [[stages]]
        name = "a"
        after = ["extract"]
        run = ["true"]
        workdir = "work"
        env = { OUT = "{run_dir}/out" }

        [[stages]]
        name = "b"
        after = ["extract"]
        run = ["true"]

        [[stages]]
        name = "join"
        after = ["a", "b"]
        run = ["echo", "{{literal}}"]
    "#;

    #[test]
    fn parses_a_good_chain() {
        let chain = parse_ok(GOOD);
        assert_eq!(chain.name(), "demo");
        assert_eq!(chain.concurrency(), 2);
        assert_eq!(chain.schedule().unwrap().expr(), "0 3 * * *");
        assert_eq!(
            chain.default_config(),
            Some(Path::new("/chains/demo/config.yaml"))
        );
        let stages = chain.stages();
        assert_eq!(stages.len(), 4);
        assert_eq!(stages[0].timeout(), Some(Duration::from_secs(7200)));
        assert_eq!(stages[0].retries(), 1);
        assert_eq!(stages[0].workdir(), Path::new("/chains"));
        assert_eq!(stages[0].config_dir(), Some(Path::new("/configs")));
        assert_eq!(stages[1].workdir(), Path::new("/chains/work"));
        assert_eq!(stages[3].deps(), &[1, 2]);
        assert!(chain.required_params().is_empty());
        let order = topological_order(stages).unwrap();
        let pos = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(3) && pos(2) < pos(3));
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let found = errors(
            r#"
            name = "bad name"
            schedule = "0 3 * *"
            concurrency = 0
            [[stages]]
            name = "a"
            run = []
            after = ["nope", "a"]
            timeout = "soon"
            [[stages]]
            name = "a"
            run = ["x", "{confg}"]
            env = { X = "{param.}" }
            "#,
        );
        let expected = [
            "`name`: bad chain name `bad name`",
            "`schedule`: bad cron expression `0 3 * *`",
            "`default_config`: missing; a chain with a `schedule` needs",
            "`concurrency`: got 0; expected a whole number of at least 1",
            "`stages[a].name`: stage `a` is defined twice",
            "`stages[a].run`: empty; expected an argv array",
            "`stages[a].timeout`: bad duration `soon`",
            "`stages[a].after`: unknown stage `nope`; expected one of `a`",
            "`stages[a].after`: stage `a` waits for itself",
            "`stages[a].run[1]`: unknown placeholder `{confg}`",
            "`stages[a].env.X`: bad param name ``",
        ];
        for want in expected {
            assert!(
                found.iter().any(|err| err.contains(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert!(
            found
                .iter()
                .all(|err| err.starts_with("/chains/test.toml: "))
        );
    }

    #[test]
    fn detects_cycles() {
        let found = errors(
            r#"
            name = "c"
            [[stages]]
            name = "a"
            after = ["c"]
            run = ["true"]
            [[stages]]
            name = "b"
            after = ["a"]
            run = ["true"]
            [[stages]]
            name = "c"
            after = ["b"]
            run = ["true"]
            [[stages]]
            name = "free"
            run = ["true"]
            "#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("form a cycle through `a`, `b`, `c`"),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_keys_and_types_are_toml_errors() {
        let found =
            errors("name = \"x\"\n[[stages]]\nname = \"a\"\nrun = [\"true\"]\ntimeot = \"1s\"\n");
        assert!(found[0].contains("unknown field `timeot`"), "{found:?}");
        assert!(found[0].contains("line 5"), "{found:?}");
        let found = errors("name = \"x\"\n[[stages]]\nname = \"a\"\nrun = \"true\"\n");
        assert!(found[0].contains("invalid TOML"), "{found:?}");
    }

    #[test]
    fn scheduled_chains_need_param_defaults() {
        let found = errors(
            r#"
            name = "s"
            schedule = "*/5 * * * *"
            default_config = "c.yaml"
            [[stages]]
            name = "a"
            run = ["echo", "{param.who}"]
            "#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`params`: stages use `{param.who}`"));
    }

    #[test]
    fn bad_timezone_and_zero_timeout() {
        let found = errors(
            r#"
            name = "t"
            timezone = "Nowhere/Town"
            [[stages]]
            name = "a"
            run = ["true"]
            timeout = "0s"
            "#,
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("`timezone`: unknown timezone"))
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("`stages[a].timeout`: zero"))
        );
    }

    #[test]
    fn required_params_are_those_without_defaults() {
        let chain = parse_ok(
            r#"
            name = "p"
            [params]
            a = "1"
            [[stages]]
            name = "s"
            run = ["echo", "{param.a}", "{param.b}"]
            env = { C = "{param.c}" }
            "#,
        );
        assert_eq!(
            chain.required_params().into_iter().collect::<Vec<_>>(),
            vec!["b", "c"]
        );
    }
}
