//! Helpers shared by the adversarial black-box tests (`tests/adversarial*.rs`,
//! `tests/accept_limit.rs`): running the binary on a chosen io backend, probing a child's
//! descriptors and memory in `/proc`, a canary connection that streams through a chain for the
//! whole of a test case, and waiting for a log line.
//!
//! Every loop is bounded in time and count; children are the `bin_common::Proc`s of the test
//! and are killed by PID when dropped.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::bin_common::{Addr, Proc, random_bytes, relay_bin};

/// The variable the binary reads to force an io backend.
pub const BACKEND_ENV: &str = "SPIPERELAY_BACKEND";

/// The io backends every case runs on.
pub const BACKENDS: [&str; 2] = ["io_uring", "epoll"];

/// A wrapper script that runs the binary under test with `SPIPERELAY_BACKEND=<backend>`.
///
/// Written once per backend per test process, before any child is spawned from it (a child
/// forked while the script is open for writing would make `exec` fail with `ETXTBSY`, so the
/// writes happen under one lock and the file is complete before the path is handed out).
pub fn backend_bin(backend: &str) -> PathBuf {
    static WRAPPERS: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let wrappers = WRAPPERS.get_or_init(|| Mutex::new(Vec::new()));
    let mut w = wrappers.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = w.iter().find(|(b, _)| b == backend) {
        return p.clone();
    }
    let bin = relay_bin();
    let bin = bin.to_str().expect("utf-8 binary path").to_owned();
    assert!(!bin.contains('\''), "binary path with a quote: {bin}");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spiperelay-{backend}-{}.sh", std::process::id()));
    fs::write(
        &path,
        format!("#!/bin/sh\n{BACKEND_ENV}={backend} exec '{bin}' \"$@\"\n"),
    )
    .expect("write wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    w.push((backend.to_owned(), path.clone()));
    path
}

/// The backends to run: both, or only the one named by `SPIPERELAY_TEST_BACKEND`; io_uring is
/// left out (with a `SKIP` line) where this kernel or sandbox does not allow it.
pub fn backends() -> Vec<&'static str> {
    let wanted: Vec<&'static str> = match std::env::var("SPIPERELAY_TEST_BACKEND") {
        Ok(b) if !b.is_empty() => BACKENDS.iter().copied().filter(|x| *x == b).collect(),
        _ => BACKENDS.to_vec(),
    };
    wanted
        .into_iter()
        .filter(|b| {
            if *b != "io_uring" {
                return true;
            }
            match spiperelay::io::uring::probe() {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("SKIP io_uring: {e}");
                    false
                }
            }
        })
        .collect()
}

/// Whether the heavier variants should run (`SPIPERELAY_HEAVY=1`).
pub fn heavy() -> bool {
    std::env::var("SPIPERELAY_HEAVY").is_ok_and(|v| v == "1")
}

/// An environment variable parsed as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Open descriptors of `pid` (entries of `/proc/PID/fd`), `None` if it is gone.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), `None` if unreadable.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// User + system CPU time of `pid` so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // /proc reports USER_HZ ticks, 100 a second on every Linux ABI we build for.
    Some(Duration::from_millis(ticks * 10))
}

/// Waits (bounded) until `pid`'s descriptor count is at most `limit`; returns the last count.
pub fn settle_fds(pid: u32, limit: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut n = usize::MAX;
    for _ in 0..10_000 {
        n = fd_count(pid).unwrap_or(usize::MAX);
        if n <= limit || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    n
}

/// Waits (bounded) until `proc`'s stderr contains `needle`; returns whether it did.
pub fn wait_log(proc: &Proc, needle: &str, timeout: Duration) -> bool {
    crate::bin_common::wait_until(timeout, || proc.stderr().contains(needle))
}

/// How many times `needle` occurs in `proc`'s stderr.
pub fn log_count(proc: &Proc, needle: &str) -> usize {
    proc.stderr().matches(needle).count()
}

/// A connection through a chain that streams pseudo-random bytes in both directions for as
/// long as it lives, checking every echoed byte. Dropping it is [`Canary::finish`] without the
/// check.
pub struct Canary {
    stop: Arc<AtomicBool>,
    echoed: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<u64, String>>>,
}

impl Canary {
    /// Connects to `front` and starts streaming (chunks of 4 KiB every 10 ms, each echo checked).
    pub fn start(front: &Addr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let echoed = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), echoed.clone());
        let front = front.clone();
        let thread = thread::spawn(move || canary_loop(&front, &s, &e));
        let c = Self {
            stop,
            echoed,
            thread: Some(thread),
        };
        // Wait until the first chunk made the round trip, so the canary is up before the case.
        let echoed = c.echoed.clone();
        crate::bin_common::wait_until(Duration::from_secs(30), || {
            echoed.load(Ordering::SeqCst) > 0
        });
        c
    }

    /// Bytes echoed so far.
    pub fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::SeqCst)
    }

    /// Stops streaming and returns the bytes echoed, or why the canary failed (a wrong byte,
    /// a reset, or a stall of more than 10 s).
    pub fn finish(mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err("canary thread panicked".into()),
        }
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn canary_loop(front: &Addr, stop: &AtomicBool, echoed: &AtomicU64) -> Result<u64, String> {
    const CHUNK: usize = 4096;
    let mut conn = front
        .connect()
        .map_err(|e| format!("canary connect: {e}"))?;
    conn.set_timeouts(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut total = 0u64;
    let mut got = vec![0u8; CHUNK];
    for i in 0u64..1_000_000 {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            break;
        }
        let chunk = random_bytes(0xca4a_0000 + i, CHUNK);
        conn.write_all(&chunk)
            .map_err(|e| format!("canary write after {total} bytes: {e}"))?;
        conn.read_exact(&mut got)
            .map_err(|e| format!("canary read after {total} bytes: {e}"))?;
        if got != chunk {
            return Err(format!("canary: wrong bytes after {total} bytes"));
        }
        total += CHUNK as u64;
        echoed.store(total, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(10));
    }
    let _ = conn.shutdown_write();
    Ok(total)
}

/// Copies both ends' stderr of `chain` to `<CARGO_TARGET_TMPDIR>/<tag>-{enc,dec}.stderr` and
/// returns a short description for a failure message: the paths and the last lines of each.
pub fn saved_logs(chain: &crate::bin_common::Chain, tag: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut out = String::new();
    for (p, name) in [(&chain.enc, "enc"), (&chain.dec, "dec")] {
        let text = p.stderr();
        let path = dir.join(format!("{tag}-{}-{name}.stderr", std::process::id()));
        let _ = fs::write(&path, &text);
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        out.push_str(&format!(
            "{name} stderr ({} lines, saved to {}), last lines: {:?}; ",
            text.lines().count(),
            path.display(),
            tail
        ));
    }
    out
}
