//! feed.rs: reads a fetched feed (RSS, Atom, JSON Feed): its items, its `<ttl>` and the WebSub
//! hub it names.

use super::{Read, ReadError};
use crate::fetch::Fetched;
use crate::parse::{document_base, parse_feed_within};
use crate::work::WorkBudget;

/// Reads the feed within `budget` (a blocking call: see `read::off_runtime`).
pub fn read(fetched: Fetched, budget: &WorkBudget) -> Result<Read, ReadError> {
    let location = fetched.headers.get(reqwest::header::CONTENT_LOCATION);
    let base = document_base(
        &fetched.final_url,
        location.and_then(|value| value.to_str().ok()),
    );
    let parsed = parse_feed_within(
        &fetched.body,
        fetched.content_type.as_deref(),
        &base,
        budget,
    )?;
    let push =
        crate::websub::discover::push_links(&fetched.headers, &fetched.body, &fetched.final_url);
    let mut read = Read::from(fetched, parsed.items, parsed.ttl);
    read.learned.push = push;
    read.learned.generator = parsed.generator;
    Ok(read)
}
