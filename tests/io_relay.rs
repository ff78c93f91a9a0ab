//! Black-box tests of the io layer through the plaintext forwarder (`spiperelay::io::forward`):
//! integrity at several sizes, half-close with a late reply, concurrency and teardown, over
//! loopback TCP and Unix sockets. Every test runs on each backend (`uring::name`, `epoll::name`).

mod io_common;
use io_common as common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{Behaviour, Kind, LATE_REPLY, Relay, Target, TempDir, TestDriver};
use sha2::{Digest, Sha256};
use spiperelay::os::limits;

driver_tests!(
    payloads_tcp_to_tcp,
    payloads_unix_to_unix,
    payloads_tcp_to_unix,
    payloads_unix_to_tcp,
    late_reply_after_half_close_tcp,
    late_reply_after_half_close_unix,
    concurrent_200_tcp,
    concurrent_200_unix,
    refused_target_drops_client,
    client_reset_tears_down,
);

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

fn payloads<D: TestDriver>(listen: Kind, target: Kind) {
    let _ = limits::raise_nofile_limit();
    let dir = TempDir::new("payloads");
    let t = Target::start(target, &dir, Behaviour::Echo);
    let relay = Relay::start::<D>(listen, t.addr.clone(), &dir);
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

fn payloads_tcp_to_tcp<D: TestDriver>() {
    payloads::<D>(Kind::Tcp, Kind::Tcp);
}

fn payloads_unix_to_unix<D: TestDriver>() {
    payloads::<D>(Kind::Unix, Kind::Unix);
}

fn payloads_tcp_to_unix<D: TestDriver>() {
    payloads::<D>(Kind::Tcp, Kind::Unix);
}

fn payloads_unix_to_tcp<D: TestDriver>() {
    payloads::<D>(Kind::Unix, Kind::Tcp);
}

fn late_reply<D: TestDriver>(kind: Kind) {
    let dir = TempDir::new("late");
    let t = Target::start(kind, &dir, Behaviour::LateReply);
    let relay = Relay::start::<D>(kind, t.addr.clone(), &dir);
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

fn late_reply_after_half_close_tcp<D: TestDriver>() {
    late_reply::<D>(Kind::Tcp);
}

fn late_reply_after_half_close_unix<D: TestDriver>() {
    late_reply::<D>(Kind::Unix);
}

fn concurrent<D: TestDriver>(listen: Kind, target: Kind) {
    const N: usize = 200;
    let _ = limits::raise_nofile_limit();
    let dir = TempDir::new("concurrent");
    let t = Target::start(target, &dir, Behaviour::Echo);
    let relay = Relay::start::<D>(listen, t.addr.clone(), &dir);
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

fn concurrent_200_tcp<D: TestDriver>() {
    concurrent::<D>(Kind::Tcp, Kind::Tcp);
}

fn concurrent_200_unix<D: TestDriver>() {
    concurrent::<D>(Kind::Unix, Kind::Unix);
}

fn refused_target_drops_client<D: TestDriver>() {
    let dir = TempDir::new("refused");
    let missing = socket2::SockAddr::unix(dir.0.join("nobody-listens")).expect("addr");
    let relay = Relay::start::<D>(Kind::Tcp, missing, &dir);
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

fn client_reset_tears_down<D: TestDriver>() {
    let dir = TempDir::new("reset");
    let t = Target::start(Kind::Tcp, &dir, Behaviour::LateReply);
    let relay = Relay::start::<D>(Kind::Tcp, t.addr.clone(), &dir);
    let s = common::connect(&relay.addr);
    s.set_linger(Some(Duration::ZERO)).expect("linger");
    (&s).write_all(b"x").expect("write");
    std::thread::sleep(Duration::from_millis(100));
    drop(s); // RST
    let report = relay.finish();
    assert_eq!(report.stats.error_closes, 1, "{report:?}");
    check_clean(&report);
}
