//! The `trigger-client` command line (phase 1 placeholder).

fn main() {}
