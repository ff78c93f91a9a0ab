//! `spiperelay -e|-d`: from parsed arguments to a running relay (spec §3–§4).
//!
//! Startup order, so that every startup error is reported before anything is left behind:
//! read the keys (warning about weak or exposed key files); look up the `-u` user and group;
//! resolve `-s`, `-t` and `-b` (with `-D`, after daemonising, retrying every second); pick the
//! io backend; bind the listener; then (unless `-F`) daemonise and write the pidfile;
//! drop privileges (`-u`); and only then let the waiting parent exit 0 and switch the log to
//! syslog (`--syslog`) or nowhere. An error up to that point is printed to the caller's
//! standard error and the parent exits 1 (spec §3.1, §4).
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
use std::io::Read;
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::cli::{KeySource, SockAddrSpec, SpipedArgs, UserGroup};
use crate::io::any::{AnyDriver, Backend};
use crate::io::epoll::{Epoll, EpollConfig, EpollError};
use crate::io::uring::{self, SetupError, Uring, UringConfig};
use crate::io::{Errno, SockAddr, WaitError, sys};
use crate::proto::key::{Key, KeySet};

use super::control::{Rotation, RotationError};
use super::engine::{Relay, RelayConfig, RelayError};
use super::keyfile::{self, KeyWarning};
use super::log::{Logger, Sink};

/// How long the event loop sleeps at most between checks of signals and re-resolution.
const TICK: Duration = Duration::from_millis(250);

/// How long to wait before re-arming an accept that failed with `EMFILE`/`ENFILE`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// With `-D`, how often a failed lookup is retried.
const DNS_RETRY: Duration = Duration::from_secs(1);

/// Receive buffers in the provided-buffer pool, and their size. The size bounds the memory of
/// a streaming connection: each receive's output joins the pump buffers of
/// `engine::HIGH_WATER`, so with 16 KiB receives a connection streaming both ways holds at
/// most four 24 KiB pump buffers, and an end with 256 such connections measured 19 KiB (epoll)
/// and 41 KiB (io_uring, which touches the whole 8 MiB pool over time) per connection at its
/// peak (`scripts/mem-per-conn.sh`). 128 KiB receives cut the relay's CPU per GiB by about
/// 18 % against 16 KiB ones (PERFORMANCE.md, "Data path CPU per GiB") but cost 160-290 KiB per
/// streaming connection. Pages are touched only as buffers get used. A buffer is lent only
/// from a receive's completion until the same loop turn recycles it, so the count bounds the
/// receives completed per turn, not the connections. Public so that the `plain_forward`
/// benchmark example runs the same pool.
pub const RECV_BUFFERS: u16 = 512;
/// The size of each receive buffer in the pool (see [`RECV_BUFFERS`]).
pub const RECV_BUFFER_SIZE: u32 = 16 * 1024;

/// Readiness events taken per `epoll_wait` by the epoll backend.
const EPOLL_EVENTS: u32 = 1024;

/// The environment variable that forces an io backend: `uring` or `epoll`. Unset, empty or
/// `auto` means io_uring when it works, else epoll.
pub const BACKEND_ENV: &str = "SPIPERELAY_BACKEND";

/// Why the daemon could not start or had to stop. Each variant names its cause; `Display`
/// gives the one-line message printed after `<program>: `.
#[derive(Debug)]
pub enum DaemonError {
    /// An option that this version accepts but does not implement yet.
    NotSupported(&'static str),
    /// A key file could not be read.
    KeyFile {
        /// The path given to `-k`.
        path: PathBuf,
        /// The read error.
        error: std::io::Error,
    },
    /// `-k -`: standard input could not be read.
    KeyStdin(std::io::Error),
    /// An address could not be resolved.
    Resolve {
        /// The address as written.
        addr: String,
        /// The lookup error.
        error: std::io::Error,
    },
    /// An address resolved to nothing.
    NoAddress(String),
    /// The listening socket could not be set up.
    Bind {
        /// The address as written.
        addr: String,
        /// What failed.
        error: sys::SysError,
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
        error: sys::LookupError,
    },
    /// Switching to the `-u` user or group failed.
    Privileges {
        /// The `-u` argument.
        user: String,
        /// The step that failed.
        error: sys::PrivilegeError,
    },
    /// The relay could not start.
    Relay(RelayError),
    /// The event loop failed.
    Wait(WaitError),
    /// Key rotation (`--max-keys`, `--control`) could not be set up.
    Rotation(RotationError),
    /// A `--threads` event-loop thread could not be started.
    Thread(std::io::Error),
    /// The listening socket could not be duplicated for a `--threads` event loop.
    DupListener(std::io::Error),
    /// A `--threads` event-loop thread ended without a result (it panicked).
    LoopVanished,
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported(what) => write!(f, "{what} is not yet supported by spiperelay"),
            Self::KeyFile { path, error } => {
                write!(f, "cannot read key file {}: {error}", path.display())
            }
            Self::KeyStdin(error) => write!(f, "cannot read the key from standard input: {error}"),
            Self::Resolve { addr, error } => write!(f, "error resolving socket {addr}: {error}"),
            Self::NoAddress(addr) => write!(f, "no addresses found for {addr}"),
            Self::Bind { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
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
            Self::Wait(e) => write!(f, "error running event loop: {e}"),
            Self::Rotation(e) => e.fmt(f),
            Self::Thread(e) => write!(f, "cannot start an event-loop thread: {e}"),
            Self::DupListener(e) => {
                write!(f, "cannot share the listening socket between threads: {e}")
            }
            Self::LoopVanished => f.write_str("an event-loop thread ended unexpectedly"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// Reads every `-k` source into a [`KeySet`] (first = primary). `stdin` is read at most once,
/// as the parser guarantees.
///
/// # Errors
/// [`DaemonError::KeyFile`] or [`DaemonError::KeyStdin`] naming the source that failed.
pub fn read_keys(sources: &[KeySource]) -> Result<KeySet, DaemonError> {
    read_keys_with_warnings(sources).map(|(keys, _)| keys)
}

/// As [`read_keys`], and also returns the [`KeyWarning`]s for the key files read (empty,
/// shorter than 32 bytes, readable by group or others), which the caller prints at start.
///
/// # Errors
/// As [`read_keys`].
pub fn read_keys_with_warnings(
    sources: &[KeySource],
) -> Result<(KeySet, Vec<KeyWarning>), DaemonError> {
    let mut keys = Vec::with_capacity(sources.len());
    let mut warnings = Vec::new();
    for source in sources {
        let bytes = zeroize::Zeroizing::new(match source {
            KeySource::File(path) => {
                let bytes = std::fs::read(path).map_err(|error| DaemonError::KeyFile {
                    path: path.clone(),
                    error,
                })?;
                warnings.extend(keyfile::warnings(path, bytes.len()));
                bytes
            }
            KeySource::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(DaemonError::KeyStdin)?;
                buf
            }
        });
        keys.push(Key::from_key_file(&bytes));
    }
    let keys = KeySet::new(keys).ok_or(DaemonError::NotSupported("running without a key"))?;
    Ok((keys, warnings))
}

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
/// [`DaemonError::Resolve`] for a failed lookup or a port that is not a number 1–65535,
/// [`DaemonError::NoAddress`] when the lookup returns nothing.
pub fn resolve(spec: &SockAddrSpec) -> Result<Vec<SockAddr>, DaemonError> {
    match spec {
        SockAddrSpec::Unix(path) => {
            SockAddr::unix(path)
                .map(|a| vec![a])
                .map_err(|error| DaemonError::Resolve {
                    addr: spec_text(spec),
                    error,
                })
        }
        SockAddrSpec::Inet(a) => Ok(vec![SockAddr::from(*a)]),
        SockAddrSpec::Host { host, port } => {
            let port: u16 = match port.parse() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(DaemonError::Resolve {
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
fn lookup_host(spec: &SockAddrSpec, host: &str, port: u16) -> Result<Vec<SockAddr>, DaemonError> {
    let addrs: Vec<SockAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|error| DaemonError::Resolve {
            addr: spec_text(spec),
            error,
        })?
        .map(SockAddr::from)
        .collect();
    if addrs.is_empty() {
        return Err(DaemonError::NoAddress(spec_text(spec)));
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

fn bind(spec: &SockAddrSpec, addr: &SockAddr) -> Result<(OwnedFd, UnixPathGuard), DaemonError> {
    let err = |error| DaemonError::Bind {
        addr: spec_text(spec),
        error,
    };
    if let Some(path) = addr.as_pathname() {
        let fd = sys::listen_unix(path).map_err(err)?;
        return Ok((fd, UnixPathGuard(Some(path.to_path_buf()))));
    }
    match addr.as_socket() {
        Some(sa) => Ok((sys::listen_tcp(sa).map_err(err)?, UnixPathGuard(None))),
        None => Err(DaemonError::NoAddress(spec_text(spec))),
    }
}

/// Resolves a `-b` address: as [`resolve`], except that `host:0` is allowed (bind to that
/// address with a port chosen by the kernel for each connection).
///
/// # Errors
/// As [`resolve`].
pub fn resolve_bind(spec: &SockAddrSpec) -> Result<Vec<SockAddr>, DaemonError> {
    match spec {
        SockAddrSpec::Host { host, port } if port == "0" => lookup_host(spec, host, 0),
        _ => resolve(spec),
    }
}

/// The first of `addrs`, or [`DaemonError::NoAddress`] naming `spec`.
pub fn first_address(spec: &SockAddrSpec, addrs: Vec<SockAddr>) -> Result<SockAddr, DaemonError> {
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| DaemonError::NoAddress(spec_text(spec)))
}

/// The uid and gid a `-u` argument names: `user` gives the user and its primary group,
/// `:group` only the group, `user:group` both. Names are looked up, with numeric ids as a
/// fallback (spec §3.1).
///
/// # Errors
/// [`DaemonError::User`] when a name is unknown and not a number.
pub fn lookup_ids(ug: &UserGroup) -> Result<(Option<u32>, Option<u32>), DaemonError> {
    let err = |error| DaemonError::User {
        user: ug.to_string(),
        error,
    };
    match ug {
        UserGroup::User(user) => {
            let (uid, gid) = sys::lookup_user(user).map_err(err)?;
            Ok((Some(uid), gid))
        }
        UserGroup::Group(group) => Ok((None, Some(sys::lookup_group(group).map_err(err)?))),
        UserGroup::UserAndGroup { user, group } => {
            let (uid, _) = sys::lookup_user(user).map_err(err)?;
            let gid = sys::lookup_group(group).map_err(err)?;
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

fn resolve_retrying(spec: &SockAddrSpec, retry: bool) -> Result<Vec<SockAddr>, DaemonError> {
    loop {
        match resolve(spec) {
            Ok(a) => return Ok(a),
            Err(DaemonError::Resolve { .. } | DaemonError::NoAddress(_)) if retry => {
                std::thread::sleep(DNS_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The backend forced by [`BACKEND_ENV`]'s `value`: `None` for automatic choice.
///
/// # Errors
/// [`DaemonError::BadBackend`] for a value other than `auto`, `uring` or `epoll` (or empty).
pub fn forced_backend(value: Option<&OsStr>) -> Result<Option<Backend>, DaemonError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    if text.is_empty() || text.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match Backend::parse(&text) {
        Some(b) => Ok(Some(b)),
        None => Err(DaemonError::BadBackend(text.into_owned())),
    }
}

/// Picks the backend: a forced one as asked (forcing io_uring where `probe` fails is an
/// error), otherwise io_uring if `probe` passes and epoll if not. Returns the backend and, for
/// an automatic fallback to epoll, why io_uring was not used.
///
/// # Errors
/// [`DaemonError::Uring`] when io_uring is forced and `probe` fails.
pub fn select_backend(
    forced: Option<Backend>,
    probe: impl FnOnce() -> Result<(), SetupError>,
) -> Result<(Backend, Option<SetupError>), DaemonError> {
    match forced {
        Some(Backend::Epoll) => Ok((Backend::Epoll, None)),
        Some(Backend::Uring) => probe()
            .map(|()| (Backend::Uring, None))
            .map_err(DaemonError::Uring),
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
fn pick_backend(program: &str, forced: Option<Backend>) -> Result<Backend, DaemonError> {
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
) -> Result<AnyDriver, DaemonError> {
    if backend == Backend::Uring {
        match Uring::new(UringConfig {
            entries: 4096,
            recv_buffers: RECV_BUFFERS,
            recv_buffer_size: RECV_BUFFER_SIZE,
        }) {
            Ok(ring) => return Ok(AnyDriver::Uring(ring)),
            Err(e) if forced.is_some() => return Err(DaemonError::Uring(e)),
            Err(e) => log.always(format_args!("{}", fallback_message(&e))),
        }
    }
    Epoll::new(EpollConfig {
        recv_buffers: RECV_BUFFERS,
        recv_buffer_size: RECV_BUFFER_SIZE,
        max_events: EPOLL_EVENTS,
    })
    .map(AnyDriver::Epoll)
    .map_err(DaemonError::Epoll)
}

fn write_pidfile(path: &Path) -> Result<(), DaemonError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
        DaemonError::Pidfile {
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
    let (keys, warnings) = read_keys_with_warnings(&args.keys)?;
    let mut log = Logger::new(program, Sink::Stderr);
    for w in &warnings {
        log.always(format_args!("{w}"));
    }
    let mut rotation = Rotation::setup(args, &keys).map_err(DaemonError::Rotation)?;
    let forced = forced_backend(std::env::var_os(BACKEND_ENV).as_deref())?;
    let mut backend = None;
    // Looked up before anything else happens, so a bad -u is an error at the shell (exit 1).
    let ids = args.user.as_ref().map(lookup_ids).transpose()?;
    let mut detached = None;
    if args.wait_for_dns && !args.foreground {
        backend = Some(pick_backend(program, forced)?);
        let d = sys::daemonize().map_err(DaemonError::Daemonize)?;
        write_pidfile(&args.pidfile)?;
        // -D: the parent returns as soon as the pidfile exists (spec §3.1); later errors go
        // to syslog (--syslog) or nowhere, as in spiped.
        d.ready().map_err(DaemonError::Daemonize)?;
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
    let (listener, _unix_path) = bind(&args.source, &sources[0])?;
    if !args.foreground && !args.wait_for_dns {
        // Until `ready`, the parent waits and our stderr is still the caller's: an error from
        // here on is printed by the binary and makes the parent exit 1.
        detached = Some(sys::daemonize().map_err(DaemonError::Daemonize)?);
        write_pidfile(&args.pidfile)?;
    }
    if let Some((uid, gid)) = ids {
        // After bind and daemonise (spec §3.1, §4).
        match sys::drop_privileges(uid, gid) {
            Ok(None) => {}
            Ok(Some(e)) => log.always(format_args!(
                "warning: cannot drop supplementary groups: {e}"
            )),
            Err(error) => {
                return Err(DaemonError::Privileges {
                    user: args
                        .user
                        .as_ref()
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    error,
                });
            }
        }
    }
    if let Some(d) = detached {
        d.ready().map_err(DaemonError::Daemonize)?;
        log = daemon_logger(program, args.syslog);
    }
    let signals = sys::install_signal_handlers().map_err(DaemonError::Signals)?;
    // Two descriptors per connection: the default soft limit of 1024 is too low for -n 1000.
    let _ = sys::raise_nofile_limit();

    let shares = connection_shares(args.max_connections, args.threads);
    let cfg = RelayConfig {
        mode: args.mode,
        targets,
        keys: rotation.ring(),
        pfs: args.pfs,
        x25519: args.x25519,
        max_connections: shares[0],
        timeout: args.timeout,
        keepalive: !args.no_keepalive,
        accept_backoff: ACCEPT_BACKOFF,
        bind: bind_from,
    };
    // The other loops' listeners, duplicated before the main relay adopts the socket.
    let mut extra = Vec::with_capacity(shares.len() - 1);
    for share in &shares[1..] {
        let fd = listener.try_clone().map_err(DaemonError::DupListener)?;
        let cfg = RelayConfig {
            max_connections: *share,
            ..cfg.clone()
        };
        extra.push((fd, cfg, log.sibling()));
    }
    let io = new_driver(&mut log, backend, forced)?;
    let mut relay = Relay::new(io, listener, cfg, log).map_err(DaemonError::Relay)?;
    let shared = Shared::default();
    let duties = Duties {
        rotation: &mut rotation,
        target: &args.target,
        reresolve: match (&args.target, args.resolve_interval) {
            (SockAddrSpec::Host { .. }, Some(every)) => Some(every),
            _ => None,
        },
    };
    if extra.is_empty() {
        duties.rotation.start().map_err(DaemonError::Rotation)?;
        return event_loop(&mut relay, signals, &shared, Some(duties));
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
                    started = Err(DaemonError::Thread(e));
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
                Err(_) => started = Err(DaemonError::LoopVanished),
            }
        }
        let mut result = started
            .and_then(|()| duties.rotation.start().map_err(DaemonError::Rotation))
            .and_then(|()| event_loop(&mut relay, signals, &shared, Some(duties)));
        // Whatever ended the main loop, the others stop too unless they are draining.
        if result.is_err() || signals.int.load(Relaxed) > 0 {
            shared.failed.store(true, Relaxed);
        }
        for handle in workers {
            let r = handle.join().unwrap_or(Err(DaemonError::LoopVanished));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
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
    cfg: RelayConfig,
    mut log: Logger,
    signals: &sys::SignalCounts,
    shared: &Shared,
    ready: &mpsc::Sender<Result<(), DaemonError>>,
) -> Result<(), DaemonError> {
    // Signals go to the main thread, whose wait they interrupt; the counts are process-wide.
    let _ = sys::block_daemon_signals_in_thread();
    let relay = new_driver(&mut log, backend, forced)
        .and_then(|io| Relay::new(io, listener, cfg, log).map_err(DaemonError::Relay));
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
/// [`DaemonError::Wait`] when the driver fails.
fn event_loop(
    relay: &mut Relay<AnyDriver>,
    signals: &sys::SignalCounts,
    shared: &Shared,
    mut duties: Option<Duties<'_>>,
) -> Result<(), DaemonError> {
    let mut next_resolve = duties
        .as_ref()
        .and_then(|d| d.reresolve)
        .map(|every| Instant::now() + every);
    let mut terms_seen = 0;
    let mut generation = 0;
    loop {
        relay.turn(TICK).map_err(DaemonError::Wait)?;
        if let Some(d) = duties.as_mut() {
            d.rotation.tick(signals.hup.load(Relaxed), relay.log());
        }
        if signals.int.load(Relaxed) > 0 || shared.failed.load(Relaxed) {
            return Ok(());
        }
        let terms = signals.term.load(Relaxed);
        if terms > terms_seen {
            if terms_seen > 0 || terms > 1 || relay.active() == 0 {
                return Ok(());
            }
            terms_seen = terms;
            let open = relay.active();
            relay.log().always(format_args!(
                "SIGTERM: no longer accepting; exiting after the last of {open} open \
                 connections (send SIGTERM again to exit now)"
            ));
            relay.stop_accepting();
        }
        if terms_seen > 0 && relay.active() == 0 {
            return Ok(());
        }
        if let (Some(at), Some(d)) = (next_resolve, duties.as_ref()) {
            if Instant::now() >= at {
                match resolve(d.target) {
                    Ok(addrs) => shared.publish(addrs),
                    Err(e) => relay
                        .log()
                        .warn(format_args!("{e}; keeping the old addresses")),
                }
                next_resolve = d.reresolve.map(|every| Instant::now() + every);
            }
        }
        let g = shared.generation.load(Acquire);
        if g != generation {
            generation = g;
            relay.set_targets(shared.targets());
        }
    }
}

#[cfg(test)]
mod backend_tests {
    use super::*;

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
            Err(e @ DaemonError::BadBackend(_)) => {
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
            Err(DaemonError::Uring(SetupError::NotImplemented)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
