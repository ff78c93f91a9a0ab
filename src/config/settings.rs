//! Process-wide settings: what one spiperelay process does regardless of its pipes (control
//! socket, logging, threads, daemonising, privileges, shutdown, metrics, audit log).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::addr::SockAddrSpec;

/// The most event-loop threads a process may ask for (`--threads`, `threads`).
pub const MAX_THREADS: usize = 64;

/// The longest `shutdown_timeout` accepted: one day.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Where log lines go once the process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// Standard error (the default; systemd's journal under a unit).
    #[default]
    Stderr,
    /// syslog (`--syslog`). As in spiped, startup errors still go to standard error.
    Syslog,
}

/// The account to switch to after binding (`-u`, or `user`/`group`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserGroup {
    /// `-u <username>`: that user (and, at run time, its primary group).
    User(String),
    /// `-u :<groupname>`: only that group.
    Group(String),
    /// `-u <username>:<groupname>`: that user and that group.
    UserAndGroup {
        /// The user name or numeric id.
        user: String,
        /// The group name or numeric id.
        group: String,
    },
}

impl fmt::Display for UserGroup {
    /// Writes the `-u` form back: `user`, `:group` or `user:group`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(user) => f.write_str(user),
            Self::Group(group) => write!(f, ":{group}"),
            Self::UserAndGroup { user, group } => write!(f, "{user}:{group}"),
        }
    }
}

/// Where the per-connection audit log goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuditLog {
    /// Standard error.
    Stderr,
    /// This file (absolute path), appended to and reopened on reload.
    File(PathBuf),
}

/// The process-wide settings. [`Settings::default`] is the configuration file's default:
/// one thread, standard error, in the foreground, no pidfile, control socket, `-u`, shutdown
/// deadline, metrics or audit log (the command line sets daemonising and the pidfile
/// explicitly, as spiped does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `--control`: where to serve the control socket; `None` for none.
    pub control: Option<PathBuf>,
    /// `--syslog`: where log lines go once running.
    pub log: LogTarget,
    /// `--threads`: event-loop threads, 1 to [`MAX_THREADS`] (0 is taken as 1).
    pub threads: usize,
    /// Detach from the terminal once listening (spiped without `-F`).
    pub daemonize: bool,
    /// Where to write the process id once running; `None` for no pidfile (`-F`).
    pub pidfile: Option<PathBuf>,
    /// `-D`: with `daemonize`, detach before resolving addresses; and retry failed lookups
    /// every second instead of failing.
    pub wait_for_dns: bool,
    /// `-u`: the user and/or group to switch to after binding.
    pub user: Option<UserGroup>,
    /// On `SIGTERM`, how long open connections may take to finish before they are cut;
    /// `None` to wait for them (today's behaviour).
    pub shutdown_timeout: Option<Duration>,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` for off.
    pub metrics: Option<SockAddrSpec>,
    /// Where to write one line per closed connection; `None` for off.
    pub audit_log: Option<AuditLog>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            control: None,
            log: LogTarget::Stderr,
            threads: 1,
            daemonize: false,
            pidfile: None,
            wait_for_dns: false,
            user: None,
            shutdown_timeout: None,
            metrics: None,
            audit_log: None,
        }
    }
}

impl Settings {
    /// The number of event-loop threads to run: [`Settings::threads`], at least 1.
    pub fn thread_count(&self) -> usize {
        self.threads.max(1)
    }
}
