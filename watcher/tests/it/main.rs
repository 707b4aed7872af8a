//! The watcher's integration tests: real HTTP servers on 127.0.0.1, real sled dirs, and the real
//! binary where a process has to die or hold a lock.

mod helpers;

mod bench;
mod bounds;
mod cpu;
mod crash;
mod daemon;
mod dashboard;
mod delivery;
mod demo;
mod endpoint_guard;
mod fanout;
mod faults;
mod hold;
mod link_identity;
mod no_silent_drop;
mod opml;
mod ops;
mod parse_upgrade;
mod polling;
mod printing;
mod schedule;
mod sites;
mod ssrf;
mod store_failure;
mod store_fixture;
mod store_migration;
mod templates;
mod websub;
mod websub_hub;
