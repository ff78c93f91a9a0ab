//! Warnings in spiped's format (`<program>: <message>`), to standard error or syslog, with a
//! rate limit so that a flood of bad connections cannot fill a disk.
//!
//! Messages never contain key material: callers pass only errors and addresses.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::os::syslog::Syslog;

/// What a log line about pipe `name` starts with: `pipe NAME: `, or nothing for the spiped
/// command line's one pipe ([`crate::config::COMMAND_LINE_PIPE`]), whose lines stay spiped's.
pub fn pipe_prefix(name: &str) -> String {
    if name == crate::config::COMMAND_LINE_PIPE {
        String::new()
    } else {
        format!("pipe {name}: ")
    }
}

/// Messages allowed in a burst before the limit applies.
pub const BURST: u32 = 50;

/// Messages allowed per second once a burst is used up.
pub const PER_SECOND: u32 = 10;

/// Where log lines go.
#[derive(Debug)]
pub enum Sink {
    /// Standard error (spiped's behaviour in the foreground).
    Stderr,
    /// The local syslog daemon at `/dev/log`, facility daemon, priority warning (`--syslog`).
    Syslog(Syslog),
    /// Nowhere (a daemon without `--syslog`, whose standard error is `/dev/null`).
    Discard,
}

/// A rate-limited logger: up to [`BURST`] lines at once, then [`PER_SECOND`] lines a second.
/// Lines over the limit are counted and reported in the next line that gets through.
///
/// Warnings ([`Logger::warn`]) and routine notices ([`Logger::notice`], one per connection)
/// have separate budgets, so a flood of good connections cannot hide a warning.
#[derive(Debug)]
pub struct Logger {
    program: String,
    sink: Sink,
    warnings: Bucket,
    notices: Bucket,
}

/// A token bucket of [`BURST`] lines refilled at [`PER_SECOND`].
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl Bucket {
    fn new() -> Self {
        Self {
            tokens: f64::from(BURST),
            last: Instant::now(),
            suppressed: 0,
        }
    }

    /// `Some(lines suppressed before this one)` if a line may go out now; else counts it.
    fn take(&mut self) -> Option<u64> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * f64::from(PER_SECOND)).min(f64::from(BURST));
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Logger {
    /// A logger that prefixes every line with `program` (e.g. `spiperelay` or `spiped`).
    pub fn new(program: &str, sink: Sink) -> Self {
        Self {
            program: program.to_owned(),
            sink,
            warnings: Bucket::new(),
            notices: Bucket::new(),
        }
    }

    /// A logger for another thread: the same program name and sink, fresh rate limits. A
    /// syslog socket is duplicated; if that fails the new logger writes to standard error
    /// instead of losing lines silently.
    pub fn sibling(&self) -> Self {
        let sink = match &self.sink {
            Sink::Stderr => Sink::Stderr,
            Sink::Syslog(sock) => sock.try_clone().map_or(Sink::Stderr, Sink::Syslog),
            Sink::Discard => Sink::Discard,
        };
        Self::new(&self.program, sink)
    }

    /// Connects to the syslog socket at `/dev/log` ([`Syslog::connect`]).
    ///
    /// # Errors
    /// The socket error, e.g. `ENOENT` when no syslog daemon runs.
    pub fn syslog_sink() -> std::io::Result<Sink> {
        Syslog::connect().map(Sink::Syslog)
    }

    /// Logs one line, unless the rate limit has been reached (then it is only counted).
    pub fn warn(&mut self, msg: fmt::Arguments<'_>) {
        if let Some(suppressed) = self.warnings.take() {
            self.limited(msg, suppressed);
        }
    }

    /// Logs a routine line (such as which key a connection uses) under its own rate limit,
    /// separate from [`Logger::warn`]'s.
    pub fn notice(&mut self, msg: fmt::Arguments<'_>) {
        if let Some(suppressed) = self.notices.take() {
            self.limited(msg, suppressed);
        }
    }

    fn limited(&mut self, msg: fmt::Arguments<'_>, suppressed: u64) {
        let line = if suppressed > 0 {
            format!("{msg} ({suppressed} earlier messages suppressed by the rate limit)")
        } else {
            msg.to_string()
        };
        self.write(&line);
    }

    /// Logs one line without the rate limit (startup and shutdown messages).
    pub fn always(&mut self, msg: fmt::Arguments<'_>) {
        self.write(&msg.to_string());
    }

    fn write(&mut self, line: &str) {
        match &self.sink {
            Sink::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{}: {line}", self.program);
            }
            Sink::Syslog(sock) => sock.send(&self.program, line),
            Sink::Discard => {}
        }
    }

    /// Warnings dropped by the rate limit and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.warnings.suppressed
    }

    /// How long until the next warning would get through (zero if one would now).
    pub fn backoff(&self) -> Duration {
        if self.warnings.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.warnings.tokens) / f64::from(PER_SECOND))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limit() {
        let mut log = Logger::new("t", Sink::Discard);
        for _ in 0..BURST {
            log.warn(format_args!("x"));
        }
        assert_eq!(log.suppressed(), 0);
        for _ in 0..100 {
            log.warn(format_args!("x"));
        }
        // At most a couple of tokens can have been refilled while the loop ran.
        assert!(log.suppressed() >= 95, "{}", log.suppressed());
        assert!(log.backoff() > Duration::ZERO);
    }

    #[test]
    fn notices_do_not_use_up_warnings() {
        let mut log = Logger::new("t", Sink::Discard);
        for _ in 0..(2 * BURST) {
            log.notice(format_args!("n"));
        }
        assert_eq!(log.suppressed(), 0);
        assert_eq!(log.backoff(), Duration::ZERO);
        log.warn(format_args!("w"));
        assert_eq!(log.suppressed(), 0);
    }
}
