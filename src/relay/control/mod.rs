//! The control socket: key rotation and reloads at run time, served to the `spiperelay keys`,
//! `spiperelay reload` and `spiperelay status` clients ([`client`]).
//!
//! - **The socket** (`--control PATH`, or `control` in a configuration file) is a Unix stream
//!   socket, created with mode 0600 and removed on exit, served on a small thread of its own.
//!   Each connection carries one request line and gets one answer, then is closed. The answer
//!   is `ok` or `error` on a line of its own, then text for the operator.
//! - **Requests**: `status`, `rotate <absolute key file path>`, `set <path>` or
//!   `force-set <path>` (paths are raw bytes up to the newline), each optionally preceded by
//!   `pipe <name> ` to pick the pipe whose keys it concerns (needed when the process runs more
//!   than one pipe); `reload` (the supervisor re-reads its configuration, as on `SIGHUP`, and
//!   the answer is the outcome); `report` and `report json` (the `spiperelay status` report,
//!   from the metrics board once the daemon has handed one over with [`Control::set_board`]).
//!   The daemon reads key files itself, so no key material crosses the socket.
//! - **Keys** of every pipe are in a [`KeyRegistry`] the supervisor keeps up to date across
//!   reloads. A `rotate`/`set` change lasts until the next reload, which makes the key set
//!   exactly the configured files again.
//!
//! Every change is logged by the daemon (through [`ControlMsg::Log`]), naming keys only by
//! fingerprint. Established connections are never interrupted by any of this.

pub mod client;

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::io::sys::{self, Reclaimed, SocketAccess, UnixListenError};
use crate::proto::key::Key;

use super::keyfile::{self, KeyWarning};
use super::keys::{KeyRing, KeyRingError};
use super::metrics::Board;
use super::status;

pub(crate) use client::request;
pub use client::{KEYS_USAGE, RELOAD_USAGE, keys_main, reload_main};

/// How long the daemon waits for a control client to send its request or take the answer,
/// and how long the client waits for the answer.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a `reload` request waits for the supervisor's outcome (reading key files and
/// resolving names may take a while).
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest request line accepted (a command word, a pipe name and a path).
pub const MAX_REQUEST: usize = 8192;

/// The longest answer the client reads (a status report of many pipes).
pub const MAX_ANSWER: u64 = 16 << 20;

/// The environment variable the control clients read when `--control` is not given.
pub const CONTROL_ENV: &str = "SPIPERELAY_CONTROL";

/// Why the control socket could not be set up.
#[derive(Debug)]
pub enum ControlError {
    /// The control socket could not be created: the path is in use by another process or
    /// by something that is not a socket, or binding failed ([`sys::listen_unix_reclaiming`]).
    Bind {
        /// The control socket's path.
        path: PathBuf,
        /// What failed.
        error: UnixListenError,
    },
    /// The control thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { path, error } => write!(
                f,
                "cannot create control socket {}: {error}",
                path.display()
            ),
            Self::Thread(e) => write!(f, "cannot start the control thread: {e}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// The control socket's file, removed when dropped (daemon exit or failed startup).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The key ring of every pipe, by pipe name, shared by the supervisor (which sets it at start
/// and after every reload) and the control thread.
#[derive(Clone, Debug, Default)]
pub struct KeyRegistry(Arc<RwLock<Vec<(String, KeyRing)>>>);

impl KeyRegistry {
    /// Makes `pipes` the registered pipes and their rings, in order.
    pub fn set(&self, pipes: Vec<(String, KeyRing)>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = pipes;
    }

    /// The ring of pipe `name`; with `None`, the only pipe's.
    ///
    /// # Errors
    /// The message for the operator: no such pipe (listing the pipes), or no pipe named while
    /// the process runs several (listing them), or none at all.
    pub fn pick(&self, name: Option<&str>) -> Result<KeyRing, String> {
        let pipes = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let names = || {
            pipes
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(name) => pipes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r.clone())
                .ok_or_else(|| format!("no pipe named {name} (the pipes: {})", names())),
            None => match pipes.as_slice() {
                [(_, ring)] => Ok(ring.clone()),
                [] => Err("this process runs no pipe".to_owned()),
                _ => Err(format!(
                    "this process runs {} pipes ({}): name one with --pipe",
                    pipes.len(),
                    names()
                )),
            },
        }
    }
}

/// What the control thread hands to the supervisor.
#[derive(Debug)]
pub enum ControlMsg {
    /// A line for the daemon's log (a key change, or a refused one).
    Log(String),
    /// A `reload` request: reload, then send the outcome (what changed, or why nothing did).
    Reload(mpsc::Sender<Result<String, String>>),
}

/// The control socket of a daemon: bound at startup, served on its own thread once started.
pub struct Control {
    listener: Option<UnixListener>,
    socket_file: Option<SocketFile>,
    stale_removed: bool,
    registry: KeyRegistry,
    board: Option<Arc<Board>>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("socket", &self.socket_file.as_ref().map(|s| &s.0))
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Binds the control socket at `path` with mode 0600 (`None`: no socket; the other calls
    /// then do nothing). A leftover socket file nobody listens on any more (after a crash) is
    /// replaced ([`sys::listen_unix_reclaiming`]); a live one, or anything that is not a
    /// socket, is an error. Call it while the process is single-threaded.
    ///
    /// # Errors
    /// [`ControlError::Bind`].
    pub fn bind(path: Option<&Path>, registry: KeyRegistry) -> Result<Self, ControlError> {
        let (listener, socket_file, reclaimed) = match path {
            Some(path) => {
                let (fd, reclaimed) = sys::listen_unix_reclaiming(path, SocketAccess::OwnerOnly)
                    .map_err(|error| ControlError::Bind {
                        path: path.to_path_buf(),
                        error,
                    })?;
                (
                    Some(UnixListener::from(fd)),
                    Some(SocketFile(path.to_path_buf())),
                    reclaimed,
                )
            }
            None => (None, None, Reclaimed::Nothing),
        };
        Ok(Self {
            listener,
            socket_file,
            stale_removed: reclaimed == Reclaimed::StaleSocket,
            registry,
            board: None,
        })
    }

    /// The socket path if [`Control::bind`] found a stale socket there (left by a process that
    /// died) and replaced it, for the caller to log.
    pub fn replaced_stale_socket(&self) -> Option<&Path> {
        self.socket_file
            .as_ref()
            .filter(|_| self.stale_removed)
            .map(|f| f.0.as_path())
    }

    /// Lets the socket answer `report` (`spiperelay status`) from `board`. Call it before
    /// [`Control::start`].
    pub fn set_board(&mut self, board: Arc<Board>) {
        self.board = Some(board);
    }

    /// Starts serving the socket (if any) on its own thread, which blocks `SIGTERM`, `SIGINT`
    /// and `SIGHUP` so they reach the supervisor; log lines and reload requests go to `to`.
    /// Call it after daemonising.
    ///
    /// # Errors
    /// [`ControlError::Thread`] if the thread cannot be spawned.
    pub fn start(&mut self, to: mpsc::Sender<ControlMsg>) -> Result<(), ControlError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let registry = self.registry.clone();
        let board = self.board.clone();
        std::thread::Builder::new()
            .name("spiperelay-control".into())
            .spawn(move || serve_control(&listener, &registry, board.as_deref(), &to))
            .map(drop)
            .map_err(ControlError::Thread)
    }
}

/// The control thread: one request per connection, one connection at a time.
fn serve_control(
    listener: &UnixListener,
    registry: &KeyRegistry,
    board: Option<&Board>,
    to: &mpsc::Sender<ControlMsg>,
) {
    let _ = crate::os::signals::block_daemon_signals_in_thread();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else {
            // EMFILE and the like: do not spin.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = conn.set_read_timeout(Some(CONTROL_TIMEOUT));
        let _ = conn.set_write_timeout(Some(CONTROL_TIMEOUT));
        let (ok, text) = match read_request(&mut conn) {
            Some(req) if req == b"reload" => reload(to),
            Some(req) => {
                let (result, audit) = execute(&req, registry, board);
                if let Some(line) = audit {
                    let _ = to.send(ControlMsg::Log(line));
                }
                match result {
                    Ok(text) => (true, text),
                    Err(text) => (false, text),
                }
            }
            None => (false, "malformed request".to_owned()),
        };
        let head = if ok { "ok\n" } else { "error\n" };
        let _ = conn.write_all(format!("{head}{text}\n").as_bytes());
    }
}

/// Asks the supervisor to reload and waits for the outcome.
fn reload(to: &mpsc::Sender<ControlMsg>) -> (bool, String) {
    let (tx, rx) = mpsc::channel();
    if to.send(ControlMsg::Reload(tx)).is_err() {
        return (false, "the daemon is shutting down".to_owned());
    }
    match rx.recv_timeout(RELOAD_TIMEOUT) {
        Ok(Ok(text)) => (true, text),
        Ok(Err(text)) => (false, text),
        Err(_) => (
            false,
            "the daemon did not answer the reload in time (it may be shutting down)".to_owned(),
        ),
    }
}

/// Reads one request line (without its newline); `None` if it is too long or never ends.
fn read_request(conn: &mut UnixStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() <= MAX_REQUEST {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            return Some(buf);
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    None
}

/// Splits `pipe NAME REST` into the pipe name and the rest; other requests come back whole.
fn split_pipe(req: &[u8]) -> (Option<String>, &[u8]) {
    if let Some(rest) = req.strip_prefix(b"pipe ") {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        let rest = rest.get(end + 1..).unwrap_or_default();
        return (Some(name), rest);
    }
    (None, req)
}

/// Runs one request other than `reload`: the answer text (`Err` for a refusal) and the log
/// line to write.
fn execute(
    req: &[u8],
    registry: &KeyRegistry,
    board: Option<&Board>,
) -> (Result<String, String>, Option<String>) {
    let (pipe, req) = split_pipe(req);
    let (cmd, arg) = match req.iter().position(|&b| b == b' ') {
        Some(i) => (&req[..i], Some(&req[i + 1..])),
        None => (req, None),
    };
    if cmd == b"report" && pipe.is_none() && (arg.is_none() || arg == Some(&b"json"[..])) {
        return match board {
            Some(b) => (Ok(status::answer(b, arg.is_some())), None),
            None => (Err("this daemon keeps no status report".to_owned()), None),
        };
    }
    let path = arg.map(|a| PathBuf::from(OsStr::from_bytes(a)));
    let name = match (cmd, &path) {
        (b"status", None) => "status",
        (b"rotate", Some(_)) => "rotate",
        (b"set", Some(_)) => "set",
        (b"force-set", Some(_)) => "set --force",
        _ => return (Err("unknown control request".to_owned()), None),
    };
    let ring = match registry.pick(pipe.as_deref()) {
        Ok(r) => r,
        Err(e) => return (Err(e), None),
    };
    let mut warnings = Vec::new();
    let result = match (cmd, path) {
        (b"rotate", Some(p)) => read_then(&p, &mut warnings, |k| ring.rotate(k)),
        (b"set", Some(p)) => read_then(&p, &mut warnings, |k| ring.set(k, false)),
        (b"force-set", Some(p)) => read_then(&p, &mut warnings, |k| ring.set(k, true)),
        _ => return (Ok(render_status(&ring, SystemTime::now())), None),
    };
    let who = pipe.map(|p| format!("pipe {p}: ")).unwrap_or_default();
    match result {
        Ok(msg) => {
            // The operator sees each key-file warning on a line of its own; the log gets one
            // line per request.
            let (mut answer, mut audit) = (msg.clone(), format!("{who}keys {name}: {msg}"));
            for w in &warnings {
                answer.push_str(&format!("\n{w}"));
                audit.push_str(&format!("; {w}"));
            }
            (Ok(answer), Some(audit))
        }
        Err(e) => (
            Err(e.to_string()),
            Some(format!("{who}keys {name} refused, keys unchanged: {e}")),
        ),
    }
}

/// Reads the key file at `path` ([`keyfile::read_key_file`]), appends its warnings to
/// `warnings`, and hands the key to `change`.
fn read_then(
    path: &Path,
    warnings: &mut Vec<KeyWarning>,
    change: impl FnOnce(Key) -> Result<String, KeyRingError>,
) -> Result<String, KeyRingError> {
    let k = keyfile::read_key_file(path).map_err(KeyRingError::KeyFile)?;
    warnings.extend(k.warnings);
    change(k.key)
}

/// The `status` answer: a header line, then one line per key (see [`KeyRing::status`]):
/// `key <fingerprint> <state> live=<n> handshakes=<n> last_used=<UTC time> (<n> s ago)|never`,
/// where state is `accepted` (`-d`), `current`/`standby` (`-e`), or `removed` (no longer
/// accepted; listed until its last live connection ends).
pub fn render_status(ring: &KeyRing, now: SystemTime) -> String {
    status::render_key_table(ring.mode(), ring.max_keys(), &ring.status(), now)
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC; times before 1970 print as 1970-01-01T00:00:00Z).
pub fn utc_text(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::key::KeySet;
    use crate::relay::keys::RingMode;

    fn registry(ring: &KeyRing) -> KeyRegistry {
        let r = KeyRegistry::default();
        r.set(vec![("default".to_owned(), ring.clone())]);
        r
    }

    #[test]
    fn utc_dates() {
        let at = |s| utc_text(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_000_000_000), "2001-09-09T01:46:40Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn requests_are_executed_against_the_ring() {
        let set = KeySet::single(Key::from_key_file(b"old"));
        let ring = KeyRing::new(set, 2, RingMode::Decrypt).expect("ring");
        let reg = registry(&ring);
        let (r, audit) = execute(b"status", &reg, None);
        let text = r.expect("status");
        assert!(text.contains("1 key(s) accepted, at most 2"), "{text}");
        assert!(
            text.contains(&format!(
                "key {} accepted live=0 handshakes=0 last_used=never",
                Key::from_key_file(b"old").fingerprint()
            )),
            "{text}"
        );
        assert!(audit.is_none());
        let (r, audit) = execute(b"rotate /nonexistent/key", &reg, None);
        assert!(r.is_err() && audit.is_some_and(|a| a.contains("refused")));
        assert!(execute(b"frobnicate", &reg, None).0.is_err());
        // `report` needs the metrics board; `report` with another argument is unknown.
        let e = execute(b"report", &reg, None).0.expect_err("no board");
        assert!(e.contains("no status report"), "{e}");
        let board = Board::new(crate::relay::metrics::ProcessInfo::new("epoll"));
        let text = execute(b"report", &reg, Some(&board)).0.expect("report");
        assert!(
            text.starts_with("spiperelay ") && text.contains("no pipes"),
            "{text}"
        );
        let json = execute(b"report json", &reg, Some(&board)).0.expect("json");
        assert!(
            json.starts_with('{') && json.contains("\"pipes\":[]"),
            "{json}"
        );
        assert!(execute(b"report xml", &reg, Some(&board)).0.is_err());
        assert!(execute(b"rotate", &reg, None).0.is_err());
        assert_eq!(ring.len(), 1);
    }

    #[test]
    fn requests_name_their_pipe_when_there_are_several() {
        let ring = |k: &[u8]| {
            KeyRing::new(KeySet::single(Key::from_key_file(k)), 2, RingMode::Decrypt).expect("ring")
        };
        let (a, b) = (ring(b"a"), ring(b"b"));
        let reg = KeyRegistry::default();
        reg.set(vec![("a".into(), a.clone()), ("b".into(), b.clone())]);
        let e = execute(b"status", &reg, None).0.expect_err("which pipe?");
        assert!(
            e.contains("runs 2 pipes (a, b)") && e.contains("--pipe"),
            "{e}"
        );
        let text = execute(b"pipe b status", &reg, None)
            .0
            .expect("status of b");
        assert!(
            text.contains(Key::from_key_file(b"b").fingerprint().as_str()),
            "{text}"
        );
        assert!(
            !text.contains(Key::from_key_file(b"a").fingerprint().as_str()),
            "{text}"
        );
        let e = execute(b"pipe c status", &reg, None).0.expect_err("no c");
        assert!(e.contains("no pipe named c (the pipes: a, b)"), "{e}");
        let (r, audit) = execute(b"pipe a rotate /nonexistent/key", &reg, None);
        assert!(r.is_err());
        assert!(audit.is_some_and(|l| l.starts_with("pipe a: keys rotate refused")));
        reg.set(Vec::new());
        let e = execute(b"status", &reg, None).0.expect_err("none");
        assert!(e.contains("no pipe"), "{e}");
    }

    #[test]
    fn rotate_reports_key_file_warnings_and_refuses_fifos() {
        let mut n = [0u8; 8];
        crate::os::fill_random(&mut n).expect("random");
        let dir = std::env::temp_dir().join(format!("spr-ctl-{:016x}", u64::from_ne_bytes(n)));
        std::fs::create_dir(&dir).expect("dir");
        let ring = KeyRing::new(
            KeySet::single(Key::from_key_file(b"old")),
            2,
            RingMode::Decrypt,
        )
        .expect("ring");
        let reg = registry(&ring);
        // A FIFO with no writer: refused at once, the ring unchanged.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let (r, audit) = execute(format!("rotate {}", fifo.display()).as_bytes(), &reg, None);
        let e = r.expect_err("a FIFO is refused");
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        assert!(audit.is_some_and(|a| a.contains("refused")));
        assert_eq!(ring.len(), 1);
        // A short key: accepted, with the warning in the answer and in the one audit line.
        let short = dir.join("short");
        std::fs::write(&short, b"tiny").expect("write");
        let (r, audit) = execute(format!("rotate {}", short.display()).as_bytes(), &reg, None);
        let text = r.expect("rotated");
        assert!(text.contains("\nwarning: key file"), "{text}");
        assert!(text.contains("holds only 4 bytes"), "{text}");
        let audit = audit.expect("audit line");
        assert!(
            !audit.contains('\n') && audit.contains("holds only 4 bytes"),
            "{audit}"
        );
        assert_eq!(ring.len(), 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
