//! watcher: polls author feeds and sites, finds new articles, writes pipeline configs and starts the chain.

pub mod parse;
