//! The pipelines integration tests: one binary, real runners on loopback ports, real child
//! processes. See `helpers.rs` for the harness.

mod api;
mod chains;
mod cli;
mod dashboard;
mod gates;
mod helpers;
mod load;
mod metrics;
mod processes;
mod rest_shape;
mod restart;
mod retention;
mod stage_env;
