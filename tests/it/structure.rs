//! structure.rs: the workspace's structural rules, checked on the source text so later work
//! cannot quietly undo them: no module cycles inside any crate, no `src/` file over 600 lines
//! before its tests, the runner's REST paths spelled in one crate only, and no stringly typed
//! results or ignored write results in the watcher.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose `src/` trees are checked.
const CRATES: &[&str] = &[
    "watcher",
    "trigger-client",
    "pipelines",
    "runner-api",
    "sled-gate",
];
/// Lines a file may have before its first `#[cfg(test)]`.
const MAX_LINES: usize = 600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The source without comments (line comments, doc comments, block comments) and without the
/// contents of string literals, so only code is searched.
fn code_only(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && raw_string_at(&bytes, i) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            j += 1;
            out.push_str("\"\"");
            while j < bytes.len() {
                if bytes[j] == '"' && (0..hashes).all(|h| bytes.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if bytes[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                if bytes.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next.is_some() && bytes.get(i + 2) == Some(&'\'') {
            // a char literal such as '"'
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            let mut j = i + 2;
            while j < bytes.len() && bytes[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn raw_string_at(bytes: &[char], i: usize) -> bool {
    let before_ok = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
    let mut j = i + 1;
    while bytes.get(j) == Some(&'#') {
        j += 1;
    }
    before_ok && bytes.get(j) == Some(&'"')
}

/// The module path of a file: `src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`, `src/lib.rs` → `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The paths a `use` tree names, each as segments (`{a, b::{c, d}}` → `a`, `b::c`, `b::d`).
fn use_tree(text: &str) -> Vec<Vec<String>> {
    fn parse(chars: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        let mut word = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
                *i += 1;
            } else if c == ':' {
                if !word.is_empty() {
                    path.push(std::mem::take(&mut word));
                }
                *i += 1;
            } else if c == '{' {
                *i += 1;
                loop {
                    parse(chars, i, &path, out);
                    match chars.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    // `{a, }`
                    while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
                        *i += 1;
                    }
                    if chars.get(*i) == Some(&'}') {
                        *i += 1;
                        return;
                    }
                }
            } else if c.is_whitespace() {
                *i += 1;
                if !word.is_empty() && word != "as" {
                    path.push(std::mem::take(&mut word));
                } else if word == "as" {
                    word.clear();
                    // skip the alias
                    while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
                        *i += 1;
                    }
                    while chars
                        .get(*i)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                    {
                        *i += 1;
                    }
                }
            } else if c == '*' {
                *i += 1;
            } else {
                // ',' '}' ';' or anything else ends this path
                break;
            }
        }
        if !word.is_empty() && word != "as" {
            path.push(word);
        }
        if path.len() > prefix.len() || !path.is_empty() {
            out.push(path);
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    parse(&chars, &mut i, &[], &mut out);
    out
}

/// Every module path that `code` (of the file at module `here`) refers to with `crate::`,
/// `super::` or `self::`, resolved from the crate root.
fn references(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // The module a `super::` in this file refers to: the parent of this file's module.
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    let selfmod: Vec<String> = here.to_vec();
    for (needle, base) in [
        ("crate::", Vec::new()),
        ("super::", parent),
        ("self::", selfmod),
    ] {
        let mut start = 0;
        while let Some(pos) = code[start..].find(needle) {
            let at = start + pos;
            start = at + needle.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[start..];
            let end = if rest.starts_with('{') {
                // a group: up to its matching brace
                let mut depth = 0;
                let mut end = rest.len();
                for (k, c) in rest.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            } else {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len())
            };
            for path in use_tree(&rest[..end]) {
                let mut full = base.clone();
                full.extend(path.into_iter().filter(|s| s != "super" && s != "self"));
                out.push(full);
            }
        }
    }
    out
}

/// The longest known module that is a prefix of `path`.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// Module cycles of one crate, each as `a -> b -> a` between siblings.
fn cycles(src: &Path) -> Vec<String> {
    let files = rust_files(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    // Edges between siblings: (parent, from child, to child).
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let here = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let code = code_only(&text);
        // Tests inside a file may reach anywhere.
        let code = match code.find("#[cfg(test)]") {
            Some(at) => &code[..at],
            None => &code[..],
        };
        for path in references(code, &here) {
            let Some(target) = resolve(&path, &modules) else {
                continue;
            };
            // The lowest common ancestor; parent/child references are not cycles.
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == target.len() {
                continue;
            }
            edges
                .entry(here[..common].to_vec())
                .or_default()
                .entry(here[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for cycle in graph_cycles(graph) {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{}::", parent.join("::"))
            };
            found.push(
                cycle
                    .iter()
                    .map(|m| format!("{prefix}{m}"))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
        }
    }
    found
}

/// One cycle per strongly connected component with more than one node.
fn graph_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph
        .keys()
        .chain(graph.values().flat_map(|v| v.iter()))
        .collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for node in nodes {
        if done.contains(node) {
            continue;
        }
        let from_node = reach(node);
        if !from_node.contains(node) {
            continue;
        }
        let component: Vec<String> = from_node
            .iter()
            .filter(|other| reach(other).contains(node))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        let mut cycle = component;
        cycle.push(cycle[0].clone());
        out.push(cycle);
    }
    out
}

#[test]
fn no_module_cycles_inside_any_crate() {
    let mut problems = Vec::new();
    for krate in CRATES {
        let src = workspace().join(krate).join("src");
        for cycle in cycles(&src) {
            problems.push(format!("{krate}: {cycle}"));
        }
    }
    assert!(
        problems.is_empty(),
        "module cycles (a module that uses one that uses it back):\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_source_file_is_over_600_lines_before_its_tests() {
    let mut problems = Vec::new();
    for krate in CRATES {
        for file in rust_files(&workspace().join(krate).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = text
                .lines()
                .take_while(|line| !line.trim_start().starts_with("#[cfg(test)]"))
                .count();
            if lines > MAX_LINES {
                problems.push(format!(
                    "{}: {lines} lines",
                    file.strip_prefix(workspace()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "files over {MAX_LINES} lines before #[cfg(test)]; split them by concern:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_runner_paths_are_spelled_in_one_crate() {
    let mut crates_with_paths = BTreeMap::new();
    for krate in CRATES {
        for file in rust_files(&workspace().join(krate).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            // Paths in string literals count (that is how they are spelled); comments don't.
            let hits = text
                .lines()
                .filter(|line| {
                    let line = line.trim_start();
                    !line.starts_with("//") && line.contains("api/v1")
                })
                .count();
            if hits > 0 {
                *crates_with_paths.entry(*krate).or_insert(0) += hits;
            }
        }
    }
    assert!(
        crates_with_paths.len() <= 1,
        "the runner's REST paths belong to one crate; found in {crates_with_paths:?}"
    );
}

#[test]
fn the_watcher_has_no_stringly_results_or_ignored_writes() {
    let mut problems = Vec::new();
    for file in rust_files(&workspace().join("watcher").join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = code_only(&text);
        let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        let name = file
            .strip_prefix(workspace())
            .unwrap()
            .display()
            .to_string();
        if squeezed.contains("Result<String, String>") {
            problems.push(format!("{name}: Result<String, String>"));
        }
        for ignored in ["let _ = writeln!", "let _ = write!"] {
            if squeezed.contains(ignored) {
                problems.push(format!("{name}: `{ignored}` drops a write error"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker's own parts.
mod checker {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        use_tree(text).into_iter().map(|p| p.join("::")).collect()
    }

    #[test]
    fn use_trees_are_expanded() {
        assert_eq!(paths("a::B"), ["a::B"]);
        assert_eq!(paths("{a, b::{c, d}}"), ["a", "b::c", "b::d"]);
        assert_eq!(paths("{a::X as Y, b}"), ["a::X", "b"]);
    }

    #[test]
    fn a_cycle_between_siblings_is_found() {
        let mut graph = BTreeMap::new();
        graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
        graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
        graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
        assert_eq!(graph_cycles(&graph), vec![vec!["a", "b", "a"]]);
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = code_only("let x = \"crate::a\"; // crate::b\nuse crate::c;");
        assert!(!code.contains("crate::a") && !code.contains("crate::b"));
        assert!(code.contains("crate::c"));
    }
}
