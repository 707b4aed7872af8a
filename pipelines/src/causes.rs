//! How an error is shown on one line with its causes (`error_chain`), and names listed in an
//! error message (`list`). A leaf: any module that reports errors may use it.

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Names for an error message: "`a`, `b`", or "(none)".
pub(crate) fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}
