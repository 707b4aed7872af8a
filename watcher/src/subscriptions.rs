//! subscriptions.rs: moving feed lists between OPML files and `watcher.toml`: `import-opml` edits
//! the config in place (comments and layout kept, feeds already listed skipped), `export-opml`
//! writes the configured feeds as OPML.

use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use crate::config::Config;
use crate::opml::{OpmlAuthor, OpmlFeed, parse_opml, write_opml};

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not an OPML file: {message}", path.display())]
    Opml {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("config `{}` cannot be edited: {message}", path.display())]
    Config {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(
        "{count} feed(s) in `{}` have no category to name their author; hint: pass --author NAME",
        path.display()
    )]
    NoAuthor {
        path: std::path::PathBuf,
        count: usize,
    },
    #[error("cannot write config `{}`", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What an import added: per author, the new feed URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    pub added: Vec<(String, Vec<String>)>,
    pub skipped: usize,
    /// The config text after the import.
    pub text: String,
}

/// Groups an OPML's feeds per author: `author` for all, else each feed's category.
fn group(
    feeds: Vec<OpmlFeed>,
    author: Option<&str>,
    opml_path: &Path,
) -> Result<Vec<(String, Vec<String>)>, SubscriptionError> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut orphans = 0;
    for feed in feeds {
        let Some(name) = author.map(String::from).or(feed.category.clone()) else {
            orphans += 1;
            continue;
        };
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(feed.xml_url),
            None => groups.push((name, vec![feed.xml_url])),
        }
    }
    if orphans > 0 {
        return Err(SubscriptionError::NoAuthor {
            path: opml_path.to_path_buf(),
            count: orphans,
        });
    }
    Ok(groups)
}

/// Adds the feeds of the OPML file to the config text, one author per category (or all under
/// `author`). Feeds an author already has are skipped. Returns the new text; writes nothing.
pub fn import(
    config_path: &Path,
    config_text: &str,
    opml_path: &Path,
    author: Option<&str>,
) -> Result<Import, SubscriptionError> {
    let opml = std::fs::read_to_string(opml_path).map_err(|source| SubscriptionError::Read {
        path: opml_path.to_path_buf(),
        source,
    })?;
    import_text(config_path, config_text, opml_path, &opml, author)
}

/// [`import`] of OPML text already read from `opml_path` (named in errors only): the whole
/// import without file I/O, which the fuzz target `opml` and its corpus replay drive.
pub fn import_text(
    config_path: &Path,
    config_text: &str,
    opml_path: &Path,
    opml: &str,
    author: Option<&str>,
) -> Result<Import, SubscriptionError> {
    let feeds = parse_opml(opml).map_err(|e| SubscriptionError::Opml {
        path: opml_path.to_path_buf(),
        message: crate::causes::one_line(&e),
    })?;
    let groups = group(feeds, author, opml_path)?;
    let bad = |message: String| SubscriptionError::Config {
        path: config_path.to_path_buf(),
        message,
    };
    let mut doc: DocumentMut = config_text.parse().map_err(|e| bad(format!("{e}")))?;
    if !doc.contains_key("authors") {
        doc.insert("authors", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let authors = doc["authors"]
        .as_array_of_tables_mut()
        .ok_or_else(|| bad("`authors` is not an array of tables ([[authors]])".into()))?;
    let mut out = Import::default();
    for (name, urls) in groups {
        let idx = authors
            .iter()
            .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name.as_str()));
        let table = match idx {
            Some(i) => authors.get_mut(i).expect("index from position"),
            None => {
                let mut t = Table::new();
                t.insert("name", value(name.clone()));
                authors.push(t);
                authors.get_mut(authors.len() - 1).expect("just pushed")
            }
        };
        if !table.contains_key("feeds") {
            table.insert("feeds", value(Array::new()));
        }
        let list = table["feeds"]
            .as_array_mut()
            .ok_or_else(|| bad(format!("`feeds` of author `{name}` is not an array")))?;
        let known: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let mut added = Vec::new();
        for url in urls {
            if known.contains(&url) || added.contains(&url) {
                out.skipped += 1;
            } else {
                list.push(url.as_str());
                added.push(url);
            }
        }
        if !added.is_empty() {
            out.added.push((name, added));
        }
    }
    out.text = doc.to_string();
    Ok(out)
}

/// Writes the import's text over the config, atomically.
pub fn write(config_path: &Path, text: &str) -> Result<(), SubscriptionError> {
    crate::emit::write_atomic(config_path, text.as_bytes()).map_err(|source| {
        SubscriptionError::Write {
            path: config_path.to_path_buf(),
            source,
        }
    })
}

/// The config's feeds (shortcuts expanded; pages and sitemaps are not feeds) as OPML.
pub fn export(config: &Config) -> String {
    let sources = config.sources();
    let authors: Vec<OpmlAuthor> = config
        .authors
        .iter()
        .map(|a| OpmlAuthor {
            name: &a.name,
            feeds: sources
                .iter()
                .filter(|s| s.author == a.name && s.kind == crate::config::SourceKind::Feed)
                .map(|s| s.url.as_str())
                .collect(),
        })
        .collect();
    write_opml("LLM Twin article watcher", &authors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# my watcher
[trigger]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"

[[authors]]
name = "Paul Iusztin"   # the author
feeds = ["https://decodingml.substack.com/feed"]
"#;

    #[test]
    fn import_merges_into_existing_authors_and_keeps_comments() {
        let dir = tempfile::tempdir().unwrap();
        let opml = dir.path().join("subs.opml");
        std::fs::write(
            &opml,
            r#"<opml version="2.0"><head><title>x</title></head><body>
<outline text="Paul Iusztin">
  <outline text="DML" type="rss" xmlUrl="https://decodingml.substack.com/feed"/>
  <outline text="Medium" type="rss" xmlUrl="https://medium.com/feed/@pauliusztin"/>
</outline>
<outline text="Maxime Labonne">
  <outline text="Blog" type="rss" xmlUrl="https://maximelabonne.substack.com/feed"/>
</outline>
</body></opml>"#,
        )
        .unwrap();
        let got = import(Path::new("w.toml"), CONFIG, &opml, None).unwrap();
        assert_eq!(got.skipped, 1);
        assert_eq!(
            got.added,
            [
                (
                    "Paul Iusztin".to_string(),
                    vec!["https://medium.com/feed/@pauliusztin".to_string()]
                ),
                (
                    "Maxime Labonne".to_string(),
                    vec!["https://maximelabonne.substack.com/feed".to_string()]
                )
            ]
        );
        assert!(got.text.starts_with("# my watcher"));
        assert!(got.text.contains("# the author"));
        let config = Config::parse(Path::new("w.toml"), &got.text).unwrap();
        assert_eq!(config.authors.len(), 2);
        // Importing again adds nothing.
        let again = import(Path::new("w.toml"), &got.text, &opml, None).unwrap();
        assert!(again.added.is_empty());
        assert_eq!(again.text, got.text);
    }

    #[test]
    fn feeds_without_a_category_need_an_author() {
        let dir = tempfile::tempdir().unwrap();
        let opml = dir.path().join("flat.opml");
        std::fs::write(
            &opml,
            r#"<opml version="1.0"><body><outline text="a" xmlUrl="https://a.example/feed"/></body></opml>"#,
        )
        .unwrap();
        let err = import(Path::new("w.toml"), CONFIG, &opml, None).unwrap_err();
        assert!(err.to_string().contains("pass --author NAME"), "{err}");
        let ok = import(Path::new("w.toml"), CONFIG, &opml, Some("Paul Iusztin")).unwrap();
        assert_eq!(ok.added[0].1, ["https://a.example/feed"]);
    }
}
