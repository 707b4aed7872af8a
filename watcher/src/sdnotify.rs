//! sdnotify.rs: systemd's notify protocol for `watcher run` in a `Type=notify` unit (with the
//! `sd-notify` crate): `READY=1` once the daemon schedules its sources, `STOPPING=1` when it
//! starts shutting down, and, with `WatchdogSec=` set, `WATCHDOG=1` pings from a thread of their
//! own, sent only while the scheduler makes progress ([`Vitals::progressing`]): a wedged run
//! loop or polls that stop ending stop the pings, and systemd restarts the service. Without
//! `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::vitals::Vitals;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// The daemon is up: its endpoint listens and its sources are scheduled.
pub fn ready(sources: usize) {
    let status = format!("watching {sources} sources");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The daemon is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings systemd's watchdog while the daemon makes progress; stops when dropped.
#[derive(Debug)]
pub struct Watchdog {
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts the pings if the service manager asked for them (`WATCHDOG_USEC` for this pid):
    /// every third of the interval, a ping when the scheduler progressed within one interval.
    pub fn start(vitals: Arc<Vitals>) -> Option<Watchdog> {
        let interval = sd_notify::watchdog_enabled()?;
        Some(Watchdog::with_interval(vitals, interval))
    }

    fn with_interval(vitals: Arc<Vitals>, interval: Duration) -> Watchdog {
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut stalled = false;
                // A message or a hang-up (the sender dropped) both end the thread.
                while stopped.recv_timeout(interval / 3) == Err(mpsc::RecvTimeoutError::Timeout) {
                    if vitals.progressing(interval) {
                        if stalled {
                            tracing::info!("the scheduler makes progress again; watchdog pings resume");
                        }
                        stalled = false;
                        send(&[NotifyState::Watchdog]);
                    } else if !stalled {
                        stalled = true;
                        tracing::error!(
                            window = %humantime::format_duration(interval),
                            "the scheduler made no progress (its loop or its polls are stuck); watchdog pings stop, so systemd restarts the watcher"
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the watchdog thread; systemd will restart the watcher");
        }
        tracing::info!(interval = %humantime::format_duration(interval), "systemd watchdog enabled");
        Watchdog { _stop: stop }
    }
}
