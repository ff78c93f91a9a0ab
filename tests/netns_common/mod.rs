//! Network namespaces for black-box tests: two namespaces the test creates itself, joined by a
//! veth pair addressed only from 169.254.0.0/16 (nothing outside the namespaces is ever
//! addressed), removed on every path by a drop guard; and processes started inside one with
//! `ip netns exec` (which execs, so the PID is the program's and the drop of the [`Proc`] kills
//! exactly it).
//!
//! Needs root and `ip` (iproute2): [`cannot_make_namespaces`] says why not, [`skip`] prints
//! SKIP with the reason, or fails under `CI=true`.
//!
//! A test file that uses this module declares `mod bin_common;` too.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bin_common::{Proc, TempDir, under_ci};

/// Bound on every `ip` command.
pub const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `ip ARGS` (bounded by [`IP_TIMEOUT`]); returns stdout, or the error with stderr.
pub fn ip(a: &[&str]) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(a)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip {}: {e}", a.join(" ")))?;
    let deadline = Instant::now() + IP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ip {}: no answer within {IP_TIMEOUT:?}",
                    a.join(" ")
                ));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ip {}: {e}", a.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}: {}",
            a.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The two namespaces and the veth pair between them; deleted on drop (deleting a namespace
/// deletes its end of the veth, and with it the other end).
pub struct Net {
    /// Namespace A's name.
    pub a: String,
    /// Namespace B's name.
    pub b: String,
    /// A's end of the veth pair.
    pub veth_a: String,
    /// B's end of the veth pair.
    pub veth_b: String,
}

impl Net {
    /// Creates namespaces `<stem><pid><tag>a` and `...b`, the veth pair, the addresses
    /// `addr_a/30` (in A) and `addr_b/30` (in B), and brings up the veth ends and `lo` in
    /// both. `stem` (at most 5 characters, so interface names fit in 15) tells test files
    /// apart, `tag` the networks of one test process. On error, what was created is removed
    /// (by the drop of the partly built value).
    pub fn create(stem: &str, tag: char, addr_a: &str, addr_b: &str) -> Result<Net, String> {
        let id = std::process::id() % 100_000;
        let net = Net {
            a: format!("{stem}{id}{tag}a"),
            b: format!("{stem}{id}{tag}b"),
            veth_a: format!("{stem}{id}{tag}a0"),
            veth_b: format!("{stem}{id}{tag}b0"),
        };
        // Left over from a run of the same pid that was killed: remove first.
        let _ = ip(&["netns", "del", &net.a]);
        let _ = ip(&["netns", "del", &net.b]);
        ip(&["netns", "add", &net.a])?;
        ip(&["netns", "add", &net.b])?;
        ip(&[
            "-n",
            &net.a,
            "link",
            "add",
            &net.veth_a,
            "type",
            "veth",
            "peer",
            "name",
            &net.veth_b,
            "netns",
            &net.b,
        ])?;
        for (ns, dev, addr) in [(&net.a, &net.veth_a, addr_a), (&net.b, &net.veth_b, addr_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(net)
    }

    /// Sets A's end of the veth up or down (cuts or restores the path between A and B).
    pub fn set_link(&self, up: bool) -> Result<String, String> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.a, "link", "set", &self.veth_a, state])
    }

    /// Runs `program ARGS` inside namespace `ns` (bounded by [`IP_TIMEOUT`]); returns stdout,
    /// or the error with stderr.
    pub fn exec(&self, ns: &str, program: &str, a: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", ns, program];
        all.extend_from_slice(a);
        ip(&all)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Why namespaces cannot be made here, if they cannot.
pub fn cannot_make_namespaces() -> Option<String> {
    if !Path::new("/usr/sbin/ip").exists() && !Path::new("/usr/bin/ip").exists() {
        return Some("ip (iproute2) not installed".into());
    }
    if !is_root() {
        return Some("not root: creating network namespaces needs CAP_SYS_ADMIN".into());
    }
    None
}

/// Whether the effective uid is 0 (read from /proc: no unsafe, no extra dependency).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Prints `SKIP: <test>: <why>`, or fails under `CI=true`.
pub fn skip(test: &str, why: &str) {
    assert!(!under_ci(), "CI=true and the {test} cannot run: {why}");
    eprintln!("SKIP: {test}: {why}");
}

/// Spawns `env VARS... program ARGS` inside namespace `ns` via `ip netns exec`; `ip` and
/// `env` exec, so the PID is the program's and the drop of the [`Proc`] kills exactly it.
/// Stderr goes to `<dir>/<name>.stderr`.
pub fn spawn_in(
    dir: &TempDir,
    ns: &str,
    name: &str,
    vars: &[(&str, &str)],
    program: &Path,
    program_args: &[OsString],
) -> Proc {
    let mut a: Vec<OsString> = vec!["netns".into(), "exec".into(), ns.into(), "env".into()];
    a.extend(vars.iter().map(|(k, v)| OsString::from(format!("{k}={v}"))));
    a.push(program.into());
    a.extend(program_args.iter().cloned());
    Proc::spawn(dir, name, Path::new("ip"), &a)
        .unwrap_or_else(|e| panic!("spawn {} in {ns}: {e}", program.display()))
}
