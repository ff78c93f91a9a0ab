//! A small HTTP/1.1 server for `GET /metrics`, on a TCP address or a Unix socket path, on a
//! thread of its own with blocking sockets (the scrape path is not the data path).
//!
//! - `GET` (or `HEAD`) `/metrics` (any query string is ignored) answers `200` with the
//!   [`Board::collect`] snapshot in the Prometheus text format, or in OpenMetrics when the
//!   `Accept` header asks for `application/openmetrics-text`.
//! - Any other path answers `404`, any other method `405` (with `Allow: GET, HEAD`), a request
//!   that is not HTTP/1.x `400`, a request head over [`MAX_REQUEST_HEAD`] bytes `431`.
//! - One request per connection (`Connection: close`), one connection at a time; a client
//!   has [`REQUEST_TIMEOUT`] to send its request head and the same to take the answer, then
//!   it is dropped. A request body is never read.
//!
//! Where it listens is the configuration's `metrics` address and nothing else: the server is
//! off unless one is set, and binds exactly that address. An address that is not loopback is
//! allowed (the configuration is the operator's explicit choice) but
//! [`MetricsAddr::is_loopback`] lets the daemon warn about it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::io::sys::{self, SocketAccess, UnixListenError};

use super::Board;
use super::encode::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, openmetrics_text, prometheus_text,
};

/// The longest request head (request line and headers) read; a longer one is answered `431`.
pub const MAX_REQUEST_HEAD: usize = 8192;

/// How long a client has to send its request head, and again to take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The path metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// How long the accept loop pauses after a failed accept (e.g. `EMFILE`) before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Where the metrics server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    /// A TCP address, e.g. `127.0.0.1:9100` (port 0 picks a free one).
    Tcp(SocketAddr),
    /// A Unix stream socket path, created with the umask's mode; a stale socket left by a
    /// process that died is replaced, anything else there is an error.
    Unix(PathBuf),
}

impl MetricsAddr {
    /// Whether only this host can reach it: a loopback TCP address or a Unix socket.
    pub fn is_loopback(&self) -> bool {
        match self {
            MetricsAddr::Tcp(a) => a.ip().is_loopback(),
            MetricsAddr::Unix(_) => true,
        }
    }
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsAddr::Tcp(a) => a.fmt(f),
            MetricsAddr::Unix(p) => p.display().fmt(f),
        }
    }
}

/// Why the metrics server could not be set up.
#[derive(Debug)]
pub enum MetricsError {
    /// Binding the TCP address failed (in use, not local, no permission).
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        error: io::Error,
    },
    /// Creating the Unix socket failed ([`sys::listen_unix_reclaiming`]).
    BindUnix {
        /// The path.
        path: PathBuf,
        /// What failed.
        error: UnixListenError,
    },
    /// The server thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BindTcp { addr, error } => {
                write!(f, "cannot listen for metrics on {addr}: {error}")
            }
            Self::BindUnix { path, error } => write!(
                f,
                "cannot create the metrics socket {}: {error}",
                path.display()
            ),
            Self::Thread(e) => write!(f, "cannot start the metrics thread: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound metrics socket, not yet served ([`MetricsListener::start`]). Bind while the process
/// can still bind privileged addresses; start after daemonising.
pub struct MetricsListener {
    listener: Listener,
    /// The Unix socket's file, removed when the server (or this, unstarted) is dropped.
    socket_file: Option<SocketFile>,
}

/// A Unix socket's file, removed when dropped.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener")
            .field("local_addr", &self.local_addr())
            .field("socket_file", &self.socket_file)
            .finish()
    }
}

impl MetricsListener {
    /// Binds `addr`.
    ///
    /// # Errors
    /// [`MetricsError::BindTcp`] or [`MetricsError::BindUnix`].
    pub fn bind(addr: &MetricsAddr) -> Result<Self, MetricsError> {
        match addr {
            MetricsAddr::Tcp(a) => {
                let l = TcpListener::bind(a)
                    .map_err(|error| MetricsError::BindTcp { addr: *a, error })?;
                Ok(MetricsListener {
                    listener: Listener::Tcp(l),
                    socket_file: None,
                })
            }
            MetricsAddr::Unix(p) => {
                let (fd, _) =
                    sys::listen_unix_reclaiming(p, SocketAccess::Umask).map_err(|error| {
                        MetricsError::BindUnix {
                            path: p.clone(),
                            error,
                        }
                    })?;
                Ok(MetricsListener {
                    listener: Listener::Unix(UnixListener::from(fd)),
                    socket_file: Some(SocketFile(p.clone())),
                })
            }
        }
    }

    /// The bound TCP address (with the port picked for port 0); `None` for a Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// Starts serving on a thread of its own (`spiperelay-metrics`) that blocks the daemon's
    /// signals, each scrape reading `board`.
    ///
    /// # Errors
    /// [`MetricsError::Thread`] if the thread cannot be spawned.
    pub fn start(self, board: Arc<Board>) -> Result<MetricsServer, MetricsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = match (&self.listener, &self.socket_file) {
            (Listener::Tcp(l), _) => Wake::Tcp(l.local_addr().map_err(MetricsError::Thread)?),
            (Listener::Unix(_), f) => {
                Wake::Unix(f.as_ref().map(|f| f.0.clone()).unwrap_or_default())
            }
        };
        let MetricsListener {
            listener,
            socket_file,
        } = self;
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("spiperelay-metrics".into())
            .spawn(move || {
                let _ = crate::os::signals::block_daemon_signals_in_thread();
                serve(&listener, &board, &flag);
            })
            .map_err(MetricsError::Thread)?;
        Ok(MetricsServer {
            stop,
            wake,
            thread: Some(thread),
            _socket_file: socket_file,
        })
    }
}

/// How to wake the accept loop so it sees the stop flag.
#[derive(Debug)]
enum Wake {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The running metrics server. Dropping it stops the thread (after the request it is serving,
/// if any) and removes the Unix socket file.
#[derive(Debug)]
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    wake: Wake,
    thread: Option<JoinHandle<()>>,
    /// Held only to remove the file when the server goes.
    _socket_file: Option<SocketFile>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let woken = match &self.wake {
            Wake::Tcp(a) => {
                let mut a = *a;
                if a.ip().is_unspecified() {
                    a.set_ip(match a {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                TcpStream::connect_timeout(&a, REQUEST_TIMEOUT).is_ok()
            }
            Wake::Unix(p) => UnixStream::connect(p).is_ok(),
        };
        if let Some(t) = self.thread.take()
            && woken
        {
            let _ = t.join();
        }
        // Then `socket_file` is dropped: the Unix socket's file goes.
    }
}

/// An accepted connection of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }

    fn close_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn serve(listener: &Listener, board: &Board, stop: &AtomicBool) {
    loop {
        let conn = match listener {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        };
        if stop.load(Relaxed) {
            return;
        }
        match conn {
            Ok(mut s) => serve_one(&mut s, board),
            // EMFILE and the like: do not spin.
            Err(_) => std::thread::sleep(ACCEPT_PAUSE),
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// Over [`MAX_REQUEST_HEAD`] bytes without its end.
    TooLarge,
    /// The client closed, failed, or ran out of time before the end of the head.
    Incomplete,
}

/// Reads up to the blank line that ends the request head, within [`REQUEST_TIMEOUT`] in all.
fn read_head(s: &mut Stream) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_timeouts(left, REQUEST_TIMEOUT).is_err() {
            return Err(HeadError::Incomplete);
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Incomplete),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Incomplete),
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or `\n\n` from a lenient client), if it does.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to answer, worked out from the request head alone (no I/O, tested on its own).
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `/metrics`: OpenMetrics if asked for; no body for `HEAD`.
    Metrics {
        openmetrics: bool,
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path != METRICS_PATH {
        return Route::NotFound;
    }
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept")
                && value.contains("application/openmetrics-text")
        })
    });
    Route::Metrics { openmetrics, head }
}

fn serve_one(s: &mut Stream, board: &Board) {
    let (status, extra, content_type, body, send_body) = match read_head(s) {
        Err(HeadError::Incomplete) => return,
        Err(HeadError::TooLarge) => (
            "431 Request Header Fields Too Large",
            "",
            "text/plain; charset=utf-8",
            "request head too large\n".to_owned(),
            true,
        ),
        Ok(head) => match route(&head) {
            Route::Metrics { openmetrics, head } => {
                let snap = board.collect();
                let (ct, body) = if openmetrics {
                    (OPENMETRICS_CONTENT_TYPE, openmetrics_text(&snap))
                } else {
                    (PROMETHEUS_CONTENT_TYPE, prometheus_text(&snap))
                };
                ("200 OK", "", ct, body, !head)
            }
            Route::NotFound => (
                "404 Not Found",
                "",
                "text/plain; charset=utf-8",
                format!("not found: metrics are at {METRICS_PATH}\n"),
                true,
            ),
            Route::MethodNotAllowed => (
                "405 Method Not Allowed",
                "Allow: GET, HEAD\r\n",
                "text/plain; charset=utf-8",
                "method not allowed\n".to_owned(),
                true,
            ),
            Route::BadRequest => (
                "400 Bad Request",
                "",
                "text/plain; charset=utf-8",
                "bad request\n".to_owned(),
                true,
            ),
        },
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    if s.set_timeouts(REQUEST_TIMEOUT, REQUEST_TIMEOUT).is_ok() {
        let _ = s.write_all(&out);
    }
    s.close_write();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics {
                openmetrics: false,
                head: false
            }
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0"),
            Route::Metrics {
                openmetrics: false,
                head: true
            }
        );
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0"),
            Route::Metrics {
                openmetrics: true,
                head: false
            }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route(b"GET  /metrics HTTP/1.1"), Route::BadRequest);
        assert_eq!(route(b"GET metrics HTTP/1.1"), Route::BadRequest);
        assert_eq!(route(b"\xff"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
    }

    #[test]
    fn head_ends() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn loopback() {
        assert!(MetricsAddr::Tcp("127.0.0.1:1".parse().expect("addr")).is_loopback());
        assert!(MetricsAddr::Tcp("[::1]:1".parse().expect("addr")).is_loopback());
        assert!(!MetricsAddr::Tcp("0.0.0.0:1".parse().expect("addr")).is_loopback());
        assert!(MetricsAddr::Unix("/run/x".into()).is_loopback());
    }
}
