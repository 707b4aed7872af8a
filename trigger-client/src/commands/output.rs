//! What the commands print: results on stdout (a line of text, or one JSON object), progress
//! on stderr. Every write is checked and flushed, so a result is out before the command waits.

use std::fmt::Display;
use std::io::Write;

use super::failure::Failure;

/// One line of result on stdout.
pub fn result(line: impl Display) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|source| Failure::Output {
            stream: "stdout",
            source,
        })
}

/// One JSON object on stdout (`--json`).
pub fn json(value: &serde_json::Value) -> Result<(), Failure> {
    result(value)
}

/// One line of progress on stderr.
pub fn progress(line: impl Display) -> Result<(), Failure> {
    writeln!(std::io::stderr().lock(), "{line}").map_err(|source| Failure::Output {
        stream: "stderr",
        source,
    })
}
