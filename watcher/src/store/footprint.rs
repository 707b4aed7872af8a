//! store/footprint.rs: what a store takes: per tree, records and logical bytes (keys + values),
//! beside the bytes its files take on disk, so what sled adds is visible. A full scan: for
//! measurements and diagnostics, never on a poll's path.

use std::path::Path;

use super::{Store, StoreError};

/// One tree's records and their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFootprint {
    pub name: String,
    pub records: u64,
    /// Keys plus values.
    pub logical_bytes: u64,
}

/// A store's footprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub trees: Vec<TreeFootprint>,
    /// The sizes of the files under the db dir.
    pub disk_bytes: u64,
    /// The blocks those files take (sparse files take less).
    pub allocated_bytes: u64,
}

impl Footprint {
    pub fn logical_bytes(&self) -> u64 {
        self.trees.iter().map(|t| t.logical_bytes).sum()
    }
}

impl Store {
    /// Scans every tree (see the module header) and sizes the files of the state dir `dir`'s db.
    pub fn footprint(&self, dir: &Path) -> Result<Footprint, StoreError> {
        let mut trees = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            let (mut records, mut logical_bytes) = (0, 0);
            for kv in tree.iter() {
                let (k, v) = kv?;
                records += 1;
                logical_bytes += (k.len() + v.len()) as u64;
            }
            trees.push(TreeFootprint {
                name: String::from_utf8_lossy(&name).into_owned(),
                records,
                logical_bytes,
            });
        }
        let (disk_bytes, allocated_bytes) =
            dir_size(&dir.join("db")).map_err(|source| StoreError::Io {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Footprint {
            trees,
            disk_bytes,
            allocated_bytes,
        })
    }
}

/// The sizes and allocated blocks of the files under `dir` (`/metrics` reads the db dir's too).
pub fn dir_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut size, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (s, a) = dir_size(&entry.path())?;
            (size, allocated) = (size + s, allocated + a);
        } else {
            (size, allocated) = (size + meta.len(), allocated + meta.blocks() * 512);
        }
    }
    Ok((size, allocated))
}
