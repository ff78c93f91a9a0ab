//! Our `-d` end connects to its target as soon as the client has authenticated, while the
//! handshake finishes (issue 7; spec §4 has spiped connect at accept). Black-box checks of what
//! that must not change: a target that is down is logged and the client closed promptly; a
//! target that speaks first (a banner, as SSH or SMTP servers send) loses no byte, although it
//! is connected before the session keys exist; unauthenticated clients still never reach it.
//! With the real spiped `-e` in front too (SKIP without `/usr/bin/spiped`, unless `CI=true`).
//!
//! Only meaningful for our binary: with `SPIPERELAY_TEST_BIN` pointing elsewhere the tests
//! print `SKIP` and pass.

mod bin_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Addr, Fam, TempDir, exchange_with, fresh_addr, have_spiped, relay_bin, relay_is_ours,
    spiped_bin, start_end, wait_until,
};

/// `-o` for every end: the checks below must finish far inside it.
const SETUP_TIMEOUT: &str = "30";

/// How long a client may wait for the close (or the banner): a third of `-o`.
const BOUND: Duration = Duration::from_secs(10);

const BANNER: &[u8] = b"220 target speaks first\r\n";

fn ours() -> bool {
    if relay_is_ours() {
        return true;
    }
    eprintln!("SKIP: tests spiperelay's own -d connect timing");
    false
}

/// The `-e` binaries to put in front of our `-d`: ours, and the real spiped when installed.
fn encrypting_ends() -> Vec<(PathBuf, &'static str)> {
    let mut ends = vec![(relay_bin(), "ours -e")];
    if have_spiped() {
        ends.push((spiped_bin(), "spiped -e"));
    }
    ends
}

#[test]
fn target_down_is_logged_and_the_client_closed() {
    if !ours() {
        return;
    }
    for (enc_bin, what) in encrypting_ends() {
        let dir = TempDir::new("early-down");
        let key = dir.key("key");
        // A free port that nobody listens on: every connect is refused.
        let target = fresh_addr(Fam::V4, &dir);
        let flags = ["-o", SETUP_TIMEOUT];
        let d = start_end(
            &dir,
            "dec",
            &relay_bin(),
            "-d",
            Fam::V4,
            &target,
            &key,
            &flags,
        );
        let e = start_end(&dir, "enc", &enc_bin, "-e", Fam::V4, d.addr(), &key, &flags);
        for round in 0..3 {
            let x = exchange_with(e.addr(), b"nobody to hear this\n", BOUND)
                .unwrap_or_else(|err| panic!("{what}: connect: {err}"));
            assert!(
                x.end.is_closed() && x.elapsed < BOUND && x.received.is_empty(),
                "{what}, round {round}: end {:?} after {:?}, {} bytes back; dec: {:?}",
                x.end,
                x.elapsed,
                x.received.len(),
                d.stderr()
            );
        }
        let logged = wait_until(BOUND, || {
            d.stderr()
                .matches("connecting to the target failed")
                .count()
                >= 3
        });
        assert!(logged, "{what}: dec log: {:?}", d.stderr());
    }
}

/// A target on its own thread that sends [`BANNER`] to each connection at once, then echoes
/// it until EOF (one thread per connection). Counts its connections; stops accepting when
/// dropped or after `2 * BOUND`.
struct BannerTarget {
    addr: Addr,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl BannerTarget {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind target");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&conns), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let end = Instant::now() + 2 * BOUND;
            while !stopped.load(SeqCst) && Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => {
                        seen.fetch_add(1, SeqCst);
                        thread::spawn(move || serve_banner(s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr: Addr::Tcp(addr),
            conns,
            stop,
            thread: Some(thread),
        }
    }

    fn conns(&self) -> usize {
        self.conns.load(SeqCst)
    }
}

impl Drop for BannerTarget {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_banner(mut s: TcpStream) {
    if s.set_nonblocking(false).is_err() || s.set_read_timeout(Some(BOUND)).is_err() {
        return;
    }
    if s.write_all(BANNER).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        if s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn a_target_that_speaks_first_loses_nothing() {
    if !ours() {
        return;
    }
    for (enc_bin, what) in encrypting_ends() {
        for x25519 in [false, true] {
            if x25519 && enc_bin != relay_bin() {
                continue;
            }
            let dir = TempDir::new("early-banner");
            let key = dir.key("key");
            let target = BannerTarget::start();
            let mut flags = vec!["-o", SETUP_TIMEOUT];
            if x25519 {
                flags.push("--x25519");
            }
            let t = &target.addr;
            let d = start_end(&dir, "dec", &relay_bin(), "-d", Fam::V4, t, &key, &flags);
            let e = start_end(&dir, "enc", &enc_bin, "-e", Fam::V4, d.addr(), &key, &flags);
            for round in 0..2 {
                let tag = format!("{what} (x25519 {x25519}), round {round}");
                let mut c = e.addr().connect().expect("connect");
                c.set_read_timeout(BOUND).expect("timeout");
                // The banner arrives without the client sending anything.
                let mut got = vec![0u8; BANNER.len()];
                c.read_exact(&mut got)
                    .unwrap_or_else(|err| panic!("{tag}: banner: {err}; dec: {:?}", d.stderr()));
                assert_eq!(got, BANNER, "{tag}");
                c.write_all(b"after the banner").expect("write");
                let mut back = vec![0u8; 16];
                c.read_exact(&mut back).expect("echo");
                assert_eq!(back, b"after the banner", "{tag}");
            }
            // Plus the harness's readiness probe of the -e end, which authenticates too.
            assert!(
                target.conns() >= 2,
                "{what}: {} target connections",
                target.conns()
            );
        }
    }
}

#[test]
fn a_client_with_the_wrong_key_never_reaches_the_target() {
    if !ours() {
        return;
    }
    for (enc_bin, what) in encrypting_ends() {
        let dir = TempDir::new("early-wrong");
        let key_d = dir.key("key_d");
        let key_e = dir.key("key_e_other");
        let target = BannerTarget::start();
        let flags = ["-o", SETUP_TIMEOUT];
        let t = &target.addr;
        let d = start_end(&dir, "dec", &relay_bin(), "-d", Fam::V4, t, &key_d, &flags);
        let e = start_end(
            &dir,
            "enc",
            &enc_bin,
            "-e",
            Fam::V4,
            d.addr(),
            &key_e,
            &flags,
        );
        let x = exchange_with(e.addr(), b"wrong key\n", BOUND).expect("connect");
        assert!(
            x.end.is_closed() && x.received.is_empty(),
            "{what}: end {:?}, {} bytes",
            x.end,
            x.received.len()
        );
        assert!(
            wait_until(BOUND, || d.stderr().contains("connection dropped (-d)")),
            "{what}: dec log: {:?}",
            d.stderr()
        );
        assert_eq!(target.conns(), 0, "{what}: the target saw the client");
    }
}
