//! The relay's state machine driven by a scripted fake driver and a fake clock (quinn's test
//! `Pair` is the model): no sockets, no threads, no sleeps. Each test plays the kernel's part
//! in one order of events and checks what the relay submits, logs and counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::*;
use crate::io::{ConnectError, Token};
use crate::proto::HandshakeError;
use crate::proto::crypt::{DhMode, Role};
use crate::proto::handshake::{Exchange, Handshake};
use crate::proto::key::{Key, KeySet};
use crate::proto::stream::{Decoder, Encoder};
use crate::relay::conn::LocalBug;
use crate::relay::keys::RingMode;
use crate::relay::log::Sink;

mod metrics;
mod tcp_opts;

const KEY: &[u8] = b"engine state machine test key\n";
const OTHER_KEY: &[u8] = b"a different key\n";
const TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF: Duration = Duration::from_millis(100);

/// The io driver's part, played by the test: records what the relay submits and lets the test
/// complete it in any order.
#[derive(Default)]
struct Fake {
    next_handle: u32,
    next_buf: u16,
    next_timer: u64,
    /// Armed accepts: (listener, token).
    accepts: Vec<(Handle, Token)>,
    cancelled_accepts: usize,
    /// Pending connects, in order: (socket, token, address, timeout).
    connects: VecDeque<(Handle, Token, SockAddr, Duration)>,
    /// Errors the next connects fail to submit with.
    connect_errors: VecDeque<SubmitError>,
    recvs: HashMap<Handle, Token>,
    sends: Vec<(Handle, Vec<u8>, Token)>,
    shutdowns: Vec<(Handle, Token)>,
    closes: Vec<(Handle, Token)>,
    closing: HashSet<Handle>,
    timers: BTreeMap<u64, (Duration, Token)>,
    bufs: HashMap<u16, Vec<u8>>,
    /// Give accepted and connected handles a real socket of this kind (`None`: no socket, as
    /// most tests need), so socket options set through [`Driver::fd`] can be read back.
    real_sockets: Option<socket2::Domain>,
    sockets: HashMap<Handle, OwnedFd>,
}

impl Fake {
    fn handle(&mut self) -> Handle {
        self.next_handle += 1;
        Handle {
            index: self.next_handle,
            generation: 1,
        }
    }

    /// A new handle, with a real socket when [`Fake::real_sockets`] asks for one.
    fn socket_handle(&mut self) -> Handle {
        let h = self.handle();
        if let Some(domain) = self.real_sockets {
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
            self.sockets.insert(h, s.into());
        }
        h
    }

    fn usable(&self, h: Handle) -> Result<(), SubmitError> {
        if self.closing.contains(&h) {
            Err(SubmitError::Closing)
        } else {
            Ok(())
        }
    }
}

impl Driver for Fake {
    fn adopt(&mut self, _fd: OwnedFd) -> Handle {
        self.handle()
    }

    fn fd(&self, handle: Handle) -> Option<BorrowedFd<'_>> {
        self.sockets.get(&handle).map(AsFd::as_fd)
    }

    fn accept(&mut self, listener: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(listener)?;
        self.accepts.push((listener, token));
        Ok(())
    }

    fn cancel_accept(&mut self, listener: Handle) {
        let before = self.accepts.len();
        self.accepts.retain(|(l, _)| *l != listener);
        self.cancelled_accepts += before - self.accepts.len();
    }

    fn connect_from(
        &mut self,
        addr: &SockAddr,
        _bind: Option<&SockAddr>,
        timeout: Duration,
        token: Token,
    ) -> Result<Handle, SubmitError> {
        if let Some(e) = self.connect_errors.pop_front() {
            return Err(e);
        }
        let h = self.socket_handle();
        self.connects.push_back((h, token, addr.clone(), timeout));
        Ok(h)
    }

    fn recv(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?;
        if self.recvs.contains_key(&handle) {
            return Err(SubmitError::RecvPending);
        }
        self.recvs.insert(handle, token);
        Ok(())
    }

    fn data(&self, buf: &RecvBuf) -> &[u8] {
        self.bufs
            .get(&buf.id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn recycle(&mut self, buf: RecvBuf) {
        self.bufs.remove(&buf.id);
    }

    fn send(&mut self, handle: Handle, buf: Vec<u8>, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?;
        if buf.is_empty() {
            return Err(SubmitError::EmptySend);
        }
        self.sends.push((handle, buf, token));
        Ok(())
    }

    fn shutdown_write(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?;
        self.shutdowns.push((handle, token));
        Ok(())
    }

    fn close(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?;
        // What was in flight on it ends without events (the driver's rule).
        self.closing.insert(handle);
        self.recvs.remove(&handle);
        self.sends.retain(|(h, _, _)| *h != handle);
        self.shutdowns.retain(|(h, _)| *h != handle);
        self.accepts.retain(|(h, _)| *h != handle);
        self.connects.retain(|(h, ..)| *h != handle);
        self.closes.push((handle, token));
        Ok(())
    }

    fn timer(&mut self, after: Duration, token: Token) -> TimerId {
        self.next_timer += 1;
        self.timers.insert(self.next_timer, (after, token));
        TimerId(self.next_timer)
    }

    fn cancel_timer(&mut self, id: TimerId) {
        self.timers.remove(&id.0);
    }

    fn wait(
        &mut self,
        _events: &mut Vec<Event>,
        _timeout: Option<Duration>,
    ) -> Result<usize, WaitError> {
        Ok(0)
    }
}

/// Fixed randomness: counting nonces, key pairs from a fixed private value.
struct TestEnv {
    count: u8,
    /// Refuse key pairs as if no pool had been set up (our own bug).
    no_pool: bool,
}

impl Env for TestEnv {
    fn nonce(&mut self) -> Result<[u8; NONCE_LEN], Errno> {
        self.count = self.count.wrapping_add(1);
        Ok([self.count; NONCE_LEN])
    }

    fn key_pair(&mut self, kind: KeyKind) -> Result<KeyPair, KeyPairError> {
        if self.no_pool {
            return Err(KeyPairError::NoPool(kind));
        }
        Ok(KeyPair::from_private(kind, [0x42; 32]))
    }
}

impl RelayEnv for TestEnv {
    fn prepare(&mut self, _kind: KeyKind) {}

    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    fn pool_samples(&self) -> Vec<PoolSample> {
        vec![PoolSample {
            kind: "group14",
            ready: 3,
            pooled: 2,
            inline: 1,
        }]
    }
}

fn addr(port: u16) -> SockAddr {
    SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

fn config(mode: Mode) -> PipeConfig {
    let ring_mode = match mode {
        Mode::Encrypt => RingMode::Encrypt,
        Mode::Decrypt => RingMode::Decrypt,
    };
    PipeConfig {
        name: "default".into(),
        mode,
        targets: vec![addr(1)],
        keys: KeyRing::new(KeySet::single(Key::from_key_file(KEY)), 4, ring_mode)
            .expect("key ring"),
        exchange: ExchangePolicy::Group14NoPfs,
        max_connections: None,
        timeout: TIMEOUT,
        keepalive: true,
        accept_backoff: BACKOFF,
        handshake_limit: None,
        bind: None,
        source_tcp: TcpOptions::default(),
        target_tcp: TcpOptions::default(),
    }
}

/// The relay with one pipe, the fake driver inside it and the fake clock.
struct Sim {
    relay: Relay<Fake>,
    now: Instant,
    pipe: PipeId,
    /// Bytes the test delivered on each handle ([`Sim::recv`]).
    rx: HashMap<Handle, u64>,
    /// Bytes of the sends the test completed on each handle ([`Sim::sent`]).
    tx: HashMap<Handle, u64>,
}

impl Sim {
    fn new(cfg: PipeConfig) -> Self {
        Self::with_env(cfg, false)
    }

    fn with_env(cfg: PipeConfig, no_pool: bool) -> Self {
        let env = TestEnv { count: 0, no_pool };
        let mut relay = Relay::with_env(
            Fake::default(),
            Logger::new("test", Sink::Discard),
            Box::new(env),
        );
        let listener: OwnedFd = File::open("/dev/null").expect("/dev/null").into();
        let pipe = relay.add_pipe(listener, cfg).expect("pipe");
        Sim {
            relay,
            now: Instant::now(),
            pipe,
            rx: HashMap::new(),
            tx: HashMap::new(),
        }
    }

    fn io(&mut self) -> &mut Fake {
        &mut self.relay.io
    }

    fn deliver(&mut self, ev: Event) {
        self.relay.handle(self.now, ev);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn stats(&self) -> RelayStats {
        self.relay.stats()
    }

    fn drops(&self) -> Vec<&'static str> {
        self.relay.drops.iter().map(DropReason::kind).collect()
    }

    /// Whether the pipe's accept is armed in the driver.
    fn accept_armed(&self) -> bool {
        !self.relay.io.accepts.is_empty()
    }

    /// A client connection arrives through the armed accept.
    fn accept(&mut self) -> Handle {
        let (_, token) = *self.io().accepts.last().expect("no accept armed");
        self.accept_with(token)
    }

    /// A client connection arrives through an accept with `token` (possibly one the relay
    /// already cancelled: the kernel may complete it first).
    fn accept_with(&mut self, token: Token) -> Handle {
        let conn = self.io().socket_handle();
        self.deliver(Event::Accepted { token, conn });
        conn
    }

    /// The oldest pending connect: (socket, token, address, timeout).
    fn connect(&mut self) -> (Handle, Token, SockAddr, Duration) {
        self.io().connects.pop_front().expect("no connect pending")
    }

    fn connected(&mut self, token: Token, result: Result<(), ConnectError>) {
        self.deliver(Event::Connected { token, result });
    }

    fn has_recv(&self, h: Handle) -> bool {
        self.relay.io.recvs.contains_key(&h)
    }

    /// Bytes arrive on `h`, whose receive must be armed.
    fn recv(&mut self, h: Handle, data: &[u8]) {
        let token = self.io().recvs.remove(&h).expect("no receive armed");
        *self.rx.entry(h).or_default() += data.len() as u64;
        let io = self.io();
        io.next_buf += 1;
        let id = io.next_buf;
        io.bufs.insert(id, data.to_vec());
        let buf = RecvBuf {
            id,
            len: data.len() as u32,
        };
        self.deliver(Event::Received { token, buf });
    }

    fn eof(&mut self, h: Handle) {
        let token = self.io().recvs.remove(&h).expect("no receive armed");
        self.deliver(Event::Eof { token });
    }

    /// Completes every send pending on `h`, in order, and returns their bytes.
    fn sent(&mut self, h: Handle) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let io = self.io();
            let Some(i) = io.sends.iter().position(|(s, _, _)| *s == h) else {
                return out;
            };
            let (_, buf, token) = io.sends.remove(i);
            out.extend_from_slice(&buf);
            *self.tx.entry(h).or_default() += buf.len() as u64;
            self.deliver(Event::Sent {
                token,
                buf,
                result: Ok(()),
            });
        }
    }

    fn shutdown_done(&mut self, h: Handle) {
        let io = self.io();
        let i = io
            .shutdowns
            .iter()
            .position(|(s, _)| *s == h)
            .expect("no shutdown pending");
        let (_, token) = io.shutdowns.remove(i);
        self.deliver(Event::ShutdownDone {
            token,
            result: Ok(()),
        });
    }

    /// Fires the earliest armed timer with operation `op`.
    fn fire(&mut self, op: Op) {
        let io = self.io();
        let id = io
            .timers
            .iter()
            .find(|(_, (_, t))| split(*t).2 == Some(op))
            .map(|(id, _)| *id)
            .expect("no such timer armed");
        let (_, token) = io.timers.remove(&id).expect("timer");
        self.deliver(Event::Timer { token });
    }

    fn timer_armed(&self, op: Op) -> bool {
        self.relay
            .io
            .timers
            .values()
            .any(|(_, t)| split(*t).2 == Some(op))
    }

    /// Completes every pending close.
    fn finish_closes(&mut self) {
        let closes = std::mem::take(&mut self.io().closes);
        for (_, token) in closes {
            self.deliver(Event::Closed { token });
        }
    }
}

/// The peer's end of the handshake: a protocol server for an `-e` relay, a client for `-d`.
struct Peer {
    hs: Option<Handshake>,
    stream: Option<(Encoder, Decoder)>,
}

impl Peer {
    fn new(role: Role, key: &[u8]) -> Self {
        let keys = KeySet::single(Key::from_key_file(key));
        let hs = Handshake::with_exchange(
            role,
            keys,
            [0xa5; NONCE_LEN],
            Exchange::Group14(DhMode::NoPfs),
        );
        Peer {
            hs: Some(hs),
            stream: None,
        }
    }

    /// Feeds what the relay sent; returns what the peer sends back.
    fn exchange(&mut self, from_relay: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let Some(hs) = self.hs.as_mut() else {
            return Ok(Vec::new());
        };
        // The peer's key pair is made up front: it never asks for one.
        let done = pump(hs, from_relay, &mut pairs_from([9; 32]))?;
        assert_eq!(
            done.consumed,
            from_relay.len(),
            "the relay sent more than the handshake"
        );
        if let Some(session) = done.session {
            self.stream = Some(session.into_stream());
            self.hs = None;
        }
        Ok(done.sent)
    }

    /// The peer's first message (its nonce), before reading anything.
    fn hello(&mut self) -> Vec<u8> {
        self.exchange(&[]).expect("hello")
    }
}

use crate::proto::handshake::testing::{pairs_from, pump};

/// Runs the handshake between the relay's encrypted socket `crypt` and `peer` until neither
/// has anything more to say.
fn handshake(s: &mut Sim, crypt: Handle, peer: &mut Peer) {
    let mut to_relay = peer.hello();
    for _ in 0..8 {
        let from_relay = s.sent(crypt);
        let answer = peer.exchange(&from_relay).expect("peer handshake");
        to_relay.extend_from_slice(&answer);
        if !to_relay.is_empty() && s.has_recv(crypt) {
            let bytes = std::mem::take(&mut to_relay);
            s.recv(crypt, &bytes);
        }
        if peer.stream.is_some() && to_relay.is_empty() && s.relay.io.sends.is_empty() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

/// Accepts a client on an `-e` relay, connects its target and runs the handshake: returns
/// (plaintext client, encrypted target, the peer).
fn established_e(s: &mut Sim) -> (Handle, Handle, Peer) {
    let client = s.accept();
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    let mut peer = Peer::new(Role::Server, KEY);
    handshake(s, target, &mut peer);
    (client, target, peer)
}

/// Accepts a client on a `-d` relay, runs the handshake and connects the target: returns
/// (encrypted client, plaintext target, the peer).
fn established_d(s: &mut Sim) -> (Handle, Handle, Peer) {
    let client = s.accept();
    let mut peer = Peer::new(Role::Client, KEY);
    handshake(s, client, &mut peer);
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    (client, target, peer)
}

#[test]
fn e_relays_both_ways_and_closes_cleanly_after_both_half_closes() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let (client, target, mut peer) = established_e(&mut s);
    assert_eq!(s.stats().handshakes, 1);
    assert!(
        !s.timer_armed(Op::Deadline),
        "the deadline ends with the handshake"
    );
    assert!(s.has_recv(client) && s.has_recv(target), "both pumps read");

    // Plaintext → sealed on the encrypted side.
    s.recv(client, b"hello");
    let sealed = s.sent(target);
    let (_, dec) = peer.stream.as_mut().expect("peer session");
    let mut plain = Vec::new();
    dec.decode(&sealed, &mut plain).expect("decode");
    assert_eq!(plain, b"hello");

    // Sealed from the peer → plaintext to the client.
    let (enc, _) = peer.stream.as_mut().expect("peer session");
    let mut wire = Vec::new();
    enc.encode(b"world", &mut wire).expect("encode");
    s.recv(target, &wire);
    assert_eq!(s.sent(client), b"world");

    // The client half-closes: shutdown on the target once everything is written.
    s.eof(client);
    s.shutdown_done(target);
    assert!(s.io().closes.is_empty(), "one direction still runs");
    // The peer half-closes (after a clean end of its stream): the client's side is closed.
    s.eof(target);
    assert_eq!(s.io().closes.len(), 2, "both sockets closed");
    s.finish_closes();
    let st = s.stats();
    assert_eq!((st.clean_closes, st.dropped, st.active), (1, 0, 0));
}

#[test]
fn d_connects_the_target_only_after_the_client_authenticated() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    assert!(s.timer_armed(Op::Deadline));
    let nonce = s.sent(client);
    assert_eq!(nonce.len(), NONCE_LEN);
    let mut peer = Peer::new(Role::Client, KEY);
    let mut hello = peer.hello();
    hello.extend(peer.exchange(&nonce).expect("y_C"));
    // Everything but the last byte of y_C ‖ h_C: no connect yet.
    s.recv(client, &hello[..hello.len() - 1]);
    assert!(
        s.io().connects.is_empty(),
        "connected before the MAC verified"
    );
    s.recv(client, &hello[hello.len() - 1..]);
    assert_eq!(
        s.io().connects.len(),
        1,
        "connect starts once the client authenticated"
    );
    // The answer goes out; the keys are derived once it is sent; the pumps wait for the target.
    let answer = s.sent(client);
    assert!(peer.exchange(&answer).expect("y_S").is_empty());
    assert!(!s.has_recv(client) || s.stats().handshakes == 1);
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    assert!(s.has_recv(target) && s.has_recv(client), "pumps started");
}

#[test]
fn d_bad_mac_is_a_peer_fault_and_never_reaches_the_target() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let mut peer = Peer::new(Role::Client, OTHER_KEY);
    let nonce = s.sent(client);
    let mut msg = peer.hello();
    msg.extend(peer.exchange(&nonce).expect("y_C"));
    s.recv(client, &msg);
    assert_eq!(s.drops(), ["bad_mac"]);
    assert!(
        s.relay.drops[0]
            .to_string()
            .starts_with("handshake failed: bad MAC")
    );
    assert!(!s.relay.drops[0].is_local_bug());
    assert!(s.io().connects.is_empty());
    assert!(
        !s.timer_armed(Op::Deadline),
        "deadline cancelled at the drop"
    );
    s.finish_closes();
    assert_eq!(s.stats().active, 0);
}

#[test]
fn timeout_before_the_last_handshake_bytes_drops_and_ignores_them() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let _ = s.sent(client);
    s.advance(TIMEOUT);
    s.fire(Op::Deadline);
    assert_eq!(s.drops(), ["handshake_timeout"]);
    // The receive was cancelled by the close: nothing more can arrive.
    assert!(!s.has_recv(client));
    s.finish_closes();
    assert_eq!(s.stats().active, 0);
}

#[test]
fn handshake_completing_first_cancels_the_racing_timeout() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let (_client, _target, _peer) = established_e(&mut s);
    // The deadline had expired in the same batch, after the completion: the driver must not
    // deliver a cancelled timer, and none is left armed.
    assert!(!s.timer_armed(Op::Deadline));
    assert!(s.drops().is_empty());
}

#[test]
fn eof_during_handshake_before_and_after_our_value() {
    // -d: the client closes after its nonce.
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let _ = s.sent(client);
    s.recv(client, &[1; NONCE_LEN]);
    s.eof(client);
    assert_eq!(s.drops(), ["handshake_eof"]);

    // -e: the server closes right after our y_C ‖ h_C: it rejected our MAC.
    let mut s = Sim::new(config(Mode::Encrypt));
    let _client = s.accept();
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    let _ = s.sent(target);
    s.recv(target, &[7; NONCE_LEN]);
    assert_eq!(s.sent(target).len(), YH_LEN, "y_C ‖ h_C sent");
    s.eof(target);
    assert_eq!(s.drops(), ["handshake_rejected"]);
}

use crate::proto::YH_LEN;

#[test]
fn half_close_from_either_side_after_the_handshake_with_data_in_flight() {
    // -d: the target (plaintext side) ends first while a sealed write is in flight.
    let mut s = Sim::new(config(Mode::Decrypt));
    let (client, target, _peer) = established_d(&mut s);
    s.recv(target, b"reply");
    s.eof(target);
    assert!(
        s.io().shutdowns.is_empty(),
        "shutdown waits for the write in flight"
    );
    let _ = s.sent(client);
    s.shutdown_done(client);
    assert!(s.io().closes.is_empty());
    // Now the client's stream ends cleanly.
    s.eof(client);
    assert_eq!(s.io().closes.len(), 2);
    s.finish_closes();
    assert_eq!(s.stats().clean_closes, 1);

    // -e: the encrypted peer ends inside a packet: a truncated stream, not a clean close.
    let mut s = Sim::new(config(Mode::Encrypt));
    let (_client, target, _peer) = established_e(&mut s);
    s.recv(target, &[0u8; 100]);
    s.eof(target);
    assert_eq!(s.drops(), ["truncated_stream"]);
}

#[test]
fn target_refused_while_the_handshake_finishes() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let nonce = s.sent(client);
    let mut peer = Peer::new(Role::Client, KEY);
    let mut msg = peer.hello();
    msg.extend(peer.exchange(&nonce).expect("y_C"));
    s.recv(client, &msg);
    // The answer is still in flight when the target refuses.
    let (_, token, _, _) = s.connect();
    s.connected(token, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    assert_eq!(s.drops(), ["target_refused"]);
    assert_eq!(
        s.io().closes.len(),
        2,
        "client and failed target socket closed"
    );
    assert!(
        s.io().sends.is_empty(),
        "the answer's send ends with the close"
    );
    s.finish_closes();
    assert_eq!(s.stats().active, 0);
}

#[test]
fn second_target_address_after_the_first_fails_within_the_same_deadline() {
    let mut cfg = config(Mode::Encrypt);
    cfg.targets = vec![addr(1), addr(2)];
    let mut s = Sim::new(cfg);
    let _client = s.accept();
    let (first, token, a, t1) = s.connect();
    assert_eq!((a, t1), (addr(1), TIMEOUT));
    s.advance(Duration::from_secs(2));
    s.connected(token, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    assert_eq!(s.io().closes.len(), 1, "the failed socket is closed");
    assert_eq!(s.io().closes[0].0, first);
    let (second, token, b, t2) = s.connect();
    assert_eq!((b, t2), (addr(2), TIMEOUT - Duration::from_secs(2)));
    // That close is not part of a teardown.
    s.finish_closes();
    assert_eq!(s.stats().active, 1);
    s.connected(token, Ok(()));
    assert_eq!(
        s.sent(second).len(),
        NONCE_LEN,
        "handshake runs on the second socket"
    );
    assert!(s.drops().is_empty());

    // A timed-out first address is not followed by the second.
    let mut cfg = config(Mode::Encrypt);
    cfg.targets = vec![addr(1), addr(2)];
    let mut s = Sim::new(cfg);
    let _client = s.accept();
    let (_, token, _, _) = s.connect();
    s.connected(token, Err(ConnectError::TimedOut));
    assert_eq!(s.drops(), ["target_timeout"]);
    assert!(s.io().connects.is_empty());
}

#[test]
fn key_removed_mid_handshake_drops_on_d() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let keys = s.relay.pipes[0].as_ref().expect("pipe").cfg.keys.clone();
    let client = s.accept();
    let nonce = s.sent(client);
    keys.replace(&KeySet::single(Key::from_key_file(OTHER_KEY)))
        .expect("replace");
    let mut peer = Peer::new(Role::Client, KEY);
    let mut msg = peer.hello();
    msg.extend(peer.exchange(&nonce).expect("y_C"));
    s.recv(client, &msg);
    let _ = s.sent(client);
    assert_eq!(s.drops(), ["key_removed"]);
    assert_eq!(s.stats().handshakes, 1, "the handshake itself completed");
    assert!(
        keys.status().iter().all(|k| k.live == 0),
        "no use left counted"
    );
}

#[test]
fn a_missing_key_pool_is_our_bug_not_the_peers() {
    let mut cfg = config(Mode::Decrypt);
    cfg.exchange = ExchangePolicy::X25519;
    let mut s = Sim::with_env(cfg, true);
    let client = s.accept();
    let nonce = s.sent(client);
    let keys = KeySet::single(Key::from_key_file(KEY));
    let mut peer = Handshake::with_exchange(
        Role::Client,
        keys,
        [3; NONCE_LEN],
        ExchangePolicy::X25519.with_private([9; 32]),
    );
    // Our nonce and y_C ‖ h_C.
    let msg = pump(&mut peer, &nonce, &mut pairs_from([9; 32]))
        .expect("nonce")
        .sent;
    s.recv(client, &msg);
    assert_eq!(s.drops(), ["internal_error"]);
    let reason = s.relay.drops[0];
    assert_eq!(
        reason,
        DropReason::Internal(LocalBug::NoKeyPool(KeyKind::X25519))
    );
    assert!(reason.is_local_bug());
    assert!(reason.to_string().contains("bug in spiperelay"), "{reason}");
}

#[test]
fn x25519_handshake_takes_a_key_pair_only_after_the_mac() {
    let mut cfg = config(Mode::Decrypt);
    cfg.exchange = ExchangePolicy::X25519;
    let mut s = Sim::new(cfg);
    let client = s.accept();
    let nonce = s.sent(client);
    let keys = KeySet::single(Key::from_key_file(KEY));
    let mut peer = Handshake::with_exchange(
        Role::Client,
        keys,
        [3; NONCE_LEN],
        ExchangePolicy::X25519.with_private([9; 32]),
    );
    // Our nonce and y_C ‖ h_C.
    let msg = pump(&mut peer, &nonce, &mut pairs_from([9; 32]))
        .expect("nonce")
        .sent;
    s.recv(client, &msg);
    let answer = s.sent(client);
    let done = pump(&mut peer, &answer, &mut pairs_from([9; 32])).expect("answer verifies");
    assert!(done.session.is_some());
    assert!(s.drops().is_empty());
    assert_eq!(s.stats().handshakes, 1);
}

/// The lost wake-up at the `-n` limit: once the limit stopped the accept, freeing slots must
/// re-arm it by itself, so clients waiting in the backlog are served without a new arrival.
#[test]
fn limit_parks_late_arrivals_and_rearms_the_accept_when_slots_free() {
    let mut cfg = config(Mode::Encrypt);
    cfg.max_connections = Some(2);
    let mut s = Sim::new(cfg);
    let first_token = s.io().accepts[0].1;
    let _a = s.accept();
    let _b = s.accept();
    assert!(!s.accept_armed(), "the limit stops the accept");
    assert_eq!(s.stats().limit_reached, 1);
    // The kernel had accepted one more before the cancel took effect: it waits, parked.
    let _c = s.accept_with(first_token);
    assert_eq!(s.stats().active, 3);
    assert_eq!(s.io().connects.len(), 2, "the parked one is not served");
    // The cancelled accept ends.
    s.deliver(Event::AcceptFailed {
        token: first_token,
        error: Errno(libc::ECANCELED),
        armed: false,
    });
    // The first connection fails: the parked one takes its slot; still at the limit.
    let (_, t_a, _, _) = s.connect();
    s.connected(t_a, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    s.finish_closes();
    assert_eq!(s.io().connects.len(), 2, "the parked connection started");
    assert!(!s.accept_armed(), "still at the limit");
    // Two more end: below the limit, the accept is armed again with no new arrival.
    for _ in 0..2 {
        let (_, t, _, _) = s.connect();
        s.connected(t, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
        s.finish_closes();
    }
    assert_eq!(s.stats().active, 0);
    assert!(
        s.accept_armed(),
        "the accept must be re-armed once slots are free"
    );
    let rearmed = s.io().accepts[0].1;
    assert_ne!(split(rearmed).1, split(first_token).1, "a new epoch");
    // A late end of the old accept changes nothing.
    s.deliver(Event::AcceptFailed {
        token: first_token,
        error: Errno(libc::ECANCELED),
        armed: false,
    });
    assert!(s.accept_armed());
    let _d = s.accept();
    assert_eq!(s.stats().accepted, 4);
}

/// A driver that ends our current accept with `ECANCELED` although we did not cancel it (a
/// cancel meant for an older accept that hit the new one) must not leave the pipe deaf.
#[test]
fn an_accept_ended_without_our_cancel_is_rearmed() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let token = s.io().accepts[0].1;
    s.io().accepts.clear();
    s.deliver(Event::AcceptFailed {
        token,
        error: Errno(libc::ECANCELED),
        armed: false,
    });
    assert!(s.accept_armed(), "re-armed at once");
    assert_ne!(split(s.io().accepts[0].1).1, split(token).1);
}

#[test]
fn emfile_on_accept_backs_off_then_rearms() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let token = s.io().accepts[0].1;
    s.io().accepts.clear();
    s.deliver(Event::AcceptFailed {
        token,
        error: Errno(libc::EMFILE),
        armed: false,
    });
    assert!(!s.accept_armed());
    assert!(s.timer_armed(Op::Backoff));
    assert_eq!(s.stats().accept_errors, 1);
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    assert!(s.accept_armed());
}

#[test]
fn starved_target_sockets_pause_accepts_and_retry_within_the_deadline() {
    let mut cfg = config(Mode::Encrypt);
    cfg.targets = vec![addr(1)];
    let mut s = Sim::new(cfg);
    s.io()
        .connect_errors
        .push_back(SubmitError::Socket(Errno(libc::EMFILE)));
    let _client = s.accept();
    assert!(
        !s.accept_armed(),
        "accepts pause while a connection starves"
    );
    assert!(s.timer_armed(Op::Backoff));
    assert!(s.drops().is_empty(), "the connection is kept");
    // Still out of descriptors at the first retry.
    s.io()
        .connect_errors
        .push_back(SubmitError::Socket(Errno(libc::EMFILE)));
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    assert!(s.timer_armed(Op::Backoff) && !s.accept_armed());
    // Then a descriptor is free: the connect goes out with what is left of the deadline.
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    let (_, _, _, left) = s.connect();
    assert_eq!(left, TIMEOUT - 2 * BACKOFF);
    assert!(s.accept_armed(), "accepts resume");

    // A starved connection whose deadline passes is dropped at its retry.
    let mut s = Sim::new(config(Mode::Encrypt));
    s.io()
        .connect_errors
        .push_back(SubmitError::Socket(Errno(libc::EMFILE)));
    let _client = s.accept();
    s.advance(TIMEOUT);
    s.fire(Op::Backoff);
    assert_eq!(s.drops(), ["target_timeout"]);
}

#[test]
fn a_stopped_pipe_drains_then_goes_and_an_updated_one_uses_new_targets() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let _a = s.accept();
    let mut cfg = config(Mode::Encrypt);
    cfg.targets = vec![addr(9)];
    s.relay.update_pipe(s.pipe, cfg).expect("update");
    let _b = s.accept();
    let (_, t_a, addr_a, _) = s.connect();
    let (_, t_b, addr_b, _) = s.connect();
    assert_eq!(
        (addr_a, addr_b),
        (addr(1), addr(9)),
        "new targets for new connections"
    );

    s.relay.stop_pipe(s.pipe).expect("stop");
    assert!(!s.accept_armed());
    assert_eq!(s.io().closes.len(), 1, "the listener is closed");
    s.finish_closes();
    assert!(
        s.relay.pipe_stats(s.pipe).is_some(),
        "connections still run"
    );
    for t in [t_a, t_b] {
        s.connected(t, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    }
    s.finish_closes();
    assert!(s.relay.pipe_stats(s.pipe).is_none(), "the pipe is gone");
    assert_eq!(s.stats().accepted, 2, "its counters stay in the total");
    assert_eq!(
        s.relay.stop_pipe(s.pipe),
        Err(RelayError::NoSuchPipe(s.pipe))
    );
}

#[test]
fn two_pipes_keep_their_own_limits() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let mut cfg = config(Mode::Decrypt);
    cfg.max_connections = Some(1);
    let listener: OwnedFd = File::open("/dev/null").expect("/dev/null").into();
    let second = s.relay.add_pipe(listener, cfg).expect("second pipe");
    assert_eq!(s.io().accepts.len(), 2);
    let (_, token) = s.io().accepts[1];
    let _d = s.accept_with(token);
    assert_eq!(s.io().accepts.len(), 1, "only the limited pipe stopped");
    let _e = s.accept();
    assert_eq!(s.relay.pipe_stats(second).map(|p| p.active), Some(1));
    assert_eq!(s.relay.pipe_stats(s.pipe).map(|p| p.active), Some(1));
    assert_eq!(s.stats().active, 2);
}

#[test]
fn drop_reasons_have_stable_labels_and_no_doubled_prefix() {
    use crate::proto::{PacketError, StreamError};
    let bad_mac = DropReason::BadStream(StreamError::Packet(PacketError::BadMac));
    assert_eq!(bad_mac.kind(), "bad_packet_mac");
    let text = bad_mac.to_string();
    assert_eq!(text.matches("bad packet").count(), 1, "{text}");
    let dh = DropReason::Handshake(HandshakeError::BadDhMac);
    assert_eq!(dh.to_string(), HandshakeError::BadDhMac.to_string());
    assert_eq!(
        DropReason::Recv(Side::Crypt, Errno(libc::ECONNRESET)).kind(),
        "peer_reset"
    );
}

#[test]
fn plaintext_side_closing_during_the_handshake_is_seen_once_the_pumps_run() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let client = s.accept();
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    assert!(
        !s.has_recv(client),
        "the plaintext side is not read before the pumps"
    );
    let mut peer = Peer::new(Role::Server, KEY);
    handshake(&mut s, target, &mut peer);
    // The client had closed meanwhile: its EOF arrives at the first read, and becomes the
    // target's shutdown.
    s.eof(client);
    assert_eq!(s.io().shutdowns.len(), 1);
    assert_eq!(s.io().shutdowns[0].0, target);
    assert!(s.drops().is_empty());
}

#[test]
fn d_target_connect_timing_out_after_the_handshake_drops_with_the_connects_reason() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let mut peer = Peer::new(Role::Client, KEY);
    handshake(&mut s, client, &mut peer);
    assert_eq!(s.stats().handshakes, 1);
    assert!(
        !s.timer_armed(Op::Deadline),
        "the handshake deadline ended with it"
    );
    assert!(
        !s.has_recv(client),
        "client bytes wait in the kernel for the pumps"
    );
    let (_, token, _, _) = s.connect();
    s.advance(TIMEOUT);
    s.connected(token, Err(ConnectError::TimedOut));
    assert_eq!(s.drops(), ["target_timeout"]);
}

#[test]
fn e_bytes_after_the_servers_answer_in_the_same_read_come_first() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let client = s.accept();
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    let mut peer = Peer::new(Role::Server, KEY);
    let nonce_s = peer.hello();
    let nonce_c = s.sent(target);
    assert!(peer.exchange(&nonce_c).expect("nonce").is_empty());
    s.recv(target, &nonce_s);
    let y_c = s.sent(target);
    let mut wire = peer.exchange(&y_c).expect("y_S");
    let (enc, _) = peer.stream.as_mut().expect("session");
    enc.encode(b"early", &mut wire).expect("encode");
    // y_S ‖ h_S and the first sealed packet in one read.
    s.recv(target, &wire);
    assert_eq!(s.sent(client), b"early");
    assert!(s.drops().is_empty());
}

#[test]
fn update_pipe_applies_a_changed_limit_to_the_accept_at_once() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let _a = s.accept();
    let _b = s.accept();
    // Lowered to the connections open now: the accept stops.
    let mut cfg = config(Mode::Encrypt);
    cfg.max_connections = Some(2);
    s.relay.update_pipe(s.pipe, cfg).expect("update");
    assert!(!s.accept_armed());
    // Raised again: it is re-armed without waiting for a connection to end.
    let mut cfg = config(Mode::Encrypt);
    cfg.max_connections = Some(3);
    s.relay.update_pipe(s.pipe, cfg).expect("update");
    assert!(s.accept_armed());
    // A configuration without a target changes nothing.
    let mut cfg = config(Mode::Encrypt);
    cfg.targets.clear();
    assert_eq!(s.relay.update_pipe(s.pipe, cfg), Err(RelayError::NoTarget));
    let _c = s.accept();
    let (_, _, a, _) = s.connect();
    assert_eq!(a, addr(1));
}

/// The server's answer can be handled before the completion of our last handshake send (both
/// in one batch of events): the pumps, which send on the same socket, wait for that completion.
#[test]
fn e_pumps_wait_for_the_last_handshake_send_to_complete() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let client = s.accept();
    let (target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    let mut peer = Peer::new(Role::Server, KEY);
    let nonce_s = peer.hello();
    let nonce_c = s.sent(target);
    assert!(peer.exchange(&nonce_c).expect("nonce").is_empty());
    s.recv(target, &nonce_s);
    // y_C ‖ h_C is handed to the driver but its completion is not delivered yet.
    let (_, y_c, _) = s
        .io()
        .sends
        .iter()
        .find(|(h, ..)| *h == target)
        .expect("y_C")
        .clone();
    let y_s = peer.exchange(&y_c).expect("y_S");
    s.recv(target, &y_s);
    assert_eq!(
        s.stats().handshakes,
        0,
        "not finished while our send is in flight"
    );
    assert!(!s.has_recv(client), "no pumps yet");
    // Now the send completes: the handshake finishes and the pumps start.
    assert_eq!(s.sent(target), y_c);
    assert_eq!(s.stats().handshakes, 1);
    assert!(s.has_recv(client) && s.has_recv(target));
    s.recv(client, b"after");
    let sealed = s.sent(target);
    let (_, dec) = peer.stream.as_mut().expect("session");
    let mut plain = Vec::new();
    dec.decode(&sealed, &mut plain).expect("decode");
    assert_eq!(plain, b"after");
}

#[test]
fn stop_accepting_closes_every_listener_and_open_connections_finish() {
    let mut s = Sim::new(config(Mode::Encrypt));
    // One connection is set up, another has only just been accepted.
    let (client, target, mut peer) = established_e(&mut s);
    let late = s.accept();
    let listener: OwnedFd = File::open("/dev/null").expect("/dev/null").into();
    let second = s
        .relay
        .add_pipe(listener, config(Mode::Decrypt))
        .expect("pipe");
    let listeners: Vec<Handle> = s.io().accepts.iter().map(|(l, _)| *l).collect();
    assert_eq!(listeners.len(), 2);
    assert_eq!(s.stats().active, 2);

    s.relay.stop_accepting();
    assert!(!s.accept_armed(), "no accept stays armed");
    let closed: Vec<Handle> = s.io().closes.iter().map(|(h, _)| *h).collect();
    for l in &listeners {
        assert!(closed.contains(l), "listener {l:?} is not closed at once");
    }
    s.finish_closes();
    assert!(
        !s.accept_armed(),
        "no accept is re-armed after the listener closes"
    );
    // A second call changes nothing.
    s.relay.stop_accepting();
    assert!(s.io().closes.is_empty());
    assert!(
        s.relay.pipe_stats(second).is_none(),
        "the idle pipe is gone"
    );

    // The open connections carry on: the running one relays and ends cleanly ...
    s.recv(client, b"in flight");
    let sealed = s.sent(target);
    let (_, dec) = peer.stream.as_mut().expect("peer session");
    let mut plain = Vec::new();
    dec.decode(&sealed, &mut plain).expect("decode");
    assert_eq!(plain, b"in flight");
    s.eof(client);
    s.shutdown_done(target);
    s.eof(target);
    s.finish_closes();
    // ... and the one accepted just before the drain is still served.
    let (late_target, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    let mut peer2 = Peer::new(Role::Server, KEY);
    handshake(&mut s, late_target, &mut peer2);
    assert!(s.has_recv(late) && s.has_recv(late_target), "its pumps run");
    s.eof(late);
    s.shutdown_done(late_target);
    s.eof(late_target);
    s.finish_closes();
    let st = s.stats();
    assert_eq!((st.clean_closes, st.dropped, st.active), (2, 0, 0));
    assert_eq!(
        st.accepted, 2,
        "nothing was accepted after the drain started"
    );
    assert!(!s.accept_armed());
    assert!(
        s.relay.pipe_stats(s.pipe).is_none(),
        "the drained pipe is gone"
    );
}

#[test]
fn handshake_limit_drops_the_oldest_connection_still_in_the_handshake() {
    let mut cfg = config(Mode::Decrypt);
    cfg.handshake_limit = Some(2);
    let mut s = Sim::new(cfg);
    let a = s.accept();
    s.advance(Duration::from_millis(10));
    let b = s.accept();
    s.advance(Duration::from_millis(10));
    assert!(s.drops().is_empty(), "below the limit nothing is dropped");
    let c = s.accept();
    assert_eq!(s.drops(), ["handshake_evicted"], "the oldest makes room");
    let closed: Vec<Handle> = s.io().closes.iter().map(|(h, _)| *h).collect();
    assert_eq!(closed, [a], "the oldest, and only it, is closed");
    s.finish_closes();
    let _ = s.sent(b);
    // The newcomer is served at once: its handshake completes and its target is connected.
    let mut peer = Peer::new(Role::Client, KEY);
    handshake(&mut s, c, &mut peer);
    let (_, token, _, _) = s.connect();
    s.connected(token, Ok(()));
    assert_eq!(s.stats().handshakes, 1);
    // `c` has authenticated and no longer counts: `d` fits beside `b`; the next arrival
    // evicts `b`, now the oldest in the handshake, never `c`.
    let d = s.accept();
    assert_eq!(s.drops(), ["handshake_evicted"]);
    let e = s.accept();
    assert_eq!(s.drops(), ["handshake_evicted"; 2]);
    let closed: Vec<Handle> = s.io().closes.iter().map(|(h, _)| *h).collect();
    assert_eq!(closed, [b]);
    s.finish_closes();
    assert_eq!(s.stats().active, 3, "c, d and e");
    assert_eq!(s.stats().dropped, 2);
    let _ = (c, d, e);
}

#[test]
fn handshake_limit_never_drops_an_authenticated_connection_and_n_still_holds() {
    let mut cfg = config(Mode::Decrypt);
    cfg.handshake_limit = Some(1);
    cfg.max_connections = Some(3);
    let mut s = Sim::new(cfg);
    let first_token = s.io().accepts[0].1;
    // Two established connections, then one silent client.
    let (x, _, _) = established_d(&mut s);
    let (y, _, _) = established_d(&mut s);
    let silent = s.accept();
    assert!(s.drops().is_empty());
    assert!(
        !s.accept_armed(),
        "-n stops the accept with pre-auth room to spare"
    );
    assert_eq!(s.stats().limit_reached, 1);
    // An accept the kernel completed before the cancel: parked, it evicts no one.
    let parked = s.accept_with(first_token);
    assert!(
        s.drops().is_empty(),
        "a parked connection is not in the handshake"
    );
    assert_eq!(s.stats().active, 4);
    // The silent one times out; the parked one takes its slot without evicting anyone.
    s.advance(TIMEOUT);
    s.fire(Op::Deadline);
    assert_eq!(s.drops(), ["handshake_timeout"]);
    s.finish_closes();
    assert!(
        s.io().sends.iter().any(|(h, _, _)| *h == parked),
        "the parked one started its handshake"
    );
    assert_eq!(s.drops(), ["handshake_timeout"], "and evicted no one");
    // `x` is reset by its client: below `-n`, the accept is re-armed.
    let token = s.io().recvs.remove(&x).expect("x reads");
    s.deliver(Event::RecvFailed {
        token,
        error: Errno(libc::ECONNRESET),
    });
    s.finish_closes();
    assert_eq!(s.stats().active, 2);
    assert!(s.accept_armed());
    // The next arrival evicts the parked one (the only connection in the handshake), never
    // the authenticated `y`.
    let late = s.accept();
    assert_eq!(
        s.drops(),
        ["handshake_timeout", "peer_reset", "handshake_evicted"]
    );
    let closed: Vec<Handle> = s.io().closes.iter().map(|(h, _)| *h).collect();
    assert_eq!(closed, [parked]);
    s.finish_closes();
    assert!(s.io().sends.iter().any(|(h, _, _)| *h == late));
    assert_eq!(s.stats().active, 2, "y and the newcomer");
    let _ = (y, silent);
}

#[test]
fn without_a_handshake_limit_nothing_is_evicted() {
    let mut s = Sim::new(config(Mode::Decrypt));
    for _ in 0..50 {
        let _ = s.accept();
    }
    assert!(s.drops().is_empty());
    assert_eq!(s.stats().active, 50);
    assert_eq!(
        DropReason::HandshakeEvicted { limit: 8 }.kind(),
        "handshake_evicted"
    );
}
