//! Socket helpers shared by every backend: listeners (with the stale-Unix-socket rule of
//! [`listen_unix_reclaiming`]), outgoing sockets and socket options. Process concerns (limits,
//! signals, daemonising, users) are in [`crate::os`].
//!
//! Sockets are created close-on-exec. Listeners and the sockets the io_uring backend connects
//! are left in blocking mode: io_uring never blocks the calling thread (it polls the socket
//! internally), and a blocking descriptor keeps its semantics the same for every opcode.
//! [`connect_nonblocking`] is for a readiness-based (epoll) backend.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::Errno;

/// Which step of setting up a socket failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysError {
    /// `socket(2)` failed, e.g. `EMFILE`.
    Socket(Errno),
    /// Setting a socket option failed.
    SetOption(Errno),
    /// `bind(2)` failed, e.g. `EADDRINUSE` or `EACCES`.
    Bind(Errno),
    /// `listen(2)` failed.
    Listen(Errno),
    /// `connect(2)` failed immediately.
    Connect(Errno),
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::Socket(e) => write!(f, "cannot create a socket: {e}"),
            SysError::SetOption(e) => write!(f, "cannot set a socket option: {e}"),
            SysError::Bind(e) => write!(f, "cannot bind the socket: {e}"),
            SysError::Listen(e) => write!(f, "cannot listen on the socket: {e}"),
            SysError::Connect(e) => write!(f, "cannot connect the socket: {e}"),
        }
    }
}

impl std::error::Error for SysError {}

/// Converts an `io::Error` from a syscall into an [`Errno`] (`EIO` if it carries none).
pub fn errno_of(e: &io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

fn listener(domain: Domain, addr: &SockAddr) -> Result<OwnedFd, SysError> {
    let s = Socket::new(domain, Type::STREAM, None).map_err(|e| SysError::Socket(errno_of(&e)))?;
    s.set_reuse_address(true)
        .map_err(|e| SysError::SetOption(errno_of(&e)))?;
    s.bind(addr).map_err(|e| SysError::Bind(errno_of(&e)))?;
    s.listen(libc::SOMAXCONN)
        .map_err(|e| SysError::Listen(errno_of(&e)))?;
    Ok(s.into())
}

/// Creates a TCP listener on `addr` with `SO_REUSEADDR` and a backlog of `SOMAXCONN`.
pub fn listen_tcp(addr: SocketAddr) -> Result<OwnedFd, SysError> {
    listener(Domain::for_address(addr), &SockAddr::from(addr))
}

/// Creates a Unix stream listener bound to `path` with a backlog of `SOMAXCONN`.
/// An existing file at `path` makes this fail with `EADDRINUSE`; [`listen_unix_reclaiming`]
/// replaces a stale socket instead.
pub fn listen_unix(path: &Path) -> Result<OwnedFd, SysError> {
    let addr = SockAddr::unix(path).map_err(|e| SysError::Bind(errno_of(&e)))?;
    listener(Domain::UNIX, &addr)
}

/// Like [`listen_unix`], but the socket file is created with mode 0600 (owner only), for a
/// control socket: the umask is set to 0177 around the `bind`, so the file is never briefly
/// accessible to others. Call it while the process is single-threaded (the umask is
/// process-wide).
pub fn listen_unix_private(path: &Path) -> Result<OwnedFd, SysError> {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(PRIVATE_UMASK));
    let r = listen_unix(path);
    umask(old);
    r
}

/// The umask of [`listen_unix_private`]: no bits for group and others, no execute bit.
const PRIVATE_UMASK: libc::mode_t = 0o177;

/// The local address of a socket, e.g. to learn the port of a listener bound to port 0.
pub fn local_addr(fd: BorrowedFd<'_>) -> Result<SockAddr, Errno> {
    SockRef::from(&fd).local_addr().map_err(|e| errno_of(&e))
}

/// Creates a blocking, close-on-exec stream socket of `addr`'s family, ready to be connected.
pub fn stream_socket_for(addr: &SockAddr) -> Result<OwnedFd, SysError> {
    Socket::new(addr.domain(), Type::STREAM, None)
        .map(OwnedFd::from)
        .map_err(|e| SysError::Socket(errno_of(&e)))
}

/// As [`stream_socket_for`], then, when `bind` is given, binds the socket to that local
/// address (with `SO_REUSEADDR` for TCP, so a fixed source port can be reused once the
/// previous connection is in `TIME_WAIT`), ready to be connected from it (spiped's `-b`).
///
/// # Errors
/// [`SysError::Socket`], [`SysError::SetOption`], or [`SysError::Bind`] (e.g. `EADDRNOTAVAIL`
/// for an address not on this host, `EAFNOSUPPORT` for a family other than `addr`'s).
pub fn stream_socket_bound(addr: &SockAddr, bind: Option<&SockAddr>) -> Result<OwnedFd, SysError> {
    let fd = stream_socket_for(addr)?;
    if let Some(local) = bind {
        let s = SockRef::from(&fd);
        if local.as_pathname().is_none() {
            s.set_reuse_address(true)
                .map_err(|e| SysError::SetOption(errno_of(&e)))?;
        }
        s.bind(local).map_err(|e| SysError::Bind(errno_of(&e)))?;
    }
    Ok(fd)
}

/// Creates a non-blocking socket and starts connecting it to `addr`. Returns the socket and
/// whether the connect is still in progress (`EINPROGRESS`/`EAGAIN`); the caller then waits for
/// writability and reads `SO_ERROR` with [`take_socket_error`].
pub fn connect_nonblocking(addr: &SockAddr) -> Result<(OwnedFd, bool), SysError> {
    let s = Socket::new(addr.domain(), Type::STREAM, None)
        .map_err(|e| SysError::Socket(errno_of(&e)))?;
    s.set_nonblocking(true)
        .map_err(|e| SysError::SetOption(errno_of(&e)))?;
    match s.connect(addr) {
        Ok(()) => Ok((s.into(), false)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) => {
            Ok((s.into(), true))
        }
        Err(e) => Err(SysError::Connect(errno_of(&e))),
    }
}

/// Reads and clears `SO_ERROR`: `Ok(None)` if the socket has no pending error.
pub fn take_socket_error(fd: BorrowedFd<'_>) -> Result<Option<Errno>, Errno> {
    match SockRef::from(&fd).take_error() {
        Ok(None) => Ok(None),
        Ok(Some(e)) => Ok(Some(errno_of(&e))),
        Err(e) => Err(errno_of(&e)),
    }
}

/// Sets `TCP_NODELAY`. Fails harmlessly (`EOPNOTSUPP`) on Unix sockets; spiped ignores that.
pub fn set_nodelay(fd: BorrowedFd<'_>, on: bool) -> Result<(), SysError> {
    SockRef::from(&fd)
        .set_tcp_nodelay(on)
        .map_err(|e| SysError::SetOption(errno_of(&e)))
}

/// Sets `SO_KEEPALIVE`. Fails harmlessly on Unix sockets; spiped ignores that.
pub fn set_keepalive(fd: BorrowedFd<'_>, on: bool) -> Result<(), SysError> {
    SockRef::from(&fd)
        .set_keepalive(on)
        .map_err(|e| SysError::SetOption(errno_of(&e)))
}

/// Turns `SO_KEEPALIVE` on and sets the keep-alive timing: `TCP_KEEPIDLE` (`idle`, whole
/// seconds), `TCP_KEEPINTVL` (`interval`, whole seconds) and `TCP_KEEPCNT` (`count`); each
/// `None` keeps the kernel's default.
///
/// # Errors
/// [`SysError::SetOption`] with the first failing call's error: `EOPNOTSUPP` on a Unix
/// socket, `EINVAL` for a value the kernel refuses (0, or more than 32767 s / 127 probes).
pub fn set_keepalive_timing(
    fd: BorrowedFd<'_>,
    idle: Option<Duration>,
    interval: Option<Duration>,
    count: Option<u32>,
) -> Result<(), SysError> {
    let mut k = socket2::TcpKeepalive::new();
    if let Some(t) = idle {
        k = k.with_time(t);
    }
    if let Some(t) = interval {
        k = k.with_interval(t);
    }
    if let Some(n) = count {
        k = k.with_retries(n);
    }
    SockRef::from(&fd)
        .set_tcp_keepalive(&k)
        .map_err(|e| SysError::SetOption(errno_of(&e)))
}

/// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged (and, with
/// keep-alives, how long the peer may stay silent once probing started) before the kernel
/// drops the connection with `ETIMEDOUT`. Zero restores the kernel's default behaviour; a
/// nonzero time under a millisecond counts as one millisecond (the option's unit), so it
/// never turns into "off".
///
/// # Errors
/// [`SysError::SetOption`]: `EOPNOTSUPP` on a Unix socket, `EINVAL` for more than
/// `i32::MAX` milliseconds.
pub fn set_user_timeout(fd: BorrowedFd<'_>, timeout: Duration) -> Result<(), SysError> {
    let timeout = if timeout.is_zero() {
        None
    } else {
        Some(timeout.max(Duration::from_millis(1)))
    };
    SockRef::from(&fd)
        .set_tcp_user_timeout(timeout)
        .map_err(|e| SysError::SetOption(errno_of(&e)))
}

/// `shutdown(fd, SHUT_WR)`: sends FIN once everything queued before it (spec §4, teardown).
/// Never blocks on a stream socket, so the io_uring backend calls it directly instead of
/// submitting `IORING_OP_SHUTDOWN`, which the kernel always hands to an io-wq worker thread
/// (a thread wake-up and two context switches per call).
///
/// # Errors
/// The `shutdown` error, e.g. `ENOTCONN` after the peer reset the connection.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    SockRef::from(&fd)
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| errno_of(&e))
}

/// Re-exported for the relay engine's nonces; the function lives in [`crate::os::random`].
pub use crate::os::random::fill_random;

/// Who may use a Unix listener's socket file ([`listen_unix_reclaiming`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketAccess {
    /// The mode the umask gives (as [`listen_unix`]).
    Umask,
    /// Owner only, mode 0600 (as [`listen_unix_private`]).
    OwnerOnly,
}

/// What [`listen_unix_reclaiming`] found at the path before binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaimed {
    /// Nothing was in the way.
    Nothing,
    /// A stale socket (nobody accepted a connection on it) was removed first; the caller
    /// should log that.
    StaleSocket,
}

/// Why [`listen_unix_reclaiming`] did not produce a listener. Nothing at the path was removed
/// in any case but [`Reclaimed::StaleSocket`]'s.
#[derive(Debug, PartialEq, Eq)]
pub enum UnixListenError {
    /// Creating, binding or listening on the socket failed for another reason than a file in
    /// the way (e.g. `EACCES` on the directory, `ENAMETOOLONG`).
    Sys(SysError),
    /// A socket is at the path and a connection to it was accepted (or its backlog is full):
    /// another process is listening on it.
    Listening(PathBuf),
    /// Something that is not a socket is at the path (a regular file, a directory, a symlink
    /// even to a socket, a FIFO); it is left untouched.
    NotASocket(PathBuf),
    /// A socket is at the path, but connecting to it failed with an error that tells neither
    /// "stale" nor "in use" (e.g. `EACCES`); it is left untouched.
    Undecided {
        /// The path.
        path: PathBuf,
        /// The connect error.
        error: Errno,
    },
    /// The stale socket at the path could not be removed.
    RemoveStale {
        /// The path.
        path: PathBuf,
        /// The `unlink` error.
        error: Errno,
    },
}

impl fmt::Display for UnixListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::Listening(p) => write!(f, "another process is listening on {}", p.display()),
            Self::NotASocket(p) => write!(
                f,
                "{} exists and is not a socket; not removing it",
                p.display()
            ),
            Self::Undecided { path, error } => write!(
                f,
                "{} is in the way: a socket that may be in use (connecting to it failed: \
                 {error}); not removing it",
                path.display()
            ),
            Self::RemoveStale { path, error } => write!(
                f,
                "cannot remove the stale socket {}: {error}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for UnixListenError {}

/// Creates a Unix stream listener at `path` like [`listen_unix`] (or [`listen_unix_private`]
/// with [`SocketAccess::OwnerOnly`]), replacing a stale socket left by a process that died
/// without removing it (`SIGKILL`, a power loss).
///
/// The rule, applied only when the bind fails with `EADDRINUSE`:
/// - the path (not following a symlink) is not a socket: [`UnixListenError::NotASocket`],
///   nothing is removed;
/// - a non-blocking connect to it is refused (`ECONNREFUSED`): nobody listens, the socket is
///   stale; it is removed (if it is still the same file) and the bind retried once, and the
///   result says [`Reclaimed::StaleSocket`];
/// - the connect succeeds (and the listener does not go away within a short wait, see
///   `probe_unix`) or finds a full backlog (`EAGAIN`): [`UnixListenError::Listening`], after
///   at most about a second;
/// - any other connect error: [`UnixListenError::Undecided`].
///
/// A file that vanishes meanwhile just means the bind is retried. Another process starting on
/// the same path at the same moment can still win the race between the removal and our bind;
/// then this fails with [`UnixListenError::Sys`] (`EADDRINUSE`), never removes its socket
/// after it has bound (the check before removal compares the inode), except in the window of
/// a few instructions between that check and the `unlink`.
///
/// # Errors
/// As listed above.
pub fn listen_unix_reclaiming(
    path: &Path,
    access: SocketAccess,
) -> Result<(OwnedFd, Reclaimed), UnixListenError> {
    let bind = || match access {
        SocketAccess::Umask => listen_unix(path),
        SocketAccess::OwnerOnly => listen_unix_private(path),
    };
    match bind() {
        Ok(fd) => return Ok((fd, Reclaimed::Nothing)),
        Err(SysError::Bind(e)) if e.0 == libc::EADDRINUSE => {}
        Err(e) => return Err(UnixListenError::Sys(e)),
    }
    let owned = || path.to_path_buf();
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        // Gone meanwhile: try once more, reporting what that bind says.
        return bind()
            .map(|fd| (fd, Reclaimed::Nothing))
            .map_err(UnixListenError::Sys);
    };
    if !meta.file_type().is_socket() {
        return Err(UnixListenError::NotASocket(owned()));
    }
    let addr =
        SockAddr::unix(path).map_err(|e| UnixListenError::Sys(SysError::Bind(errno_of(&e))))?;
    match probe_unix(&addr) {
        Probe::Stale => {}
        Probe::Listening => return Err(UnixListenError::Listening(owned())),
        Probe::Undecided(error) => {
            return Err(UnixListenError::Undecided {
                path: owned(),
                error,
            });
        }
        Probe::Failed(e) => return Err(UnixListenError::Sys(e)),
    }
    // Only the very file examined above: a socket some other process bound since then has a
    // new inode and is left alone.
    let same = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && m.ino() == meta.ino() && m.dev() == meta.dev());
    if same {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(UnixListenError::RemoveStale {
                    path: owned(),
                    error: errno_of(&e),
                });
            }
        }
    }
    bind()
        .map(|fd| (fd, Reclaimed::StaleSocket))
        .map_err(UnixListenError::Sys)
}

/// How many probe connections [`probe_unix`] makes before it takes a listener that accepts
/// and then goes away every time for a live one.
const PROBE_ATTEMPTS: usize = 5;

/// How long a probe connection waits for the listener to go away (see [`probe_unix`]).
const PROBE_WAIT: Duration = Duration::from_millis(200);

/// What [`probe_unix`] found.
enum Probe {
    /// Connecting is refused (or the file vanished): nobody listens.
    Stale,
    /// Something accepted the connection, or its backlog is full.
    Listening,
    /// Connecting failed with an error that tells neither.
    Undecided(Errno),
    /// No socket could be made for the probe.
    Failed(SysError),
}

/// Decides whether a Unix socket file at `addr` has a listener, by connecting to it.
///
/// A connect that is accepted is not proof enough on its own: when a process is killed while
/// an io_uring request still holds its listening socket, the kernel closes that socket in a
/// worker shortly after the process is gone, and until then connects queue up. So an accepted
/// probe waits up to [`PROBE_WAIT`] for the listener to reset it; if it does, the probe is
/// made again (at most [`PROBE_ATTEMPTS`] times). A live listener leaves the probe connected
/// (or answers), and is reported after one probe.
fn probe_unix(addr: &SockAddr) -> Probe {
    for _ in 0..PROBE_ATTEMPTS {
        let fd = match connect_nonblocking(addr) {
            // `EAGAIN` (reported as in progress): the listener's backlog is full.
            Ok((_, true)) => return Probe::Listening,
            Ok((fd, false)) => fd,
            Err(SysError::Connect(e)) if matches!(e.0, libc::ECONNREFUSED | libc::ENOENT) => {
                return Probe::Stale;
            }
            Err(SysError::Connect(e)) => return Probe::Undecided(e),
            Err(e) => return Probe::Failed(e),
        };
        let s = Socket::from(fd);
        if s.set_nonblocking(false).is_err() || s.set_read_timeout(Some(PROBE_WAIT)).is_err() {
            return Probe::Listening;
        }
        let mut byte = [0u8; 1];
        match (&s).read(&mut byte) {
            // End of stream or a reset: the listener went away (or closed us); probe again.
            Ok(0) => {}
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // Data, or still connected after the wait: a live listener.
            _ => return Probe::Listening,
        }
    }
    Probe::Listening
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let mut n = [0u8; 8];
            fill_random(&mut n).expect("random");
            let d =
                std::env::temp_dir().join(format!("spr-sys-{tag}-{:016x}", u64::from_ne_bytes(n)));
            std::fs::create_dir(&d).expect("scratch dir");
            Self(d)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A socket file at `path` that nobody listens on: bound, then its descriptor closed
    /// without removing the file, as a killed process leaves it.
    fn stale_socket(path: &Path) {
        drop(UnixListener::bind(path).expect("bind"));
        assert!(
            std::fs::symlink_metadata(path)
                .expect("left")
                .file_type()
                .is_socket()
        );
    }

    #[test]
    fn fresh_path_binds() {
        let d = Scratch::new("fresh");
        let p = d.0.join("s");
        let (fd, r) = listen_unix_reclaiming(&p, SocketAccess::Umask).expect("listen");
        assert_eq!(r, Reclaimed::Nothing);
        drop(fd);
    }

    #[test]
    fn stale_socket_is_replaced_and_the_new_one_accepts() {
        let d = Scratch::new("stale");
        let p = d.0.join("s");
        stale_socket(&p);
        // The plain listener refuses, as spiped does.
        assert_eq!(
            listen_unix(&p).err(),
            Some(SysError::Bind(Errno(libc::EADDRINUSE)))
        );
        let (fd, r) = listen_unix_reclaiming(&p, SocketAccess::Umask).expect("listen");
        assert_eq!(r, Reclaimed::StaleSocket);
        let listener = UnixListener::from(fd);
        let _client = UnixStream::connect(&p).expect("connect to the new listener");
        listener.accept().expect("accept");
    }

    #[test]
    fn stale_control_socket_is_replaced_owner_only() {
        let d = Scratch::new("private");
        let p = d.0.join("s");
        stale_socket(&p);
        let (_fd, r) = listen_unix_reclaiming(&p, SocketAccess::OwnerOnly).expect("listen");
        assert_eq!(r, Reclaimed::StaleSocket);
        let mode = std::fs::symlink_metadata(&p).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn live_listener_is_left_alone() {
        let d = Scratch::new("live");
        let p = d.0.join("s");
        let live = UnixListener::bind(&p).expect("bind");
        let err = listen_unix_reclaiming(&p, SocketAccess::Umask).expect_err("in use");
        assert_eq!(err, UnixListenError::Listening(p.clone()));
        assert!(
            err.to_string()
                .contains(&format!("another process is listening on {}", p.display())),
            "{err}"
        );
        // Still the same listener's socket.
        let _c = UnixStream::connect(&p).expect("still there");
        live.accept().expect("accept");
    }

    #[test]
    fn listener_that_goes_away_during_the_check_is_stale() {
        // As a killed process's listener that io_uring held a moment longer: connects are
        // queued, then reset when it closes.
        let d = Scratch::new("dying");
        let p = d.0.join("s");
        let dying = UnixListener::bind(&p).expect("bind");
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(dying);
        });
        let (fd, r) = listen_unix_reclaiming(&p, SocketAccess::Umask).expect("listen");
        assert_eq!(r, Reclaimed::StaleSocket);
        closer.join().expect("closer");
        drop(fd);
    }

    #[test]
    fn listener_that_accepts_and_closes_counts_as_listening() {
        let d = Scratch::new("closing");
        let p = d.0.join("s");
        let live = UnixListener::bind(&p).expect("bind");
        let server = std::thread::spawn(move || {
            // Each probe: accepted and closed at once (bounded by the probe count).
            for _ in 0..PROBE_ATTEMPTS {
                drop(live.accept().expect("accept"));
            }
            live
        });
        assert_eq!(
            listen_unix_reclaiming(&p, SocketAccess::Umask).err(),
            Some(UnixListenError::Listening(p.clone()))
        );
        drop(server.join().expect("server"));
    }

    #[test]
    fn listener_with_a_full_backlog_counts_as_listening() {
        let d = Scratch::new("full");
        let p = d.0.join("s");
        let fd = listen_unix(&p).expect("listen");
        // Backlog 0: the kernel still queues one connection; fill it with non-blocking
        // clients until one would block (bounded).
        SockRef::from(&fd).listen(0).expect("shrink backlog");
        let addr = SockAddr::unix(&p).expect("addr");
        let mut clients = Vec::new();
        for _ in 0..64 {
            match connect_nonblocking(&addr) {
                Ok((c, _)) => clients.push(c),
                Err(_) => break,
            }
        }
        assert_eq!(
            listen_unix_reclaiming(&p, SocketAccess::Umask).err(),
            Some(UnixListenError::Listening(p.clone()))
        );
        drop(fd);
    }

    #[test]
    fn regular_file_directory_and_symlink_are_never_removed() {
        let d = Scratch::new("other");
        let file = d.0.join("file");
        std::fs::write(&file, b"precious").expect("write");
        let dir = d.0.join("dir");
        std::fs::create_dir(&dir).expect("mkdir");
        // A symlink to a stale socket: the link is not a socket, so it stays.
        let target = d.0.join("target");
        stale_socket(&target);
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let fifo = d.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        for p in [&file, &dir, &link, &fifo] {
            let err = listen_unix_reclaiming(p, SocketAccess::Umask).expect_err("in the way");
            assert_eq!(
                err,
                UnixListenError::NotASocket(p.clone()),
                "{}",
                p.display()
            );
            assert!(err.to_string().contains("not a socket"), "{err}");
        }
        assert_eq!(std::fs::read(&file).expect("file kept"), b"precious");
        assert!(dir.is_dir());
        assert!(std::fs::symlink_metadata(&link).expect("link").is_symlink());
        assert!(
            std::fs::symlink_metadata(&target)
                .expect("target")
                .file_type()
                .is_socket()
        );
        assert!(
            std::fs::symlink_metadata(&fifo)
                .expect("fifo")
                .file_type()
                .is_fifo()
        );
    }

    #[test]
    fn other_bind_errors_pass_through() {
        let err = listen_unix_reclaiming(Path::new("/nonexistent-dir/spr/s"), SocketAccess::Umask)
            .expect_err("no such directory");
        assert_eq!(
            err,
            UnixListenError::Sys(SysError::Bind(Errno(libc::ENOENT)))
        );
    }
}
