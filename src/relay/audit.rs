//! The audit log: one JSON object per line for every closed connection, to a file or to
//! standard error.
//!
//! A line (one [`AuditRecord`]), fields always present and in this order:
//!
//! ```text
//! {"time":"2026-12-05T06:16:45.123Z","pipe":"redis","mode":"decrypt","peer":"127.0.0.1:53012",
//!  "key":"490c2daf81c55eba","bytes_from_client":1064,"bytes_to_client":96,
//!  "bytes_from_target":64,"bytes_to_target":1000,"duration_seconds":0.513,"reason":"clean",
//!  "error":null}
//! ```
//!
//! (on one line). `time` is when the connection closed (RFC 3339, UTC, milliseconds); `mode` is
//! `encrypt` (`-e`) or `decrypt` (`-d`); `peer` the accepted client's address (`null` when
//! unknown, e.g. an unnamed Unix socket peer); `key` the fingerprint of the key its handshake
//! used (`null` if it did not get that far) — never key material; the byte counts are what
//! was read from and written to each socket (the encrypted one includes the protocol's
//! framing); `reason` is `clean` or the drop reason's stable label (`DropReason::kind()`), and
//! `error` its text (`null` when clean).
//!
//! Writing costs the event loop no system call per connection: [`AuditLog::record`] appends
//! to a buffer, which [`AuditLog::flush`] writes with one `write` per loop turn (or at once
//! when it passes [`FLUSH_AT`] bytes). Every loop has its own [`AuditLog`] on the same file,
//! opened with `O_APPEND`, so whole lines never interleave. For logrotate, a reload calls
//! [`ReopenHandle::request`]; each loop reopens the path at its next flush.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::Mode;

use super::control::utc_text;
use super::metrics::{ConnMeter, mode_label};

/// The buffer size at which [`AuditLog::record`] writes at once instead of waiting for
/// [`AuditLog::flush`].
pub const FLUSH_AT: usize = 64 * 1024;

/// The mode a new audit file is created with (owner read/write, group read).
pub const FILE_MODE: u32 = 0o640;

/// Where audit lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard error.
    Stderr,
    /// A file, created if missing and appended to.
    File(PathBuf),
}

/// Why the audit file could not be opened.
#[derive(Debug)]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub error: io::Error,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open the audit log {}: {}",
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for AuditError {}

/// One closed connection.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord<'a> {
    /// When the connection closed.
    pub time: SystemTime,
    /// The pipe's name.
    pub pipe: &'a str,
    /// `-e` or `-d`.
    pub mode: Mode,
    /// The accepted client's address, if known.
    pub peer: Option<&'a str>,
    /// The fingerprint of the connection's key, once its handshake completed.
    pub fingerprint: Option<&'a str>,
    /// Bytes read from the accepted (client) socket.
    pub bytes_from_client: u64,
    /// Bytes written to the client socket.
    pub bytes_to_client: u64,
    /// Bytes read from the target socket.
    pub bytes_from_target: u64,
    /// Bytes written to the target socket.
    pub bytes_to_target: u64,
    /// From accept to close.
    pub duration: Duration,
    /// `None` for a clean close; else the drop reason's label and text.
    pub reason: Option<(&'static str, String)>,
}

impl<'a> AuditRecord<'a> {
    /// The record of a connection measured by `meter`, closed at `now` (the loop's clock) and
    /// `wall` (the system clock), on pipe `pipe` in `mode`, accepted from `peer`, for `reason`
    /// (`None`: clean).
    pub fn from_meter(
        meter: &'a ConnMeter,
        now: Instant,
        wall: SystemTime,
        pipe: &'a str,
        mode: Mode,
        peer: Option<&'a str>,
        reason: Option<(&'static str, String)>,
    ) -> Self {
        // Side indexes: 0 plaintext, 1 encrypted; the client is on the plaintext side with -e.
        let (client, target) = match mode {
            Mode::Encrypt => (0, 1),
            Mode::Decrypt => (1, 0),
        };
        let (rx, tx) = (meter.received(), meter.sent());
        AuditRecord {
            time: wall,
            pipe,
            mode,
            peer,
            fingerprint: meter.fingerprint(),
            bytes_from_client: rx[client],
            bytes_to_client: tx[client],
            bytes_from_target: rx[target],
            bytes_to_target: tx[target],
            duration: meter.age(now),
            reason,
        }
    }

    /// The record as one line of JSON, with its newline (as [`AuditRecord::write_line`]).
    pub fn to_line(&self) -> String {
        let mut line = Vec::with_capacity(LINE_CAPACITY);
        self.write_line(&mut line);
        // serde_json writes UTF-8 only, and so do the field names.
        String::from_utf8(line)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the record to `out` as one line of JSON, with its newline: the fields in the
    /// documented order, each value encoded, and escaped, by serde_json straight into `out`
    /// (no intermediate `serde_json::Value` or `String` per field, and no `core::fmt` for
    /// the numbers: this runs once per closed connection, on the event loop).
    pub fn write_line(&self, out: &mut Vec<u8>) {
        let (reason, error) = match &self.reason {
            None => ("clean", None),
            Some((kind, text)) => (*kind, Some(text.as_str())),
        };
        let time = rfc3339_millis(self.time);
        // Millisecond resolution is what an audit needs; it keeps lines short.
        let duration = (self.duration.as_millis() as f64) / 1000.0;
        field(out, b'{', "time", time.as_str());
        field(out, b',', "pipe", self.pipe);
        field(out, b',', "mode", mode_label(self.mode));
        field(out, b',', "peer", &self.peer);
        field(out, b',', "key", &self.fingerprint);
        field(out, b',', "bytes_from_client", &self.bytes_from_client);
        field(out, b',', "bytes_to_client", &self.bytes_to_client);
        field(out, b',', "bytes_from_target", &self.bytes_from_target);
        field(out, b',', "bytes_to_target", &self.bytes_to_target);
        field(out, b',', "duration_seconds", &duration);
        field(out, b',', "reason", reason);
        field(out, b',', "error", &error);
        out.extend_from_slice(b"}\n");
    }
}

/// The usual length of an audit line, to size its buffer.
const LINE_CAPACITY: usize = 320;

/// Appends `sep`, `"name":` and `value` encoded by serde_json to `out`.
fn field<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, sep: u8, name: &str, value: &T) {
    out.push(sep);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    // Writing into a Vec cannot fail, and strings, integers, floats (a non-finite one becomes
    // null) and None always encode; if one ever did not, the field would read null.
    let at = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(at);
        out.extend_from_slice(b"null");
    }
}

/// The peer address of the connected socket `fd` for [`AuditRecord::peer`]: `ip:port` (`[ip]:port`
/// for IPv6), a Unix peer's path if it bound one, else `None` (the usual unnamed Unix client,
/// or a socket whose peer is gone). One `getpeername` call: make it at accept, and only with
/// the audit log on.
pub fn peer_of(fd: BorrowedFd<'_>) -> Option<String> {
    let addr = socket2::SockRef::from(&fd).peer_addr().ok()?;
    if let Some(a) = addr.as_socket() {
        return Some(a.to_string());
    }
    addr.as_pathname().map(|p| p.display().to_string())
}

/// `t` as RFC 3339 in UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let secs = utc_text(t);
    let date_time = secs.strip_suffix('Z').unwrap_or(&secs);
    format!("{date_time}.{millis:03}Z")
}

enum Out {
    Stderr,
    File(File),
}

/// Asks every [`AuditLog`] made from one [`AuditLog::open`] to reopen its file (logrotate).
#[derive(Clone, Debug)]
pub struct ReopenHandle(Arc<AtomicU64>);

impl ReopenHandle {
    /// Each log reopens its file at its next [`AuditLog::flush`].
    pub fn request(&self) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// One event loop's audit writer (see the module docs).
pub struct AuditLog {
    target: AuditTarget,
    out: Out,
    buf: Vec<u8>,
    reopen: Arc<AtomicU64>,
    reopen_seen: u64,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("target", &self.target)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

fn open_file(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|error| AuditError {
            path: path.to_path_buf(),
            error,
        })
}

impl AuditLog {
    /// Opens `target` (a file is created with mode [`FILE_MODE`] if missing, and appended to).
    ///
    /// # Errors
    /// [`AuditError`] if the file cannot be opened.
    pub fn open(target: AuditTarget) -> Result<Self, AuditError> {
        let out = match &target {
            AuditTarget::Stderr => Out::Stderr,
            AuditTarget::File(p) => Out::File(open_file(p)?),
        };
        Ok(AuditLog {
            target,
            out,
            buf: Vec::new(),
            reopen: Arc::new(AtomicU64::new(0)),
            reopen_seen: 0,
        })
    }

    /// Another writer to the same target (for another event loop), answering the same
    /// [`ReopenHandle`].
    ///
    /// # Errors
    /// [`AuditError`] if the file cannot be opened.
    pub fn another(&self) -> Result<Self, AuditError> {
        let mut log = AuditLog::open(self.target.clone())?;
        log.reopen = Arc::clone(&self.reopen);
        log.reopen_seen = self.reopen.load(Relaxed);
        Ok(log)
    }

    /// The handle a reload uses to have every writer reopen the file.
    pub fn reopen_handle(&self) -> ReopenHandle {
        ReopenHandle(Arc::clone(&self.reopen))
    }

    /// Where the lines go.
    pub fn target(&self) -> &AuditTarget {
        &self.target
    }

    /// Appends `rec`'s line to the buffer; writes the buffer now if it passed [`FLUSH_AT`].
    ///
    /// # Errors
    /// As [`AuditLog::flush`] when it writes.
    pub fn record(&mut self, rec: &AuditRecord<'_>) -> Result<(), AuditError> {
        rec.write_line(&mut self.buf);
        if self.buf.len() >= FLUSH_AT {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Writes the buffered lines (one `write` for all of them), after reopening the file first
    /// if a reopen was requested. Lines that cannot be written are dropped (an audit log never
    /// stops the relay).
    ///
    /// # Errors
    /// [`AuditError`] if the reopen failed (the old file is kept and written) or the write
    /// failed.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        let mut result = Ok(());
        let wanted = self.reopen.load(Relaxed);
        if wanted != self.reopen_seen {
            self.reopen_seen = wanted;
            if let Err(e) = self.reopen_now() {
                result = Err(e);
            }
        }
        if self.buf.is_empty() {
            return result;
        }
        let written = match &mut self.out {
            Out::Stderr => io::stderr().lock().write_all(&self.buf),
            Out::File(f) => f.write_all(&self.buf),
        };
        self.buf.clear();
        match (result, written) {
            (Err(e), _) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
            (Ok(()), Err(error)) => Err(AuditError {
                path: match &self.target {
                    AuditTarget::File(p) => p.clone(),
                    AuditTarget::Stderr => PathBuf::from("(standard error)"),
                },
                error,
            }),
        }
    }

    /// Opens the file's path again (after logrotate moved it away); standard error needs
    /// nothing. On failure the old file stays in use.
    fn reopen_now(&mut self) -> Result<(), AuditError> {
        if let AuditTarget::File(p) = &self.target {
            self.out = Out::File(open_file(p)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::key::Key;
    use std::os::fd::AsFd;

    fn temp_dir() -> PathBuf {
        let mut n = [0u8; 8];
        crate::os::fill_random(&mut n).expect("random");
        let dir = std::env::temp_dir().join(format!("spr-audit-{:016x}", u64::from_ne_bytes(n)));
        std::fs::create_dir(&dir).expect("dir");
        dir
    }

    fn record(fp: Option<&str>) -> AuditRecord<'_> {
        AuditRecord {
            time: UNIX_EPOCH + Duration::from_millis(1_000_000_000_042),
            pipe: "re\"dis\n",
            mode: Mode::Decrypt,
            peer: Some("127.0.0.1:5000"),
            fingerprint: fp,
            bytes_from_client: 1064,
            bytes_to_client: 96,
            bytes_from_target: 64,
            bytes_to_target: 1000,
            duration: Duration::from_micros(1_500_400),
            reason: Some(("bad_mac", "handshake failed: \"MAC\"\tmismatch".to_owned())),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let line = record(Some("490c2daf81c55eba")).to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(
            line.matches('\n').count(),
            1,
            "escaped newlines only: {line}"
        );
        assert_eq!(
            line,
            "{\"time\":\"2001-09-09T01:46:40.042Z\",\"pipe\":\"re\\\"dis\\n\",\
             \"mode\":\"decrypt\",\"peer\":\"127.0.0.1:5000\",\"key\":\"490c2daf81c55eba\",\
             \"bytes_from_client\":1064,\"bytes_to_client\":96,\"bytes_from_target\":64,\
             \"bytes_to_target\":1000,\"duration_seconds\":1.5,\"reason\":\"bad_mac\",\
             \"error\":\"handshake failed: \\\"MAC\\\"\\tmismatch\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["pipe"], "re\"dis\n");
        let clean = AuditRecord {
            reason: None,
            peer: None,
            fingerprint: None,
            ..record(None)
        }
        .to_line();
        let v: serde_json::Value = serde_json::from_str(&clean).expect("valid JSON");
        assert_eq!(v["reason"], "clean");
        assert!(v["error"].is_null() && v["peer"].is_null() && v["key"].is_null());
    }

    #[test]
    fn write_line_appends_the_same_line() {
        let a = record(Some("490c2daf81c55eba"));
        let b = AuditRecord {
            reason: None,
            peer: None,
            ..record(None)
        };
        let mut buf = b"earlier\n".to_vec();
        a.write_line(&mut buf);
        b.write_line(&mut buf);
        let want = format!("earlier\n{}{}", a.to_line(), b.to_line());
        assert_eq!(String::from_utf8(buf).expect("UTF-8"), want);
    }

    #[test]
    fn a_record_never_holds_key_material() {
        let key = Key::from_key_file(b"the secret key file");
        let fp = key.fingerprint();
        let mut meter = ConnMeter::new(Instant::now(), SystemTime::now());
        meter.handshake_started(Instant::now());
        let _ = meter.handshake_finished(Instant::now(), Some(&fp));
        let rec = AuditRecord::from_meter(
            &meter,
            Instant::now(),
            SystemTime::now(),
            "p",
            Mode::Encrypt,
            None,
            None,
        );
        let line = rec.to_line();
        assert!(line.contains(&fp), "{line}");
        let bytes = key.as_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hex_upper = hex.to_uppercase();
        assert!(!line.contains(&hex) && !line.contains(&hex_upper), "{line}");
        // Nor any 8-byte run of the key, raw.
        assert!(
            !bytes
                .windows(8)
                .any(|w| line.as_bytes().windows(8).any(|l| l == w)),
            "{line}"
        );
        // The fingerprint itself is not a prefix of the key's hex.
        assert!(!hex.starts_with(&fp));
    }

    #[test]
    fn from_meter_maps_sides_to_client_and_target() {
        let t0 = Instant::now();
        let mut m = ConnMeter::new(t0, SystemTime::now());
        m.on_received(0, 10); // plaintext
        m.on_sent(0, 20);
        m.on_received(1, 30); // encrypted
        m.on_sent(1, 40);
        let later = t0 + Duration::from_secs(2);
        let e =
            AuditRecord::from_meter(&m, later, SystemTime::now(), "p", Mode::Encrypt, None, None);
        assert_eq!(
            (
                e.bytes_from_client,
                e.bytes_to_client,
                e.bytes_from_target,
                e.bytes_to_target
            ),
            (10, 20, 30, 40)
        );
        assert_eq!(e.duration, Duration::from_secs(2));
        let d =
            AuditRecord::from_meter(&m, later, SystemTime::now(), "p", Mode::Decrypt, None, None);
        assert_eq!(
            (
                d.bytes_from_client,
                d.bytes_to_client,
                d.bytes_from_target,
                d.bytes_to_target
            ),
            (30, 40, 10, 20)
        );
    }

    #[test]
    fn lines_are_buffered_until_flush_and_reopen_follows_logrotate() {
        let dir = temp_dir();
        let path = dir.join("audit.log");
        let mut a = AuditLog::open(AuditTarget::File(path.clone())).expect("open");
        let mut b = a.another().expect("second loop");
        a.record(&record(None)).expect("record");
        assert_eq!(std::fs::read(&path).expect("read").len(), 0, "buffered");
        a.flush().expect("flush");
        b.record(&record(Some("fp"))).expect("record");
        b.flush().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o}");
        // logrotate: move the file away, then reload.
        let rotated = dir.join("audit.log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        a.reopen_handle().request();
        a.record(&record(None)).expect("record");
        a.flush().expect("flush");
        b.record(&record(None)).expect("record");
        b.flush().expect("flush");
        assert_eq!(
            std::fs::read_to_string(&rotated)
                .expect("old")
                .lines()
                .count(),
            2
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("new").lines().count(),
            2
        );
        // A reopen that fails keeps the old file and says why.
        std::fs::remove_file(&path).expect("rm");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        a.reopen_handle().request();
        a.record(&record(None)).expect("record");
        let e = a.flush().expect_err("the directory is gone");
        assert!(e.to_string().contains("cannot open the audit log"), "{e}");
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting_for_flush() {
        let dir = temp_dir();
        let path = dir.join("audit.log");
        let mut a = AuditLog::open(AuditTarget::File(path.clone())).expect("open");
        let line = record(None).to_line();
        let n = FLUSH_AT / line.len() + 1;
        for _ in 0..n {
            a.record(&record(None)).expect("record");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), n);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn peers_are_named_by_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, from) = l.accept().expect("accept");
        assert_eq!(peer_of(s.as_fd()), Some(from.to_string()));
        drop(c);
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(peer_of(a.as_fd()), None, "an unnamed Unix peer");
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_millis(951_782_400_999)),
            "2000-02-29T00:00:00.999Z"
        );
    }
}
