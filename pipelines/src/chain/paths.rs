//! Paths in chain files: relative paths resolve against the chain's directory and read well
//! (lexically normalised).

use std::path::{Path, PathBuf};

/// `path` against `base`, or `base` itself when there is no path.
pub fn resolve(base: &Path, path: Option<&Path>) -> PathBuf {
    match path {
        Some(path) => normalize(&base.join(path)),
        None => base.to_owned(),
    }
}

/// Removes `.` and `..` components lexically (`/a/b/../c` → `/a/c`), so resolved paths read well.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}
