//! The daemon's startup pieces (spec §3–§4), used by the supervisor
//! ([`super::supervisor`]), which runs them in order: resolving addresses the way spiped does,
//! binding listeners (taking over a stale Unix socket left by a relay that died, and refusing
//! a path another process listens on or that is not a socket:
//! [`sys::listen_unix_reclaiming`]), looking up `-u`, picking the io backend, writing the
//! pidfile, and the daemon's logger. An error up to the running event loops is printed to the
//! caller's standard error and the parent exits 1 (spec §3.1, §4).
//!
//! Errors: [`StartupError`] for everything up to the running event loops, [`RunError`] for
//! what stops a running daemon, both under [`DaemonError`].
//!
//! Backend: io_uring when it works, otherwise epoll, with one line on standard error naming
//! why io_uring is unusable. [`BACKEND_ENV`] forces either one.

use std::ffi::OsStr;
use std::fmt;
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::cli::{SockAddrSpec, UserGroup};
use crate::io::any::{AnyDriver, Backend};
use crate::io::epoll::{Epoll, EpollConfig, EpollError};
use crate::io::sys::{self, Reclaimed, SocketAccess, UnixListenError};
use crate::io::uring::{self, SetupError, Uring, UringConfig};
use crate::io::{Errno, SockAddr, WaitError};
use crate::os::activation::ActivationError;
use crate::os::user;

use super::audit::AuditError;
use super::control::ControlError;
use super::engine::RelayError;
use super::keyfile::KeyFileError;
use super::keys::KeyRingError;
use super::log::{Logger, Sink};
use super::metrics::http::MetricsError;

/// Receive buffers in the provided-buffer pool, and their size. The size bounds the memory of
/// a streaming connection: each receive's output joins the pump buffers of
/// [`conn::HIGH_WATER`](super::conn::HIGH_WATER), so a connection streaming both ways holds at
/// most four [`conn::PUMP_BUFFER`](super::conn::PUMP_BUFFER)s; 256 such connections measured
/// 19 KiB (epoll) and 41 KiB (io_uring, which touches the whole 8 MiB pool over time) per
/// connection and end at their peak (`scripts/mem-per-conn.sh`). 128 KiB receives cut the
/// relay's CPU per GiB by about 18 % against 16 KiB ones (PERFORMANCE.md, "Data path CPU per
/// GiB") but cost 160-370 KiB per streaming connection: the memory bound won (PERFORMANCE.md,
/// "Memory per streaming connection"). Must stay at most `HIGH_WATER` (see `PUMP_BUFFER`).
/// Pages are touched only as buffers get used. A buffer is lent only from a receive's
/// completion until the same loop turn recycles it, so the count bounds the receives completed
/// per turn, not the connections. Public so that the `plain_forward` benchmark example runs the
/// same pool.
pub const RECV_BUFFERS: u16 = 512;
/// The size of each receive buffer in the pool (see [`RECV_BUFFERS`]).
pub const RECV_BUFFER_SIZE: u32 = 16 * 1024;

// A receive larger than the pumps' high-water mark would overflow a pump buffer.
const _: () = assert!(RECV_BUFFER_SIZE as usize <= super::conn::HIGH_WATER);

/// Readiness events taken per `epoll_wait` by the epoll backend.
const EPOLL_EVENTS: u32 = 1024;

/// The environment variable that forces an io backend: `uring` or `epoll`. Unset, empty or
/// `auto` means io_uring when it works, else epoll.
pub const BACKEND_ENV: &str = "SPIPERELAY_BACKEND";

/// Why `spiperelay -e|-d` stopped with an error: at startup (exit status 1 at the shell, the
/// message on the caller's standard error) or later, while running. `Display` gives the
/// one-line message printed after `<program>: `.
#[derive(Debug)]
pub enum DaemonError {
    /// Startup failed; nothing was left behind.
    Startup(StartupError),
    /// The running daemon had to stop.
    Run(RunError),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Startup(e) => e.fmt(f),
            Self::Run(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DaemonError {}

impl From<StartupError> for DaemonError {
    fn from(e: StartupError) -> Self {
        Self::Startup(e)
    }
}

impl From<RunError> for DaemonError {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

/// Why the daemon could not start. Each variant is one cause.
#[derive(Debug)]
pub enum StartupError {
    /// A `-k` key could not be read (the rules of [`keyfile`]).
    Key(KeyFileError),
    /// An address could not be resolved.
    Resolve {
        /// The address as written.
        addr: String,
        /// The lookup error.
        error: std::io::Error,
    },
    /// An address resolved to nothing.
    NoAddress(String),
    /// The TCP listening socket could not be set up.
    Listen {
        /// The address as written.
        addr: String,
        /// What failed.
        error: sys::SysError,
    },
    /// The Unix listening socket could not be set up: the path is in use by another process
    /// or by something that is not a socket, or binding failed.
    ListenUnix {
        /// The path as written.
        addr: String,
        /// What failed.
        error: UnixListenError,
    },
    /// [`BACKEND_ENV`] names no backend.
    BadBackend(String),
    /// io_uring is not usable here, and it was asked for with [`BACKEND_ENV`].
    Uring(SetupError),
    /// The epoll backend could not start.
    Epoll(EpollError),
    /// Detaching from the terminal failed.
    Daemonize(Errno),
    /// The pidfile could not be written.
    Pidfile {
        /// Its path.
        path: PathBuf,
        /// The write error.
        error: std::io::Error,
    },
    /// Installing signal handlers failed.
    Signals(Errno),
    /// A `-u` user or group does not exist.
    User {
        /// The `-u` argument.
        user: String,
        /// What the lookup found.
        error: user::LookupError,
    },
    /// Switching to the `-u` user or group failed.
    Privileges {
        /// The `-u` argument.
        user: String,
        /// The step that failed.
        error: user::PrivilegeError,
    },
    /// The relay could not start on its listener.
    Relay(RelayError),
    /// A pipe's keys break its `max_keys` bound.
    KeyRing(KeyRingError),
    /// The control socket could not be set up.
    Control(ControlError),
    /// A Unix socket's `socket_owner` or `socket_group` does not exist.
    SocketAccount {
        /// The name or number as written.
        name: String,
        /// What the lookup found.
        error: user::LookupError,
    },
    /// A Unix socket file could not be given its owner, group or mode.
    SocketFile {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The metrics socket could not be set up.
    Metrics(MetricsError),
    /// The audit log could not be opened.
    Audit(AuditError),
    /// An event loop could not start carrying a pipe.
    Loop(String),
    /// Something above, about one pipe of a configuration file.
    Pipe {
        /// The pipe's name.
        pipe: String,
        /// What failed.
        error: Box<StartupError>,
    },
    /// A `--threads` event-loop thread could not be started.
    Thread(std::io::Error),
    /// The listening socket could not be duplicated for a `--threads` event loop.
    DupListener(std::io::Error),
    /// A `--threads` event-loop thread ended before saying whether its relay started (it
    /// panicked).
    LoopVanished,
    /// The sockets passed by systemd (socket activation) cannot be used.
    Activation(ActivationError),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(e) => e.fmt(f),
            Self::Resolve { addr, error } => write!(f, "error resolving socket {addr}: {error}"),
            Self::NoAddress(addr) => write!(f, "no addresses found for {addr}"),
            Self::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            Self::ListenUnix { addr, error } => match error {
                UnixListenError::Sys(e) => write!(f, "cannot listen on {addr}: {e}"),
                other => other.fmt(f),
            },
            Self::BadBackend(v) => {
                write!(f, "{BACKEND_ENV} must be auto, uring or epoll, not {v:?}")
            }
            Self::Uring(e) => e.fmt(f),
            Self::Epoll(e) => e.fmt(f),
            Self::Daemonize(e) => write!(f, "failed to daemonize: {e}"),
            Self::Pidfile { path, error } => {
                write!(f, "cannot write pidfile {}: {error}", path.display())
            }
            Self::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Self::User { user, error } => write!(f, "-u {user}: {error}"),
            Self::Privileges { user, error } => {
                write!(f, "cannot switch to -u {user}: {error}")
            }
            Self::Relay(e) => e.fmt(f),
            Self::KeyRing(e) => e.fmt(f),
            Self::Control(e) => e.fmt(f),
            Self::SocketAccount { name, error } => {
                write!(f, "socket_owner/socket_group {name}: {error}")
            }
            Self::SocketFile { path, error } => write!(
                f,
                "cannot set the owner, group or mode of {}: {error}",
                path.display()
            ),
            Self::Metrics(e) => e.fmt(f),
            Self::Audit(e) => e.fmt(f),
            Self::Loop(e) => e.fmt(f),
            Self::Pipe { pipe, error } => write!(f, "pipe {pipe}: {error}"),
            Self::Thread(e) => write!(f, "cannot start an event-loop thread: {e}"),
            Self::DupListener(e) => {
                write!(f, "cannot share the listening socket between threads: {e}")
            }
            Self::LoopVanished => {
                f.write_str("an event-loop thread ended unexpectedly while starting")
            }
            Self::Activation(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartupError {}

/// Why a running daemon had to stop.
#[derive(Debug)]
pub enum RunError {
    /// Waiting for io completions failed (the kernel rejected the wait itself).
    Wait(WaitError),
    /// A `--threads` event-loop thread ended without a result (it panicked).
    LoopVanished,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wait(e) => write!(f, "error running event loop: {e}"),
            Self::LoopVanished => f.write_str("an event-loop thread ended unexpectedly"),
        }
    }
}

impl std::error::Error for RunError {}

/// Resolves a socket address the way spiped's `sock_resolve` does: a Unix path as is, an IP
/// literal as is, `host:port` through the system resolver (numeric ports).
///
/// # Errors
/// [`StartupError::Resolve`] for a failed lookup or a port that is not a number 1–65535,
/// [`StartupError::NoAddress`] when the lookup returns nothing.
pub fn resolve(spec: &SockAddrSpec) -> Result<Vec<SockAddr>, StartupError> {
    match spec {
        SockAddrSpec::Unix(path) => {
            SockAddr::unix(path)
                .map(|a| vec![a])
                .map_err(|error| StartupError::Resolve {
                    addr: spec.to_string(),
                    error,
                })
        }
        SockAddrSpec::Inet(a) => Ok(vec![SockAddr::from(*a)]),
        SockAddrSpec::Host { host, port } => {
            let port: u16 = match port.parse() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(StartupError::Resolve {
                        addr: spec.to_string(),
                        error: std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("invalid port number: {port}"),
                        ),
                    });
                }
            };
            lookup_host(spec, host, port)
        }
    }
}

/// `host` and `port` through the system resolver; errors name `spec`.
fn lookup_host(spec: &SockAddrSpec, host: &str, port: u16) -> Result<Vec<SockAddr>, StartupError> {
    let addrs: Vec<SockAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|error| StartupError::Resolve {
            addr: spec.to_string(),
            error,
        })?
        .map(SockAddr::from)
        .collect();
    if addrs.is_empty() {
        return Err(StartupError::NoAddress(spec.to_string()));
    }
    Ok(addrs)
}

/// A bound Unix socket path, removed again when the daemon exits or fails to start (or its
/// pipe is removed).
#[derive(Debug)]
pub struct UnixPathGuard(Option<PathBuf>);

impl UnixPathGuard {
    /// A guard that removes nothing (a TCP socket, or one systemd owns).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds the listening socket for `addr` (`spec` as written, for messages). A Unix path held
/// by a stale socket is taken over ([`sys::listen_unix_reclaiming`]); the removal is logged to
/// `log`.
///
/// # Errors
/// [`StartupError::ListenUnix`], [`StartupError::Listen`], or [`StartupError::NoAddress`] for
/// an address that is neither.
pub fn bind(
    spec: &SockAddrSpec,
    addr: &SockAddr,
    access: SocketAccess,
    log: &mut Logger,
) -> Result<(OwnedFd, UnixPathGuard), StartupError> {
    if let Some(path) = addr.as_pathname() {
        let (fd, reclaimed) = sys::listen_unix_reclaiming(path, access).map_err(|error| {
            StartupError::ListenUnix {
                addr: spec.to_string(),
                error,
            }
        })?;
        if reclaimed == Reclaimed::StaleSocket {
            log.always(format_args!(
                "removed stale socket {} (nothing was listening on it)",
                path.display()
            ));
        }
        return Ok((fd, UnixPathGuard(Some(path.to_path_buf()))));
    }
    match addr.as_socket() {
        Some(sa) => {
            let fd = sys::listen_tcp(sa).map_err(|error| StartupError::Listen {
                addr: spec.to_string(),
                error,
            })?;
            Ok((fd, UnixPathGuard(None)))
        }
        None => Err(StartupError::NoAddress(spec.to_string())),
    }
}

/// Resolves a `-b` address: as [`resolve`], except that `host:0` is allowed (bind to that
/// address with a port chosen by the kernel for each connection).
///
/// # Errors
/// As [`resolve`].
pub fn resolve_bind(spec: &SockAddrSpec) -> Result<Vec<SockAddr>, StartupError> {
    match spec {
        SockAddrSpec::Host { host, port } if port == "0" => lookup_host(spec, host, 0),
        _ => resolve(spec),
    }
}

/// The first of `addrs`, or [`StartupError::NoAddress`] naming `spec`.
pub fn first_address(spec: &SockAddrSpec, addrs: Vec<SockAddr>) -> Result<SockAddr, StartupError> {
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| StartupError::NoAddress(spec.to_string()))
}

/// The uid and gid a `-u` argument names: `user` gives the user and its primary group,
/// `:group` only the group, `user:group` both. Names are looked up, with numeric ids as a
/// fallback (spec §3.1).
///
/// # Errors
/// [`StartupError::User`] when a name is unknown and not a number.
pub fn lookup_ids(ug: &UserGroup) -> Result<(Option<u32>, Option<u32>), StartupError> {
    let err = |error| StartupError::User {
        user: ug.to_string(),
        error,
    };
    match ug {
        UserGroup::User(user) => {
            let (uid, gid) = user::lookup_user(user).map_err(err)?;
            Ok((Some(uid), gid))
        }
        UserGroup::Group(group) => Ok((None, Some(user::lookup_group(group).map_err(err)?))),
        UserGroup::UserAndGroup { user, group } => {
            let (uid, _) = user::lookup_user(user).map_err(err)?;
            let gid = user::lookup_group(group).map_err(err)?;
            Ok((Some(uid), Some(gid)))
        }
    }
}

/// The logger of a daemonised process: syslog with `--syslog` (if `/dev/log` accepts), else
/// nothing (standard error is `/dev/null` by then).
pub fn daemon_logger(program: &str, syslog: bool) -> Logger {
    let sink = if syslog {
        Logger::syslog_sink().unwrap_or(Sink::Discard)
    } else {
        Sink::Discard
    };
    Logger::new(program, sink)
}

/// The backend forced by [`BACKEND_ENV`]'s `value`: `None` for automatic choice.
///
/// # Errors
/// [`StartupError::BadBackend`] for a value other than `auto`, `uring` or `epoll` (or empty).
pub fn forced_backend(value: Option<&OsStr>) -> Result<Option<Backend>, StartupError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    if text.is_empty() || text.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match Backend::parse(&text) {
        Some(b) => Ok(Some(b)),
        None => Err(StartupError::BadBackend(text.into_owned())),
    }
}

/// Picks the backend: a forced one as asked (forcing io_uring where `probe` fails is an
/// error), otherwise io_uring if `probe` passes and epoll if not. Returns the backend and, for
/// an automatic fallback to epoll, why io_uring was not used.
///
/// # Errors
/// [`StartupError::Uring`] when io_uring is forced and `probe` fails.
pub fn select_backend(
    forced: Option<Backend>,
    probe: impl FnOnce() -> Result<(), SetupError>,
) -> Result<(Backend, Option<SetupError>), StartupError> {
    match forced {
        Some(Backend::Epoll) => Ok((Backend::Epoll, None)),
        Some(Backend::Uring) => probe()
            .map(|()| (Backend::Uring, None))
            .map_err(StartupError::Uring),
        None => match probe() {
            Ok(()) => Ok((Backend::Uring, None)),
            Err(e) => Ok((Backend::Epoll, Some(e))),
        },
    }
}

/// The line logged when io_uring is unusable and epoll is used instead.
pub fn fallback_message(why: &SetupError) -> String {
    format!("{why}; using the epoll backend instead (set {BACKEND_ENV}=epoll to skip io_uring)")
}

/// [`select_backend`] with the real probe, logging the fallback on standard error.
///
/// # Errors
/// As [`select_backend`].
pub fn pick_backend(program: &str, forced: Option<Backend>) -> Result<Backend, StartupError> {
    let (backend, why) = select_backend(forced, uring::probe)?;
    if let Some(why) = why {
        Logger::new(program, Sink::Stderr).always(format_args!("{}", fallback_message(&why)));
    }
    Ok(backend)
}

/// Creates the chosen backend's driver. If io_uring was chosen automatically and its full-size
/// ring cannot be set up, falls back to epoll, logging why to `log`.
///
/// # Errors
/// [`StartupError::Uring`] (io_uring forced) or [`StartupError::Epoll`].
pub fn new_driver(
    log: &mut Logger,
    backend: Backend,
    forced: Option<Backend>,
) -> Result<AnyDriver, StartupError> {
    if backend == Backend::Uring {
        match Uring::new(UringConfig {
            entries: 4096,
            recv_buffers: RECV_BUFFERS,
            recv_buffer_size: RECV_BUFFER_SIZE,
        }) {
            Ok(ring) => return Ok(AnyDriver::Uring(ring)),
            Err(e) if forced.is_some() => return Err(StartupError::Uring(e)),
            Err(e) => log.always(format_args!("{}", fallback_message(&e))),
        }
    }
    Epoll::new(EpollConfig {
        recv_buffers: RECV_BUFFERS,
        recv_buffer_size: RECV_BUFFER_SIZE,
        max_events: EPOLL_EVENTS,
    })
    .map(AnyDriver::Epoll)
    .map_err(StartupError::Epoll)
}

/// Writes the process id to `path`.
///
/// # Errors
/// [`StartupError::Pidfile`].
pub fn write_pidfile(path: &Path) -> Result<(), StartupError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
        StartupError::Pidfile {
            path: path.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod backend_tests {
    use super::*;

    #[test]
    fn backend_variable_values() {
        assert_eq!(forced_backend(None).ok(), Some(None));
        for auto in ["", "auto", "AUTO"] {
            assert_eq!(forced_backend(Some(OsStr::new(auto))).ok(), Some(None));
        }
        assert_eq!(
            forced_backend(Some(OsStr::new("epoll"))).ok(),
            Some(Some(Backend::Epoll))
        );
        assert_eq!(
            forced_backend(Some(OsStr::new("io_uring"))).ok(),
            Some(Some(Backend::Uring))
        );
        match forced_backend(Some(OsStr::new("kqueue"))) {
            Err(e @ StartupError::BadBackend(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(BACKEND_ENV) && msg.contains("kqueue"), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn automatic_choice_falls_back_to_epoll_with_the_reason() {
        let (b, why) = select_backend(None, || Ok(())).expect("select");
        assert_eq!((b, why), (Backend::Uring, None));
        let (b, why) = select_backend(None, || Err(SetupError::Blocked)).expect("select");
        assert_eq!((b, why), (Backend::Epoll, Some(SetupError::Blocked)));
        let msg = fallback_message(&SetupError::Blocked);
        assert!(
            msg.contains("seccomp") && msg.contains("using the epoll backend"),
            "{msg}"
        );
    }

    #[test]
    fn forced_choice_is_obeyed() {
        let never = || -> Result<(), SetupError> { panic!("epoll must not probe io_uring") };
        let (b, why) = select_backend(Some(Backend::Epoll), never).expect("select");
        assert_eq!((b, why), (Backend::Epoll, None));
        let (b, _) = select_backend(Some(Backend::Uring), || Ok(())).expect("select");
        assert_eq!(b, Backend::Uring);
        match select_backend(Some(Backend::Uring), || Err(SetupError::NotImplemented)) {
            Err(StartupError::Uring(SetupError::NotImplemented)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
