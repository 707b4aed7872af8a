//! `pipelines check`: validate chain files and print what each chain would run, with preflight
//! warnings.

use std::path::Path;

use super::exit::Status;
use super::{preflight, tables};
use crate::chain;
use crate::error::Error;

/// Loads every chain in `path`; an invalid file fails the command (exit 2).
pub fn check(path: &Path) -> Result<Status, Error> {
    let chains = chain::load(path)?;
    for chain in chains.iter() {
        tables::print_chain(chain, &preflight::warnings(chain));
    }
    println!("{} chain file(s) OK", chains.len());
    Ok(Status::Success)
}
