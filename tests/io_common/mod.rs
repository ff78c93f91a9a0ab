//! Shared harness for the io-layer tests: a relay thread, target servers and clients, all over
//! loopback TCP or Unix sockets in a private temporary directory.

#![allow(dead_code, unreachable_pub)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket, Type};
use spiperelay::io::Driver;
use spiperelay::io::epoll::{Epoll, EpollConfig};
use spiperelay::io::forward::{ForwardConfig, ForwardStats, Forwarder};
use spiperelay::io::sys;
use spiperelay::io::uring::{Uring, UringConfig};

/// A backend under test: how to build one and what it reports about its bookkeeping. Every
/// driver-level test is written once, generic over this trait, and run for each backend by
/// [`driver_tests!`].
pub trait TestDriver: Driver + Sized + 'static {
    /// The backend's name, as `SPIPERELAY_BACKEND` spells it.
    const NAME: &'static str;
    /// A driver with its default sizes.
    fn with_defaults() -> Self;
    /// A driver whose receive pool holds `buffers` buffers of `size` bytes.
    fn with_pool(buffers: u16, size: u32) -> Self;
    /// Sockets currently owned, including those being closed.
    fn open_handles(&self) -> usize;
    /// Operations whose event has not been produced yet.
    fn ops_in_flight(&self) -> usize;
    /// Resident bytes of the receive pool, if the backend can release it.
    fn pool_resident(&self) -> Option<usize> {
        None
    }
}

impl TestDriver for Uring {
    const NAME: &'static str = "uring";
    fn with_defaults() -> Self {
        Uring::new(UringConfig::default()).expect("io_uring setup")
    }
    fn with_pool(buffers: u16, size: u32) -> Self {
        Uring::new(UringConfig {
            entries: 64,
            recv_buffers: buffers,
            recv_buffer_size: size,
        })
        .expect("io_uring setup")
    }
    fn open_handles(&self) -> usize {
        Uring::open_handles(self)
    }
    fn ops_in_flight(&self) -> usize {
        Uring::ops_in_flight(self)
    }
    fn pool_resident(&self) -> Option<usize> {
        Uring::recv_pool_resident(self)
    }
}

impl TestDriver for Epoll {
    const NAME: &'static str = "epoll";
    fn with_defaults() -> Self {
        Epoll::new(EpollConfig::default()).expect("epoll setup")
    }
    fn with_pool(buffers: u16, size: u32) -> Self {
        Epoll::new(EpollConfig {
            recv_buffers: buffers,
            recv_buffer_size: size,
            ..EpollConfig::default()
        })
        .expect("epoll setup")
    }
    fn open_handles(&self) -> usize {
        Epoll::open_handles(self)
    }
    fn ops_in_flight(&self) -> usize {
        Epoll::ops_in_flight(self)
    }
}

/// Turns generic test functions `fn name<D: TestDriver>()` into one `#[test]` per backend:
/// `uring::name` and `epoll::name`.
#[macro_export]
macro_rules! driver_tests {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test]
            fn $name() {
                super::$name::<spiperelay::io::uring::Uring>();
            })*
        }
        mod epoll {
            $(#[test]
            fn $name() {
                super::$name::<spiperelay::io::epoll::Epoll>();
            })*
        }
    };
}

/// Upper bound for any single blocking socket operation in a test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Which address family an endpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Unix,
}

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("spiperelay-io-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listening socket of `kind`, plus the address clients should use.
pub fn listen(kind: Kind, dir: &TempDir, name: &str) -> (Socket, SockAddr) {
    let fd = match kind {
        Kind::Tcp => {
            sys::listen_tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("listen tcp")
        }
        Kind::Unix => sys::listen_unix(&dir.0.join(name)).expect("listen unix"),
    };
    let sock = Socket::from(fd);
    let addr = sock.local_addr().expect("local addr");
    (sock, addr)
}

/// A connected client socket with read/write timeouts.
pub fn connect(addr: &SockAddr) -> Socket {
    let s = Socket::new(addr.domain(), Type::STREAM, None).expect("client socket");
    s.connect(addr).expect("client connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// A running relay: the forwarder on backend `D`, on its own thread.
pub struct Relay {
    pub addr: SockAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<RelayReport>>,
}

/// What the relay thread saw by the time it stopped.
#[derive(Debug)]
pub struct RelayReport {
    pub stats: ForwardStats,
    pub open_handles: usize,
    pub ops_in_flight: usize,
}

impl Relay {
    pub fn start<D: TestDriver>(listen_kind: Kind, target: SockAddr, dir: &TempDir) -> Relay {
        let (sock, addr) = listen(listen_kind, dir, "relay.sock");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let io = D::with_defaults();
            let cfg = ForwardConfig {
                target,
                connect_timeout: Duration::from_secs(5),
                accept_backoff: Duration::from_millis(20),
            };
            let mut fwd = Forwarder::new(io, sock.into(), cfg).expect("forwarder");
            fwd.run_until(&stop2).expect("relay loop");
            // Let connections still closing finish, within a bound.
            let deadline = Instant::now() + Duration::from_secs(10);
            while fwd.stats().active > 0 && Instant::now() < deadline {
                fwd.turn(Duration::from_millis(20)).expect("relay loop");
            }
            RelayReport {
                stats: fwd.stats(),
                open_handles: fwd.driver().open_handles(),
                ops_in_flight: fwd.driver().ops_in_flight(),
            }
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the relay and returns its report.
    pub fn finish(mut self) -> RelayReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("relay thread")
            .join()
            .expect("relay thread panicked")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a target server treats each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Echo everything; on EOF shut down the write side.
    Echo,
    /// Read until EOF, wait a second, send `LATE_REPLY`, shut down.
    LateReply,
}

pub const LATE_REPLY: &[u8] = b"late reply";

/// A target server on its own threads.
pub struct Target {
    pub addr: SockAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub accepted: Arc<AtomicU64>,
}

impl Target {
    pub fn start(kind: Kind, dir: &TempDir, behaviour: Behaviour) -> Target {
        let (sock, addr) = listen(kind, dir, "target.sock");
        sock.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let accepted = Arc::new(AtomicU64::new(0));
        let accepted2 = Arc::clone(&accepted);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match sock.accept() {
                    Ok((s, _)) => {
                        accepted2.fetch_add(1, Ordering::Relaxed);
                        s.set_nonblocking(false).expect("blocking");
                        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
                        workers.push(std::thread::spawn(move || serve(s, behaviour)));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("target accept: {e}"),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Target {
            addr,
            stop,
            thread: Some(thread),
            accepted,
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: Socket, behaviour: Behaviour) {
    let mut buf = vec![0u8; 64 * 1024];
    match behaviour {
        Behaviour::Echo => loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        },
        Behaviour::LateReply => loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(Duration::from_secs(1));
                    let _ = s.write_all(LATE_REPLY);
                    break;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        },
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// Deterministic pseudo-random payload.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Reads until EOF (bounded by the socket's read timeout and `max` bytes).
pub fn read_to_eof(s: &mut Socket, max: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(std::io::Error::other("more data than expected"));
        }
    }
}

/// Sends `data` and half-closes on one thread while reading everything back on this one;
/// returns what came back.
pub fn exchange(addr: &SockAddr, data: Vec<u8>) -> Vec<u8> {
    let mut s = connect(addr);
    let mut w = s.try_clone().expect("clone");
    let max = data.len();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).expect("client write");
        w.shutdown(Shutdown::Write).expect("client shutdown");
    });
    let got = read_to_eof(&mut s, max).expect("client read");
    writer.join().expect("writer");
    got
}
