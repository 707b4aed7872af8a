//! commands/explain_link.rs: `watcher check --explain-link URL`: how the link rules (`platform`,
//! with the config's tracking parameters) read a link: the canonical link a config lists, the
//! identity key the alias rule compares, and the rule that decided them; for several links,
//! whether they are one article.

use std::io::Write;

use url::Url;

use crate::canonical::Canonicalizer;
use crate::config::Config;
use crate::error::{Outcome, WatcherError};
use crate::platform::{self, Context};
use crate::printable::printable;

/// What the command line says about the item the links belong to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Item<'a> {
    pub title: Option<&'a str>,
    pub generator: Option<&'a str>,
}

/// `watcher check --explain-link URL...`
pub fn explain_links(
    config: &Config,
    links: &[Url],
    item: Item<'_>,
    out: &mut impl Write,
) -> Result<Outcome, WatcherError> {
    let canon = Canonicalizer::new(
        &config.watcher.tracking_params,
        &config.watcher.tracking_params_by_host,
    );
    let cx = Context {
        generator: item.generator,
        title: item.title,
        guid: None,
    };
    let mut keys = Vec::new();
    for url in links {
        let link = platform::link(&canon, url, cx);
        writeln!(out, "link:      {url}")?;
        writeln!(out, "canonical: {}", link.canonical)?;
        writeln!(out, "identity:  {}", printable(&link.key))?;
        writeln!(out, "rule:      {}", platform::explain(&link.decided))?;
        if item.title.is_none() && platform::post_key(&link.canonical, Some("t")).is_some() {
            writeln!(
                out,
                "hint:      a `/p/<slug>` link is one article with another only under an equal \
                 title: give it with --title"
            )?;
        }
        writeln!(out)?;
        keys.push(link.key);
    }
    if keys.len() > 1 {
        let one = keys.iter().all(|k| *k == keys[0]);
        let verdict = match (one, keys.len()) {
            (true, 2) => "the two links are one article: delivered once per author".to_owned(),
            (true, n) => format!("the {n} links are one article: delivered once per author"),
            (false, _) => {
                "the links are not one article: their identity keys differ (within one author, \
                 each is delivered)"
                    .to_owned()
            }
        };
        writeln!(out, "{verdict}")?;
    }
    Ok(Outcome::Ok)
}
