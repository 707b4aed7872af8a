//! crawl.rs: reads a fetched sitemap, or a sitemap index's children one at a time, within the
//! poll's [`Budget`]: each file within `[fetch] max_sitemap_bytes` and `max_sitemap_urls`, all of
//! them together within `max_poll_bytes` and `max_poll_items`. A child's body is dropped once its
//! URLs are read, so memory holds one body and the items so far, never every body at once.
//! Each file is parsed on the blocking pool, its bytes charged to the poll's work budget.

use url::Url;

use super::{Caps, Sitemap, parse_sitemap_within};
use crate::fetch::{Cap, FetchError, FetchOutcome, Fetched, Fetcher, Validators};
use crate::parse::RawItem;
use crate::read::bounds::Budget;
use crate::read::{Read, ReadError, off_runtime, sitemap_cap};
use crate::work::WorkBudget;

/// Child sitemaps read from one sitemap index.
const MAX_CHILD_SITEMAPS: usize = 50;

/// Reads a fetched sitemap, or every child of a sitemap index (up to [`MAX_CHILD_SITEMAPS`],
/// fetched without validators: a child can change while the index does not). A child that fails
/// is skipped (its articles stay known); all failing is an error. Going over a per-poll limit
/// fails the whole poll at once (no further child is fetched). The source's own body is already
/// counted in `budget`.
pub async fn read(
    fetcher: &Fetcher,
    fetched: Fetched,
    include: Option<&str>,
    budget: &mut Budget,
    work: &WorkBudget,
) -> Result<Read, ReadError> {
    let caps = caps(fetcher);
    let (sitemap, parsed) = parse_within(&fetched, include, caps, work).await?;
    // A gzip file counts as what it decompresses to.
    budget.spend_bytes(parsed.saturating_sub(fetched.body.len() as u64))?;
    let (items, index) = match sitemap {
        Sitemap::Urls(items) => (items, false),
        Sitemap::Index(children) => {
            let mut items = Vec::new();
            let mut first_error = None;
            for child in children.iter().take(MAX_CHILD_SITEMAPS) {
                match read_child(fetcher, child, include, budget, work).await {
                    Ok(more) => {
                        // Checked before growing `items`: over the limit, nothing is copied.
                        budget.check_items(items.len() + more.len())?;
                        items.extend(more);
                    }
                    Err(ReadError::OverLimit(over)) => return Err(over.into()),
                    Err(e) => {
                        tracing::warn!(sitemap = %child, error = %crate::causes::one_line(&e), "child sitemap skipped");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error
                && items.is_empty()
            {
                return Err(e);
            }
            (items, true)
        }
    };
    let mut read = Read::from(fetched, items, None);
    read.learned.sitemap_index = Some(index);
    Ok(read)
}

/// A body cut off at `cap` is the poll's limit when `cap` was what the poll had left.
fn over_or(e: FetchError, budget: &Budget, cap: Cap) -> ReadError {
    match (&e, budget.over(cap)) {
        (FetchError::TooLarge { .. }, Some(over)) => over.into(),
        _ => e.into(),
    }
}

/// The limits of one sitemap file.
fn caps(fetcher: &Fetcher) -> Caps {
    let settings = fetcher.settings();
    Caps {
        max_bytes: sitemap_cap(settings).bytes,
        max_urls: settings.max_sitemap_urls,
    }
}

/// The pages one child sitemap lists (an index inside an index is not followed), its bytes
/// counted in `budget`.
async fn read_child(
    fetcher: &Fetcher,
    child: &Url,
    include: Option<&str>,
    budget: &mut Budget,
    work: &WorkBudget,
) -> Result<Vec<RawItem>, ReadError> {
    let cap: Cap = budget.cap(sitemap_cap(fetcher.settings()));
    let resp = (fetcher.get_capped(child, &Validators::default(), cap).await)
        .map_err(|e| over_or(e, budget, cap))?;
    let f = match resp.outcome {
        FetchOutcome::Fetched(f) => f,
        FetchOutcome::NotModified { .. } => return Ok(Vec::new()),
    };
    budget.spend_bytes(f.body.len() as u64)?;
    let (sitemap, parsed) = parse_within(&f, include, caps(fetcher), work).await?;
    budget.spend_bytes(parsed.saturating_sub(f.body.len() as u64))?;
    match sitemap {
        Sitemap::Urls(more) => Ok(more),
        Sitemap::Index(_) => Ok(Vec::new()),
    }
}

/// [`parse_sitemap_within`] on the blocking pool, charging the work budget for the body and, as
/// it goes, for what it decompresses to and reads.
async fn parse_within(
    fetched: &Fetched,
    include: Option<&str>,
    caps: Caps,
    work: &WorkBudget,
) -> Result<(Sitemap, u64), ReadError> {
    let (body, url) = (fetched.body.clone(), fetched.final_url.clone());
    let include = include.map(str::to_owned);
    off_runtime(work, move |work| {
        work.spend(body.len() as u64)?;
        Ok(parse_sitemap_within(
            &body,
            &url,
            include.as_deref(),
            caps,
            work,
        )?)
    })
    .await
}
