//! One integration-test binary: contract tests per backend against fake engines (built with
//! `kit`) that follow each engine's documented shapes, the CLI end to end, plus the real-engine
//! tests (skipped unless the engine runs).

mod airflow;
mod cli;
mod helpers;
mod kit;
mod prefect;
mod real_airflow;
mod real_prefect;
mod real_zenml;
mod signature_doc;
mod webhook;
mod zenml;
