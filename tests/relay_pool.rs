//! The relay engine in-process (issue 7, "Abuse"): a `-d` end flooded with random 320-byte
//! handshakes never takes a key pair from its pool nor computes one — so no modular
//! exponentiation or X25519 operation is spent on a client before its MAC verified — and
//! still serves a real client, which takes exactly one pair. Checked for both handshake modes
//! through `Relay::key_pool_stats`, on both io backends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use spiperelay::cli::Mode;
use spiperelay::io::epoll::{Epoll, EpollConfig};
use spiperelay::io::sys;
use spiperelay::io::uring::{Uring, UringConfig};
use spiperelay::io::{Driver, SockAddr};
use spiperelay::os::limits;
use spiperelay::proto::crypt::Role;
use spiperelay::proto::handshake::ExchangePolicy;
use spiperelay::proto::handshake::{Exchange, Handshake, KeyKind, KeyPair, Step};
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::relay::keys::{KeyRing, RingMode};
use spiperelay::relay::log::{Logger, Sink};
use spiperelay::relay::{PipeConfig, Relay};

const KEY_FILE: &[u8] = b"relay_pool test key\n";
const GARBAGE: usize = 60;

/// A one-shot echo target that counts its connections.
fn echo_target(conns: Arc<AtomicUsize>, stop: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind target");
    l.set_nonblocking(true).expect("nonblocking");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        while !stop.load(SeqCst) {
            match l.accept() {
                Ok((mut c, _)) => {
                    conns.fetch_add(1, SeqCst);
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

/// xorshift64* bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Sends one random 320-byte handshake and reads until the relay closes (bounded).
fn garbage_client(addr: SocketAddr, seed: u64) -> usize {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = c.write_all(&noise(seed, 320));
    let mut got = 0;
    let mut buf = [0u8; 512];
    for _ in 0..16 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// A genuine client handshake over TCP, then one echoed message. Returns the echo.
fn real_client(addr: SocketAddr, kind: KeyKind) -> Vec<u8> {
    // The key pair first (slow in a debug build), so the relay's handshake timer does not run.
    let pair = KeyPair::from_private(kind, [0x77; 32]);
    let exchange = match pair {
        KeyPair::X25519(p) => Exchange::X25519(p),
        KeyPair::Group14(p) => Exchange::Group14(spiperelay::proto::crypt::DhMode::Pfs(p)),
    };
    let keys = KeySet::single(Key::from_key_file(KEY_FILE));
    let mut hs = Handshake::with_exchange(Role::Client, keys, [9; 32], exchange);
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = vec![0u8; 4096];
    let mut step = hs.next_step().expect("start");
    let mut session = None;
    for _ in 0..64 {
        step = match step {
            Step::Send(out) => {
                let n = out.len();
                c.write_all(out).expect("send handshake");
                hs.sent(n).expect("sent")
            }
            Step::NeedInput(want) => {
                // Exactly what the handshake wants: nothing past its end is read.
                let want = want.min(buf.len());
                let n = c.read(&mut buf[..want]).expect("read handshake");
                assert!(n > 0, "relay closed during a genuine handshake");
                hs.read(&buf[..n]).expect("genuine handshake").1
            }
            Step::Done(s) => {
                session = Some(s);
                break;
            }
            other => panic!("a client with its key pair asked for {other:?}"),
        };
    }
    let (mut enc, mut dec) = session.expect("session").into_stream();
    let mut wire = Vec::new();
    enc.encode(b"hello through the pool", &mut wire)
        .expect("encode");
    c.write_all(&wire).expect("send data");
    let mut plain = Vec::new();
    for _ in 0..64 {
        if plain.len() >= 22 {
            break;
        }
        let n = c.read(&mut buf).expect("read data");
        assert!(n > 0, "EOF before the echo");
        dec.decode(&buf[..n], &mut plain).expect("decode");
    }
    plain
}

fn run<D: Driver>(io: D, x25519: bool) {
    let _ = limits::raise_nofile_limit();
    let conns = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let target = echo_target(conns.clone(), stop.clone());
    let listener = sys::listen_tcp("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let local = sys::local_addr(std::os::fd::AsFd::as_fd(&listener)).expect("local addr");
    let addr = local.as_socket().expect("tcp address");
    let cfg = PipeConfig {
        name: "default".into(),
        mode: Mode::Decrypt,
        targets: vec![SockAddr::from(target)],
        keys: KeyRing::new(
            KeySet::single(Key::from_key_file(KEY_FILE)),
            1,
            RingMode::Decrypt,
        )
        .expect("key ring"),
        exchange: if x25519 {
            ExchangePolicy::X25519
        } else {
            ExchangePolicy::Group14Pfs
        },
        max_connections: None,
        // Generous: a loaded machine running debug builds must not hit it.
        timeout: Duration::from_secs(30),
        keepalive: true,
        accept_backoff: Duration::from_millis(100),
        handshake_limit: None,
        bind: None,
        source_tcp: Default::default(),
        target_tcp: Default::default(),
    };
    let mut relay = Relay::new(io, listener, cfg, Logger::new("t", Sink::Discard)).expect("relay");
    let kind = if x25519 {
        KeyKind::X25519
    } else {
        KeyKind::Group14
    };

    let client = thread::spawn(move || {
        let mut max = 0;
        for i in 0..GARBAGE {
            max = max.max(garbage_client(addr, i as u64 + 1));
        }
        max
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.is_finished() && Instant::now() < deadline {
        relay.turn(Duration::from_millis(10)).expect("turn");
    }
    assert!(
        client.is_finished(),
        "garbage clients did not finish in time"
    );
    let max_reply = client.join().expect("garbage thread");
    assert!(max_reply <= 32, "a garbage client got more than our nonce");
    let stats = relay.key_pool_stats().expect("a pool in PFS modes");
    assert_eq!(
        stats.pooled + stats.inline,
        0,
        "garbage handshakes took key pairs: {stats:?}"
    );
    assert_eq!(conns.load(SeqCst), 0, "garbage reached the target");
    assert_eq!(relay.stats().handshakes, 0);

    let real = thread::spawn(move || real_client(addr, kind));
    while !real.is_finished() && Instant::now() < deadline {
        relay.turn(Duration::from_millis(10)).expect("turn");
    }
    assert!(real.is_finished(), "real client did not finish in time");
    assert_eq!(real.join().expect("real client"), b"hello through the pool");
    let stats = relay.key_pool_stats().expect("pool");
    assert_eq!(
        stats.pooled + stats.inline,
        1,
        "one real client, one pair: {stats:?}"
    );
    assert_eq!(relay.stats().handshakes, 1);
    stop.store(true, SeqCst);
}

fn uring() -> Uring {
    Uring::new(UringConfig::default()).expect("io_uring")
}

fn epoll() -> Epoll {
    Epoll::new(EpollConfig::default()).expect("epoll")
}

#[test]
fn garbage_takes_no_key_pair_group14_uring() {
    run(uring(), false);
}

#[test]
fn garbage_takes_no_key_pair_x25519_uring() {
    run(uring(), true);
}

#[test]
fn garbage_takes_no_key_pair_group14_epoll() {
    run(epoll(), false);
}

#[test]
fn garbage_takes_no_key_pair_x25519_epoll() {
    run(epoll(), true);
}
