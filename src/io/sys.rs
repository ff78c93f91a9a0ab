//! Socket and resource-limit helpers shared by every backend.
//!
//! Sockets are created close-on-exec. Listeners and the sockets the io_uring backend connects
//! are left in blocking mode: io_uring never blocks the calling thread (it polls the socket
//! internally), and a blocking descriptor keeps its semantics the same for every opcode.
//! [`connect_nonblocking`] is for a readiness-based (epoll) backend.

#![allow(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::Errno;

/// Which step of setting up a socket or limit failed.
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
    /// `getrlimit(2)` or `setrlimit(2)` failed.
    Rlimit(Errno),
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::Socket(e) => write!(f, "cannot create a socket: {e}"),
            SysError::SetOption(e) => write!(f, "cannot set a socket option: {e}"),
            SysError::Bind(e) => write!(f, "cannot bind the socket: {e}"),
            SysError::Listen(e) => write!(f, "cannot listen on the socket: {e}"),
            SysError::Connect(e) => write!(f, "cannot connect the socket: {e}"),
            SysError::Rlimit(e) => write!(f, "cannot change the open-file limit: {e}"),
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
/// An existing file at `path` makes this fail with `EADDRINUSE`; removing it is the caller's
/// decision.
pub fn listen_unix(path: &Path) -> Result<OwnedFd, SysError> {
    let addr = SockAddr::unix(path).map_err(|e| SysError::Bind(errno_of(&e)))?;
    listener(Domain::UNIX, &addr)
}

/// Like [`listen_unix`], but the socket file is created with mode 0600 (owner only), for a
/// control socket: the umask is set to 0177 around the `bind`, so the file is never briefly
/// accessible to others. Call it while the process is single-threaded (the umask is
/// process-wide).
pub fn listen_unix_private(path: &Path) -> Result<OwnedFd, SysError> {
    // SAFETY: umask has no memory-safety preconditions; it only swaps the process's mask.
    let old = unsafe { libc::umask(0o177) };
    let r = listen_unix(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// Blocks `SIGTERM`, `SIGINT` and `SIGHUP` in the calling thread, so that they are delivered
/// to the event-loop thread, whose io_uring wait they interrupt. For helper threads.
///
/// # Errors
/// The `pthread_sigmask` error (not expected).
pub fn block_daemon_signals_in_thread() -> Result<(), Errno> {
    // SAFETY: an all-zero sigset_t is valid storage; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(Errno(r));
    }
    Ok(())
}

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

/// The current `RLIMIT_NOFILE` as `(soft, hard)`.
pub fn nofile_limit() -> Result<(u64, u64), SysError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if r != 0 {
        return Err(SysError::Rlimit(errno_of(&io::Error::last_os_error())));
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft `RLIMIT_NOFILE` to `soft` (at most the hard limit), leaving the hard limit.
pub fn set_nofile_soft_limit(soft: u64) -> Result<(), SysError> {
    let (_, hard) = nofile_limit()?;
    let lim = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of the call; setrlimit only reads it.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if r != 0 {
        return Err(SysError::Rlimit(errno_of(&io::Error::last_os_error())));
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
/// A relay needs two descriptors per connection, and the default soft limit is often 1024.
pub fn raise_nofile_limit() -> Result<u64, SysError> {
    let (soft, hard) = nofile_limit()?;
    if soft < hard {
        set_nofile_soft_limit(hard)?;
    }
    Ok(hard.max(soft))
}

/// Fills `buf` with bytes from the kernel's cryptographically secure RNG (`getrandom(2)`),
/// retrying after interruptions and short reads.
///
/// # Errors
/// The `getrandom` error, e.g. `ENOSYS` on a kernel older than 3.17.
pub fn fill_random(buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the whole call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = errno_of(&io::Error::last_os_error());
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Signals the daemon reacts to, counted by async-signal-safe handlers.
///
/// [`install_signal_handlers`] points `SIGTERM`, `SIGINT` and `SIGHUP` at handlers that only
/// increment these counters, and ignores `SIGPIPE`. An event loop reads them after each wait:
/// a signal interrupts a blocking io_uring wait with `EINTR`, so the loop sees it promptly.
#[derive(Debug)]
pub struct SignalCounts {
    /// `SIGTERM`s received so far.
    pub term: std::sync::atomic::AtomicUsize,
    /// `SIGINT`s received so far.
    pub int: std::sync::atomic::AtomicUsize,
    /// `SIGHUP`s received so far.
    pub hup: std::sync::atomic::AtomicUsize,
}

static SIGNALS: SignalCounts = SignalCounts {
    term: std::sync::atomic::AtomicUsize::new(0),
    int: std::sync::atomic::AtomicUsize::new(0),
    hup: std::sync::atomic::AtomicUsize::new(0),
};

extern "C" fn count_signal(sig: libc::c_int) {
    use std::sync::atomic::Ordering::Relaxed;
    let counter = match sig {
        libc::SIGTERM => &SIGNALS.term,
        libc::SIGINT => &SIGNALS.int,
        _ => &SIGNALS.hup,
    };
    counter.fetch_add(1, Relaxed);
}

/// Installs the counting handlers described at [`SignalCounts`] (without `SA_RESTART`, so a
/// blocking wait returns `EINTR`) and sets `SIGPIPE` to be ignored. Returns the process-wide
/// counters.
///
/// # Errors
/// The `sigaction` error (not expected for these signals).
pub fn install_signal_handlers() -> Result<&'static SignalCounts, Errno> {
    let counting = count_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
    for (sig, handler) in [
        (libc::SIGTERM, counting),
        (libc::SIGINT, counting),
        (libc::SIGHUP, counting),
        (libc::SIGPIPE, libc::SIG_IGN),
    ] {
        // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags); the fields are
        // then set to valid values.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = handler;
        // SAFETY: `act.sa_mask` is a valid sigset_t owned by this frame.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: `act` is fully initialised; the handler only touches atomics, which is
        // async-signal-safe; passing a null old-action pointer is allowed.
        let r = unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) };
        if r != 0 {
            return Err(errno_of(&io::Error::last_os_error()));
        }
    }
    Ok(&SIGNALS)
}

/// Detaches from the terminal the way spiped's `daemonize` does (spec §4): `fork`; the child
/// becomes a session leader (`setsid`) and continues; the parent waits until the child calls
/// [`Detached::ready`] (after writing its pidfile and finishing its startup) and then exits 0,
/// or exits 1 if the child exits or drops the [`Detached`] first, so a startup error in the
/// child still reaches the shell as exit status 1 (the child prints the message itself: its
/// standard error is still the caller's until [`Detached::ready`]). Call it before any thread
/// or io_uring instance exists.
///
/// # Errors
/// The `pipe`, `fork` or `setsid` error; the process is then still attached.
pub fn daemonize() -> Result<Detached, Errno> {
    let mut fds: [libc::c_int; 2] = [0; 2];
    // SAFETY: `fds` is a valid, writable array of two ints for the duration of the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(errno_of(&io::Error::last_os_error()));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: called while the process is single-threaded (documented contract), so the child
    // may keep running arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => return Err(errno_of(&io::Error::last_os_error())),
        0 => {}
        _ => {
            drop(wr);
            let mut byte = [1u8; 1];
            let status = match std::fs::File::from(rd).read(&mut byte) {
                Ok(1) if byte[0] == READY => 0,
                _ => 1,
            };
            // SAFETY: `_exit` ends the parent without running destructors that the child still
            // relies on (the listening socket, for instance, stays open in the child).
            unsafe { libc::_exit(status) }
        }
    }
    drop(rd);
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(errno_of(&io::Error::last_os_error()));
    }
    Ok(Detached { pipe: wr })
}

/// The byte a daemonised child sends its waiting parent when startup succeeded.
const READY: u8 = 0;

/// The child's side of [`daemonize`]: tells the waiting parent how startup went. Dropping it
/// without [`Detached::ready`] makes the parent exit 1.
#[derive(Debug)]
pub struct Detached {
    pipe: OwnedFd,
}

impl Detached {
    /// Points stdin, stdout and stderr at `/dev/null` and lets the parent exit 0.
    ///
    /// # Errors
    /// The `open` or `dup2` error; the parent then exits 1.
    pub fn ready(self) -> Result<(), Errno> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| errno_of(&e))?;
        use std::os::fd::AsRawFd;
        for target in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; `null` is a valid open descriptor.
            if unsafe { libc::dup2(null.as_raw_fd(), target) } == -1 {
                return Err(errno_of(&io::Error::last_os_error()));
            }
        }
        std::fs::File::from(self.pipe)
            .write_all(&[READY])
            .map_err(|e| errno_of(&e))
    }
}

/// Why a `-u` user or group could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// No user of that name, and the name is not a numeric id.
    NoSuchUser(String),
    /// No group of that name, and the name is not a numeric id.
    NoSuchGroup(String),
    /// The name contains a NUL byte.
    NulByte(String),
    /// The password or group database could not be read.
    Database(Errno),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchUser(u) => write!(f, "no such user: {u}"),
            Self::NoSuchGroup(g) => write!(f, "no such group: {g}"),
            Self::NulByte(n) => write!(f, "invalid name: {n:?}"),
            Self::Database(e) => write!(f, "cannot read the user database: {e}"),
        }
    }
}

impl std::error::Error for LookupError {}

/// Size of the string buffer handed to `getpwnam_r`/`getgrnam_r`; grown on `ERANGE`.
const NSS_BUFFER: usize = 4096;
/// The largest buffer tried before giving up with `ERANGE`.
const NSS_BUFFER_MAX: usize = 1 << 20;

/// Looks up a user by name, falling back to a numeric uid (spiped's `setuidgid`). Returns
/// `(uid, primary gid)`; for a numeric uid with no passwd entry, the gid is `None`.
///
/// # Errors
/// [`LookupError::NoSuchUser`], [`LookupError::NulByte`] or [`LookupError::Database`].
pub fn lookup_user(name: &str) -> Result<(u32, Option<u32>), LookupError> {
    let c = std::ffi::CString::new(name).map_err(|_| LookupError::NulByte(name.to_owned()))?;
    let mut size = NSS_BUFFER;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        // SAFETY: an all-zero passwd is a valid value to be overwritten by getpwnam_r.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `c` is NUL-terminated, `pw` and
        // `result` are writable, `buf` holds `size` bytes. The strings written into `buf` are
        // not used after it is dropped (only the numeric fields are read).
        let r =
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), size, &mut result) };
        match r {
            0 if !result.is_null() => return Ok((pw.pw_uid, Some(pw.pw_gid))),
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => {
                return name
                    .parse::<u32>()
                    .map(|uid| (uid, None))
                    .map_err(|_| LookupError::NoSuchUser(name.to_owned()));
            }
            libc::ERANGE if size < NSS_BUFFER_MAX => size *= 4,
            e => return Err(LookupError::Database(Errno(e))),
        }
    }
}

/// Looks up a group by name, falling back to a numeric gid.
///
/// # Errors
/// [`LookupError::NoSuchGroup`], [`LookupError::NulByte`] or [`LookupError::Database`].
pub fn lookup_group(name: &str) -> Result<u32, LookupError> {
    let c = std::ffi::CString::new(name).map_err(|_| LookupError::NulByte(name.to_owned()))?;
    let mut size = NSS_BUFFER;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        // SAFETY: an all-zero group is a valid value to be overwritten by getgrnam_r.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `lookup_user`: valid pointers, `buf` holds `size` bytes, and only the
        // numeric gid is read afterwards.
        let r =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), size, &mut result) };
        match r {
            0 if !result.is_null() => return Ok(gr.gr_gid),
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => {
                return name
                    .parse::<u32>()
                    .map_err(|_| LookupError::NoSuchGroup(name.to_owned()));
            }
            libc::ERANGE if size < NSS_BUFFER_MAX => size *= 4,
            e => return Err(LookupError::Database(Errno(e))),
        }
    }
}

/// Which step of [`drop_privileges`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegeError {
    /// `setgid(2)` failed (usually `EPERM`: not root).
    SetGid(Errno),
    /// `setuid(2)` failed.
    SetUid(Errno),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetGid(e) => write!(f, "setgid failed: {e}"),
            Self::SetUid(e) => write!(f, "setuid failed: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Switches to `gid` and then `uid` (either may be absent), as spiped's `setuidgid` does: with
/// a gid, first `setgroups` to just that group (its failure is returned as `Ok(Some(errno))`, a
/// warning, since an unprivileged process cannot do it but may still switch groups it is in),
/// then `setgid`; then `setuid`. Must run while the process is single-threaded or accept that
/// glibc applies the change to every thread.
///
/// # Errors
/// [`PrivilegeError::SetGid`] or [`PrivilegeError::SetUid`]; the process should then exit.
pub fn drop_privileges(
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Option<Errno>, PrivilegeError> {
    let mut warning = None;
    if let Some(gid) = gid {
        let groups: [libc::gid_t; 1] = [gid];
        // SAFETY: `groups` is a valid array of one gid for the duration of the call.
        if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
            warning = Some(errno_of(&io::Error::last_os_error()));
        }
        // SAFETY: setgid has no memory-safety preconditions.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(PrivilegeError::SetGid(
                errno_of(&io::Error::last_os_error()),
            ));
        }
    }
    if let Some(uid) = uid {
        // SAFETY: setuid has no memory-safety preconditions.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(PrivilegeError::SetUid(
                errno_of(&io::Error::last_os_error()),
            ));
        }
    }
    Ok(warning)
}

/// `AUDIT_ARCH_*` of the architecture this is built for, as seen in `seccomp_data.arch`.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Offsets of `nr` and `arch` in the kernel's `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

/// Makes `io_uring_setup` fail with `EPERM` for the calling thread and every process it starts
/// from now on, as Docker's default seccomp profile does; every other system call is allowed.
/// It cannot be undone. Meant for testing the epoll fallback (and for users who want to see
/// it); it sets `PR_SET_NO_NEW_PRIVS` first, which seccomp requires without `CAP_SYS_ADMIN`.
///
/// # Errors
/// `ENOSYS` on an architecture this does not know the audit number of; otherwise the `prctl`
/// error (e.g. `EINVAL` from a kernel without seccomp filters).
pub fn deny_io_uring_setup() -> Result<(), Errno> {
    let Some(arch) = AUDIT_ARCH else {
        return Err(Errno(libc::ENOSYS));
    };
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let mut filter = [
        stmt(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            SECCOMP_DATA_ARCH,
        ),
        // Another ABI (e.g. 32-bit calls): allow, its numbers differ.
        jump(arch, 0, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, SECCOMP_DATA_NR),
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(errno_of(&io::Error::last_os_error()));
    }
    // SAFETY: `prog` points at `filter`, a valid BPF program of `len` instructions that lives
    // until the call returns; the kernel copies it.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(errno_of(&io::Error::last_os_error()));
    }
    Ok(())
}

/// Nice value [`make_background_thread`] gives the calling thread (the default is 0).
const BACKGROUND_NICE: libc::c_int = 10;

/// Prepares the calling thread for background work (the key-pool worker): blocks `SIGTERM`,
/// `SIGINT` and `SIGHUP` in it, so they always reach the event-loop thread and interrupt its
/// wait, and lowers its scheduling priority so the event loop wins a contended core. Failures
/// are ignored: the thread then gets those signals or runs at normal priority, which is only
/// slower.
pub fn make_background_thread() {
    // A failure only means this thread may take those signals (see above).
    let _ = block_daemon_signals_in_thread();
    // SAFETY: gettid has no preconditions; on Linux PRIO_PROCESS with a thread id sets that
    // thread's nice value only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE);
    }
}
