//! log_format.rs: how the `pipelines` and `watcher` binaries write their logs to stderr:
//! `--log-format text` (the default: human lines, colored on a terminal) or `json` (one JSON
//! object a line, for journald or a log shipper). Both carry the same fields: the event's own
//! and those of the spans around it (`run_id`, `chain`, `stage`, `source`, `url`...); JSON
//! puts them under `span` (the innermost) and `spans` (all, outermost first).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // Human-readable lines (colored when stderr is a terminal). Plain comments: a doc comment
    // here would become the value's help and turn every `-h` into the long form.
    #[default]
    Text,
    // One JSON object a line: `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

/// Installs the global subscriber: `format` lines on stderr, filtered by `filter`.
pub fn init(format: LogFormat, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
