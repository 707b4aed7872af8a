//! feed.rs: reads a fetched feed (RSS, Atom, JSON Feed): its items and its `<ttl>`.

use super::{Read, ReadError};
use crate::fetch::Fetched;
use crate::parse::parse_feed;

pub fn read(fetched: Fetched) -> Result<Read, ReadError> {
    let parsed = parse_feed(
        &fetched.body,
        fetched.content_type.as_deref(),
        &fetched.final_url,
    )?;
    Ok(Read::from(fetched, parsed.items, parsed.ttl))
}
