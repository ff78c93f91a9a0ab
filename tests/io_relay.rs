//! Black-box tests of the io layer through the plaintext forwarder (`spiperelay::io::forward`):
//! integrity at several sizes, half-close with a late reply, concurrency and teardown, over
//! loopback TCP and Unix sockets.

mod io_common;
use io_common as common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{Behaviour, Kind, LATE_REPLY, Relay, Target, TempDir};
use sha2::{Digest, Sha256};
use spiperelay::io::sys;

fn check_clean(report: &common::RelayReport) {
    assert_eq!(report.stats.active, 0, "connections left open: {report:?}");
    assert_eq!(
        report.open_handles, 1,
        "only the listener should remain: {report:?}"
    );
    assert_eq!(
        report.ops_in_flight, 1,
        "only the accept should remain: {report:?}"
    );
}

fn payloads(listen: Kind, target: Kind) {
    let _ = sys::raise_nofile_limit();
    let dir = TempDir::new("payloads");
    let t = Target::start(target, &dir, Behaviour::Echo);
    let relay = Relay::start(listen, t.addr.clone(), &dir);
    for (i, len) in [0usize, 1, 1 << 20, 16 << 20].into_iter().enumerate() {
        let data = common::payload(len, i as u64 + 1);
        let want = Sha256::digest(&data);
        let got = common::exchange(&relay.addr, data);
        assert_eq!(got.len(), len, "length mismatch for {len} bytes");
        assert_eq!(Sha256::digest(&got), want, "hash mismatch for {len} bytes");
    }
    let report = relay.finish();
    assert_eq!(report.stats.accepted, 4);
    assert_eq!(report.stats.clean_closes, 4);
    check_clean(&report);
}

#[test]
fn payloads_tcp_to_tcp() {
    payloads(Kind::Tcp, Kind::Tcp);
}

#[test]
fn payloads_unix_to_unix() {
    payloads(Kind::Unix, Kind::Unix);
}

#[test]
fn payloads_tcp_to_unix() {
    payloads(Kind::Tcp, Kind::Unix);
}

#[test]
fn payloads_unix_to_tcp() {
    payloads(Kind::Unix, Kind::Tcp);
}

fn late_reply(kind: Kind) {
    let dir = TempDir::new("late");
    let t = Target::start(kind, &dir, Behaviour::LateReply);
    let relay = Relay::start(kind, t.addr.clone(), &dir);
    let mut s = common::connect(&relay.addr);
    s.write_all(b"request").expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    let start = Instant::now();
    let got = common::read_to_eof(&mut s, 1024).expect("read late reply");
    assert_eq!(got, LATE_REPLY);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "reply came too early"
    );
    drop(s);
    let report = relay.finish();
    assert_eq!(report.stats.clean_closes, 1);
    check_clean(&report);
}

#[test]
fn late_reply_after_half_close_tcp() {
    late_reply(Kind::Tcp);
}

#[test]
fn late_reply_after_half_close_unix() {
    late_reply(Kind::Unix);
}

fn concurrent(listen: Kind, target: Kind) {
    const N: usize = 200;
    let _ = sys::raise_nofile_limit();
    let dir = TempDir::new("concurrent");
    let t = Target::start(target, &dir, Behaviour::Echo);
    let relay = Relay::start(listen, t.addr.clone(), &dir);
    // Open all connections first so that all of them are live in the relay at once.
    let mut socks: Vec<_> = (0..N).map(|_| common::connect(&relay.addr)).collect();
    let datas: Vec<Vec<u8>> = (0..N)
        .map(|i| common::payload(3000 + i, i as u64))
        .collect();
    for (s, d) in socks.iter_mut().zip(&datas) {
        s.write_all(d).expect("write");
    }
    for s in &socks {
        s.shutdown(Shutdown::Write).expect("half-close");
    }
    for (s, d) in socks.iter_mut().zip(&datas) {
        let got = common::read_to_eof(s, d.len()).expect("read");
        assert_eq!(&got, d);
    }
    drop(socks);
    let report = relay.finish();
    assert_eq!(report.stats.accepted, N as u64);
    assert_eq!(report.stats.clean_closes, N as u64);
    check_clean(&report);
}

#[test]
fn concurrent_200_tcp() {
    concurrent(Kind::Tcp, Kind::Tcp);
}

#[test]
fn concurrent_200_unix() {
    concurrent(Kind::Unix, Kind::Unix);
}

#[test]
fn refused_target_drops_client() {
    let dir = TempDir::new("refused");
    let missing = socket2::SockAddr::unix(dir.0.join("nobody-listens")).expect("addr");
    let relay = Relay::start(Kind::Tcp, missing, &dir);
    let mut s = common::connect(&relay.addr);
    let mut buf = [0u8; 16];
    // The relay closes the client: EOF (or a reset), never data and never a hang.
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    drop(s);
    let report = relay.finish();
    assert_eq!(report.stats.connect_failures, 1);
    check_clean(&report);
}

#[test]
fn client_reset_tears_down() {
    let dir = TempDir::new("reset");
    let t = Target::start(Kind::Tcp, &dir, Behaviour::LateReply);
    let relay = Relay::start(Kind::Tcp, t.addr.clone(), &dir);
    let s = common::connect(&relay.addr);
    s.set_linger(Some(Duration::ZERO)).expect("linger");
    (&s).write_all(b"x").expect("write");
    std::thread::sleep(Duration::from_millis(100));
    drop(s); // RST
    let report = relay.finish();
    assert_eq!(report.stats.error_closes, 1, "{report:?}");
    check_clean(&report);
}
