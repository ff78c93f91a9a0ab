//! A dead peer is noticed: with keep-alive timing and `TCP_USER_TIMEOUT` configured, a
//! connection whose path to the peer is cut mid-stream is dropped within the configured time
//! and logged with its reason, instead of hanging silently for minutes.
//!
//! The test builds its own network: two network namespaces joined by a veth pair, addressed
//! only from 169.254.0.0/16 on that pair (nothing outside the namespaces is ever addressed).
//!
//! ```text
//!  test ──unix──▶ -e (ns A) ══TCP over the veth══▶ -d (ns B) ──unix──▶ test's sink
//! ```
//!
//! The `-e` end takes the options from the command line (`--keepalive`, `--user-timeout`), the
//! `-d` end from a configuration file (`source_tcp`). A client streams through both; once the
//! sink has seen data flow, the veth is set down in namespace A. `-e`, with unacknowledged
//! data, gives up after `TCP_USER_TIMEOUT`; `-d`, idle, after its keep-alive probes. Both log
//! `connection dropped (...): encrypted peer unreachable: ...` well within the configured time
//! plus slack, and keep serving once the link is back.
//!
//! Needs root and `ip` (iproute2): otherwise it prints SKIP with the reason, except under
//! `CI=true`, where that is a failure. Namespaces and processes are removed on every path
//! (a drop guard); every wait is bounded.

mod bin_common;
mod netns_common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{Proc, TempDir, anon_inodes, args, relay_bin, wait_until};
use netns_common::{Net, cannot_make_namespaces};

/// The `-e` end's options (command line).
const E_USER_TIMEOUT_SECS: u64 = 3;
const E_KEEPALIVE: &str = "2,1,2";
/// The `-d` end's keep-alive: idle 2 s, a probe every second, 2 probes; and a user timeout.
const D_KEEPALIVE_IDLE: u64 = 2;
const D_KEEPALIVE_INTERVAL: u64 = 1;
const D_KEEPALIVE_COUNT: u64 = 2;
const D_USER_TIMEOUT_SECS: u64 = 3;
/// Added to the configured time for the drop to be seen: kernel timer granularity, the
/// retransmission back-off rounding up, and a machine busy compiling.
const SLACK: Duration = Duration::from_secs(10);
/// The encrypted leg's address pair (link-local, on the veth only) and port.
const ADDR_A: &str = "169.254.77.1";
const ADDR_B: &str = "169.254.77.2";
const PORT: u16 = 7001;
/// The namespaces' name stem (see [`Net::create`]).
const STEM: &str = "sprdp";

/// `ss -tno state established` inside namespace `ns`, for connections on [`PORT`].
fn ss(net: &Net, ns: &str) -> String {
    net.exec(
        ns,
        "ss",
        &["-Htno", "state", "established", "sport", "=", ":7001"],
    )
    .unwrap_or_else(|e| e)
}

/// Whether something in `ns` listens on TCP [`PORT`].
fn listening(net: &Net, ns: &str) -> bool {
    net.exec(ns, "ss", &["-Hltn", "sport", "=", ":7001"])
        .is_ok_and(|out| !out.trim().is_empty())
}

/// SKIP with `why`, or fail under `CI=true`.
fn skip(why: &str) {
    netns_common::skip("dead-peer network-namespace test", why);
}

/// A Unix-socket sink in the test process: accepts connections one after another (bounded)
/// and counts the bytes each delivers; stops when told.
struct Sink {
    bytes: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sink {
    fn start(path: &Path) -> Sink {
        let listener = UnixListener::bind(path).expect("bind sink");
        listener.set_nonblocking(true).expect("nonblocking");
        let bytes = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, c, s) = (bytes.clone(), conns.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut open: Vec<UnixStream> = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(true).expect("nonblocking");
                        c.fetch_add(1, Ordering::Relaxed);
                        open.push(conn);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
                let mut idle = true;
                open.retain_mut(|conn| match conn.read(&mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        b.fetch_add(n as u64, Ordering::Relaxed);
                        idle = false;
                        true
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                    Err(_) => false,
                });
                if idle {
                    thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Sink {
            bytes,
            conns,
            stop,
            thread: Some(thread),
        }
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client streaming into `path` until told to stop or its write fails (bounded).
struct Streamer {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Streamer {
    fn start(path: &Path) -> Streamer {
        let mut conn = UnixStream::connect(path).expect("connect to -e");
        conn.set_write_timeout(Some(Duration::from_millis(200)))
            .expect("write timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let (s, f) = (stop.clone(), failed.clone());
        let thread = thread::spawn(move || {
            let chunk = vec![0x5au8; 16 * 1024];
            let deadline = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match conn.write(&chunk) {
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {
                        f.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
        Streamer {
            stop,
            failed,
            thread: Some(thread),
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The keep-alive timer `ss -o` shows for the first connection in `ss` output, if it shows
/// one (`timer:(keepalive,1.9sec,0)` or `timer:(keepalive,950ms,0)`).
fn keepalive_timer(ss: &str) -> Option<Duration> {
    let rest = &ss[ss.find("timer:(keepalive,")? + "timer:(keepalive,".len()..];
    let value = &rest[..rest.find(',')?];
    if let Some(ms) = value.strip_suffix("ms") {
        ms.parse::<f64>()
            .ok()
            .map(|v| Duration::from_secs_f64(v / 1000.0))
    } else if let Some(s) = value.strip_suffix("sec") {
        s.parse::<f64>().ok().map(Duration::from_secs_f64)
    } else {
        // "min" and longer: the kernel's two hours.
        Some(Duration::from_secs(3600))
    }
}

/// Spawns `relay ARGS` on io backend `backend` inside namespace `ns`.
fn spawn_in(dir: &TempDir, ns: &str, backend: &str, name: &str, relay_args: &[String]) -> Proc {
    netns_common::spawn_in(
        dir,
        ns,
        name,
        &[("SPIPERELAY_BACKEND", backend)],
        &relay_bin(),
        &args(relay_args),
    )
}

#[test]
fn keepalive_and_user_timeout_drop_a_dead_peer_and_log_why() {
    if let Some(why) = cannot_make_namespaces() {
        skip(&why);
        return;
    }
    let mut ran = 0;
    for backend in ["io_uring", "epoll"] {
        if backend == "io_uring"
            && let Err(e) = spiperelay::io::uring::probe()
        {
            eprintln!("SKIP io_uring: {e}");
            continue;
        }
        let net = match Net::create(STEM, backend.chars().next().unwrap_or('x'), ADDR_A, ADDR_B) {
            Ok(n) => n,
            Err(e) => {
                skip(&format!("cannot create the namespaces: {e}"));
                return;
            }
        };
        dead_peer_is_dropped(&net, backend);
        ran += 1;
    }
    assert!(ran > 0, "no io backend ran");
}

/// The scenario of the module documentation on `net`, with both relays on `backend`.
fn dead_peer_is_dropped(net: &Net, backend: &str) {
    eprintln!("== {backend}");
    let dir = TempDir::new("deadpeer");
    let key = dir.key("k");
    let e_sock: PathBuf = dir.join("e.sock");
    let sink_sock: PathBuf = dir.join("sink.sock");
    let sink = Sink::start(&sink_sock);

    // -d in namespace B, from a configuration file.
    let config = dir.join("d.toml");
    std::fs::write(
        &config,
        format!(
            "[pipe.dead]\nmode = \"decrypt\"\nsource = \"[{ADDR_B}]:{PORT}\"\n\
             target = \"{}\"\nkeys = [\"{}\"]\n\
             source_tcp = {{ keepalive_idle = {D_KEEPALIVE_IDLE}, \
             keepalive_interval = {D_KEEPALIVE_INTERVAL}, \
             keepalive_count = {D_KEEPALIVE_COUNT}, user_timeout = {D_USER_TIMEOUT_SECS} }}\n",
            sink_sock.display(),
            key.display()
        ),
    )
    .expect("write config");
    let mut d = spawn_in(
        &dir,
        &net.b,
        backend,
        "d",
        &["--config".into(), config.display().to_string()],
    );
    assert!(
        wait_until(Duration::from_secs(10), || listening(net, &net.b)
            || d.try_exit().is_some()),
        "-d never listened: {}",
        d.stderr()
    );
    assert!(d.try_exit().is_none(), "-d exited: {}", d.stderr());

    // -e in namespace A, from the command line.
    let mut e = spawn_in(
        &dir,
        &net.a,
        backend,
        "e",
        &[
            "-e",
            "-F",
            "-s",
            &e_sock.display().to_string(),
            "-t",
            &format!("[{ADDR_B}]:{PORT}"),
            "-k",
            &key.display().to_string(),
            "--keepalive",
            E_KEEPALIVE,
            "--user-timeout",
            &E_USER_TIMEOUT_SECS.to_string(),
        ]
        .map(String::from),
    );
    assert!(
        wait_until(Duration::from_secs(10), || UnixStream::connect(&e_sock)
            .is_ok()
            || e.try_exit().is_some()),
        "-e never listened: {}",
        e.stderr()
    );
    assert!(e.try_exit().is_none(), "-e exited: {}", e.stderr());
    // The probe connections above end cleanly or fail the handshake; only drops after the cut
    // count. Let them finish.
    thread::sleep(Duration::from_millis(300));

    let kind = if backend == "epoll" {
        "[eventpoll]"
    } else {
        "[io_uring]"
    };
    for p in [&e, &d] {
        // The listeners are bound before the event loops start: wait for the loop's instance.
        let mut kinds = Vec::new();
        let on_it = wait_until(Duration::from_secs(10), || {
            kinds = anon_inodes(p.pid());
            kinds.iter().any(|k| k == kind)
        });
        assert!(on_it, "{} runs on {kinds:?}, not {backend}", p.name);
    }

    let streamer = Streamer::start(&e_sock);
    assert!(
        wait_until(Duration::from_secs(20), || sink.bytes() >= 4 << 20),
        "the stream never flowed: {} bytes; -e: {}; -d: {}",
        sink.bytes(),
        e.stderr(),
        d.stderr()
    );
    // The -d end's accepted socket carries the configured keep-alive timer (the kernel's would
    // show two hours).
    let ss_d = ss(net, &net.b);
    let timer = keepalive_timer(&ss_d);
    assert!(
        timer.is_some_and(|t| t <= Duration::from_secs(D_KEEPALIVE_IDLE)),
        "-d's socket should show a keep-alive timer of at most {D_KEEPALIVE_IDLE} s: {ss_d:?}"
    );
    // Counted: drops for an unreachable peer (the probe connections above end otherwise).
    let drops_before = |p: &Proc| p.stderr().matches("peer unreachable").count();
    let (e_before, d_before) = (drops_before(&e), drops_before(&d));

    // Cut the path.
    net.set_link(false).expect("set the veth down");
    let cut = Instant::now();
    let bound_e = Duration::from_secs(E_USER_TIMEOUT_SECS) + SLACK;
    let bound_d =
        Duration::from_secs(D_KEEPALIVE_IDLE + D_KEEPALIVE_INTERVAL * D_KEEPALIVE_COUNT) + SLACK;
    let mut e_at = None;
    let mut d_at = None;
    wait_until(bound_e.max(bound_d), || {
        if e_at.is_none() && drops_before(&e) > e_before {
            e_at = Some(cut.elapsed());
        }
        if d_at.is_none() && drops_before(&d) > d_before {
            d_at = Some(cut.elapsed());
        }
        e_at.is_some() && d_at.is_some()
    });
    let (e_log, d_log) = (e.stderr(), d.stderr());
    eprintln!("{backend}: -e dropped after {e_at:?}, -d after {d_at:?}\n-e: {e_log}\n-d: {d_log}");
    let e_at = e_at.unwrap_or_else(|| panic!("-e held the dead connection: {e_log}"));
    let d_at = d_at.unwrap_or_else(|| panic!("-d held the dead connection: {d_log}"));
    assert!(e_at <= bound_e, "-e dropped after {e_at:?}");
    assert!(d_at <= bound_d, "-d dropped after {d_at:?}");
    // The reasons: -e, whose own link went down, gets the routing error (or a timeout); -d
    // times out.
    assert!(
        e_log.contains("connection dropped (-e): encrypted peer unreachable: "),
        "-e: {e_log}"
    );
    assert!(
        d_log.contains("connection dropped (-d): encrypted peer unreachable: timed out"),
        "-d: {d_log}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || streamer
            .failed
            .load(Ordering::Relaxed)),
        "-e did not close the client's connection"
    );
    drop(streamer);

    // Both keep serving once the path is back.
    net.set_link(true).expect("set the veth up");
    let before = sink.bytes();
    let ok = wait_until(Duration::from_secs(20), || {
        let Ok(mut c) = UnixStream::connect(&e_sock) else {
            return false;
        };
        let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
        c.write_all(b"after the link came back").is_ok()
            && wait_until(Duration::from_secs(2), || sink.bytes() > before)
    });
    assert!(ok, "no connection after the link came back: {}", e.stderr());
    assert!(sink.conns.load(Ordering::Relaxed) >= 2);
    assert!(
        e.try_exit().is_none() && d.try_exit().is_none(),
        "a relay exited"
    );
    drop((e, d, sink));
}

#[test]
fn keepalive_timer_parses_what_ss_prints() {
    assert_eq!(
        keepalive_timer("ESTAB 0 0 1.2.3.4:7001 1.2.3.5:4000 timer:(keepalive,1.992sec,0)"),
        Some(Duration::from_millis(1992))
    );
    assert_eq!(
        keepalive_timer("timer:(keepalive,950ms,0)"),
        Some(Duration::from_millis(950))
    );
    assert_eq!(
        keepalive_timer("timer:(keepalive,119min,0)"),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(keepalive_timer("timer:(on,200ms,0)"), None);
}
