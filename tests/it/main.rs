//! End-to-end tests across the crates: a loopback feed server → the watcher → the pipelines
//! runner (embedded, or as its own server) → the demo chain's real child processes (and, with
//! ZenML installed, the zenml chain's real ZenML pipelines).

mod harness;

mod chain;
mod dashboard;
mod fuzz_replay;
mod load;
mod structure;
mod trigger_pipelines;
mod zenml_chain;
