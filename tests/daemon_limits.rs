//! The built binary under descriptor exhaustion and SIGTERM (issue 4): `EMFILE` from accept
//! must not kill the daemon (spiped exits, its issue #463), and the first SIGTERM drains.
//!
//! Self-contained: an echo server thread, our `-d` in front of it and our `-e` in front of that,
//! all on loopback with ports chosen by the kernel.

mod bin_common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

struct Proc(Child, PathBuf);

impl Proc {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spiperelay-limits-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

fn free_port() -> u16 {
    bin_common::free_tcp_addr(bin_common::Fam::V4).port()
}

/// An echo server: echoes each connection until EOF, then shuts down its write side.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().take(10_000) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let mut buf = [0u8; 4096];
                for _ in 0..100_000 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

fn start(dir: &Path, name: &str, prefix: &[&str], args: &[&str]) -> Proc {
    let log = dir.join(format!("{name}.stderr"));
    let mut cmd = Command::new(
        prefix
            .first()
            .copied()
            .unwrap_or(env!("CARGO_BIN_EXE_spiperelay")),
    );
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(env!("CARGO_BIN_EXE_spiperelay"));
    }
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn spiperelay");
    Proc(child, log)
}

/// Waits (bounded) until `p` itself listens on `port`: a bare connect could reach another
/// test's process that was handed the same port.
fn wait_listening(p: &Proc, port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if bin_common::pid_listens_on(p.0.id(), port)
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} does not listen on port {port}; stderr: {}",
        p.0.id(),
        p.stderr()
    );
}

fn echo_once(port: u16, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(msg).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    got
}

/// A pair: our `-d` in front of an echo server, our `-e` (started through `enc_prefix`) in
/// front of the `-d`. Returns the `-e` port and both processes.
fn pair(dir: &Path, enc_prefix: &[&str], enc_extra: &[&str]) -> (u16, Proc, Proc) {
    let key = dir.join("key");
    std::fs::write(&key, b"a key for the limits test").expect("key");
    let key = key.to_str().expect("utf-8 path").to_owned();
    let echo = echo_server();
    let (dport, eport) = (free_port(), free_port());
    let d = start(
        dir,
        "dec",
        &[],
        &[
            "-F",
            "-d",
            "-n",
            "0",
            "-s",
            &format!("[127.0.0.1]:{dport}"),
            "-t",
            &format!("[127.0.0.1]:{echo}"),
            "-k",
            &key,
        ],
    );
    wait_listening(&d, dport);
    let mut args = vec![
        "-F".to_owned(),
        "-e".to_owned(),
        "-s".to_owned(),
        format!("[127.0.0.1]:{eport}"),
        "-t".to_owned(),
        format!("[127.0.0.1]:{dport}"),
        "-k".to_owned(),
        key,
    ];
    args.extend(enc_extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = start(dir, "enc", enc_prefix, &args);
    wait_listening(&e, eport);
    (eport, d, e)
}

#[test]
fn emfile_on_accept_does_not_kill_the_daemon() {
    emfile_on_accept(&[], "emfile");
}

/// The same on the epoll backend, whose accept reports EMFILE the way io_uring's does.
#[test]
fn emfile_on_accept_does_not_kill_the_daemon_on_epoll() {
    emfile_on_accept(&["env", "SPIPERELAY_BACKEND=epoll"], "emfile-epoll");
}

/// `backend_prefix` goes between `prlimit` and the binary (e.g. `env VAR=value`).
fn emfile_on_accept(backend_prefix: &[&str], tag: &str) {
    let dir = tempdir(tag);
    // 48 descriptors in all: the ring (or epoll instance), the listener and the standard ones
    // leave room for a few dozen sockets, far fewer than the clients below.
    let mut prefix = vec!["prlimit", "--nofile=48:48", "--"];
    prefix.extend_from_slice(backend_prefix);
    let (eport, _d, mut e) = pair(&dir, &prefix, &["-n", "0"]);
    assert_eq!(echo_once(eport, b"before"), b"before", "{}", e.stderr());
    if !backend_prefix.is_empty() {
        // prlimit and env exec, so the child's pid is the daemon's.
        let kinds = bin_common::anon_inodes(e.0.id());
        assert!(
            kinds.iter().any(|k| k == "[eventpoll]"),
            "not on epoll: {kinds:?}"
        );
    }

    let mut held = Vec::new();
    for _ in 0..80 {
        match TcpStream::connect(("127.0.0.1", eport)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    // Give the daemon time to hit EMFILE and back off.
    let end = Instant::now() + Duration::from_secs(10);
    while !e.stderr().contains("Too many open files") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        e.stderr().contains("Too many open files"),
        "no EMFILE logged; stderr: {}",
        e.stderr()
    );
    assert!(e.0.try_wait().expect("wait").is_none(), "the daemon exited");
    // Accepted connections wait for a descriptor instead of being dropped.
    assert!(
        !e.stderr()
            .lines()
            .any(|l| l.contains("connection dropped") && l.contains("Too many open files")),
        "an accepted connection was dropped for lack of descriptors: {}",
        e.stderr()
    );
    drop(held);

    // Once descriptors are free again the daemon serves new clients.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let got = echo_once(eport, b"after");
        if got == b"after" {
            break;
        }
        assert!(
            Instant::now() < end,
            "not served after the burst; stderr: {}",
            e.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(e.0.try_wait().expect("wait").is_none(), "the daemon exited");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_sigterm_drains_open_connections() {
    let dir = tempdir("sigterm");
    let (eport, _d, mut e) = pair(&dir, &[], &[]);
    let mut open = TcpStream::connect(("127.0.0.1", eport)).expect("connect");
    open.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    open.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).expect("echo before SIGTERM");

    let pid = e.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        e.0.try_wait().expect("wait").is_none(),
        "exited with a connection open"
    );

    // The open connection still works, including its half-close.
    open.write_all(b"pong").expect("write after SIGTERM");
    open.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).expect("read after SIGTERM");
    assert_eq!(rest, b"pong");
    drop(open);

    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = e.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < end,
            "did not exit after the last connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
