//! feed.rs: reads a fetched feed (RSS, Atom, JSON Feed): its items and its `<ttl>`.

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
    Ok(Read::from(fetched, parsed.items, parsed.ttl))
}
