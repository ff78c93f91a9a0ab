//! Socket and resource-limit helpers shared by every backend.
//!
//! Sockets are created close-on-exec. Listeners and the sockets the io_uring backend connects
//! are left in blocking mode: io_uring never blocks the calling thread (it polls the socket
//! internally), and a blocking descriptor keeps its semantics the same for every opcode.
//! [`connect_nonblocking`] is for a readiness-based (epoll) backend.

#![allow(unsafe_code)]

use std::fmt;
use std::io;
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

/// Detaches from the terminal the way spiped's `daemonize` does: `fork`, the parent exits 0
/// at once, the child becomes a session leader (`setsid`) and points stdin, stdout and stderr
/// at `/dev/null`. Call it before any thread or io_uring instance exists.
///
/// # Errors
/// The `fork`, `setsid` or `open` error; the process is then still attached.
pub fn daemonize() -> Result<(), Errno> {
    // SAFETY: called while the process is single-threaded (documented contract), so the child
    // may keep running arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => return Err(errno_of(&io::Error::last_os_error())),
        0 => {}
        // SAFETY: `_exit` ends the parent without running destructors that the child still
        // relies on (the listening socket, for instance, stays open in the child).
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(errno_of(&io::Error::last_os_error()));
    }
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
    Ok(())
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
    // SAFETY: an all-zero sigset_t is a valid value to pass to sigemptyset, which initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t owned by this frame, for each call.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: gettid has no preconditions; on Linux PRIO_PROCESS with a thread id sets that
    // thread's nice value only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE);
    }
}
