//! The daemon under systemd's protocols, black-box, with the spiped-style command line:
//! - `sd_notify`: a `NOTIFY_SOCKET` datagram socket bound by the test receives `READY=1` once
//!   the relay listens, `RELOADING=1` + `MONOTONIC_USEC=` then `READY=1` on `SIGHUP` (with the
//!   failure in `STATUS=` when the reload fails), `STOPPING=1` on `SIGTERM`, in that order, and
//!   `WATCHDOG=1` pings only when `WATCHDOG_USEC` is set for this process;
//! - `--shutdown-timeout`: the `SIGTERM` drain ends at the deadline, cutting what is open;
//! - socket activation through `systemd-socket-activate` (Debian package `systemd`): a passed
//!   Unix or TCP socket is served instead of binding `-s`, is never unlinked, and a second
//!   socket or a connected (`--accept`) one is a startup error naming them; with a
//!   configuration file, each passed socket is matched to the pipe of its name, kept across
//!   reloads, and a socket that names no pipe is a startup error naming both.
//!
//! Without `systemd-socket-activate` the activation tests say SKIP, except under `CI=true`.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Addr, Echo, Fam, Reply, TempDir, assert_echo, free_tcp_addr, have_tool, relay_bin, start_end,
};

const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// A daemon started by the test, killed by PID (kill + wait) when dropped.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    fn spawn(dir: &TempDir, name: &str, cmd: &mut Command) -> Self {
        let stderr = dir.join(&format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn daemon");
        Self { child, stderr }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig}");
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) for the exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `spiperelay -F -d -s SRC -t TARGET -k KEY EXTRA...`.
fn relay_cmd(src: &str, target: &Addr, key: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(relay_bin());
    c.args(["-F", "-d", "-s", src, "-t", &target.spiped(), "-k"])
        .arg(key)
        .args(extra)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES");
    c
}

/// The test's end of `NOTIFY_SOCKET`.
struct NotifyListener {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifyListener {
    fn bind(dir: &TempDir) -> Self {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Self {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// Receives datagrams until one satisfies `want` (returned) or `within` passes (panic
    /// with everything seen and `logs`).
    fn until(&mut self, within: Duration, want: impl Fn(&str) -> bool, logs: &str) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if want(&msg) {
                    return msg;
                }
            }
        }
        panic!(
            "no expected notification within {within:?}; seen {:?}; {logs}",
            self.seen
        );
    }

    /// Every datagram received for `d`.
    fn drain_for(&mut self, d: Duration) -> Vec<String> {
        let start = self.seen.len();
        let deadline = Instant::now() + d;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        self.seen[start..].to_vec()
    }
}

fn has(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// The state changes among `msgs` (watchdog pings and bare status updates left out).
fn state_changes(msgs: &[String]) -> Vec<&'static str> {
    msgs.iter()
        .filter_map(|m| {
            if has(m, "READY=1") {
                Some("READY")
            } else if has(m, "RELOADING=1") {
                Some("RELOADING")
            } else if has(m, "STOPPING=1") {
                Some("STOPPING")
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn notify_ready_reload_stop_in_order_with_watchdog() {
    let dir = TempDir::new("ntfy");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let mut notify = NotifyListener::bind(&dir);
    let src = dir.sock_path("d");
    let mut cmd = relay_cmd(&src.to_string_lossy(), &echo.addr, &key, &[]);
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "600000");
    let mut d = Daemon::spawn(&dir, "relay", &mut cmd);

    let ready = notify.until(Duration::from_secs(20), |m| has(m, "READY=1"), &d.stderr());
    // READY=1 only once the listener accepts.
    assert!(
        UnixStream::connect(&src).is_ok(),
        "READY=1 before listening"
    );
    assert!(ready.contains("STATUS=1 pipe listening"), "{ready}");

    // Traffic flows through it.
    let enc = start_end(
        &dir,
        "enc",
        &relay_bin(),
        "-e",
        Fam::Unix,
        &Addr::Unix(src.clone()),
        &key,
        &[],
    );
    assert_echo(enc.addr(), b"hello through a notified relay\n", "echo");

    // Watchdog pings every half of WATCHDOG_USEC (300 ms; the loop turns every 250 ms).
    let pings = notify
        .drain_for(Duration::from_secs(3))
        .iter()
        .filter(|m| has(m, "WATCHDOG=1"))
        .count();
    assert!(
        pings >= 3,
        "{pings} watchdog pings in 3 s: {:?}",
        notify.seen
    );

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 with the outcome.
    d.signal("-HUP");
    let reloading = notify.until(
        Duration::from_secs(10),
        |m| has(m, "RELOADING=1"),
        &d.stderr(),
    );
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading}");
    let done = notify.until(Duration::from_secs(10), |m| has(m, "READY=1"), &d.stderr());
    assert!(done.contains("STATUS=reloaded"), "{done}");

    // A reload that fails (the key file is gone) still ends in READY=1, with the reason.
    fs::remove_file(&key).expect("remove key");
    d.signal("-HUP");
    notify.until(
        Duration::from_secs(10),
        |m| has(m, "RELOADING=1"),
        &d.stderr(),
    );
    let failed = notify.until(Duration::from_secs(10), |m| has(m, "READY=1"), &d.stderr());
    assert!(failed.contains("STATUS=reload failed"), "{failed}");

    // SIGTERM: STOPPING=1, then a clean exit.
    d.signal("-TERM");
    notify.until(
        Duration::from_secs(10),
        |m| has(m, "STOPPING=1"),
        &d.stderr(),
    );
    let st = d
        .wait_exit(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert!(st.success(), "{st}; {}", d.stderr());
    assert_eq!(
        state_changes(&notify.seen),
        [
            "READY",
            "RELOADING",
            "READY",
            "RELOADING",
            "READY",
            "STOPPING"
        ],
        "{:?}",
        notify.seen
    );
}

#[test]
fn no_watchdog_pings_unless_asked_for_this_process() {
    let dir = TempDir::new("nowd");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    for (usec, pid) in [(None, None), (Some("300000"), Some("1"))] {
        let mut notify = NotifyListener::bind(&dir);
        let src = dir.sock_path("d");
        let mut cmd = relay_cmd(&src.to_string_lossy(), &echo.addr, &key, &[]);
        cmd.env("NOTIFY_SOCKET", &notify.path);
        if let Some(u) = usec {
            cmd.env("WATCHDOG_USEC", u);
        }
        if let Some(p) = pid {
            // A watchdog meant for another process (PID 1).
            cmd.env("WATCHDOG_PID", p);
        }
        let d = Daemon::spawn(&dir, "relay", &mut cmd);
        notify.until(Duration::from_secs(20), |m| has(m, "READY=1"), &d.stderr());
        let later = notify.drain_for(Duration::from_millis(1500));
        assert!(
            later.iter().all(|m| !has(m, "WATCHDOG=1")),
            "{usec:?}/{pid:?}: {later:?}"
        );
        drop(d);
        let _ = fs::remove_file(&notify.path);
    }
}

/// Opens a connection through `enc` and checks it carries data; the connection stays open.
fn open_connection(enc: &Addr) -> bin_common::Conn {
    let mut c = enc.connect().expect("connect");
    c.write_all(b"ping\n").expect("write");
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).expect("echo");
    assert_eq!(&buf, b"ping\n");
    c
}

#[test]
fn shutdown_timeout_cuts_the_drain_short() {
    let dir = TempDir::new("stop");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    for limit in [Some("1"), None] {
        let src = dir.sock_path("d");
        let extra: Vec<&str> = limit
            .map(|l| vec!["--shutdown-timeout", l])
            .unwrap_or_default();
        let mut d = Daemon::spawn(
            &dir,
            "dec",
            &mut relay_cmd(&src.to_string_lossy(), &echo.addr, &key, &extra),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&src).is_err() {
            assert!(Instant::now() < deadline, "never listened: {}", d.stderr());
            thread::sleep(Duration::from_millis(20));
        }
        let enc = start_end(
            &dir,
            "enc",
            &relay_bin(),
            "-e",
            Fam::Unix,
            &Addr::Unix(src),
            &key,
            &[],
        );
        let _open = open_connection(enc.addr());
        let t0 = Instant::now();
        d.signal("-TERM");
        match limit {
            Some(_) => {
                let st = d
                    .wait_exit(Duration::from_secs(20))
                    .expect("exit at the deadline");
                let took = t0.elapsed();
                assert!(st.success(), "{st}; {}", d.stderr());
                assert!(
                    took >= Duration::from_millis(900),
                    "left after {took:?}, before the deadline"
                );
                let log = d.stderr();
                assert!(
                    log.contains("exiting after the last of 1 open connections or in 1 s"),
                    "{log}"
                );
                assert!(
                    log.contains("shutdown timeout of 1 s reached; closing the 1 connections"),
                    "{log}"
                );
            }
            None => {
                // Without the flag the drain waits for the open connection.
                assert!(
                    d.wait_exit(Duration::from_secs(3)).is_none(),
                    "{}",
                    d.stderr()
                );
                d.signal("-TERM");
                let st = d
                    .wait_exit(Duration::from_secs(20))
                    .expect("exit on second SIGTERM");
                assert!(st.success(), "{st}; {}", d.stderr());
            }
        }
    }
}

/// `systemd-socket-activate -l LISTEN... --fdname=NAMES [-a] spiperelay ...`.
fn activate(listen: &[String], names: &str, accept: bool, relay_args: &[OsString]) -> Command {
    let mut c = Command::new(SOCKET_ACTIVATE);
    for l in listen {
        c.arg("-l").arg(l);
    }
    c.arg(format!("--fdname={names}"));
    if accept {
        c.arg("--accept");
    }
    c.arg(relay_bin()).args(relay_args);
    c
}

fn relay_args(src: &str, target: &Addr, key: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-F", "-d", "-s", src, "-t", &target.spiped(), "-k"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(key.into());
    a
}

/// Connects to `addr` until it answers (systemd-socket-activate execs the relay on the first
/// connection, which the relay then accepts and drops: it is no handshake).
fn wake(addr: &Addr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while addr.connect().is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never listened",
            addr.spiped()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn activated_unix_and_tcp_sockets_are_served_and_never_unlinked() {
    if !have_tool(SOCKET_ACTIVATE, "systemd") {
        return;
    }
    let dir = TempDir::new("act");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let unix = Addr::Unix(dir.sock_path("activated"));
    let tcp = Addr::Tcp(free_tcp_addr(Fam::V4));
    for (listen, listen_arg) in [
        (unix.clone(), unix.spiped()),
        (tcp.clone(), tcp.spiped().replace(['[', ']'], "")),
    ] {
        // -s names a path that must stay unused: the passed socket replaces it.
        let unused = dir.sock_path("unused");
        let mut d = Daemon::spawn(
            &dir,
            "activated",
            &mut activate(
                &[listen_arg],
                "default",
                false,
                &relay_args(&unused.to_string_lossy(), &echo.addr, &key),
            ),
        );
        wake(&listen);
        let enc = start_end(
            &dir,
            "enc",
            &relay_bin(),
            "-e",
            Fam::Unix,
            &listen,
            &key,
            &[],
        );
        assert_echo(enc.addr(), b"through a passed socket\n", "activated relay");
        let log = d.stderr();
        assert!(
            log.contains("using the listening socket default passed by systemd"),
            "{log}"
        );
        assert!(
            !unused.exists(),
            "-s was bound although a socket was passed"
        );
        d.signal("-TERM");
        let st = d.wait_exit(Duration::from_secs(20)).expect("exit");
        assert!(st.success(), "{st}; {}", d.stderr());
        if let Addr::Unix(p) = &listen {
            assert!(
                p.exists(),
                "the relay unlinked systemd's socket {}",
                p.display()
            );
        }
    }
}

#[test]
fn two_passed_sockets_or_a_connected_one_are_startup_errors() {
    if !have_tool(SOCKET_ACTIVATE, "systemd") {
        return;
    }
    let dir = TempDir::new("actbad");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let (a, b) = (
        Addr::Unix(dir.sock_path("a")),
        Addr::Unix(dir.sock_path("b")),
    );
    let src = dir.sock_path("src");
    let mut d = Daemon::spawn(
        &dir,
        "two",
        &mut activate(
            &[a.spiped(), b.spiped()],
            "first:second",
            false,
            &relay_args(&src.to_string_lossy(), &echo.addr, &key),
        ),
    );
    wake(&a);
    let st = d
        .wait_exit(Duration::from_secs(20))
        .expect("startup error exits");
    let log = d.stderr();
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        log.contains("2 sockets passed (first, second), but the command line has one pipe"),
        "{log}"
    );

    // --accept passes each connection, not a listening socket.
    let c = Addr::Unix(dir.sock_path("c"));
    let d = Daemon::spawn(
        &dir,
        "accept",
        &mut activate(
            &[c.spiped()],
            "conn",
            true,
            &relay_args(&src.to_string_lossy(), &echo.addr, &key),
        ),
    );
    wake(&c);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.stderr().contains("passed socket conn is not listening") {
        assert!(Instant::now() < deadline, "{}", d.stderr());
        thread::sleep(Duration::from_millis(50));
    }
}

/// Under socket activation the drain closes only the relay's descriptor of the passed socket:
/// the copy systemd keeps (played here by the test) still listens, so a client arriving during
/// the drain waits in its queue for the next instance instead of being refused or reset.
#[test]
fn drain_under_socket_activation_leaves_new_clients_queued_for_the_next_instance() {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    let dir = TempDir::new("actdrain");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let path = dir.sock_path("activated");
    let ours = UnixListener::bind(&path).expect("bind the socket systemd would hold");
    // The relay's copy, inheritable (std opens everything close-on-exec), made descriptor 3 in
    // the child by the shell, which then execs the relay with its own pid as LISTEN_PID.
    let passed: OwnedFd = OwnedFd::from(ours.try_clone().expect("dup"));
    fcntl(&passed, FcntlArg::F_SETFD(FdFlag::empty())).expect("clear FD_CLOEXEC");
    let n = passed.as_raw_fd();
    let redirect = if n == 3 {
        String::new()
    } else {
        format!("exec 3<&{n} {n}<&-; ")
    };
    let unused = dir.sock_path("unused");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "{redirect}LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=default exec \"$0\" \"$@\""
        ))
        .arg(relay_bin())
        .args(relay_args(&unused.to_string_lossy(), &echo.addr, &key));
    let mut d = Daemon::spawn(&dir, "activated", &mut cmd);
    drop(passed);
    let addr = Addr::Unix(path.clone());
    let enc = start_end(&dir, "enc", &relay_bin(), "-e", Fam::Unix, &addr, &key, &[]);
    // An open connection keeps the drain going.
    let _open = open_connection(enc.addr());
    let log = d.stderr();
    assert!(
        log.contains("using the listening socket default passed by systemd"),
        "{log}"
    );
    d.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr().contains("SIGTERM: no longer accepting") {
        assert!(Instant::now() < deadline, "no drain: {}", d.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    // Give every loop time to close its descriptor (they look at signals every 250 ms).
    thread::sleep(Duration::from_millis(600));
    let mut late = UnixStream::connect(&path).expect("queued in the socket systemd keeps");
    late.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut b = [0u8; 1];
    let r = late.read(&mut b);
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the draining relay touched a new client: {r:?}"
    );
    // The next instance (here: the test) finds it waiting in the queue.
    ours.set_nonblocking(true).expect("nonblocking");
    assert!(ours.accept().is_ok(), "the new client was not left queued");
    assert!(!unused.exists());
    d.signal("-TERM");
    let st = d.wait_exit(Duration::from_secs(20)).expect("exit");
    assert!(st.success(), "{st}; {}", d.stderr());
    assert!(path.exists(), "the passed socket's path was unlinked");
}

/// A configuration of two decrypting pipes, `alpha` and `beta`, in front of `echo`; `timeout`
/// varies between reloads.
fn two_pipe_config(dir: &TempDir, key: &Path, echo: &Addr, timeout: u32) -> String {
    let mut text = String::new();
    for name in ["alpha", "beta"] {
        text.push_str(&format!(
            "[pipe.{name}]\nmode = \"decrypt\"\nsource = \"{}\"\ntarget = \"{}\"\n\
             keys = [\"{}\"]\ntimeout = {timeout}\n\n",
            dir.join(&format!("unused-{name}.sock")).display(),
            echo.spiped(),
            key.display()
        ));
    }
    text
}

#[test]
fn passed_sockets_are_matched_to_pipes_by_name_and_kept_across_reloads() {
    if !have_tool(SOCKET_ACTIVATE, "systemd") {
        return;
    }
    let dir = TempDir::new("actnamed");
    let key = dir.key("k");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let file = dir.join("pipes.toml");
    fs::write(&file, two_pipe_config(&dir, &key, &echo.addr, 5)).expect("config");
    let (a, b) = (
        Addr::Unix(dir.sock_path("passed-a")),
        Addr::Unix(dir.sock_path("passed-b")),
    );
    let config_args = vec![OsString::from("--config"), file.clone().into()];
    // Passed in the other order than the file lists the pipes: names decide.
    let mut d = Daemon::spawn(
        &dir,
        "named",
        &mut activate(&[b.spiped(), a.spiped()], "beta:alpha", false, &config_args),
    );
    wake(&a);
    let through = |listen: &Addr, what: &str| {
        let enc = start_end(
            &dir,
            "enc",
            &relay_bin(),
            "-e",
            Fam::Unix,
            listen,
            &key,
            &[],
        );
        assert_echo(enc.addr(), what.as_bytes(), what);
    };
    through(&a, "alpha through its passed socket");
    through(&b, "beta through its passed socket");
    let log = d.stderr();
    for (pipe, path) in [("alpha", &a), ("beta", &b)] {
        assert!(
            log.contains(&format!(
                "pipe {pipe}: using the listening socket {pipe} passed by systemd ({})",
                path.spiped()
            )),
            "{log}"
        );
    }
    for name in ["alpha", "beta"] {
        assert!(!dir.join(&format!("unused-{name}.sock")).exists());
    }
    // A reload that changes an option keeps both passed sockets.
    fs::write(&file, two_pipe_config(&dir, &key, &echo.addr, 9)).expect("config");
    d.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.stderr().contains("SIGHUP: reloaded") {
        assert!(Instant::now() < deadline, "{}", d.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    through(&a, "alpha after the reload");
    through(&b, "beta after the reload");
    d.signal("-TERM");
    let st = d.wait_exit(Duration::from_secs(20)).expect("exit");
    assert!(st.success(), "{st}; {}", d.stderr());
    assert!(a.spiped().len() > 1 && Path::new(&a.spiped()).exists());

    // A passed socket that names no pipe: a startup error naming it and the pipes.
    let c = Addr::Unix(dir.sock_path("passed-c"));
    let mut d = Daemon::spawn(
        &dir,
        "unmatched",
        &mut activate(
            &[a.spiped(), c.spiped()],
            "alpha:gamma",
            false,
            &config_args,
        ),
    );
    wake(&c);
    let st = d
        .wait_exit(Duration::from_secs(20))
        .expect("startup error exits");
    let log = d.stderr();
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        log.contains("gamma") && log.contains("alpha") && log.contains("beta"),
        "{log}"
    );
}
