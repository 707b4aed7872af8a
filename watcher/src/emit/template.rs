//! emit/template.rs: config templates: the user's own pipeline config (the LLM Twin's
//! `configs/digital_data_etl_*.yaml` or `configs/end_to_end_data.yaml`) with the batch's author
//! and links spliced in. No maintained crate round-trips YAML with its comments, so the text is
//! kept and only the byte ranges of the replaced values change: found through the parser's spans
//! ([`super::yaml_tree`]), written JSON-quoted, and the result parsed again to prove that nothing
//! but those values moved. A template is checked once, when the config is loaded.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr_parser::ScalarStyle;
use serde_json::{Value, json};

use super::yaml_tree::{self, Kind, Node, TreeError};
use super::{AuthorLinks, RenderedConfig, quoted};
use crate::config::{Config, ConfigProblem, OutputFormat};

/// A template larger than this is refused (the book's longest config is under 8 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// The `parameters` each pipeline takes: the LLM Twin's signatures. ZenML refuses a run whose
/// config names a parameter the pipeline does not have.
pub fn pipeline_parameters(format: OutputFormat) -> &'static [&'static str] {
    match format {
        OutputFormat::DigitalDataEtl => &["user_full_name", "links"],
        OutputFormat::EndToEndData => &[
            "author_links",
            "test_split_size",
            "push_to_huggingface",
            "dataset_id",
            "mock",
        ],
    }
}

/// Why a template cannot be used (each message reads after the template's path).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot be read")]
    Read(#[source] std::io::Error),
    #[error("is larger than {MAX_TEMPLATE_BYTES} bytes")]
    TooLarge,
    #[error("is not valid YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    #[error("cannot be spliced")]
    Tree(#[source] TreeError),
    #[error(
        "has no `parameters` mapping; hint: start from the LLM Twin's configs/{0}.yaml (the watcher fills in the author and links)"
    )]
    NoParameters(&'static str),
    #[error("has `{0}` twice")]
    Duplicate(String),
    #[error(
        "has no `{0}`; hint: the watcher replaces its value, so any value will do (`[]` for a list)"
    )]
    Missing(&'static str),
    #[error(
        "has `parameters` key(s) {keys} that pipeline `{pipeline}` does not take (it takes {takes}); hint: ZenML refuses such a run, remove them"
    )]
    UnknownParameters {
        keys: String,
        pipeline: &'static str,
        takes: String,
    },
    #[error(
        "has an anchor, a tag or an alias on `{0}`; hint: write that value out, the watcher replaces it"
    )]
    References(&'static str),
    #[error("has {found} as `{key}`; expected {expected}")]
    Shape {
        key: &'static str,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "changed at `{0}` when the author and links were spliced in (a bug); hint: report it with the template"
    )]
    Changed(String),
    #[error(
        "is not valid YAML once the author and links are spliced in (a bug); hint: report it with the template"
    )]
    Respliced(#[source] serde_yaml_ng::Error),
}

/// A checked template, ready to render batches.
#[derive(Debug)]
pub struct ConfigTemplate {
    path: PathBuf,
    /// The text after any byte-order mark.
    text: String,
    /// The template as engines read it: every render equals it but for the replaced values.
    parsed: Value,
    slots: Slots,
    newline: &'static str,
}

/// The values a render replaces.
#[derive(Debug)]
enum Slots {
    DigitalDataEtl { name: Slot, links: Slot },
    EndToEndData { author_links: Slot },
}

#[derive(Debug, Clone)]
struct Slot {
    bytes: Range<usize>,
    layout: Layout,
}

/// How a replaced value is written.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// On the spot, as one JSON value (a scalar, or a flow collection).
    Inline,
    /// As a block sequence whose `-` stand at this column, as the template's did.
    Block { column: usize },
}

impl ConfigTemplate {
    /// Reads and checks the template at `path` for pipeline `format`.
    pub fn load(path: &Path, format: OutputFormat) -> Result<ConfigTemplate, TemplateError> {
        let size = std::fs::metadata(path).map_err(TemplateError::Read)?.len();
        if size > MAX_TEMPLATE_BYTES as u64 {
            return Err(TemplateError::TooLarge);
        }
        let text = std::fs::read_to_string(path).map_err(TemplateError::Read)?;
        ConfigTemplate::parse(path, &text, format)
    }

    /// Checks `text` as the template at `path`: the values to replace are there, plain, and
    /// nothing else would change when they are (a trial render with awkward values).
    pub fn parse(
        path: &Path,
        text: &str,
        format: OutputFormat,
    ) -> Result<ConfigTemplate, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLarge);
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
        let parsed: Value = serde_yaml_ng::from_str(&text).map_err(TemplateError::Yaml)?;
        let root = yaml_tree::parse(&text).map_err(TemplateError::Tree)?;
        let params = root
            .as_ref()
            .map(|root| unique(root, "parameters", "parameters"))
            .transpose()?
            .flatten()
            .ok_or(TemplateError::NoParameters(format.as_str()))?;
        if params.has_references_on_itself() {
            return Err(TemplateError::References("parameters"));
        }
        if !matches!(params.kind, Kind::Mapping { .. }) || !parsed["parameters"].is_object() {
            return Err(TemplateError::NoParameters(format.as_str()));
        }
        let takes = pipeline_parameters(format);
        let unknown: Vec<String> = (params.keys().into_iter())
            .filter(|k| !takes.contains(k))
            .map(|k| format!("`{k}`"))
            .collect();
        if !unknown.is_empty() {
            return Err(TemplateError::UnknownParameters {
                keys: unknown.join(", "),
                pipeline: format.as_str(),
                takes: takes
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let slots = match format {
            OutputFormat::DigitalDataEtl => Slots::DigitalDataEtl {
                name: name_slot(params, "user_full_name", "parameters.user_full_name")?,
                links: list_slot(&text, params, "links", "parameters.links")?,
            },
            OutputFormat::EndToEndData => Slots::EndToEndData {
                author_links: list_slot(&text, params, "author_links", "parameters.author_links")?,
            },
        };
        let template = ConfigTemplate {
            path: path.to_path_buf(),
            newline: if text.contains("\r\n") { "\r\n" } else { "\n" },
            text,
            parsed,
            slots,
        };
        template.render("0000000000000000", &probe(format))?;
        Ok(template)
    }

    /// The template's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The template with `groups` spliced in (`digital_data_etl`: the first group's author and
    /// links; `end_to_end_data`: every group as `author_links`), under a comment naming the
    /// batch. Fails only if the splice changed anything else, which the check at load rules out.
    pub fn render(
        &self,
        batch_id: &str,
        groups: &[AuthorLinks],
    ) -> Result<RenderedConfig, TemplateError> {
        let mut expected = self.parsed.clone();
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        match &self.slots {
            Slots::DigitalDataEtl { name, links } => {
                let (author, list) = groups
                    .first()
                    .map(|g| (g.author.as_str(), g.links.as_slice()))
                    .unwrap_or(("", &[]));
                edits.push((name.bytes.clone(), quoted(author)));
                edits.push((links.bytes.clone(), self.links_text(links.layout, list, 0)));
                expected["parameters"]["user_full_name"] = json!(author);
                expected["parameters"]["links"] = json!(list);
            }
            Slots::EndToEndData { author_links } => {
                edits.push((
                    author_links.bytes.clone(),
                    self.author_links_text(author_links.layout, groups),
                ));
                expected["parameters"]["author_links"] = json!(
                    groups
                        .iter()
                        .map(|g| json!({"user_full_name": g.author, "links": g.links}))
                        .collect::<Vec<_>>()
                );
            }
        }
        edits.sort_by_key(|(range, _)| range.start);
        let mut yaml = format!(
            "# generated by the article watcher {} for batch {batch_id} from template {}{}",
            env!("CARGO_PKG_VERSION"),
            self.file_name(),
            self.newline
        );
        let mut at = 0;
        for (range, value) in edits {
            yaml.push_str(&self.text[at..range.start]);
            yaml.push_str(&value);
            at = range.end;
        }
        yaml.push_str(&self.text[at..]);
        let json: Value = serde_yaml_ng::from_str(&yaml).map_err(TemplateError::Respliced)?;
        if let Some(path) = first_difference(&expected, &json, String::new()) {
            return Err(TemplateError::Changed(path));
        }
        Ok(RenderedConfig { json, yaml })
    }

    /// The file name for the header comment: printable, one line.
    fn file_name(&self) -> String {
        let name = self.path.file_name().unwrap_or(self.path.as_os_str());
        (name.to_string_lossy().chars())
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    }

    /// A list of links: a block sequence at `column` (+ `indent`), or a JSON array.
    fn links_text(&self, layout: Layout, links: &[String], indent: usize) -> String {
        match layout {
            Layout::Block { column } if !links.is_empty() => {
                let sep = format!("{}{}", self.newline, " ".repeat(column + indent));
                (links.iter())
                    .map(|l| format!("- {}", quoted(l)))
                    .collect::<Vec<_>>()
                    .join(&sep)
            }
            _ => format!(
                "[{}]",
                links
                    .iter()
                    .map(|l| quoted(l))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `author_links`: block entries `- user_full_name: ...` / `links:` at the template's
    /// column, or a JSON array of objects.
    fn author_links_text(&self, layout: Layout, groups: &[AuthorLinks]) -> String {
        match layout {
            Layout::Block { column } if !groups.is_empty() => {
                let nl = self.newline;
                let pad = " ".repeat(column);
                (groups.iter())
                    .map(|g| {
                        let links = match self.links_text(layout, &g.links, 4) {
                            list if list.starts_with('[') => format!(" {list}"),
                            list => format!("{nl}{pad}    {list}"),
                        };
                        format!(
                            "- user_full_name: {}{nl}{pad}  links:{links}",
                            quoted(&g.author)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(&format!("{nl}{pad}"))
            }
            _ => format!(
                "[{}]",
                (groups.iter())
                    .map(|g| format!(
                        "{{\"user_full_name\": {}, \"links\": {}}}",
                        quoted(&g.author),
                        self.links_text(Layout::Inline, &g.links, 0)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The value under `key` in mapping `node`, if there is exactly one.
fn unique<'a>(
    node: &'a Node,
    key: &str,
    name: &'static str,
) -> Result<Option<&'a Node>, TemplateError> {
    match node.get(key).as_slice() {
        [] => Ok(None),
        [(k, _)] if k.decorated => Err(TemplateError::References(name)),
        [(_, v)] => Ok(Some(v)),
        _ => Err(TemplateError::Duplicate(name.to_string())),
    }
}

fn required<'a>(
    params: &'a Node,
    key: &str,
    name: &'static str,
) -> Result<&'a Node, TemplateError> {
    let node = unique(params, key, name)?.ok_or(TemplateError::Missing(name))?;
    if node.has_references() {
        return Err(TemplateError::References(name));
    }
    Ok(node)
}

/// The author's name: a plain or quoted scalar on one line (written over with a quoted one).
fn name_slot(params: &Node, key: &str, name: &'static str) -> Result<Slot, TemplateError> {
    let node = required(params, key, name)?;
    let found = match &node.kind {
        Kind::Scalar { .. } if node.bytes.is_empty() => "no value",
        Kind::Scalar {
            style: ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted,
            ..
        } => {
            return Ok(Slot {
                bytes: node.bytes.clone(),
                layout: Layout::Inline,
            });
        }
        Kind::Scalar { .. } => "a block scalar (`|` or `>`)",
        _ => "a list or mapping",
    };
    Err(TemplateError::Shape {
        key: name,
        found,
        expected: "a name such as `Paul Iusztin`",
    })
}

/// A list the watcher rewrites whole: block sequences keep their column, flow ones stay flow.
fn list_slot(
    text: &str,
    params: &Node,
    key: &str,
    name: &'static str,
) -> Result<Slot, TemplateError> {
    let node = required(params, key, name)?;
    let Kind::Sequence { flow, .. } = node.kind else {
        return Err(TemplateError::Shape {
            key: name,
            found: match node.kind {
                Kind::Scalar { .. } if node.bytes.is_empty() => "no value",
                Kind::Scalar { .. } => "a scalar",
                _ => "a mapping",
            },
            expected: "a list (`[]` will do)",
        });
    };
    let line_start = text[..node.bytes.start].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[line_start..node.bytes.start];
    let layout = if !flow && prefix.bytes().all(|b| b == b' ') {
        Layout::Block {
            column: prefix.len(),
        }
    } else {
        Layout::Inline
    };
    Ok(Slot {
        bytes: node.bytes.clone(),
        layout,
    })
}

/// Awkward values for the trial render at load: quotes, a colon, a comment sign, a new line.
fn probe(format: OutputFormat) -> Vec<AuthorLinks> {
    let one = |author: &str| AuthorLinks {
        author: author.to_string(),
        links: vec![
            "https://example.com/a?b=\"c\"#d: e".into(),
            "https://example.com/f".into(),
        ],
    };
    match format {
        OutputFormat::DigitalDataEtl => vec![one("Zoë \"Probe\" O'Brien: # not a comment\n- x")],
        OutputFormat::EndToEndData => vec![one("A: B"), one("&c *d")],
    }
}

/// The first place (`a.b[2]`) where `b` differs from `a`, if any.
fn first_difference(a: &Value, b: &Value, here: String) -> Option<String> {
    let at = |here: &str| {
        if here.is_empty() {
            "(the document)".to_string()
        } else {
            here.to_string()
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() || x.keys().zip(y.keys()).any(|(p, q)| p != q) {
                return Some(at(&here));
            }
            x.iter().find_map(|(k, v)| {
                let path = if here.is_empty() {
                    k.clone()
                } else {
                    format!("{here}.{k}")
                };
                first_difference(v, &y[k], path)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{here}[{i}]"))),
        _ if a == b => None,
        _ => Some(at(&here)),
    }
}

/// The templates of a config: `[output] template` and the authors' own.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    output: Option<Arc<ConfigTemplate>>,
    by_author: HashMap<String, Arc<ConfigTemplate>>,
}

impl Templates {
    /// Reads and checks every template `config` names; each problem under its key.
    pub fn load(config: &Config) -> Result<Templates, Vec<ConfigProblem>> {
        let format = config.output.format;
        let mut problems = Vec::new();
        let mut load = |key: String, path: &Path| match ConfigTemplate::load(path, format) {
            Ok(template) => Some(Arc::new(template)),
            Err(e) => {
                let message = format!("`{}` {}", path.display(), crate::causes::one_line(&e));
                problems.push(ConfigProblem::new(key, message));
                None
            }
        };
        let output = (config.output.template.as_deref())
            .and_then(|path| load("output.template".into(), path));
        let mut by_author = HashMap::new();
        for (i, author) in config.authors.iter().enumerate() {
            if let Some(path) = &author.template
                && let Some(template) = load(format!("authors[{i}].template"), path)
            {
                by_author.insert(author.name.clone(), template);
            }
        }
        if problems.is_empty() {
            Ok(Templates { output, by_author })
        } else {
            Err(problems)
        }
    }

    /// The template for a batch of `authors` in `format`: the author's own (one author per
    /// `digital_data_etl` batch), else `[output] template`, else none (the plain config).
    pub fn pick(&self, format: OutputFormat, authors: &[String]) -> Option<&ConfigTemplate> {
        let own = match (format, authors) {
            (OutputFormat::DigitalDataEtl, [author]) => self.by_author.get(author),
            _ => None,
        };
        own.or(self.output.as_ref()).map(Arc::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUL: &str = include_str!("../../testdata/templates/digital_data_etl_paul_iusztin.yaml");
    const E2E: &str = include_str!("../../testdata/templates/end_to_end_data.yaml");

    fn group(author: &str, links: &[&str]) -> AuthorLinks {
        AuthorLinks {
            author: author.into(),
            links: links.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn template(text: &str, format: OutputFormat) -> Result<ConfigTemplate, TemplateError> {
        ConfigTemplate::parse(Path::new("/t/template.yaml"), text, format)
    }

    /// The rendered text without its header line.
    fn body(yaml: &str) -> &str {
        let (header, rest) = yaml.split_once('\n').unwrap();
        assert!(
            header.starts_with("# generated by the article watcher "),
            "{header}"
        );
        assert!(
            header.ends_with(" for batch b1 from template template.yaml"),
            "{header}"
        );
        rest
    }

    #[test]
    fn the_books_digital_data_etl_config_keeps_every_byte_but_name_and_links() {
        let t = template(PAUL, OutputFormat::DigitalDataEtl).unwrap();
        let new = group(
            "Zoë O'Brien",
            &["https://decodingml.substack.com/p/new?r=1"],
        );
        let out = t.render("b1", &[new]).unwrap();
        let body = body(&out.yaml);
        // Byte for byte: the settings block (with its line of spaces), the comment after the
        // name, the comment before the links and the one after them.
        let name_at = PAUL.find("Paul Iusztin").unwrap();
        let links_at = PAUL.find("- https://medium.com/decodingml/an-end").unwrap();
        let links_end =
            PAUL.find("pipelines-73b94ef82a99").unwrap() + "pipelines-73b94ef82a99".len();
        let expected = format!(
            "{}\"Zoë O'Brien\"{}- \"https://decodingml.substack.com/p/new?r=1\"{}",
            &PAUL[..name_at],
            &PAUL[name_at + "Paul Iusztin".len()..links_at],
            &PAUL[links_end..]
        );
        assert_eq!(body, expected);
        insta::assert_snapshot!(out.yaml);
        let original: Value = serde_yaml_ng::from_str(PAUL).unwrap();
        assert_eq!(out.json["settings"], original["settings"]);
        assert_eq!(
            out.json["parameters"],
            json!({"user_full_name": "Zoë O'Brien", "links": ["https://decodingml.substack.com/p/new?r=1"]})
        );
    }

    #[test]
    fn several_links_keep_the_templates_column() {
        let t = template(PAUL, OutputFormat::DigitalDataEtl).unwrap();
        let out = t
            .render("b1", &[group("P", &["https://a/1", "https://a/2"])])
            .unwrap();
        assert!(
            out.yaml.contains("  links:\n    # Medium (only articles that are not under the paid wall work)\n    - \"https://a/1\"\n    - \"https://a/2\"\n    # Substack\n"),
            "{}",
            out.yaml
        );
    }

    #[test]
    fn the_books_end_to_end_config_gets_new_author_links_and_keeps_its_extra_parameters() {
        let t = template(E2E, OutputFormat::EndToEndData).unwrap();
        let groups = [
            group("Paul Iusztin", &["https://a/1", "https://a/2"]),
            group("Maxime Labonne", &["https://b/1"]),
        ];
        let out = t.render("b1", &groups).unwrap();
        let body = body(&out.yaml);
        let start = E2E.find("- user_full_name: Paul").unwrap();
        let end = E2E.find("mergekit-2118fb392b54").unwrap() + "mergekit-2118fb392b54".len();
        assert_eq!(&body[..start], &E2E[..start]);
        assert!(body.ends_with(&E2E[end..]), "{body}");
        assert!(
            !body.ends_with('\n'),
            "the template's missing final newline stays missing"
        );
        insta::assert_snapshot!(out.yaml);
        let original: Value = serde_yaml_ng::from_str(E2E).unwrap();
        assert_eq!(out.json["settings"], original["settings"]);
        for key in [
            "test_split_size",
            "push_to_huggingface",
            "dataset_id",
            "mock",
        ] {
            assert_eq!(
                out.json["parameters"][key], original["parameters"][key],
                "{key}"
            );
        }
        assert_eq!(
            out.json["parameters"]["author_links"],
            json!([
                {"user_full_name": "Paul Iusztin", "links": ["https://a/1", "https://a/2"]},
                {"user_full_name": "Maxime Labonne", "links": ["https://b/1"]},
            ])
        );
    }

    #[test]
    fn flow_values_are_replaced_in_flow_style() {
        let text = "parameters: {user_full_name: 'x', links: []}  # flow\nsettings: {a: 1}\n";
        let t = template(text, OutputFormat::DigitalDataEtl).unwrap();
        let out = t
            .render("b1", &[group("A \"B\"", &["https://a/1", "https://a/2"])])
            .unwrap();
        assert_eq!(
            body(&out.yaml),
            "parameters: {user_full_name: \"A \\\"B\\\"\", links: [\"https://a/1\", \"https://a/2\"]}  # flow\nsettings: {a: 1}\n"
        );
        let text = "parameters:\n  author_links: [{user_full_name: x, links: [y]}]\n  mock: true\n";
        let t = template(text, OutputFormat::EndToEndData).unwrap();
        let out = t.render("b1", &[group("A", &["https://a/1"])]).unwrap();
        assert_eq!(
            body(&out.yaml),
            "parameters:\n  author_links: [{\"user_full_name\": \"A\", \"links\": [\"https://a/1\"]}]\n  mock: true\n"
        );
    }

    #[test]
    fn crlf_templates_keep_crlf() {
        let text = PAUL.replace('\n', "\r\n");
        let t = template(&text, OutputFormat::DigitalDataEtl).unwrap();
        let out = t
            .render("b1", &[group("A", &["https://a/1", "https://a/2"])])
            .unwrap();
        assert!(
            !out.yaml.replace("\r\n", "").contains('\n'),
            "{:?}",
            out.yaml
        );
        assert_eq!(out.json["parameters"]["links"][1], "https://a/2");
    }

    #[test]
    fn hostile_names_and_links_stay_values() {
        let t = template(PAUL, OutputFormat::DigitalDataEtl).unwrap();
        let e2e = template(E2E, OutputFormat::EndToEndData).unwrap();
        for name in [
            "Mallory\nparameters:\n  links: [\"https://evil\"]",
            "x: y # z",
            "- item",
            "&anchor *alias !!python/object",
            "\u{2028}line\u{85}separators\u{7f}\u{0}nul\u{feff}",
            "",
        ] {
            let link = format!("https://x/p?q={name}");
            let out = t.render("b1", &[group(name, &[&link])]).unwrap();
            assert_eq!(out.json["parameters"]["user_full_name"], name);
            assert_eq!(out.json["parameters"]["links"], json!([link]));
            let out = e2e
                .render("b1", &[group(name, &[&link]), group("B", &[])])
                .unwrap();
            assert_eq!(
                out.json["parameters"]["author_links"][0]["user_full_name"],
                name
            );
            assert_eq!(
                out.json["parameters"]["author_links"][1]["links"],
                json!([])
            );
        }
    }

    #[test]
    fn templates_the_watcher_cannot_fill_are_refused() {
        let dde = OutputFormat::DigitalDataEtl;
        let cases: &[(&str, OutputFormat, &str)] = &[
            ("settings: {}\n", dde, "has no `parameters` mapping"),
            ("parameters: [1]\n", dde, "has no `parameters` mapping"),
            (
                "parameters:\n  links: []\n",
                dde,
                "has no `parameters.user_full_name`",
            ),
            (
                "parameters:\n  user_full_name: A\n",
                dde,
                "has no `parameters.links`",
            ),
            (
                "parameters:\n  user_full_name: A\n  links: []\n",
                OutputFormat::EndToEndData,
                "`user_full_name`, `links` that pipeline `end_to_end_data` does not take",
            ),
            (
                "parameters:\n  user_full_name: A\n  links: []\n  test_split_size: 0.1\n",
                dde,
                "`test_split_size` that pipeline `digital_data_etl` does not take",
            ),
            (
                "x: &l [a]\nparameters:\n  user_full_name: A\n  links: *l\n",
                dde,
                "an alias on `parameters.links`",
            ),
            (
                "parameters:\n  user_full_name: &n A\n  links: []\n",
                dde,
                "an anchor, a tag or an alias on `parameters.user_full_name`",
            ),
            (
                "parameters:\n  user_full_name: A\n  links: [&u x]\nother: *u\n",
                dde,
                "on `parameters.links`",
            ),
            (
                "base: &p\n  user_full_name: A\n  links: []\nparameters: *p\n",
                dde,
                "on `parameters`",
            ),
            (
                "parameters:\n  user_full_name: !!str A\n  links: []\n",
                dde,
                "a tag or an alias on `parameters.user_full_name`",
            ),
            (
                "parameters:\n  user_full_name: |\n    A\n  links: []\n",
                dde,
                "a block scalar",
            ),
            (
                "parameters:\n  user_full_name:\n  links: []\n",
                dde,
                "has no value as `parameters.user_full_name`",
            ),
            (
                "parameters:\n  user_full_name: A\n  links:\n",
                dde,
                "has no value as `parameters.links`",
            ),
            (
                "parameters:\n  user_full_name: A\n  links: x\n",
                dde,
                "has a scalar as `parameters.links`",
            ),
            (
                "parameters:\n  user_full_name: A\n  user_full_name: B\n  links: []\n",
                dde,
                "",
            ),
            (
                "parameters:\n  user_full_name: A\n  links: []\n---\nx: 1\n",
                dde,
                "not valid YAML",
            ),
            ("parameters: [\n", dde, "not valid YAML"),
        ];
        for (text, format, message) in cases {
            let err = match template(text, *format) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => crate::causes::one_line(&e),
            };
            assert!(err.contains(message), "{text:?}: {err}");
        }
        let e2e_ok = "parameters:\n  author_links: []\n";
        assert!(template(e2e_ok, OutputFormat::EndToEndData).is_ok());
    }

    #[test]
    fn differences_are_named_by_path() {
        let a = json!({"a": {"b": [1, {"c": 2}]}, "d": 1});
        let b = json!({"a": {"b": [1, {"c": 3}]}, "d": 1});
        assert_eq!(
            first_difference(&a, &b, String::new()).as_deref(),
            Some("a.b[1].c")
        );
        assert_eq!(first_difference(&a, &a, String::new()), None);
        assert_eq!(
            first_difference(&a, &json!({"a": 1}), String::new()).as_deref(),
            Some("(the document)")
        );
    }
}
