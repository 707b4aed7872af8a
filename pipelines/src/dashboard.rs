//! dashboard.rs: the runner's web page (see [`page`]) and the building blocks it shares with the
//! watcher's dashboard ([`html`]).

pub mod html;
