//! parse.rs: turns a fetched feed body into items (RSS 0.9x/1.0/2.0, Atom, JSON Feed), honouring charsets.
//! (placeholder interface; the full implementation lands with the corpus work)

use std::time::Duration;

/// A parsed feed: its items plus what the feed says about itself.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    pub ttl: Option<Duration>,
    pub items: Vec<RawItem>,
}

/// One entry as the feed states it, before identity is assigned.
#[derive(Debug, Clone, Default)]
pub struct RawItem {
    pub guid: Option<String>,
    pub link: Option<url::Url>,
    pub title: Option<String>,
    pub content: Option<String>,
    pub published: Option<chrono::DateTime<chrono::Utc>>,
    pub updated: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("feed could not be parsed: {0}")]
    Invalid(String),
}

pub fn parse_feed(
    body: &[u8],
    _content_type: Option<&str>,
    base_url: &url::Url,
) -> Result<ParsedFeed, ParseError> {
    let feed = feed_rs::parser::Builder::new().base_uri(Some(base_url.as_str())).build().parse(body)
        .map_err(|e| ParseError::Invalid(e.to_string()))?;
    Ok(ParsedFeed {
        title: feed.title.map(|t| t.content),
        ttl: None,
        items: feed
            .entries
            .into_iter()
            .map(|e| RawItem {
                guid: Some(e.id).filter(|s| !s.is_empty()),
                link: e.links.first().and_then(|l| base_url.join(&l.href).ok()),
                title: e.title.map(|t| t.content),
                content: e.content.and_then(|c| c.body).or(e.summary.map(|s| s.content)),
                published: e.published,
                updated: e.updated,
            })
            .collect(),
    })
}
