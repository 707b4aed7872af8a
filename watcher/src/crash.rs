//! crash.rs: crash-injection points for the durability tests. When the environment variable
//! `WATCHER_CRASH_AT` names a point, the process sends itself SIGKILL there, exactly as a power
//! cut or the OOM killer would stop it. Unset (always, outside tests), a point does nothing.

/// Env var naming the point at which to die.
pub const ENV: &str = "WATCHER_CRASH_AT";

/// Dies here with SIGKILL if `WATCHER_CRASH_AT` is `name`.
pub fn point(name: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        tracing::warn!(point = name, "crash point reached: killing this process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
