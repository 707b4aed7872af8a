//! Placeholders in a stage's `run` and `env` values: parsing `{name}` templates once at load time
//! and rendering them per argv element at run time.
//!
//! A rendered template is always exactly one string: the value of a placeholder is pasted in
//! literally, never split on spaces and never seen by a shell, so a hostile config value or param
//! (`'; rm -rf /`) reaches the stage as one argument.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One `{...}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{config}`: absolute path of the config file the stage should read.
    Config,
    /// `{config_name}`: that file's name (what the LLM Twin's `--etl-config-filename` wants).
    ConfigName,
    /// `{run_id}`.
    RunId,
    /// `{stage}`: the stage's name.
    Stage,
    /// `{chain}`: the chain's name.
    Chain,
    /// `{run_dir}`: absolute path of the run's directory (config, logs, a place for outputs).
    RunDir,
    /// `{param.NAME}`: a value from the trigger's `params` or the chain's `[params]` defaults.
    Param(String),
}

/// The placeholder names a chain file may use, for error messages.
pub const KNOWN: &str =
    "`{config}`, `{config_name}`, `{run_id}`, `{stage}`, `{chain}`, `{run_dir}`, `{param.NAME}`";

impl Placeholder {
    fn parse(name: &str) -> Result<Self, TemplateError> {
        Ok(match name {
            "config" => Self::Config,
            "config_name" => Self::ConfigName,
            "run_id" => Self::RunId,
            "stage" => Self::Stage,
            "chain" => Self::Chain,
            "run_dir" => Self::RunDir,
            _ => match name.strip_prefix("param.") {
                Some(param) if is_param_name(param) => Self::Param(param.to_owned()),
                Some(param) => {
                    return Err(TemplateError::BadParamName {
                        name: param.to_owned(),
                    });
                }
                None => {
                    return Err(TemplateError::Unknown {
                        name: name.to_owned(),
                    });
                }
            },
        })
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config => f.write_str("{config}"),
            Self::ConfigName => f.write_str("{config_name}"),
            Self::RunId => f.write_str("{run_id}"),
            Self::Stage => f.write_str("{stage}"),
            Self::Chain => f.write_str("{chain}"),
            Self::RunDir => f.write_str("{run_dir}"),
            Self::Param(name) => write!(f, "{{param.{name}}}"),
        }
    }
}

/// Whether `name` may be used as `{param.NAME}` (and as a key in `params`).
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Why a template did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder `{{{name}}}`; expected one of {KNOWN} (write `{{{{` for a literal `{{`)"
    )]
    Unknown { name: String },
    #[error("bad param name `{name}` in `{{param.{name}}}`; expected letters, digits, `_` or `-`")]
    BadParamName { name: String },
    #[error("unclosed `{{` at byte {at}; write `{{{{` for a literal `{{`")]
    Unclosed { at: usize },
    #[error("unmatched `}}` at byte {at}; write `}}}}` for a literal `}}`")]
    Unmatched { at: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(Placeholder),
}

/// A parsed argv element or env value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// The values placeholders render to, for one stage of one run.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub config: &'a Path,
    pub run_id: &'a str,
    pub stage: &'a str,
    pub chain: &'a str,
    pub run_dir: &'a Path,
    pub params: &'a BTreeMap<String, String>,
}

/// A `{param.NAME}` had no value at render time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no value for `{{param.{name}}}`; pass it in the trigger's `params` or give a default in the chain's `[params]`"
)]
pub struct MissingParam {
    pub name: String,
}

impl Template {
    /// Parses `{name}` placeholders; `{{` and `}}` are literal braces.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::Unmatched { at }),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed { at });
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(Placeholder::parse(name.trim())?));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The text as written in the chain file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The placeholders this template uses.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Var(var) => Some(var),
            Piece::Literal(_) => None,
        })
    }

    /// Renders to exactly one string; values are pasted in literally.
    pub fn render(&self, values: &Values<'_>) -> Result<String, MissingParam> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Var(Placeholder::Config) => out.push_str(&values.config.to_string_lossy()),
                Piece::Var(Placeholder::ConfigName) => out.push_str(
                    &values
                        .config
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy(),
                ),
                Piece::Var(Placeholder::RunId) => out.push_str(values.run_id),
                Piece::Var(Placeholder::Stage) => out.push_str(values.stage),
                Piece::Var(Placeholder::Chain) => out.push_str(values.chain),
                Piece::Var(Placeholder::RunDir) => {
                    out.push_str(&values.run_dir.to_string_lossy());
                }
                Piece::Var(Placeholder::Param(name)) => match values.params.get(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(MissingParam { name: name.clone() }),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(params: &'a BTreeMap<String, String>) -> Values<'a> {
        Values {
            config: Path::new("/state/runs/r 1/config.yaml"),
            run_id: "r1",
            stage: "etl",
            chain: "demo",
            run_dir: Path::new("/state/runs/r 1"),
            params,
        }
    }

    fn render(source: &str, params: &BTreeMap<String, String>) -> String {
        Template::parse(source)
            .unwrap()
            .render(&values(params))
            .unwrap()
    }

    #[test]
    fn renders_every_placeholder() {
        let params = BTreeMap::from([("who".to_owned(), "Paul".to_owned())]);
        assert_eq!(
            render(
                "{config}|{config_name}|{run_id}|{stage}|{chain}|{run_dir}|{param.who}",
                &params
            ),
            "/state/runs/r 1/config.yaml|config.yaml|r1|etl|demo|/state/runs/r 1|Paul"
        );
    }

    #[test]
    fn hostile_values_stay_one_literal_string() {
        let hostile = r#"a b "c" 'd' ;rm -rf / $(reboot) `id` {config} \n"#;
        let params = BTreeMap::from([("x".to_owned(), hostile.to_owned())]);
        assert_eq!(render("{param.x}", &params), hostile);
        assert_eq!(render("--x={param.x}", &params), format!("--x={hostile}"));
    }

    #[test]
    fn double_braces_are_literal() {
        let params = BTreeMap::new();
        assert_eq!(render(r#"{{"a": 1}}"#, &params), r#"{"a": 1}"#);
        assert_eq!(render("plain", &params), "plain");
        assert_eq!(render("", &params), "");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(
            Template::parse("{confg}").unwrap_err(),
            TemplateError::Unknown {
                name: "confg".into()
            }
        );
        assert_eq!(
            Template::parse("x{config").unwrap_err(),
            TemplateError::Unclosed { at: 1 }
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err(),
            TemplateError::Unmatched { at: 1 }
        );
        assert_eq!(
            Template::parse("{param.a b}").unwrap_err(),
            TemplateError::BadParamName { name: "a b".into() }
        );
        assert!(
            TemplateError::Unknown { name: "x".into() }
                .to_string()
                .starts_with("unknown placeholder `{x}`; expected one of `{config}`")
        );
    }

    #[test]
    fn missing_param_is_an_error() {
        let template = Template::parse("{param.who}").unwrap();
        let err = template.render(&values(&BTreeMap::new())).unwrap_err();
        assert_eq!(err.name, "who");
    }

    #[test]
    fn lists_placeholders() {
        let template = Template::parse("{config}-{param.a}-x").unwrap();
        let found: Vec<_> = template.placeholders().cloned().collect();
        assert_eq!(
            found,
            vec![Placeholder::Config, Placeholder::Param("a".into())]
        );
    }
}
