//! What the commands print: results on stdout (a line of text, or one JSON object), progress
//! on stderr. Every write is checked and flushed, so a result is out before the command waits.
//! Text lines carry engine answers (run states, messages), so their control characters are
//! escaped (JSON escapes its own).

use std::fmt::Display;
use std::io::Write;

use super::failure::Failure;

/// One line of result on stdout.
pub fn result(line: impl Display) -> Result<(), Failure> {
    write_stdout(&trigger_client::escape_controls(&line.to_string()))
}

/// One JSON object on stdout (`--json`).
pub fn json(value: &serde_json::Value) -> Result<(), Failure> {
    write_stdout(&value.to_string())
}

fn write_stdout(line: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|source| Failure::Output {
            stream: "stdout",
            source,
        })
}

/// One line of progress on stderr.
pub fn progress(line: impl Display) -> Result<(), Failure> {
    let line = trigger_client::escape_controls(&line.to_string());
    writeln!(std::io::stderr().lock(), "{line}").map_err(|source| Failure::Output {
        stream: "stderr",
        source,
    })
}
