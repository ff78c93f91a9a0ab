//! Key rotation at run time: `SIGHUP` reload, the `--control` Unix socket, and the
//! `spiperelay keys` client that talks to it.
//!
//! - **SIGHUP** re-reads the `-k` files given on the command line and makes the running key set
//!   exactly those keys (repeats merged). The command line stays the persistent configuration:
//!   a reload also undoes earlier `keys rotate` / `keys set` changes. A `-k -` key, and a FIFO
//!   or character device read once at startup, cannot be read again and keep the value read
//!   then. Other key files are read by the rules of [`super::keyfile`] (regular files only,
//!   never blocking on a FIFO). A
//!   reload that fails (a missing or unreadable file, a directory or FIFO, more keys than
//!   `--max-keys`) logs why and changes nothing.
//! - **`--control PATH`** serves a Unix stream socket, created with mode 0600 and removed on
//!   exit, on a small thread of its own. Each connection carries one request line and gets one
//!   answer, then is closed: `status`, `rotate <absolute key file path>`,
//!   `set <path>` or `force-set <path>` (paths are raw bytes up to the newline). The answer is
//!   `ok` or `error` on a line of its own, then text for the operator. The daemon reads the key
//!   file itself, so no key material crosses the socket.
//! - **`spiperelay keys [--control PATH] status | rotate FILE | set [--force] FILE`** is the
//!   client ([`keys_main`]); without `--control` it uses `$SPIPERELAY_CONTROL`.
//! - **`report`** and **`report json`** answer `spiperelay status`
//!   ([`super::status`]) from the metrics board, once the daemon has handed one over
//!   ([`Rotation::set_board`]).
//!
//! Every change is logged by the daemon (`log.always`), naming keys only by fingerprint.
//! Established connections are never interrupted by any of this.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{KeySource, Mode, SpipedArgs};
use crate::io::sys::{self, Reclaimed, SocketAccess, UnixListenError};
use crate::proto::key::{Key, KeySet};

use super::keyfile::{self, KeyWarning};
use super::keys::{KeyRing, KeyRingError, RingMode};
use super::log::Logger;
use super::metrics::Board;
use super::status;

/// How long the daemon waits for a control client to send its request or take the answer,
/// and how long the client waits for the answer.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request line accepted (a command word and a path).
pub const MAX_REQUEST: usize = 8192;

/// The longest answer the client reads (a status report is a few hundred bytes).
pub const MAX_ANSWER: u64 = 1 << 20;

/// The environment variable `spiperelay keys` reads when `--control` is not given.
pub const CONTROL_ENV: &str = "SPIPERELAY_CONTROL";

/// The usage text of `spiperelay keys`, with its final newline.
pub const KEYS_USAGE: &str = "\
usage: spiperelay keys [--control <socket>] status
       spiperelay keys [--control <socket>] rotate <new key file>
       spiperelay keys [--control <socket>] set [--force] <key file>
";

/// Why key rotation could not be set up at startup.
#[derive(Debug)]
pub enum RotationError {
    /// The `-k` keys break the `--max-keys` bound.
    Keys(KeyRingError),
    /// The control socket could not be created: the path is in use by another process or
    /// by something that is not a socket, or binding failed ([`sys::listen_unix_reclaiming`]).
    Bind {
        /// The `--control` path.
        path: PathBuf,
        /// What failed.
        error: UnixListenError,
    },
    /// The control thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keys(e) => e.fmt(f),
            Self::Bind { path, error } => write!(
                f,
                "cannot create control socket {}: {error}",
                path.display()
            ),
            Self::Thread(e) => write!(f, "cannot start the control thread: {e}"),
        }
    }
}

impl std::error::Error for RotationError {}

/// The control socket's file, removed when dropped (daemon exit or failed startup).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the control socket with mode 0600. A leftover socket file that nobody listens on any
/// more (after a crash) is replaced ([`sys::listen_unix_reclaiming`]); a live one, or anything
/// that is not a socket, is an error.
fn bind_control(path: &Path) -> Result<(UnixListener, SocketFile, Reclaimed), RotationError> {
    let (fd, reclaimed) =
        sys::listen_unix_reclaiming(path, SocketAccess::OwnerOnly).map_err(|error| {
            RotationError::Bind {
                path: path.to_path_buf(),
                error,
            }
        })?;
    Ok((
        UnixListener::from(fd),
        SocketFile(path.to_path_buf()),
        reclaimed,
    ))
}

/// The daemon's side of key rotation: the shared [`KeyRing`], `SIGHUP` reloads, and the control
/// socket with its thread.
pub struct Rotation {
    ring: KeyRing,
    sources: Vec<KeySource>,
    startup: KeySet,
    listener: Option<UnixListener>,
    socket_file: Option<SocketFile>,
    stale_removed: bool,
    log_rx: Option<mpsc::Receiver<String>>,
    hups_seen: usize,
    board: Option<Arc<Board>>,
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("ring", &self.ring)
            .field("control", &self.socket_file.as_ref().map(|s| &s.0))
            .finish_non_exhaustive()
    }
}

impl Rotation {
    /// Builds the key ring from `keys` (what [`keyfile::read_startup_keys`] read for
    /// `args.keys`) and, with `--control`, binds the control socket (mode 0600). Call it while
    /// the process is single-threaded; the thread starts in [`Rotation::start`].
    ///
    /// # Errors
    /// [`RotationError::Keys`] for more distinct keys than `--max-keys`;
    /// [`RotationError::Bind`] for the control socket.
    pub fn setup(args: &SpipedArgs, keys: &KeySet) -> Result<Self, RotationError> {
        let mode = match args.mode {
            Mode::Encrypt => RingMode::Encrypt,
            Mode::Decrypt => RingMode::Decrypt,
        };
        let ring = KeyRing::new(keys.clone(), args.max_keys, mode).map_err(RotationError::Keys)?;
        let (listener, socket_file, reclaimed) = match &args.control {
            Some(path) => {
                let (l, f, r) = bind_control(path)?;
                (Some(l), Some(f), r)
            }
            None => (None, None, Reclaimed::Nothing),
        };
        Ok(Self {
            ring,
            // A FIFO or character device was read once at startup and keeps that key.
            sources: keyfile::once_as_stdin(&args.keys),
            startup: keys.clone(),
            listener,
            socket_file,
            stale_removed: reclaimed == Reclaimed::StaleSocket,
            log_rx: None,
            hups_seen: 0,
            board: None,
        })
    }

    /// The control socket path if [`Rotation::setup`] found a stale socket there (left by a
    /// process that died) and replaced it, for the caller to log.
    pub fn replaced_stale_socket(&self) -> Option<&Path> {
        self.socket_file
            .as_ref()
            .filter(|_| self.stale_removed)
            .map(|f| f.0.as_path())
    }

    /// The running key set, to hand to the relay.
    pub fn ring(&self) -> KeyRing {
        self.ring.clone()
    }

    /// Lets the control socket answer `report` (`spiperelay status`) from `board`. Call it
    /// before [`Rotation::start`].
    pub fn set_board(&mut self, board: Arc<Board>) {
        self.board = Some(board);
    }

    /// Starts serving the control socket (if any) on its own thread, which blocks `SIGTERM`,
    /// `SIGINT` and `SIGHUP` so they reach the event loop. Call it after daemonising.
    ///
    /// # Errors
    /// [`RotationError::Thread`] if the thread cannot be spawned.
    pub fn start(&mut self) -> Result<(), RotationError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel();
        let ring = self.ring.clone();
        let board = self.board.clone();
        std::thread::Builder::new()
            .name("spiperelay-control".into())
            .spawn(move || serve_control(&listener, &ring, board.as_deref(), &tx))
            .map_err(RotationError::Thread)?;
        self.log_rx = Some(rx);
        Ok(())
    }

    /// Whether [`Rotation::tick`] with this `SIGHUP` count will reload the key files.
    pub fn reload_due(&self, hups: usize) -> bool {
        hups > self.hups_seen
    }

    /// Called by the event loop after each turn with the `SIGHUP` count: reloads the key files
    /// once per new `SIGHUP`, and logs what the control thread did. Returns the reload's
    /// outcome when one ran: `Ok` with what changed, `Err` with why nothing did.
    pub fn tick(&mut self, hups: usize, log: &mut Logger) -> Option<Result<String, String>> {
        // Control changes first: they happened before this turn's SIGHUP is handled.
        if let Some(rx) = &self.log_rx {
            for line in rx.try_iter().take(1000) {
                log.always(format_args!("{line}"));
            }
        }
        if hups <= self.hups_seen {
            return None;
        }
        self.hups_seen = hups;
        let read =
            keyfile::read_reload_keys(&self.sources, &self.startup).map_err(KeyRingError::KeyFile);
        match read.and_then(|(s, w)| self.ring.replace(&s).map(|msg| (msg, w))) {
            Ok((mut msg, warnings)) => {
                // One line per reload, its key-file warnings included.
                for w in warnings {
                    msg.push_str(&format!("; {w}"));
                }
                log.always(format_args!("SIGHUP: reloaded the key files: {msg}"));
                Some(Ok(msg))
            }
            Err(e) => {
                log.always(format_args!(
                    "SIGHUP: reload failed, keeping the accepted keys ({}): {e}",
                    self.ring.fingerprints()
                ));
                Some(Err(e.to_string()))
            }
        }
    }
}

/// The control thread: one request per connection, one connection at a time.
fn serve_control(
    listener: &UnixListener,
    ring: &KeyRing,
    board: Option<&Board>,
    log: &mpsc::Sender<String>,
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
            Some(req) => {
                let (result, audit) = execute(&req, ring, board);
                if let Some(line) = audit {
                    let _ = log.send(line);
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

/// Runs one request: the answer text (`Err` for a refusal) and the log line to write.
fn execute(
    req: &[u8],
    ring: &KeyRing,
    board: Option<&Board>,
) -> (Result<String, String>, Option<String>) {
    let (cmd, arg) = match req.iter().position(|&b| b == b' ') {
        Some(i) => (&req[..i], Some(&req[i + 1..])),
        None => (req, None),
    };
    if cmd == b"report" && (arg.is_none() || arg == Some(&b"json"[..])) {
        return match board {
            Some(b) => (Ok(status::answer(b, arg.is_some())), None),
            None => (Err("this daemon keeps no status report".to_owned()), None),
        };
    }
    let path = arg.map(|a| PathBuf::from(OsStr::from_bytes(a)));
    let mut warnings = Vec::new();
    let (name, result) = match (cmd, path) {
        (b"status", None) => return (Ok(render_status(ring, SystemTime::now())), None),
        (b"rotate", Some(p)) => ("rotate", read_then(&p, &mut warnings, |k| ring.rotate(k))),
        (b"set", Some(p)) => ("set", read_then(&p, &mut warnings, |k| ring.set(k, false))),
        (b"force-set", Some(p)) => (
            "set --force",
            read_then(&p, &mut warnings, |k| ring.set(k, true)),
        ),
        _ => return (Err("unknown control request".to_owned()), None),
    };
    match result {
        Ok(msg) => {
            // The operator sees each key-file warning on a line of its own; the log gets one
            // line per request.
            let (mut answer, mut audit) = (msg.clone(), format!("keys {name}: {msg}"));
            for w in &warnings {
                answer.push_str(&format!("\n{w}"));
                audit.push_str(&format!("; {w}"));
            }
            (Ok(answer), Some(audit))
        }
        Err(e) => (
            Err(e.to_string()),
            Some(format!("keys {name} refused, keys unchanged: {e}")),
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

// ---- the `spiperelay keys` client ----

/// What `spiperelay keys` was asked to do.
#[derive(Debug, PartialEq, Eq)]
enum KeysCommand {
    Status,
    Rotate(PathBuf),
    Set { path: PathBuf, force: bool },
    Help,
}

/// Why a `spiperelay keys` command line was rejected (the usage text follows).
#[derive(Debug, PartialEq, Eq)]
enum KeysArgsError {
    Illegal(String),
    MissingArgument(&'static str),
    Shape,
    NoSocket,
}

impl fmt::Display for KeysArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Illegal(a) => write!(f, "illegal option -- {a}"),
            Self::MissingArgument(o) => write!(f, "Missing argument to {o}"),
            Self::Shape => f.write_str("expected status, rotate <key file> or set <key file>"),
            Self::NoSocket => write!(
                f,
                "no control socket given: use --control <socket> (the daemon's --control) or \
                 set {CONTROL_ENV}"
            ),
        }
    }
}

fn parse_keys_args(
    args: Vec<OsString>,
    env: Option<OsString>,
) -> Result<(KeysCommand, PathBuf), KeysArgsError> {
    let mut control = env.filter(|e| !e.is_empty()).map(PathBuf::from);
    let mut force = false;
    let mut words: Vec<OsString> = Vec::new();
    let mut it = args.into_iter();
    let mut only_words = false;
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if only_words || !b.starts_with(b"-") || b == b"-" {
            words.push(a);
        } else if b == b"--" {
            only_words = true;
        } else if b == b"--force" || b == b"-f" {
            force = true;
        } else if b == b"--help" || b == b"-h" {
            return Ok((KeysCommand::Help, PathBuf::new()));
        } else if b == b"--control" {
            let v = it
                .next()
                .ok_or(KeysArgsError::MissingArgument("--control"))?;
            control = Some(PathBuf::from(v));
        } else if let Some(v) = b.strip_prefix(b"--control=") {
            control = Some(PathBuf::from(OsStr::from_bytes(v)));
        } else {
            return Err(KeysArgsError::Illegal(a.to_string_lossy().into_owned()));
        }
    }
    let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let path = |w: &[u8]| PathBuf::from(OsStr::from_bytes(w));
    let cmd = match words.as_slice() {
        [b"status"] if !force => KeysCommand::Status,
        [b"rotate", file] if !force => KeysCommand::Rotate(path(file)),
        [b"set", file] => KeysCommand::Set {
            path: path(file),
            force,
        },
        _ => return Err(KeysArgsError::Shape),
    };
    let control = control.ok_or(KeysArgsError::NoSocket)?;
    Ok((cmd, control))
}

/// Sends one request line and returns the daemon's verdict and text.
pub(crate) fn request(control: &Path, line: &[u8]) -> Result<(bool, String), String> {
    let mut conn = UnixStream::connect(control).map_err(|e| {
        format!(
            "cannot connect to control socket {}: {e} (is the daemon running with --control?)",
            control.display()
        )
    })?;
    let io_err = |e: std::io::Error| format!("control socket {}: {e}", control.display());
    conn.set_read_timeout(Some(CONTROL_TIMEOUT))
        .map_err(io_err)?;
    conn.set_write_timeout(Some(CONTROL_TIMEOUT))
        .map_err(io_err)?;
    conn.write_all(line).map_err(io_err)?;
    let mut answer = Vec::new();
    conn.take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(io_err)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, text) = answer.split_once('\n').unwrap_or((&answer, ""));
    match head {
        "ok" => Ok((true, text.trim_end().to_owned())),
        "error" => Ok((false, text.trim_end().to_owned())),
        _ => Err(format!(
            "control socket {}: unexpected answer",
            control.display()
        )),
    }
}

/// `spiperelay keys ...`: talks to a running daemon's `--control` socket (see the module docs).
/// `args` are the arguments after `keys`. Prints the daemon's answer on standard output and
/// exits 0; prints `<program>: <message>` on standard error and exits 1 for a refusal, a
/// connection failure or a bad command line (then followed by [`KEYS_USAGE`]).
pub fn keys_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let (cmd, control) = match parse_keys_args(args, std::env::var_os(CONTROL_ENV)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{program}: {e}");
            eprint!("{KEYS_USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let (word, file) = match cmd {
        KeysCommand::Help => {
            print!("{KEYS_USAGE}");
            return ExitCode::SUCCESS;
        }
        KeysCommand::Status => ("status", None),
        KeysCommand::Rotate(p) => ("rotate", Some(p)),
        KeysCommand::Set { path, force } => (if force { "force-set" } else { "set" }, Some(path)),
    };
    let mut line = word.as_bytes().to_vec();
    if let Some(file) = file {
        // The daemon may run in another directory: send an absolute path.
        let abs = std::path::absolute(&file).unwrap_or(file);
        let bytes = abs.as_os_str().as_bytes();
        if bytes.contains(&b'\n') {
            eprintln!("{program}: key file path contains a newline");
            return ExitCode::FAILURE;
        }
        line.push(b' ');
        line.extend_from_slice(bytes);
    }
    line.push(b'\n');
    match request(&control, &line) {
        Ok((true, text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok((false, text)) => {
            eprintln!("{program}: {text}");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("{program}: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::key::Key;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
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
    fn keys_command_lines() {
        let p = |v: &[&str]| parse_keys_args(os(v), None);
        assert_eq!(
            p(&["--control", "/c", "status"]),
            Ok((KeysCommand::Status, PathBuf::from("/c")))
        );
        assert_eq!(
            p(&["set", "--force", "k", "--control=/c"]),
            Ok((
                KeysCommand::Set {
                    path: PathBuf::from("k"),
                    force: true
                },
                PathBuf::from("/c")
            ))
        );
        assert_eq!(
            parse_keys_args(os(&["rotate", "k"]), Some("/e".into())),
            Ok((KeysCommand::Rotate(PathBuf::from("k")), PathBuf::from("/e")))
        );
        assert_eq!(p(&["rotate", "k"]), Err(KeysArgsError::NoSocket));
        assert_eq!(
            p(&["--control=/c", "rotate", "--force", "k"]),
            Err(KeysArgsError::Shape)
        );
        assert_eq!(p(&["--control=/c", "set"]), Err(KeysArgsError::Shape));
        assert_eq!(p(&["--control=/c"]), Err(KeysArgsError::Shape));
        assert_eq!(
            p(&["--control"]),
            Err(KeysArgsError::MissingArgument("--control"))
        );
        assert_eq!(p(&["-x"]), Err(KeysArgsError::Illegal("-x".into())));
    }

    #[test]
    fn requests_are_executed_against_the_ring() {
        let set = KeySet::single(Key::from_key_file(b"old"));
        let ring = KeyRing::new(set, 2, RingMode::Decrypt).expect("ring");
        let (r, audit) = execute(b"status", &ring, None);
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
        let (r, audit) = execute(b"rotate /nonexistent/key", &ring, None);
        assert!(r.is_err() && audit.is_some_and(|a| a.contains("refused")));
        assert!(execute(b"frobnicate", &ring, None).0.is_err());
        // `report` needs the metrics board; `report` with another argument is unknown.
        let e = execute(b"report", &ring, None).0.expect_err("no board");
        assert!(e.contains("no status report"), "{e}");
        let board = Board::new(crate::relay::metrics::ProcessInfo::new("epoll"));
        let text = execute(b"report", &ring, Some(&board)).0.expect("report");
        assert!(
            text.starts_with("spiperelay ") && text.contains("no pipes"),
            "{text}"
        );
        let json = execute(b"report json", &ring, Some(&board))
            .0
            .expect("json");
        assert!(
            json.starts_with('{') && json.contains("\"pipes\":[]"),
            "{json}"
        );
        assert!(execute(b"report xml", &ring, Some(&board)).0.is_err());
        assert!(execute(b"rotate", &ring, None).0.is_err());
        assert_eq!(ring.len(), 1);
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
        // A FIFO with no writer: refused at once, the ring unchanged.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let (r, audit) = execute(format!("rotate {}", fifo.display()).as_bytes(), &ring, None);
        let e = r.expect_err("a FIFO is refused");
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        assert!(audit.is_some_and(|a| a.contains("refused")));
        assert_eq!(ring.len(), 1);
        // A short key: accepted, with the warning in the answer and in the one audit line.
        let short = dir.join("short");
        std::fs::write(&short, b"tiny").expect("write");
        let (r, audit) = execute(
            format!("rotate {}", short.display()).as_bytes(),
            &ring,
            None,
        );
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
