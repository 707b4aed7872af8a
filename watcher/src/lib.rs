//! watcher: polls author feeds and sites, finds new articles by diffing against a sled store,
//! writes a fresh pipeline config listing the new links and starts the pipeline chain through
//! the trigger client.
//!
//! Data flow: source → [`fetch`] (conditional GET) → [`read`] (feeds through [`parse`]) →
//! [`identity`] → [`diff`] against [`store`] → staged items (or held: [`hold`]) → [`outbox`]
//! batches ([`delivery`]) → [`emit`] config file → [`deliver`] trigger. The modules in this
//! order: `watcher/README.md`.

pub mod canonical;
pub mod causes;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod crash;
pub mod dashboard;
pub mod deadline;
pub mod deliver;
pub mod delivery;
pub mod demo;
pub mod diff;
mod due;
pub mod embedded;
pub mod emit;
pub mod error;
pub mod feedkit;
pub mod fetch;
pub mod health;
pub mod hold;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod opml;
pub mod outbox;
pub mod parse;
pub mod platform;
pub mod poll;
pub mod preflight;
pub mod printable;
pub mod read;
pub mod schedule;
pub mod sdnotify;
pub mod ssrf;
pub mod status;
pub mod store;
pub mod subscriptions;
pub mod vitals;
pub mod watch;
pub mod websub;
pub mod work;
