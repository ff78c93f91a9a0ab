//! Black-box harness for the relay *binary*: runs `spiperelay` (or, for validating the harness,
//! the real `spiped`) as child processes in the foreground (`-F`), with spiped-syntax addresses
//! (`[127.0.0.1]:PORT`, `[::1]:PORT`, `/abs/path.sock`), plus echo servers, clients, key files
//! and private temporary directories.
//!
//! Every loop here is bounded in time and in count, every socket has read/write timeouts, and
//! every child process is killed by PID (`Child::kill` + `wait`) when its handle is dropped.
//!
//! `SPIPERELAY_TEST_BIN=/path/to/binary` replaces the binary under test; without it the
//! tests run cargo's build of `spiperelay`. Checks of spiperelay's deliberate differences
//! from spiped (see [`relay_is_ours`]) run only against our own binary.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsString;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for any single blocking socket operation.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for a whole client exchange (connect, send, receive until EOF).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a freshly started process to accept connections.
pub const LISTEN_WAIT: Duration = Duration::from_secs(5);
/// Path of the reference daemon.
pub const SPIPED: &str = "/usr/bin/spiped";
/// Path of the reference client.
pub const SPIPE: &str = "/usr/bin/spipe";

/// The binary under test: `$SPIPERELAY_TEST_BIN` if set, else cargo's build of `spiperelay`.
pub fn relay_bin() -> PathBuf {
    match std::env::var_os("SPIPERELAY_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_spiperelay")),
    }
}

/// True when the binary under test is our own build (no `SPIPERELAY_TEST_BIN` override).
/// Assertions about spiperelay's deliberate differences from spiped (the target is contacted
/// only after authentication, error wording) run only then.
pub fn relay_is_ours() -> bool {
    std::env::var_os("SPIPERELAY_TEST_BIN").is_none_or(|p| p.is_empty())
}

/// The reference spiped binary.
pub fn spiped_bin() -> PathBuf {
    PathBuf::from(SPIPED)
}

/// True when running under CI (`CI=true`), where missing tools are failures, not skips.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `path` exists; if not, prints `SKIP: <what> not installed` and returns false, or
/// panics under `CI=true`.
pub fn have_tool(path: &str, what: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        !under_ci(),
        "{path} is missing and CI=true: install the Debian package {what}"
    );
    eprintln!("SKIP: {what} not installed");
    false
}

/// Whether the reference spiped (and spipe) can be used; see [`have_tool`].
pub fn have_spiped() -> bool {
    have_tool(SPIPED, "spiped") && have_tool(SPIPE, "spiped")
}

// ---------------------------------------------------------------------------------------------
// Temporary directories, key files, payloads

/// A private (mode 0700) directory under `std::env::temp_dir()`, removed on drop.
pub struct TempDir {
    path: PathBuf,
    socks: AtomicUsize,
}

impl TempDir {
    /// Creates a fresh directory; `tag` keeps names readable (keep it short: Unix socket paths
    /// inside must fit in `sun_path`).
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        for _ in 0..100 {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = std::env::temp_dir().join(format!(
                "sprbt-{tag}-{}-{n}-{:x}",
                std::process::id(),
                nanos & 0xffff
            ));
            match fs::create_dir(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                        .expect("chmod temp dir");
                    return Self {
                        path,
                        socks: AtomicUsize::new(0),
                    };
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
        panic!("could not create a temp dir for {tag}");
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A fresh, unused Unix socket path inside the directory.
    pub fn sock_path(&self, stem: &str) -> PathBuf {
        let n = self.socks.fetch_add(1, Ordering::Relaxed);
        self.path.join(format!("{stem}{n}.sock"))
    }

    /// Writes a 32-byte random key file named `name` and returns its path.
    pub fn key(&self, name: &str) -> PathBuf {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (name.len() as u64).rotate_left(17)
            ^ u64::from(std::process::id()).rotate_left(40);
        let path = self.join(name);
        fs::write(&path, random_bytes(seed, 32)).expect("write key file");
        // As a key file should be (our relay warns about group- or world-readable keys).
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod key file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `len` pseudo-random bytes (xorshift64*), reproducible from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The payload sizes every chain is checked with (issue 4).
pub const PAYLOAD_SIZES: &[usize] = &[0, 1, 1023, 1024, 1025, 1 << 20];

/// Panics with a short message (not a megabyte dump) unless `got == want`.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes, want {}; first difference at {:?}",
        got.len(),
        want.len(),
        first
    );
}

// ---------------------------------------------------------------------------------------------
// Addresses and client connections

/// Which kind of socket an endpoint listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    /// TCP on 127.0.0.1.
    V4,
    /// TCP on ::1.
    V6,
    /// A Unix socket in the test's temp dir.
    Unix,
}

/// An endpoint address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Addr {
    /// The address in spiped's syntax: `[127.0.0.1]:PORT`, `[::1]:PORT` or `/abs/path`.
    pub fn spiped(&self) -> String {
        match self {
            Self::Tcp(SocketAddr::V4(a)) => format!("[{}]:{}", a.ip(), a.port()),
            Self::Tcp(SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
            Self::Unix(p) => p.display().to_string(),
        }
    }

    /// The TCP port (panics for Unix addresses).
    pub fn port(&self) -> u16 {
        match self {
            Self::Tcp(a) => a.port(),
            Self::Unix(p) => panic!("{} has no port", p.display()),
        }
    }

    /// Connects with a bounded connect and read/write timeouts of [`IO_TIMEOUT`].
    pub fn connect(&self) -> io::Result<Conn> {
        let conn = match self {
            Self::Tcp(a) => Conn::Tcp(TcpStream::connect_timeout(a, Duration::from_secs(5))?),
            Self::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
        };
        conn.set_timeouts(IO_TIMEOUT)?;
        Ok(conn)
    }
}

/// Whether `::1` can be bound on this machine (IPv6 tests skip otherwise).
pub fn have_ipv6() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// A free loopback TCP port, found by binding port 0 and dropping the listener. Another
/// process may grab it before we use it; [`Proc::start_listening`] retries in that case, and
/// [`Proc::wait_listening`] checks that the listener it finds is its own process's. The kernel
/// may hand a just-released port out again, so this never returns the same port twice in one
/// test process (bounded: at most 64 draws).
pub fn free_tcp_addr(fam: Fam) -> SocketAddr {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ip: std::net::IpAddr = match fam {
        Fam::V6 => Ipv6Addr::LOCALHOST.into(),
        _ => Ipv4Addr::LOCALHOST.into(),
    };
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..64 {
        let l = TcpListener::bind((ip, 0)).expect("bind port 0");
        let a = l.local_addr().expect("local addr");
        if !handed_out.contains(&a.port()) {
            handed_out.push(a.port());
            return a;
        }
    }
    panic!("64 draws of port 0 all returned ports this test process already used");
}

/// Whether process `pid` holds a TCP socket listening on `port` (any local address), read
/// from its own network namespace's `/proc/<pid>/net/tcp{,6}` and its `/proc/<pid>/fd`.
///
/// A connect that succeeds only says *someone* listens there: a process of another test that
/// was handed the same port, or a loopback self-connect. This says it is `pid`.
pub fn pid_listens_on(pid: u32, port: u16) -> bool {
    /// `st` of a listening socket in /proc/net/tcp.
    const TCP_LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != TCP_LISTEN {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// A fresh address of family `fam` (a free port, or a new socket path in `dir`).
pub fn fresh_addr(fam: Fam, dir: &TempDir) -> Addr {
    match fam {
        Fam::V4 | Fam::V6 => Addr::Tcp(free_tcp_addr(fam)),
        Fam::Unix => Addr::Unix(dir.sock_path("s")),
    }
}

/// A connected stream socket of either kind.
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

impl Conn {
    /// Sets both read and write timeouts.
    pub fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Self::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }

    /// Sets only the read timeout.
    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(Some(t)),
            Self::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    /// A second handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(s) => Self::Tcp(s.try_clone()?),
            Self::Unix(s) => Self::Unix(s.try_clone()?),
        })
    }

    /// Half-close: shut down the write side.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(Shutdown::Write),
            Self::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a read loop ended.
#[derive(Debug)]
pub enum End {
    /// Orderly EOF.
    Eof,
    /// A read error other than a timeout (e.g. connection reset).
    Error(io::Error),
    /// The read timeout (or the overall deadline, or the byte cap) was hit first.
    TimedOut,
}

impl End {
    /// True for an orderly EOF.
    pub fn is_eof(&self) -> bool {
        matches!(self, Self::Eof)
    }
    /// True when the peer closed (EOF or reset), as opposed to a timeout.
    pub fn is_closed(&self) -> bool {
        !matches!(self, Self::TimedOut)
    }
}

/// Reads until EOF, an error, `deadline`, or `cap` bytes (bounded in time and count).
pub fn read_until_end(r: &mut impl Read, cap: usize, deadline: Instant) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline && out.len() <= cap {
        match r.read(&mut buf) {
            Ok(0) => return (out, End::Eof),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, End::TimedOut);
            }
            Err(e) => return (out, End::Error(e)),
        }
    }
    (out, End::TimedOut)
}

/// What a client saw in one exchange.
#[derive(Debug)]
pub struct Exchange {
    /// Bytes received before the end.
    pub received: Vec<u8>,
    /// How the receive side ended.
    pub end: End,
    /// Result of writing the payload and half-closing.
    pub write: io::Result<()>,
    /// Time from connect to the end of the receive side.
    pub elapsed: Duration,
}

/// Connects to `addr`, writes `payload` then half-closes (on a second thread, so large echoes
/// cannot deadlock), and reads until EOF. Reads time out after `read_timeout` of silence.
pub fn exchange_with(addr: &Addr, payload: &[u8], read_timeout: Duration) -> io::Result<Exchange> {
    let start = Instant::now();
    let mut conn = addr.connect()?;
    conn.set_read_timeout(read_timeout)?;
    let mut w = conn.try_clone()?;
    let data = payload.to_vec();
    let writer = thread::spawn(move || -> io::Result<()> {
        w.write_all(&data)?;
        w.shutdown_write()
    });
    let (received, end) = read_until_end(
        &mut conn,
        payload.len() + (1 << 20),
        start + EXCHANGE_TIMEOUT,
    );
    let elapsed = start.elapsed();
    // Unblock a writer stuck on a dead connection before joining it.
    if !end.is_eof() {
        let _ = match &conn {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
    let write = writer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
    Ok(Exchange {
        received,
        end,
        write,
        elapsed,
    })
}

/// [`exchange_with`] with the default read timeout.
pub fn exchange(addr: &Addr, payload: &[u8]) -> io::Result<Exchange> {
    exchange_with(addr, payload, IO_TIMEOUT)
}

/// Requires the exact echo of `payload` followed by EOF.
pub fn assert_echo(addr: &Addr, payload: &[u8], what: &str) -> Exchange {
    assert_echo_logged(addr, payload, what, String::new)
}

/// [`assert_echo`], adding `logs()` (read after the exchange, e.g. the relays' stderr) to
/// every failure message.
pub fn assert_echo_logged(
    addr: &Addr,
    payload: &[u8],
    what: &str,
    logs: impl Fn() -> String,
) -> Exchange {
    let x = exchange(addr, payload).unwrap_or_else(|e| panic!("{what}: connect: {e}; {}", logs()));
    assert!(
        x.end.is_eof(),
        "{what}: expected EOF, got {:?}; {}",
        x.end,
        logs()
    );
    if x.received != payload {
        assert_same(&x.received, payload, &format!("{what}; {}", logs()));
    }
    assert!(
        x.write.is_ok(),
        "{what}: write failed: {:?}; {}",
        x.write,
        logs()
    );
    x
}

/// Requires that the connection is closed (EOF or reset) without a single byte arriving.
pub fn assert_refused(addr: &Addr, what: &str) {
    let payload = b"this must never reach the target\n";
    match exchange(addr, payload) {
        // A refused connect is also "no service".
        Err(_) => {}
        Ok(x) => {
            assert!(
                x.received.is_empty(),
                "{what}: {} bytes came back: {:?}",
                x.received.len(),
                String::from_utf8_lossy(&x.received)
            );
            assert!(
                x.end.is_closed(),
                "{what}: connection neither closed nor reset"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process, killed by PID (kill + wait) on drop, with stderr captured to a file.
pub struct Proc {
    child: Child,
    /// A label for messages.
    pub name: String,
    stderr_path: PathBuf,
    /// The address it listens on, when started with [`Proc::start_listening`].
    pub listen: Option<Addr>,
}

impl Proc {
    /// Spawns `bin args` with stdin/stdout on /dev/null and stderr to `<dir>/<name>.stderr`.
    pub fn spawn(dir: &TempDir, name: &str, bin: &Path, args: &[OsString]) -> io::Result<Self> {
        let stderr_path = dir.join(&format!("{name}.stderr"));
        let stderr = fs::File::create(&stderr_path)?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        Ok(Self {
            child,
            name: name.to_owned(),
            stderr_path,
            listen: None,
        })
    }

    /// Starts `bin` listening on a fresh address of family `fam`: `make_args` gets the
    /// spiped-syntax listen address and returns the full argument list. Waits until the
    /// listener accepts a connection ([`LISTEN_WAIT`]); if the process dies first (e.g. the
    /// port was taken in the meantime), retries with a new address, at most 5 times.
    pub fn start_listening(
        dir: &TempDir,
        name: &str,
        bin: &Path,
        fam: Fam,
        make_args: impl Fn(&str) -> Vec<OsString>,
    ) -> Self {
        let mut last = String::new();
        for attempt in 0..5 {
            let addr = fresh_addr(fam, dir);
            let mut p = Self::spawn(dir, name, bin, &make_args(&addr.spiped()))
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            match p.wait_listening(&addr) {
                Ok(()) => {
                    p.listen = Some(addr);
                    return p;
                }
                Err(e) => {
                    last = format!("attempt {attempt}: {e}; stderr: {}", p.stderr());
                    drop(p);
                }
            }
        }
        panic!("{name} ({}) never listened: {last}", bin.display());
    }

    /// Polls (every 10 ms, bounded by [`LISTEN_WAIT`]) until `addr` accepts a connection and,
    /// for TCP, this process is the one listening there ([`pid_listens_on`]).
    pub fn wait_listening(&mut self, addr: &Addr) -> Result<(), String> {
        let deadline = Instant::now() + LISTEN_WAIT;
        for _ in 0..1000 {
            if let Some(st) = self.try_exit() {
                return Err(format!("exited early with {st}"));
            }
            let ours = match addr {
                Addr::Tcp(a) => pid_listens_on(self.pid(), a.port()),
                Addr::Unix(_) => true,
            };
            if ours && addr.connect().is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "{} not accepting after {LISTEN_WAIT:?}",
            addr.spiped()
        ))
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The listen address (panics if unknown).
    pub fn addr(&self) -> &Addr {
        self.listen.as_ref().expect("listen address")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds an argument vector from string-likes.
pub fn args<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

/// Starts a relay end (`mode` is `-e` or `-d`) of `bin` in the foreground, listening on a
/// fresh `fam` address and forwarding to `target`, with `flags` appended.
#[allow(clippy::too_many_arguments)]
pub fn start_end(
    dir: &TempDir,
    name: &str,
    bin: &Path,
    mode: &str,
    fam: Fam,
    target: &Addr,
    key: &Path,
    flags: &[&str],
) -> Proc {
    let target = target.spiped();
    Proc::start_listening(dir, name, bin, fam, |src| {
        let mut a = args(["-F", mode, "-s", src, "-t", &target]);
        a.push("-k".into());
        a.push(key.into());
        a.extend(flags.iter().map(OsString::from));
        a
    })
}

/// The result of a bounded command run.
#[derive(Debug)]
pub struct Output {
    /// Exit status, or `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: String,
}

impl Output {
    /// The exit code (None if killed by a signal or at the deadline).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Runs `bin args` feeding `stdin`, capturing stdout/stderr, killing it after `timeout`.
pub fn run_bounded(bin: &Path, args: &[OsString], stdin: &[u8], timeout: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut sin = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let w = thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let mut sout = child.stdout.take().expect("stdout");
    let r = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = sout.read_to_end(&mut v);
        v
    });
    let mut serr = child.stderr.take().expect("stderr");
    let e = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = serr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut status = None;
    for _ in 0..100_000 {
        if let Some(st) = child.try_wait().ok().flatten() {
            status = Some(st);
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = w.join();
    let stdout = r.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&e.join().unwrap_or_default()).into_owned();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs the real `spipe -t target -k key [flags]` with `payload` on stdin (bounded to 30 s).
pub fn run_spipe(target: &Addr, key: &Path, flags: &[&str], payload: &[u8]) -> Output {
    let mut a = args(["-t", &target.spiped()]);
    a.push("-k".into());
    a.push(key.into());
    a.extend(flags.iter().map(OsString::from));
    run_bounded(Path::new(SPIPE), &a, payload, Duration::from_secs(30))
}

// ---------------------------------------------------------------------------------------------
// Echo servers

/// When an echo server sends its reply.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// Echo each chunk as it arrives; half-close after the client's EOF.
    Stream,
    /// Buffer everything; after the client's EOF wait this long, then send it all and
    /// half-close (a reply that arrives after the client's half-close).
    AfterEof(Duration),
    /// Echo at most this many bytes a second, in 10 ms bursts (spiped's `nc-server` with a
    /// BPS argument, its test 08); half-close once the client's EOF was seen and everything
    /// was echoed.
    Limited(u32),
}

/// An echo server (TCP or Unix) on its own accept thread; each connection gets a thread.
pub struct Echo {
    /// Where it listens.
    pub addr: Addr,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    bytes_in: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Echo {
    /// Starts an echo server on a fresh `fam` address.
    pub fn start(fam: Fam, dir: &TempDir, reply: Reply) -> Self {
        let addr = match fam {
            Fam::V4 => Addr::Tcp((Ipv4Addr::LOCALHOST, 0).into()),
            Fam::V6 => Addr::Tcp((Ipv6Addr::LOCALHOST, 0).into()),
            Fam::Unix => Addr::Unix(dir.sock_path("echo")),
        };
        let (listener, addr) = match addr {
            Addr::Tcp(a) => {
                let l = TcpListener::bind(a).expect("echo bind");
                let a = l.local_addr().expect("echo addr");
                (AnyListener::Tcp(l), Addr::Tcp(a))
            }
            Addr::Unix(p) => (
                AnyListener::Unix(UnixListener::bind(&p).expect("echo bind unix")),
                Addr::Unix(p),
            ),
        };
        match &listener {
            AnyListener::Tcp(l) => l.set_nonblocking(true),
            AnyListener::Unix(l) => l.set_nonblocking(true),
        }
        .expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let (s, c, b) = (stop.clone(), conns.clone(), bytes_in.clone());
        let thread = thread::spawn(move || accept_loop(listener, reply, &s, &c, &b));
        Self {
            addr,
            stop,
            conns,
            bytes_in,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Bytes received so far over all connections.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: AnyListener,
    reply: Reply,
    stop: &AtomicBool,
    conns: &AtomicUsize,
    bytes_in: &Arc<AtomicU64>,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut accepted = 0usize;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && accepted < 10_000 {
        let got = match &listener {
            AnyListener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nonblocking(false);
                Conn::Tcp(s)
            }),
            AnyListener::Unix(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nonblocking(false);
                Conn::Unix(s)
            }),
        };
        match got {
            Ok(conn) => {
                accepted += 1;
                conns.fetch_add(1, Ordering::SeqCst);
                let b = bytes_in.clone();
                thread::spawn(move || serve_echo(conn, reply, &b));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve_echo(mut conn: Conn, reply: Reply, bytes_in: &AtomicU64) {
    if conn.set_timeouts(IO_TIMEOUT).is_err() {
        return;
    }
    if let Reply::Limited(bps) = reply {
        serve_limited(conn, bps, bytes_in);
        return;
    }
    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = Vec::new();
    let mut eof = false;
    while Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                bytes_in.fetch_add(n as u64, Ordering::SeqCst);
                match reply {
                    Reply::Stream => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Reply::AfterEof(_) | Reply::Limited(_) => held.extend_from_slice(&buf[..n]),
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    if !eof {
        return;
    }
    if let Reply::AfterEof(delay) = reply {
        thread::sleep(delay);
        if conn.write_all(&held).is_err() {
            return;
        }
    }
    let _ = conn.shutdown_write();
}

/// [`Reply::Limited`]: reads whatever is available every 10 ms tick and writes back at most
/// `bps / 100` bytes per tick, until the client's EOF has been read and everything echoed.
fn serve_limited(mut conn: Conn, bps: u32, bytes_in: &AtomicU64) {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (bps as usize / 100).max(1);
    if conn.set_read_timeout(TICK).is_err() {
        return;
    }
    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    let mut queue: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut eof = false;
    while Instant::now() < deadline {
        if !eof {
            match conn.read(&mut buf) {
                Ok(0) => eof = true,
                Ok(n) => {
                    bytes_in.fetch_add(n as u64, Ordering::SeqCst);
                    queue.extend(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        } else {
            thread::sleep(TICK);
        }
        let n = per_tick.min(queue.len());
        let burst: Vec<u8> = queue.drain(..n).collect();
        if !burst.is_empty() && conn.write_all(&burst).is_err() {
            return;
        }
        if eof && queue.is_empty() {
            let _ = conn.shutdown_write();
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chains: client -> [-e end] -> [-d end] -> echo

/// A running chain: echo server, decrypting end, encrypting end.
pub struct Chain {
    /// The encrypting end (clients connect to `enc.addr()`).
    pub enc: Proc,
    /// The decrypting end.
    pub dec: Proc,
    /// The echo target behind the decrypting end.
    pub echo: Echo,
    /// The private directory (dropped last).
    pub dir: TempDir,
}

/// How to build a chain.
pub struct ChainSpec<'a> {
    /// Temp dir tag.
    pub tag: &'a str,
    /// Binary for the encrypting end.
    pub enc_bin: PathBuf,
    /// Flags for the encrypting end.
    pub enc_flags: &'a [&'a str],
    /// Binary for the decrypting end.
    pub dec_bin: PathBuf,
    /// Flags for the decrypting end.
    pub dec_flags: &'a [&'a str],
    /// Where clients connect (the `-e` listen socket).
    pub front: Fam,
    /// The encrypted link (the `-d` listen socket).
    pub inner: Fam,
    /// The echo server behind `-d`.
    pub back: Fam,
    /// How the echo server replies.
    pub reply: Reply,
    /// Give the two ends different keys.
    pub wrong_key: bool,
}

/// The `-o` both ends of a [`ChainSpec`] chain get unless the test sets its own: spiped's
/// default of 5 s is shorter than a group-14 handshake can take on a loaded 2-core test machine
/// (seen: "handshake timed out" while many chains start in parallel next to a build).
pub const CHAIN_TIMEOUT: &str = "30";

/// `flags` with `-o CHAIN_TIMEOUT` in front, unless they already hold an `-o`.
fn with_chain_timeout<'f>(flags: &[&'f str]) -> Vec<&'f str> {
    let mut all = Vec::with_capacity(flags.len() + 2);
    if !flags.contains(&"-o") {
        all.extend(["-o", CHAIN_TIMEOUT]);
    }
    all.extend_from_slice(flags);
    all
}

impl<'a> ChainSpec<'a> {
    /// A TCP/IPv4 chain with streaming echo, the same key on both ends, no extra flags.
    pub fn new(tag: &'a str, enc_bin: PathBuf, dec_bin: PathBuf) -> Self {
        Self {
            tag,
            enc_bin,
            enc_flags: &[],
            dec_bin,
            dec_flags: &[],
            front: Fam::V4,
            inner: Fam::V4,
            back: Fam::V4,
            reply: Reply::Stream,
            wrong_key: false,
        }
    }

    /// Uses `fam` at every socket.
    pub fn all(mut self, fam: Fam) -> Self {
        self.front = fam;
        self.inner = fam;
        self.back = fam;
        self
    }

    /// Starts echo, then `-d`, then `-e`.
    pub fn start(&self) -> Chain {
        let dir = TempDir::new(self.tag);
        let key_e = dir.key("key_e");
        let key_d = if self.wrong_key {
            dir.key("key_d_other")
        } else {
            key_e.clone()
        };
        let echo = Echo::start(self.back, &dir, self.reply);
        let dec_flags = with_chain_timeout(self.dec_flags);
        let dec = start_end(
            &dir,
            "dec",
            &self.dec_bin,
            "-d",
            self.inner,
            &echo.addr,
            &key_d,
            &dec_flags,
        );
        let enc_flags = with_chain_timeout(self.enc_flags);
        let enc = start_end(
            &dir,
            "enc",
            &self.enc_bin,
            "-e",
            self.front,
            dec.addr(),
            &key_e,
            &enc_flags,
        );
        Chain {
            enc,
            dec,
            echo,
            dir,
        }
    }
}

impl Chain {
    /// Where clients connect.
    pub fn front(&self) -> &Addr {
        self.enc.addr()
    }

    /// [`assert_echo`] through this chain, with both ends' stderr in any failure message.
    pub fn assert_echo(&self, payload: &[u8], what: &str) -> Exchange {
        assert_echo_logged(self.front(), payload, what, || self.logs())
    }

    /// Both ends' stderr, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "enc stderr: {:?}; dec stderr: {:?}",
            self.enc.stderr(),
            self.dec.stderr()
        )
    }

    /// Sends every size in [`PAYLOAD_SIZES`] (one connection each, random bytes, then a
    /// half-close) and requires the exact echo followed by EOF.
    pub fn check_payloads(&self, what: &str) {
        for (i, &len) in PAYLOAD_SIZES.iter().enumerate() {
            let payload = random_bytes(0x5eed + i as u64 * 7919 + len as u64, len);
            let x = exchange(self.front(), &payload)
                .unwrap_or_else(|e| panic!("{what}: connect: {e}; {}", self.logs()));
            assert!(
                x.end.is_eof() && x.write.is_ok(),
                "{what}, {len} bytes: end {:?}, write {:?}; {}",
                x.end,
                x.write,
                self.logs()
            );
            assert_same(&x.received, &payload, &format!("{what}, {len} bytes"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Process inspection

/// The anonymous-inode kinds among `pid`'s descriptors, e.g. `[eventpoll]`, `[io_uring]`.
pub fn anon_inodes(pid: u32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("anon_inode:").map(str::to_owned))
        .take(10_000)
        .collect()
}

/// Starts an `-e` end of `bin` with `-b bind` in front of a plain TCP listener and connects one
/// client; returns the source address the target saw for the relay's outgoing connection
/// (`None` if none arrived within 10 s). Panics, with the relay's stderr, on setup failures.
pub fn outgoing_source_ip(dir: &TempDir, bin: &Path, bind: &str) -> Option<std::net::IpAddr> {
    let key = dir.key("key");
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let target = Addr::Tcp(l.local_addr().expect("addr"));
    let enc = start_end(dir, "enc", bin, "-e", Fam::V4, &target, &key, &["-b", bind]);
    let _client = enc.addr().connect().expect("connect to -e");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match l.accept() {
            Ok((_, p)) => return Some(p.ip()),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    eprintln!("no outgoing connection; -e stderr: {}", enc.stderr());
    None
}

// ---------------------------------------------------------------------------------------------
// Bounded waits

/// Polls `cond` every 20 ms (at most `timeout`, at most 10,000 times); returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    for _ in 0..10_000 {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// True if nothing at all arrives on `c` within `wait` (a client the relay has not served).
pub fn silent_for(c: &mut Conn, wait: Duration) -> bool {
    c.set_read_timeout(wait).expect("timeout");
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        Ok(0 | 1) => false,
        Ok(_) => unreachable!("read into a 1-byte buffer"),
    }
}

/// Runs `promtool check metrics` (Debian's `prometheus`) on `text`: `None` (after SKIP) without promtool, else its
/// exit status and output.
pub fn promtool_check(text: &str) -> Option<(bool, String)> {
    const PROMTOOL: &str = "/usr/bin/promtool";
    if !have_tool(PROMTOOL, "prometheus (promtool)") {
        return None;
    }
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(_status) = child.try_wait().expect("wait promtool") {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("promtool did not finish in 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("promtool output");
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), msg))
}

/// The names of `pid`'s threads.
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}
