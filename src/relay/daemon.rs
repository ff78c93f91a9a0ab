//! `spiperelay -e|-d`: from parsed arguments to a running relay (spec §3–§4).
//!
//! Startup order, so that every startup error is reported before anything is left behind:
//! read the keys (warning about weak or exposed key files); look up the `-u` user and group;
//! resolve `-s`, `-t` and `-b` (with `-D`, after daemonising, retrying every second); pick the
//! io backend; bind the listener (taking over a stale Unix socket left by a relay that died, and
//! refusing a path another process listens on or that is not a socket:
//! [`sys::listen_unix_reclaiming`]); then (unless `-F`) daemonise and write the pidfile;
//! drop privileges (`-u`); and only then let the waiting parent exit 0 and switch the log to
//! syslog (`--syslog`) or nowhere. An error up to that point is printed to the caller's
//! standard error and the parent exits 1 (spec §3.1, §4).
//!
//! Errors: [`StartupError`] for everything up to the running event loop, [`RunError`] for what
//! stops a running daemon, both under [`DaemonError`]. Keys are read by
//! [`keyfile::read_startup_keys`], with the same rules as a reload or a rotation.
//!
//! Backend: io_uring when it works, otherwise epoll, with one line on standard error naming
//! why io_uring is unusable. [`BACKEND_ENV`] forces either one.
//!
//! Signals: the first `SIGTERM` stops accepting and lets open connections finish, then the
//! process exits 0; a second `SIGTERM`, or `SIGINT`, exits at once. `SIGPIPE` is ignored.
//! `SIGHUP` reloads the key files, and `--control` serves key rotation ([`super::control`]).
//!
//! Threads (`--threads N`): the main thread runs one event loop ([`event_loop`]) with its own
//! driver and [`Relay`]; with `N > 1`, `N - 1` more threads each run the same loop with their
//! own driver and relay, all accepting on duplicates of the one listening socket (TCP or Unix).
//! `-n` stays exact for the process: each loop gets its share ([`connection_shares`]) and stops
//! accepting at it, so the others take new clients, and the kernel backlog holds them while all
//! are full. Only the main thread reloads keys and re-resolves `-r` targets: every relay shares
//! the one key ring, and new targets are published to every loop through [`Shared`]. Signals
//! go to the main thread (the others block them) but are counted process-wide, so every loop
//! drains on the first `SIGTERM` and exits on `SIGINT` or a second `SIGTERM`; the process
//! exits after joining them all.

use std::ffi::OsStr;
use std::fmt;
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::cli::{SockAddrSpec, SpipedArgs, UserGroup};
use crate::io::any::{AnyDriver, Backend};
use crate::io::epoll::{Epoll, EpollConfig, EpollError};
use crate::io::sys::{self, Reclaimed, SocketAccess, UnixListenError};
use crate::io::uring::{self, SetupError, Uring, UringConfig};
use crate::io::{Errno, SockAddr, WaitError};
use crate::os::activation::{ActivationError, Inherited};
use crate::os::notify::{self, Notifier};
use crate::os::{limits, process, signals, user};

use super::control::{Rotation, RotationError};
use super::engine::{PipeConfig, Relay, RelayError};
use super::keyfile::{self, KeyFileError};
use super::log::{Logger, Sink};
use super::metrics::{Board, LoopSnapshot, PipeDescription, PipeSample, ProcessInfo};

/// How long the event loop sleeps at most between checks of signals and re-resolution.
const TICK: Duration = Duration::from_millis(250);

/// The name of the command line's one pipe in `spiperelay status` and the metrics.
const PIPE_NAME: &str = "default";

/// How long to wait before re-arming an accept that failed with `EMFILE`/`ENFILE`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// With `-D`, how often a failed lookup is retried.
const DNS_RETRY: Duration = Duration::from_secs(1);

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
    /// Key rotation (`--max-keys`, `--control`) could not be set up.
    Rotation(RotationError),
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
            Self::Rotation(e) => e.fmt(f),
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

/// The address as the user wrote it, for messages.
fn spec_text(spec: &SockAddrSpec) -> String {
    match spec {
        SockAddrSpec::Unix(p) => p.display().to_string(),
        SockAddrSpec::Inet(a) => match a {
            std::net::SocketAddr::V4(v4) => format!("[{}]:{}", v4.ip(), v4.port()),
            std::net::SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
        },
        SockAddrSpec::Host { host, port } => format!("{host}:{port}"),
    }
}

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
                    addr: spec_text(spec),
                    error,
                })
        }
        SockAddrSpec::Inet(a) => Ok(vec![SockAddr::from(*a)]),
        SockAddrSpec::Host { host, port } => {
            let port: u16 = match port.parse() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(StartupError::Resolve {
                        addr: spec_text(spec),
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
            addr: spec_text(spec),
            error,
        })?
        .map(SockAddr::from)
        .collect();
    if addrs.is_empty() {
        return Err(StartupError::NoAddress(spec_text(spec)));
    }
    Ok(addrs)
}

/// A bound Unix socket path, removed again when the daemon exits or fails to start.
struct UnixPathGuard(Option<PathBuf>);

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
fn bind(
    spec: &SockAddrSpec,
    addr: &SockAddr,
    log: &mut Logger,
) -> Result<(OwnedFd, UnixPathGuard), StartupError> {
    if let Some(path) = addr.as_pathname() {
        let (fd, reclaimed) =
            sys::listen_unix_reclaiming(path, SocketAccess::Umask).map_err(|error| {
                StartupError::ListenUnix {
                    addr: spec_text(spec),
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
                addr: spec_text(spec),
                error,
            })?;
            Ok((fd, UnixPathGuard(None)))
        }
        None => Err(StartupError::NoAddress(spec_text(spec))),
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
        .ok_or_else(|| StartupError::NoAddress(spec_text(spec)))
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
fn daemon_logger(program: &str, syslog: bool) -> Logger {
    let sink = if syslog {
        Logger::syslog_sink().unwrap_or(Sink::Discard)
    } else {
        Sink::Discard
    };
    Logger::new(program, sink)
}

fn resolve_retrying(spec: &SockAddrSpec, retry: bool) -> Result<Vec<SockAddr>, StartupError> {
    loop {
        match resolve(spec) {
            Ok(a) => return Ok(a),
            Err(StartupError::Resolve { .. } | StartupError::NoAddress(_)) if retry => {
                std::thread::sleep(DNS_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
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
fn pick_backend(program: &str, forced: Option<Backend>) -> Result<Backend, StartupError> {
    let (backend, why) = select_backend(forced, uring::probe)?;
    if let Some(why) = why {
        Logger::new(program, Sink::Stderr).always(format_args!("{}", fallback_message(&why)));
    }
    Ok(backend)
}

/// Creates the chosen backend's driver. If io_uring was chosen automatically and its full-size
/// ring cannot be set up, falls back to epoll, logging why to `log`.
fn new_driver(
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

fn write_pidfile(path: &Path) -> Result<(), StartupError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
        StartupError::Pidfile {
            path: path.to_path_buf(),
            error,
        }
    })
}

/// Runs `spiperelay -e|-d` with `args` until a signal ends it. `program` prefixes log lines.
///
/// Returns `Ok(())` after a graceful shutdown (`SIGTERM`, or `SIGINT`).
///
/// # Errors
/// A [`DaemonError`] naming what failed, at startup or (rarely) in the event loop.
pub fn run(program: &str, args: &SpipedArgs) -> Result<(), DaemonError> {
    // systemd: sockets passed in (taken while single-threaded, before any fork) and the
    // notification socket (src/os).
    let inherited = Inherited::take()
        .and_then(Inherited::take_single)
        .map_err(StartupError::Activation)?;
    let notifier = Notifier::from_env(Instant::now());
    let (keys, warnings) = keyfile::read_startup_keys(&args.keys).map_err(StartupError::Key)?;
    let mut log = Logger::new(program, Sink::Stderr);
    for w in &warnings {
        log.always(format_args!("{w}"));
    }
    let mut rotation = Rotation::setup(args, &keys).map_err(StartupError::Rotation)?;
    if let Some(path) = rotation.replaced_stale_socket() {
        log.always(format_args!(
            "removed stale control socket {} (nothing was listening on it)",
            path.display()
        ));
    }
    let forced = forced_backend(std::env::var_os(BACKEND_ENV).as_deref())?;
    let mut backend = None;
    // Looked up before anything else happens, so a bad -u is an error at the shell (exit 1).
    let ids = args.user.as_ref().map(lookup_ids).transpose()?;
    let mut detached = None;
    if args.wait_for_dns && !args.foreground {
        backend = Some(pick_backend(program, forced)?);
        let d = process::daemonize().map_err(StartupError::Daemonize)?;
        write_pidfile(&args.pidfile)?;
        // -D: the parent returns as soon as the pidfile exists (spec §3.1); later errors go
        // to syslog (--syslog) or nowhere, as in spiped.
        d.ready().map_err(StartupError::Daemonize)?;
        log = daemon_logger(program, args.syslog);
    }
    let sources = resolve_retrying(&args.source, args.wait_for_dns)?;
    let targets = resolve_retrying(&args.target, args.wait_for_dns)?;
    let bind_from = match &args.bind {
        Some(spec) => Some(first_address(spec, resolve_bind(spec)?)?),
        None => None,
    };
    if sources.len() > 1 {
        log.always(format_args!(
            "Listening on first of multiple addresses found for {}",
            spec_text(&args.source)
        ));
    }
    let backend = match backend {
        Some(b) => b,
        None => pick_backend(program, forced)?,
    };
    let (listener, _unix_path) = match inherited {
        // systemd's socket: used as is, never unlinked (no path guard).
        Some(s) => {
            log.always(format_args!(
                "using the listening socket {} passed by systemd ({}) for {}",
                s.name,
                s.local,
                spec_text(&args.source)
            ));
            (s.fd, UnixPathGuard(None))
        }
        None => bind(&args.source, &sources[0], &mut log)?,
    };
    if !args.foreground && !args.wait_for_dns {
        // Until `ready`, the parent waits and our stderr is still the caller's: an error from
        // here on is printed by the binary and makes the parent exit 1.
        detached = Some(process::daemonize().map_err(StartupError::Daemonize)?);
        write_pidfile(&args.pidfile)?;
    }
    if let Some((uid, gid)) = ids {
        // After bind and daemonise (spec §3.1, §4).
        match user::drop_privileges(uid, gid) {
            Ok(None) => {}
            Ok(Some(e)) => log.always(format_args!(
                "warning: cannot drop supplementary groups: {e}"
            )),
            Err(error) => {
                return Err(StartupError::Privileges {
                    user: args
                        .user
                        .as_ref()
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    error,
                }
                .into());
            }
        }
    }
    if let Some(d) = detached {
        d.ready().map_err(StartupError::Daemonize)?;
        log = daemon_logger(program, args.syslog);
    }
    let signals = signals::install_signal_handlers().map_err(StartupError::Signals)?;
    // Two descriptors per connection: the default soft limit of 1024 is too low for -n 1000.
    let _ = limits::raise_nofile_limit();

    let shares = connection_shares(args.max_connections, args.threads);
    let handshake_share = handshake_share(args.handshake_limit, shares.len());
    let cfg = PipeConfig {
        name: PIPE_NAME.into(),
        mode: args.mode,
        targets,
        keys: rotation.ring(),
        exchange: args.pfs.exchange(args.x25519),
        max_connections: shares[0],
        handshake_limit: handshake_share,
        timeout: args.timeout,
        keepalive: !args.no_keepalive,
        accept_backoff: ACCEPT_BACKOFF,
        bind: bind_from,
        source_tcp: args.source_tcp,
        target_tcp: args.target_tcp,
    };
    // The other loops' listeners, duplicated before the main relay adopts the socket.
    let mut extra = Vec::with_capacity(shares.len() - 1);
    for share in &shares[1..] {
        let fd = listener.try_clone().map_err(StartupError::DupListener)?;
        let cfg = PipeConfig {
            max_connections: *share,
            ..cfg.clone()
        };
        extra.push((fd, cfg, log.sibling()));
    }
    let io = new_driver(&mut log, backend, forced)?;
    let mut relay = Relay::new(io, listener, cfg, log).map_err(StartupError::Relay)?;
    // The status report (`spiperelay status`): the command line's one pipe, its open
    // connections and its keys, published by every loop.
    let board = Board::new(ProcessInfo::new(match backend {
        Backend::Uring => "io_uring",
        Backend::Epoll => "epoll",
    }));
    board.describe_pipes(vec![PipeDescription {
        name: PIPE_NAME.into(),
        listen: vec![spec_text(&args.source)],
        target: spec_text(&args.target),
    }]);
    rotation.set_board(Arc::clone(&board));
    let shared = Shared {
        drain_limit: args.shutdown_timeout,
        report: Some((
            board,
            PipeSample {
                name: PIPE_NAME.into(),
                mode: args.mode,
                active: 0,
                counters: None,
                keys: Some(rotation.ring()),
            },
        )),
        ..Shared::default()
    };
    let duties = Duties {
        notify: notifier,
        rotation: &mut rotation,
        target: &args.target,
        reresolve: match (&args.target, args.resolve_interval) {
            (SockAddrSpec::Host { .. }, Some(every)) => Some(every),
            _ => None,
        },
    };
    if extra.is_empty() {
        duties.rotation.start().map_err(StartupError::Rotation)?;
        return event_loop(&mut relay, signals, &shared, Some(duties)).map_err(DaemonError::from);
    }
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(extra.len());
        let mut started = Ok(());
        for (i, (fd, cfg, log)) in extra.into_iter().enumerate() {
            let (ready, shared) = (ready_tx.clone(), &shared);
            let spawned = std::thread::Builder::new()
                .name(format!("relay-loop{}", i + 1))
                .spawn_scoped(scope, move || {
                    worker(backend, forced, fd, cfg, log, signals, shared, &ready)
                });
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    started = Err(StartupError::Thread(e));
                    break;
                }
            }
        }
        drop(ready_tx);
        // Every loop reports once whether its relay started; a closed channel means a thread
        // ended before saying so.
        for _ in 0..workers.len() {
            if started.is_err() {
                break;
            }
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => started = Err(e),
                Err(_) => started = Err(StartupError::LoopVanished),
            }
        }
        let mut result = started
            .and_then(|()| duties.rotation.start().map_err(StartupError::Rotation))
            .map_err(DaemonError::from)
            .and_then(|()| {
                event_loop(&mut relay, signals, &shared, Some(duties)).map_err(DaemonError::from)
            });
        // Whatever ended the main loop, the others stop too unless they are draining.
        if result.is_err() || signals.int.load(Relaxed) > 0 {
            shared.failed.store(true, Relaxed);
        }
        for handle in workers {
            let r = handle.join().unwrap_or(Err(RunError::LoopVanished));
            if result.is_ok() {
                result = r.map_err(DaemonError::from);
            }
        }
        result
    })
}

/// The handshake limit of each of `loops` event loops: `limit` divided among them, rounded
/// up (so each loop admits at least one connection in the handshake). `None` stays `None`.
pub fn handshake_share(limit: Option<usize>, loops: usize) -> Option<usize> {
    limit.map(|n| n.div_ceil(loops.max(1)).max(1))
}

/// The `-n` share of each of `threads` event loops, one entry per loop to run: `floor(n/N)`
/// each and one more for the first `n % N`; with `n < N` only `n` loops (one each). `None` (no
/// limit) gives `threads` unlimited loops. `threads` of 0 counts as 1.
pub fn connection_shares(limit: Option<usize>, threads: usize) -> Vec<Option<usize>> {
    let threads = threads.max(1);
    match limit {
        None => vec![None; threads],
        Some(n) => {
            let loops = threads.min(n).max(1);
            (0..loops)
                .map(|i| Some(n / loops + usize::from(i < n % loops)))
                .collect()
        }
    }
}

/// What the event loops share.
#[derive(Default)]
struct Shared {
    /// Bumped each time [`Shared::targets`] gets a new list.
    generation: AtomicU64,
    /// The latest re-resolved target addresses (`-r`), published by the main thread.
    targets: Mutex<Vec<SockAddr>>,
    /// Set when a loop failed or `SIGINT` ended the main one: every loop exits at once.
    failed: AtomicBool,
    /// `--shutdown-timeout`: how long each loop drains after `SIGTERM` before it closes the
    /// connections left; `None` waits for them all.
    drain_limit: Option<Duration>,
    /// Where each loop publishes its status ([`super::metrics`]), and the pipe it serves.
    report: Option<(Arc<Board>, PipeSample)>,
}

impl Shared {
    fn publish(&self, addrs: Vec<SockAddr>) {
        *self.targets.lock().unwrap_or_else(PoisonError::into_inner) = addrs;
        self.generation.fetch_add(1, Release);
    }

    fn targets(&self) -> Vec<SockAddr> {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The main thread's work besides its own connections: key rotation and `-r` re-resolution.
struct Duties<'a> {
    /// systemd's readiness, reload, stop and watchdog messages.
    notify: Notifier,
    rotation: &'a mut Rotation,
    target: &'a SockAddrSpec,
    reresolve: Option<Duration>,
}

/// A `--threads` event loop besides the main one: builds its own driver and relay on
/// `listener` (a duplicate of the listening socket), reports on `ready` whether that worked,
/// then serves until a signal or a failed loop ends it.
#[allow(clippy::too_many_arguments)]
fn worker(
    backend: Backend,
    forced: Option<Backend>,
    listener: OwnedFd,
    cfg: PipeConfig,
    mut log: Logger,
    signals: &signals::SignalCounts,
    shared: &Shared,
    ready: &mpsc::Sender<Result<(), StartupError>>,
) -> Result<(), RunError> {
    // Signals go to the main thread, whose wait they interrupt; the counts are process-wide.
    let _ = signals::block_daemon_signals_in_thread();
    let relay = new_driver(&mut log, backend, forced)
        .and_then(|io| Relay::new(io, listener, cfg, log).map_err(StartupError::Relay));
    let mut relay = match relay {
        Ok(r) => {
            let _ = ready.send(Ok(()));
            r
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    let r = event_loop(&mut relay, signals, shared, None);
    if r.is_err() {
        shared.failed.store(true, Relaxed);
    }
    r
}

/// One event loop: turns `relay` until `SIGINT`, a second `SIGTERM`, the end of a `SIGTERM`
/// drain, or another loop's failure. With `duties` (the main thread), also reloads keys on
/// `SIGHUP`, logs control-socket changes and re-resolves the target every `-r` interval,
/// publishing the addresses to every loop through `shared`.
///
/// # Errors
/// [`RunError::Wait`] when the driver fails.
fn event_loop(
    relay: &mut Relay<AnyDriver>,
    signals: &signals::SignalCounts,
    shared: &Shared,
    mut duties: Option<Duties<'_>>,
) -> Result<(), RunError> {
    let mut next_resolve = duties
        .as_ref()
        .and_then(|d| d.reresolve)
        .map(|every| Instant::now() + every);
    let mut terms_seen = 0;
    let mut generation = 0;
    let mut drain_started = None;
    let mut publisher = shared.report.as_ref().map(|(board, _)| board.publisher());
    if let Some(d) = duties.as_mut() {
        // Listening, keys loaded, every loop started: READY=1.
        notify_sent(relay, d.notify.ready(&notify::status_text(1, 0)));
    }
    loop {
        relay.turn(TICK).map_err(RunError::Wait)?;
        if let Some(d) = duties.as_mut() {
            let hups = signals.hup.load(Relaxed);
            if d.rotation.reload_due(hups) {
                notify_sent(relay, d.notify.reloading());
            }
            if let Some(outcome) = d.rotation.tick(hups, relay.log()) {
                if let Some((board, _)) = &shared.report {
                    board.reload_done(outcome.is_ok());
                }
                let outcome = outcome.as_deref().map_err(String::as_str);
                notify_sent(relay, d.notify.reloaded(outcome));
            }
            // Watchdog pings come from this loop: a stuck loop stops them.
            let live = relay.active();
            let sent = d.notify.tick(Instant::now(), || match drain_started {
                Some(_) => format!("stopping: draining {live} connections"),
                None => notify::status_text(1, live),
            });
            notify_sent(relay, sent);
        }
        if let (Some(p), Some((_, pipe))) = (publisher.as_mut(), &shared.report) {
            let now = Instant::now();
            if p.due(now) {
                let pipe = PipeSample {
                    active: relay.active() as u64,
                    ..pipe.clone()
                };
                p.publish(
                    now,
                    LoopSnapshot {
                        pipes: vec![pipe],
                        pools: Vec::new(),
                    },
                );
            }
        }
        if signals.int.load(Relaxed) > 0 || shared.failed.load(Relaxed) {
            return Ok(());
        }
        let terms = signals.term.load(Relaxed);
        if terms > terms_seen {
            if let Some(d) = duties.as_mut().filter(|_| terms_seen == 0) {
                let status = format!("stopping: draining {} connections", relay.active());
                notify_sent(relay, d.notify.stopping(&status));
            }
            if terms_seen > 0 || terms > 1 || relay.active() == 0 {
                return Ok(());
            }
            terms_seen = terms;
            drain_started = Some(Instant::now());
            let open = relay.active();
            let limit = shared
                .drain_limit
                .map(|l| format!(" or in {} s", l.as_secs_f64()))
                .unwrap_or_default();
            relay.log().always(format_args!(
                "SIGTERM: no longer accepting; exiting after the last of {open} open \
                 connections{limit} (send SIGTERM again to exit now)"
            ));
            relay.stop_accepting();
        }
        if terms_seen > 0 && relay.active() == 0 {
            return Ok(());
        }
        if let (Some(start), Some(limit)) = (drain_started, shared.drain_limit)
            && start.elapsed() >= limit
        {
            let cut = relay.active();
            relay.log().always(format_args!(
                "SIGTERM: shutdown timeout of {} s reached; closing the {cut} connections \
                     still open",
                limit.as_secs_f64()
            ));
            return Ok(());
        }
        if let (Some(at), Some(d)) = (next_resolve, duties.as_ref())
            && Instant::now() >= at
        {
            match resolve(d.target) {
                Ok(addrs) => shared.publish(addrs),
                Err(e) => relay
                    .log()
                    .warn(format_args!("{e}; keeping the old addresses")),
            }
            next_resolve = d.reresolve.map(|every| Instant::now() + every);
        }
        let g = shared.generation.load(Acquire);
        if g != generation {
            generation = g;
            relay.set_targets(shared.targets());
        }
    }
}

/// Logs a failed systemd notification (the relay runs on regardless).
fn notify_sent(relay: &mut Relay<AnyDriver>, sent: std::io::Result<()>) {
    if let Err(e) = sent {
        relay
            .log()
            .warn(format_args!("cannot notify systemd (NOTIFY_SOCKET): {e}"));
    }
}

#[cfg(test)]
mod backend_tests {
    use super::*;

    #[test]
    fn handshake_shares_round_up() {
        assert_eq!(handshake_share(None, 4), None);
        assert_eq!(handshake_share(Some(10), 1), Some(10));
        assert_eq!(handshake_share(Some(10), 4), Some(3));
        assert_eq!(handshake_share(Some(1), 4), Some(1));
        assert_eq!(handshake_share(Some(5), 0), Some(5));
    }

    #[test]
    fn connection_shares_are_exact() {
        assert_eq!(connection_shares(None, 1), vec![None]);
        assert_eq!(connection_shares(None, 3), vec![None; 3]);
        assert_eq!(connection_shares(Some(100), 1), vec![Some(100)]);
        assert_eq!(connection_shares(Some(2), 2), vec![Some(1), Some(1)]);
        assert_eq!(
            connection_shares(Some(7), 3),
            vec![Some(3), Some(2), Some(2)]
        );
        assert_eq!(connection_shares(Some(2), 8), vec![Some(1), Some(1)]);
        for n in 1..40 {
            for t in 1..10 {
                let s = connection_shares(Some(n), t);
                assert_eq!(s.len(), t.min(n));
                assert_eq!(s.iter().map(|x| x.unwrap_or(0)).sum::<usize>(), n);
                assert!(s.iter().all(|x| x.unwrap_or(0) >= 1));
            }
        }
    }

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
