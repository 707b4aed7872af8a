//! One integration-test binary: contract tests per backend against loopback servers that follow
//! each engine's documented shapes, plus the real-engine tests (skipped unless the engine runs).

mod airflow;
mod cli;
mod helpers;
mod pipelines;
mod prefect;
mod real_airflow;
mod real_prefect;
mod webhook;
mod zenml;
