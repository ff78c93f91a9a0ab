//! systemd's service notification protocol (`sd_notify(3)`), through the `sd-notify` crate.
//!
//! Under `Type=notify` the daemon tells systemd, over the datagram socket named by
//! `NOTIFY_SOCKET`:
//! - `READY=1` once every pipe listens and every key is loaded ([`Notifier::ready`]);
//! - `RELOADING=1` with `MONOTONIC_USEC=` when a reload starts ([`Notifier::reloading`]), then
//!   `READY=1` again when it is done, whether it worked or not, with the outcome in `STATUS=`
//!   ([`Notifier::reloaded`]);
//! - `STOPPING=1` when `SIGTERM` starts the drain ([`Notifier::stopping`]);
//! - `STATUS=` lines with the pipes and live connections, at most every [`STATUS_EVERY`] and
//!   only when the text changed ([`Notifier::tick`]);
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC` when systemd set it for this process
//!   ([`Notifier::tick`], which the event loop calls after each turn: a loop that is stuck
//!   stops the pings, and systemd's `WatchdogSec=` then restarts the service).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) every call is a no-op.
//! Send failures never stop the relay: each call returns the error for the caller to log.
//! The schedule of pings and status lines is [`Schedule`], driven by the caller's clock.

use std::io;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The environment variable naming systemd's notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// The least time between two `STATUS=` updates sent by [`Notifier::tick`].
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// When the next watchdog ping and status line are due, given the times the caller passes in.
/// Pure: no clock or socket of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Half of `WATCHDOG_USEC`; `None` when systemd watches nothing.
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    next_status: Instant,
}

/// What [`Schedule::due`] says to send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// Send `WATCHDOG=1`.
    pub ping: bool,
    /// Send the status line if it changed.
    pub status: bool,
}

impl Schedule {
    /// A schedule starting at `now`: with `watchdog` (systemd's `WATCHDOG_USEC`), a ping every
    /// half of it, the first one half an interval from `now`; a status check every
    /// [`STATUS_EVERY`]. A zero `watchdog` counts as none.
    pub fn new(now: Instant, watchdog: Option<Duration>) -> Self {
        let ping_every = watchdog.filter(|w| !w.is_zero()).map(|w| w / 2);
        Self {
            ping_every,
            next_ping: ping_every.map(|every| now + every),
            next_status: now + STATUS_EVERY,
        }
    }

    /// The ping interval (half of `WATCHDOG_USEC`), if any.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every
    }

    /// What is due at `now`, and advances the schedule past it. A ping late by more than one
    /// interval (a loop that was stuck) is sent once, not once per missed interval.
    pub fn due(&mut self, now: Instant) -> Due {
        let mut due = Due {
            ping: false,
            status: false,
        };
        if let (Some(at), Some(every)) = (self.next_ping, self.ping_every)
            && now >= at
        {
            due.ping = true;
            self.next_ping = Some(now + every);
        }
        if now >= self.next_status {
            due.status = true;
            self.next_status = now + STATUS_EVERY;
        }
        due
    }
}

/// The `STATUS=` text for `pipes` listening pipes and `live` open connections, e.g.
/// `1 pipe listening, 3 live connections`.
pub fn status_text(pipes: usize, live: usize) -> String {
    format!(
        "{pipes} pipe{} listening, {live} live connection{}",
        if pipes == 1 { "" } else { "s" },
        if live == 1 { "" } else { "s" }
    )
}

/// The daemon's side of the protocol. Build it with [`Notifier::from_env`] before anything
/// else reads the environment; the main event loop owns it.
#[derive(Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set at start.
    enabled: bool,
    schedule: Schedule,
    last_status: String,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` (a watchdog meant for another
    /// process is ignored), and starts the ping schedule at `now`. The variables stay set:
    /// the crate reads `NOTIFY_SOCKET` at each send, and the relay starts no programs.
    pub fn from_env(now: Instant) -> Self {
        let enabled = std::env::var_os(NOTIFY_SOCKET_ENV).is_some_and(|s| !s.is_empty());
        let watchdog = if enabled {
            sd_notify::watchdog_enabled()
        } else {
            None
        };
        Self {
            enabled,
            schedule: Schedule::new(now, watchdog),
            last_status: String::new(),
        }
    }

    /// Whether systemd listens (`NOTIFY_SOCKET` was set).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog ping interval, half of `WATCHDOG_USEC`, when systemd set one.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.schedule.ping_every()
    }

    fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        sd_notify::notify(states)
    }

    /// `READY=1` with `STATUS=status`: every pipe listens and every key is loaded.
    ///
    /// # Errors
    /// The socket error if the datagram could not be sent.
    pub fn ready(&mut self, status: &str) -> io::Result<()> {
        self.last_status = status.to_owned();
        self.send(&[NotifyState::Ready, NotifyState::Status(status)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the `CLOCK_MONOTONIC` time, which systemd 253's
    /// `Type=notify-reload` requires) and `STATUS=reloading`: a reload has started.
    ///
    /// # Errors
    /// The clock or socket error.
    pub fn reloading(&mut self) -> io::Result<()> {
        let now = NotifyState::monotonic_usec_now()?;
        self.send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ])
    }

    /// `READY=1` after a reload, with `STATUS=` the outcome: `Ok(summary)` says what changed,
    /// `Err(why)` says why the reload failed (the running configuration stays, so the service
    /// is ready again either way).
    ///
    /// # Errors
    /// The socket error.
    pub fn reloaded(&mut self, outcome: Result<&str, &str>) -> io::Result<()> {
        let status = match outcome {
            Ok(summary) => format!("reloaded: {summary}"),
            Err(why) => format!("reload failed, running configuration kept: {why}"),
        };
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)])?;
        self.last_status = status;
        Ok(())
    }

    /// `STOPPING=1` with `STATUS=status`: no longer accepting, draining.
    ///
    /// # Errors
    /// The socket error.
    pub fn stopping(&mut self, status: &str) -> io::Result<()> {
        self.last_status = status.to_owned();
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)])
    }

    /// Called by the event loop after every turn: sends `WATCHDOG=1` when due, and the line
    /// `status()` returns when a status update is due and the text changed. `status` is only
    /// called when an update is due.
    ///
    /// # Errors
    /// The socket error (the schedule moves on regardless).
    pub fn tick(&mut self, now: Instant, status: impl FnOnce() -> String) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let due = self.schedule.due(now);
        let line = if due.status {
            Some(status()).filter(|s| *s != self.last_status)
        } else {
            None
        };
        let mut states = Vec::with_capacity(2);
        if due.ping {
            states.push(NotifyState::Watchdog);
        }
        if let Some(line) = &line {
            states.push(NotifyState::Status(line));
        }
        if states.is_empty() {
            return Ok(());
        }
        let r = self.send(&states);
        if let Some(line) = line {
            self.last_status = line;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_every_half_watchdog_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Some(Duration::from_secs(10)));
        assert_eq!(s.ping_every(), Some(Duration::from_secs(5)));
        assert!(!s.due(t0).ping);
        assert!(!s.due(t0 + Duration::from_millis(4999)).ping);
        assert!(s.due(t0 + Duration::from_secs(5)).ping);
        assert!(!s.due(t0 + Duration::from_secs(6)).ping);
        assert!(s.due(t0 + Duration::from_secs(10)).ping);
    }

    #[test]
    fn a_stuck_loop_gets_one_late_ping_not_a_burst() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Some(Duration::from_secs(2)));
        // The loop was stuck for 10 intervals: one ping now, the next a full interval later.
        let late = t0 + Duration::from_secs(10);
        assert!(s.due(late).ping);
        assert!(!s.due(late).ping);
        assert!(!s.due(late + Duration::from_millis(999)).ping);
        assert!(s.due(late + Duration::from_secs(1)).ping);
    }

    #[test]
    fn no_watchdog_no_pings() {
        let t0 = Instant::now();
        for w in [None, Some(Duration::ZERO)] {
            let mut s = Schedule::new(t0, w);
            assert_eq!(s.ping_every(), None);
            for i in 0..100 {
                assert!(!s.due(t0 + Duration::from_secs(i)).ping);
            }
        }
    }

    #[test]
    fn status_is_due_every_status_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, None);
        assert!(!s.due(t0 + STATUS_EVERY - Duration::from_millis(1)).status);
        assert!(s.due(t0 + STATUS_EVERY).status);
        assert!(!s.due(t0 + STATUS_EVERY).status);
        assert!(s.due(t0 + STATUS_EVERY * 2).status);
    }

    #[test]
    fn status_text_counts() {
        assert_eq!(status_text(1, 1), "1 pipe listening, 1 live connection");
        assert_eq!(status_text(3, 0), "3 pipes listening, 0 live connections");
    }
}
