//! Accepting while the descriptor limit is exhausted must not kill the loop, and accepting must
//! resume once descriptors are free again.
//!
//! This lowers RLIMIT_NOFILE, which is process-wide, so the relay runs in a child process: the
//! test re-executes its own binary with `SPIPERELAY_FDTEST_CHILD` set. The parent holds the
//! clients and the target, so its own limit is untouched. This file must keep a single test,
//! which runs the scenario once per backend (the child learns which from its environment).

mod io_common;
use io_common as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::{Behaviour, Kind, Target, TempDir, TestDriver};
use socket2::SockAddr;
use spiperelay::io::epoll::Epoll;
use spiperelay::io::forward::{ForwardConfig, Forwarder};
use spiperelay::io::sys;
use spiperelay::io::uring::Uring;
use spiperelay::os::limits;

const CHILD_ENV: &str = "SPIPERELAY_FDTEST_CHILD";
/// The backend the child runs, by [`TestDriver::NAME`].
const BACKEND_ENV: &str = "SPIPERELAY_FDTEST_BACKEND";
const TEST_NAME: &str = "accept_survives_fd_exhaustion";
/// Descriptors the child may open beyond those it holds when the loop starts: three relayed
/// connections of two descriptors each.
const SPARE_FDS: u64 = 6;

#[test]
fn accept_survives_fd_exhaustion() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let dir = std::path::PathBuf::from(dir);
        match std::env::var(BACKEND_ENV).as_deref() {
            Ok(Epoll::NAME) => child::<Epoll>(dir),
            _ => child::<Uring>(dir),
        }
        return;
    }
    parent(Uring::NAME);
    parent(Epoll::NAME);
}

/// The relay process: listens on `dir/relay.sock`, forwards to `dir/target.sock`, prints its
/// stats as `STATS accepted exhaustion active` lines, and exits when stdin closes (or after a
/// minute at most).
fn child<D: TestDriver>(dir: std::path::PathBuf) {
    let listener = sys::listen_unix(&dir.join("relay.sock")).expect("child listen");
    let cfg = ForwardConfig {
        target: SockAddr::unix(dir.join("target.sock")).expect("target addr"),
        connect_timeout: Duration::from_secs(5),
        accept_backoff: Duration::from_millis(20),
    };
    let io = D::with_defaults();
    let mut fwd = Forwarder::new(io, listener, cfg).expect("forwarder");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        stop2.store(true, Ordering::Relaxed);
    });
    limits::set_nofile_soft_limit(limit_leaving(SPARE_FDS)).expect("lower limit");
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        fwd.turn(Duration::from_millis(20))
            .expect("relay loop must survive");
        let s = fwd.stats();
        let now = (s.accepted, s.accept_exhaustion, s.active);
        if last != Some(now) {
            println!("STATS {} {} {}", now.0, now.1, now.2);
            let _ = std::io::stdout().flush();
            last = Some(now);
        }
    }
}

/// The lowest RLIMIT_NOFILE under which exactly `spare` descriptor numbers are free. The limit
/// bounds descriptor *numbers*, and descriptors inherited from the test runner may sit above it.
fn limit_leaving(spare: u64) -> u64 {
    let listed: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("proc fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing's own descriptor is closed by now; keep only descriptors still open.
    let open: std::collections::HashSet<u64> = listed
        .into_iter()
        .filter(|fd| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    let mut free = 0;
    for n in 0.. {
        if !open.contains(&n) {
            free += 1;
            if free == spare {
                return n + 1;
            }
        }
    }
    unreachable!("descriptor numbers are unbounded")
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Only if the test failed before waiting for it: kill our own child by its handle.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn roundtrip(s: &mut socket2::Socket, msg: &[u8]) {
    s.write_all(msg).expect("write");
    let mut got = vec![0u8; msg.len()];
    let mut s: &socket2::Socket = s;
    s.read_exact(&mut got).expect("echo through relay");
    assert_eq!(got, msg);
}

fn wait_for(
    stats: &mpsc::Receiver<(u64, u64, u64)>,
    what: &str,
    f: impl Fn((u64, u64, u64)) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stats.recv_timeout(left) {
            Ok(s) if f(s) => return,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn parent(backend: &str) {
    let dir = TempDir::new("fdlimit");
    let target = Target::start(Kind::Unix, &dir, Behaviour::Echo);
    let exe = std::env::current_exe().expect("test binary");
    let mut child = ChildGuard(
        Command::new(exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir.0)
            .env(BACKEND_ENV, backend)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn relay child"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stats_tx, stats_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print its own text on the same line first.
            if line.ends_with("READY") {
                let _ = ready_tx.send(());
            } else if let Some((_, rest)) = line.split_once("STATS ") {
                let v: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [a, b, c] = v[..] {
                    let _ = stats_tx.send((a, b, c));
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{backend} child did not start"));
    let relay = SockAddr::unix(dir.0.join("relay.sock")).expect("relay addr");

    // Use up the child's spare descriptors with three live relayed connections.
    let mut held: Vec<_> = (0..3).map(|_| common::connect(&relay)).collect();
    for (i, s) in held.iter_mut().enumerate() {
        roundtrip(s, format!("hello {i}").as_bytes());
    }
    // Two more clients wait in the backlog while accept fails with EMFILE.
    let mut waiting: Vec<_> = (0..2).map(|_| common::connect(&relay)).collect();
    wait_for(&stats_rx, "an EMFILE accept error", |(_, exhaustion, _)| {
        exhaustion >= 1
    });

    // Free descriptors: the loop must resume accepting and serve the waiting clients.
    drop(held);
    for (i, s) in waiting.iter_mut().enumerate() {
        roundtrip(s, format!("after {i}").as_bytes());
    }
    drop(waiting);
    let mut fresh = common::connect(&relay);
    roundtrip(&mut fresh, b"fresh");
    drop(fresh);
    wait_for(
        &stats_rx,
        "all connections closed",
        |(accepted, _, active)| accepted == 6 && active == 0,
    );

    drop(child.0.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait child") {
            break st;
        }
        assert!(Instant::now() < deadline, "child did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{backend} relay child failed: {status}");
    drop(target);
}
