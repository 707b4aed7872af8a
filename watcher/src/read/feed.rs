//! feed.rs: reads a fetched feed (RSS, Atom, JSON Feed): its items, its `<ttl>` and the WebSub
//! hub it names.

use super::{Read, ReadError};
use crate::fetch::Fetched;
use crate::parse::parse_feed_within;
use crate::work::WorkBudget;

/// Reads the feed within `budget` (a blocking call: see `read::off_runtime`).
pub fn read(fetched: Fetched, budget: &WorkBudget) -> Result<Read, ReadError> {
    let parsed = parse_feed_within(
        &fetched.body,
        fetched.content_type.as_deref(),
        &fetched.final_url,
        budget,
    )?;
    let push =
        crate::websub::discover::push_links(&fetched.headers, &fetched.body, &fetched.final_url);
    let mut read = Read::from(fetched, parsed.items, parsed.ttl);
    read.learned.push = push;
    Ok(read)
}
