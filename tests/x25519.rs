//! The `--x25519` handshake mode of the relay binary, black-box (issue 7, docs/protocol.md §5):
//! ours ↔ ours with every payload size and a half-close both ways; a mismatched peer (the real
//! spiped, or ours without the flag, on either end) fails at once — well inside the `-o`
//! timeout — with the reason logged on our side; `-f --x25519` is refused at start; and random
//! 320-byte handshakes flooding our `-d` end do not keep a real client out.
//!
//! Only meaningful for our binary: with `SPIPERELAY_TEST_BIN` pointing elsewhere the tests
//! print `SKIP` and pass. The tests against the real spiped need `/usr/bin/spiped` (SKIP
//! without it, unless `CI=true`).

mod bin_common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Addr, ChainSpec, Echo, Fam, Proc, Reply, TempDir, args, exchange_with, have_spiped,
    random_bytes, relay_bin, relay_is_ours, run_bounded, spiped_bin, start_end,
};

/// The `-o` timeout given to every end here: a mismatch must be detected long before it.
const SETUP_TIMEOUT: &str = "30";

/// How long a mismatched connection may take to be closed: a third of `-o`, so a relay that
/// waits for the handshake timeout instead of failing on the MAC cannot pass.
const MISMATCH_BOUND: Duration = Duration::from_secs(10);

fn ours() -> bool {
    if relay_is_ours() {
        return true;
    }
    eprintln!("SKIP: --x25519 is a spiperelay extension");
    false
}

/// Waits (at most 10 s, polling) until `proc`'s stderr contains `needle`.
fn wait_log(proc: &Proc, needle: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if proc.stderr().contains(needle) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    proc.stderr().contains(needle)
}

#[test]
fn ours_to_ours_x25519_payloads_and_half_close() {
    if !ours() {
        return;
    }
    let mut spec = ChainSpec::new("x-oo", relay_bin(), relay_bin());
    spec.enc_flags = &["--x25519"];
    spec.dec_flags = &["--x25519"];
    spec.start()
        .check_payloads("ours --x25519 -e -> ours --x25519 -d");
}

#[test]
fn ours_to_ours_x25519_with_g_and_a_late_reply() {
    if !ours() {
        return;
    }
    let mut spec = ChainSpec::new("x-late", relay_bin(), relay_bin());
    spec.enc_flags = &["--x25519", "-g"];
    spec.dec_flags = &["-g", "--x25519"];
    spec.reply = Reply::AfterEof(Duration::from_millis(500));
    let chain = spec.start();
    // The reply comes only after the client's half-close: the other direction stays open.
    let payload = random_bytes(77, 5000);
    chain.assert_echo(&payload, "late reply over --x25519");
}

/// Starts an echo server, a `-d` end and a `-e` end with the given binaries and flags (each end
/// with `-o 30`), sends one request through and checks that the connection is closed without
/// data within [`MISMATCH_BOUND`]. Returns the ends for log checks.
fn mismatch(
    tag: &str,
    enc: (&std::path::Path, &[&str]),
    dec: (&std::path::Path, &[&str]),
) -> (Proc, Proc, Echo, TempDir) {
    let dir = TempDir::new(tag);
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let mut dflags = vec!["-o", SETUP_TIMEOUT];
    dflags.extend_from_slice(dec.1);
    let d = start_end(&dir, "dec", dec.0, "-d", Fam::V4, &echo.addr, &key, &dflags);
    let mut eflags = vec!["-o", SETUP_TIMEOUT];
    eflags.extend_from_slice(enc.1);
    let e = start_end(&dir, "enc", enc.0, "-e", Fam::V4, d.addr(), &key, &eflags);
    let x = exchange_with(e.addr(), b"must not arrive\n", MISMATCH_BOUND)
        .unwrap_or_else(|err| panic!("{tag}: connect: {err}"));
    assert!(
        x.end.is_closed() && x.elapsed < MISMATCH_BOUND,
        "{tag}: not closed within {MISMATCH_BOUND:?} (end {:?}, after {:?}); enc: {:?}; dec: {:?}",
        x.end,
        x.elapsed,
        e.stderr(),
        d.stderr()
    );
    assert!(x.received.is_empty(), "{tag}: data came back");
    assert_eq!(echo.bytes_in(), 0, "{tag}: data reached the target");
    (e, d, echo, dir)
}

const REJECTED: &str = "rejected our MAC (wrong key, or --x25519 on one end only?)";
const PEER_NOT_X25519: &str = "this end runs in --x25519 mode and the peer does not";
const PEER_USES_X25519: &str = "the peer runs in --x25519 mode and this end does not";

#[test]
fn ours_x25519_e_against_spiped_d_fails_fast() {
    if !ours() || !have_spiped() {
        return;
    }
    let (e, _d, _echo, _dir) = mismatch(
        "x-mm-sd",
        (&relay_bin(), &["--x25519"]),
        (&spiped_bin(), &[]),
    );
    assert!(wait_log(&e, REJECTED), "enc log: {:?}", e.stderr());
}

#[test]
fn spiped_e_against_ours_x25519_d_fails_fast() {
    if !ours() || !have_spiped() {
        return;
    }
    let (_e, d, echo, _dir) = mismatch(
        "x-mm-se",
        (&spiped_bin(), &[]),
        (&relay_bin(), &["--x25519"]),
    );
    assert!(wait_log(&d, PEER_NOT_X25519), "dec log: {:?}", d.stderr());
    assert_eq!(echo.conns(), 0, "our -d contacted the target before auth");
}

#[test]
fn ours_x25519_e_against_ours_plain_d_fails_fast() {
    if !ours() {
        return;
    }
    let (e, d, echo, _dir) = mismatch(
        "x-mm-op",
        (&relay_bin(), &["--x25519"]),
        (&relay_bin(), &[]),
    );
    assert!(wait_log(&d, PEER_USES_X25519), "dec log: {:?}", d.stderr());
    assert!(wait_log(&e, REJECTED), "enc log: {:?}", e.stderr());
    assert_eq!(echo.conns(), 0);
}

#[test]
fn ours_plain_e_against_ours_x25519_d_fails_fast() {
    if !ours() {
        return;
    }
    for flags in [&[][..], &["-f"][..], &["-g"][..]] {
        let (e, d, _echo, _dir) = mismatch(
            "x-mm-po",
            (&relay_bin(), flags),
            (&relay_bin(), &["--x25519"]),
        );
        assert!(wait_log(&d, PEER_NOT_X25519), "{flags:?}: {:?}", d.stderr());
        assert!(wait_log(&e, REJECTED), "{flags:?}: {:?}", e.stderr());
    }
}

#[test]
fn x25519_with_f_is_refused_at_start() {
    if !ours() {
        return;
    }
    let dir = TempDir::new("x-f");
    let key = dir.key("key");
    let mut a = args(["-F", "-d", "-f", "--x25519", "-s", "[127.0.0.1]:1", "-t"]);
    a.push("[127.0.0.1]:2".into());
    a.push("-k".into());
    a.push(key.into());
    let out = run_bounded(&relay_bin(), &a, b"", Duration::from_secs(10));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("--x25519 cannot be combined with -f: X25519 mode always uses forward"),
        "{:?}",
        out.stderr
    );
}

/// Sends `n` connections of random 320-byte "handshakes" to `addr`, each read until closed
/// (bounded).
fn flood(addr: &Addr, n: usize, seed: u64) -> usize {
    let mut closed = 0;
    for i in 0..n {
        let Ok(mut c) = addr.connect() else {
            continue;
        };
        let _ = c.set_timeouts(Duration::from_secs(5));
        let _ = c.write_all(&random_bytes(seed + i as u64, 320));
        let mut buf = [0u8; 512];
        let mut got = 0;
        // Our -d sends its 32-byte nonce, then closes on the bad MAC.
        for _ in 0..16 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed += 1;
                    break;
                }
                Ok(k) => got += k,
            }
        }
        assert!(
            got <= 32,
            "garbage got {got} bytes back: more than our nonce"
        );
    }
    closed
}

#[test]
fn garbage_handshakes_do_not_keep_a_real_client_out() {
    if !ours() {
        return;
    }
    let mut spec = ChainSpec::new("x-garbage", relay_bin(), relay_bin());
    spec.enc_flags = &["--x25519"];
    spec.dec_flags = &["--x25519"];
    let chain = spec.start();
    let dec_addr = chain.dec.addr().clone();
    let flooder = thread::spawn(move || flood(&dec_addr, 200, 0xbad));
    for i in 0..5 {
        let payload = random_bytes(900 + i, 3000);
        chain.assert_echo(&payload, "real client during a garbage flood");
    }
    let closed = flooder.join().expect("flooder");
    assert_eq!(
        closed, 200,
        "every garbage connection is closed by the -d end"
    );
    // Only the real clients' bytes reached the target (the harness's readiness probe of the
    // -e end may add one empty connection, so count bytes, not connections).
    assert_eq!(
        chain.echo.bytes_in(),
        5 * 3000,
        "only real clients reached the target"
    );
    assert!(
        wait_log(&chain.dec, "bad MAC"),
        "dec log: {:?}",
        chain.dec.stderr()
    );
}
