//! The `--syslog` sink: one datagram per line to the local syslog daemon at `/dev/log`, in the
//! traditional `<PRI>program[pid]: message` form (facility daemon, priority warning).
//!
//! Written on a plain Unix datagram socket rather than `nix::syslog` (the C library's
//! `openlog`/`syslog`): that keeps each thread's socket its own, needs no process-wide
//! `'static` identity string, and leaves the timestamp to the syslog daemon, as before.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Where the local syslog daemon listens.
pub const DEV_LOG: &str = "/dev/log";

/// Syslog facility `daemon` (3), shifted into place for the `<PRI>` field.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Syslog severity `warning` (4).
const SEVERITY_WARNING: u8 = 4;

/// A connection to the local syslog daemon.
#[derive(Debug)]
pub struct Syslog {
    sock: UnixDatagram,
}

impl Syslog {
    /// Connects to the syslog socket at [`DEV_LOG`].
    ///
    /// # Errors
    /// The socket error, e.g. `ENOENT` when no syslog daemon runs.
    pub fn connect() -> std::io::Result<Self> {
        Self::connect_to(Path::new(DEV_LOG))
    }

    /// Connects to a syslog-style datagram socket at `path` (for tests).
    ///
    /// # Errors
    /// The socket error.
    pub fn connect_to(path: &Path) -> std::io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(Self { sock })
    }

    /// Another handle on the same socket, for another thread.
    ///
    /// # Errors
    /// The `dup` error.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        self.sock.try_clone().map(|sock| Self { sock })
    }

    /// Sends `line` as one message from `program` with this process's id. Failures (no syslog
    /// daemon any more, a full queue) are ignored: logging must never stop the relay.
    pub fn send(&self, program: &str, line: &str) {
        let _ = self
            .sock
            .send(format(program, std::process::id(), line).as_bytes());
    }
}

/// The datagram for `line`: `<28>program[pid]: line`.
fn format(program: &str, pid: u32, line: &str) -> String {
    format!(
        "<{}>{program}[{pid}]: {line}",
        FACILITY_DAEMON | SEVERITY_WARNING
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_in_the_traditional_form() {
        assert_eq!(format("spiperelay", 42, "hi"), "<28>spiperelay[42]: hi");
        let dir = std::env::temp_dir().join(format!("spr-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        let log = Syslog::connect_to(&path).expect("connect");
        log.try_clone().expect("clone").send("t", "a line");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("recv");
        let expected = format!("<28>t[{}]: a line", std::process::id());
        assert_eq!(&buf[..n], expected.as_bytes());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
