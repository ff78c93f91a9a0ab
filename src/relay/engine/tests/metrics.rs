//! The metrics the event loop keeps ([`PipeCounters`], [`ConnMeter`]), its snapshot
//! ([`Relay::metrics_snapshot`]) and its audit log ([`Relay::set_audit`]), on the fake driver
//! and clock: each counter moves when its event happens, and only then.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

use crate::relay::audit::AuditTarget;
use crate::relay::metrics::{
    Board, HANDSHAKE_FAILURE_REASONS, ProcessInfo, close_reasons, encode, key_state, ring_mode,
};

use super::*;

/// The counters of the simulation's one pipe, from the snapshot.
fn counters(s: &Sim) -> PipeCounters {
    let snap = s.relay.metrics_snapshot();
    assert_eq!(snap.pipes.len(), 1, "one pipe");
    snap.pipes[0]
        .counters
        .clone()
        .expect("the engine keeps counters")
}

/// Bytes the test delivered on / took from handle `h`.
fn rx(s: &Sim, h: Handle) -> u64 {
    s.rx.get(&h).copied().unwrap_or(0)
}

fn tx(s: &Sim, h: Handle) -> u64 {
    s.tx.get(&h).copied().unwrap_or(0)
}

/// A directory removed when dropped (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut n = [0u8; 8];
        fill_random(&mut n).expect("random");
        let dir =
            std::env::temp_dir().join(format!("spr-engine-audit-{:016x}", u64::from_ne_bytes(n)));
        std::fs::create_dir(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Turns the audit log on for `s`, writing to a file in `dir`; returns the file's path.
fn audit_to_file(s: &mut Sim, dir: &TempDir) -> PathBuf {
    let path = dir.0.join("audit.log");
    let log = AuditLog::open(AuditTarget::File(path.clone())).expect("audit log");
    s.relay.set_audit(log);
    path
}

/// The audit file's lines, parsed.
fn audit_lines(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A client arrives through the armed accept on a real loopback TCP connection (so the relay
/// can read its address): returns the relay's handle and the client's socket.
fn accept_real_client(s: &mut Sim) -> (Handle, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    let (_, token) = *s.io().accepts.last().expect("no accept armed");
    let h = s.io().handle();
    s.io().sockets.insert(h, OwnedFd::from(accepted));
    s.deliver(Event::Accepted { token, conn: h });
    (h, client)
}

/// As [`handshake`], with the clock moving `step` before each read of the relay.
fn handshake_stepped(s: &mut Sim, crypt: Handle, peer: &mut Peer, step: Duration) {
    let mut to_relay = peer.hello();
    for _ in 0..8 {
        let from_relay = s.sent(crypt);
        let answer = peer.exchange(&from_relay).expect("peer handshake");
        to_relay.extend_from_slice(&answer);
        if !to_relay.is_empty() && s.has_recv(crypt) {
            let bytes = std::mem::take(&mut to_relay);
            s.advance(step);
            s.recv(crypt, &bytes);
        }
        if peer.stream.is_some() && to_relay.is_empty() && s.relay.io.sends.is_empty() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn a_clean_connection_moves_every_counter_of_its_kind_and_is_audited() {
    let dir = TempDir::new();
    let mut s = Sim::new(config(Mode::Encrypt));
    let path = audit_to_file(&mut s, &dir);
    let fp = Key::from_key_file(KEY).fingerprint();
    let t0 = s.now;

    let (client, client_sock) = accept_real_client(&mut s);
    let c = counters(&s);
    assert_eq!((c.accepted, c.closed.total()), (1, 0));
    assert_eq!(s.relay.metrics_snapshot().pipes[0].active, 1);

    // The target connect takes 3 ms.
    let (target, token, _, _) = s.connect();
    s.advance(Duration::from_millis(3));
    s.connected(token, Ok(()));
    let c = counters(&s);
    assert_eq!(c.target_connect_duration.count(), 1);
    assert_eq!(c.target_connect_duration.sum_seconds(), 0.003);

    // The handshake takes a few 2 ms steps.
    let hs_start = s.now;
    let mut peer = Peer::new(Role::Server, KEY);
    handshake_stepped(&mut s, target, &mut peer, Duration::from_millis(2));
    let c = counters(&s);
    assert_eq!(c.handshake_duration.count(), 1);
    let took = c.handshake_duration.sum_seconds();
    assert!(
        took > 0.0 && took <= (s.now - hs_start).as_secs_f64(),
        "handshake took {took} s"
    );
    assert_eq!(c.handshake_failures.total(), 0);

    // While it lives, its key counts one live connection and one handshake.
    let ring = s.relay.metrics_snapshot().pipes[0]
        .keys
        .clone()
        .expect("key ring");
    let st = ring.status();
    assert_eq!((st[0].fingerprint.as_str(), st[0].live), (fp.as_str(), 1));
    assert_eq!(st[0].handshakes, 1);

    // Data both ways, then both half-closes.
    s.advance(Duration::from_millis(10));
    s.recv(client, b"hello");
    let _ = s.sent(target);
    let (enc, _) = peer.stream.as_mut().expect("peer session");
    let mut wire = Vec::new();
    enc.encode(b"world!", &mut wire).expect("encode");
    s.recv(target, &wire);
    assert_eq!(s.sent(client), b"world!");
    s.eof(client);
    s.shutdown_done(target);
    s.eof(target);
    s.finish_closes();

    let c = counters(&s);
    // Every byte the fake driver moved, on the side it moved on (index 0: plaintext).
    assert_eq!(c.received_bytes, [rx(&s, client), rx(&s, target)]);
    assert_eq!(c.sent_bytes, [tx(&s, client), tx(&s, target)]);
    assert_eq!(c.received_bytes[0], 5);
    assert_eq!(c.sent_bytes[0], 6);
    assert!(
        c.received_bytes[1] > wire.len() as u64,
        "handshake bytes count"
    );
    assert_eq!(c.closed.get("clean"), 1);
    assert_eq!(c.closed.total(), 1);
    assert_eq!(c.handshake_failures.total(), 0);
    assert_eq!((c.limit_reached, c.accept_backoffs), (0, 0));
    let snap = s.relay.metrics_snapshot();
    assert_eq!(&*snap.pipes[0].name, "default");
    assert_eq!(snap.pipes[0].mode, Mode::Encrypt);
    assert_eq!(snap.pipes[0].active, 0);
    assert_eq!(ring.status()[0].live, 0);
    // RelayStats is read from the same counters.
    let st = s.stats();
    assert_eq!(
        (st.accepted, st.handshakes, st.clean_closes, st.dropped),
        (1, 1, 1, 0)
    );

    // The audit line waits for the end of the loop's turn.
    assert_eq!(std::fs::read_to_string(&path).expect("audit file"), "");
    s.relay.turn(Duration::ZERO).expect("turn");
    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["pipe"], "default");
    assert_eq!(l["mode"], "encrypt");
    let client_addr = client_sock.local_addr().expect("client address");
    assert_eq!(l["peer"], client_addr.to_string());
    assert_eq!(l["key"], fp.as_str());
    assert_eq!(l["bytes_from_client"], rx(&s, client));
    assert_eq!(l["bytes_to_client"], tx(&s, client));
    assert_eq!(l["bytes_from_target"], rx(&s, target));
    assert_eq!(l["bytes_to_target"], tx(&s, target));
    let lived = (s.now - t0).as_millis() as f64 / 1000.0;
    assert_eq!(l["duration_seconds"], lived);
    assert_eq!(l["reason"], "clean");
    assert!(l["error"].is_null());
    let time = l["time"].as_str().expect("time");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    // Nothing is written twice.
    s.relay.turn(Duration::ZERO).expect("turn");
    assert_eq!(audit_lines(&path).len(), 1);
}

#[test]
fn a_wrong_key_client_is_a_handshake_failure_with_its_reason() {
    let dir = TempDir::new();
    let mut s = Sim::new(config(Mode::Decrypt));
    let path = audit_to_file(&mut s, &dir);
    let client = s.accept();
    let mut peer = Peer::new(Role::Client, OTHER_KEY);
    let nonce = s.sent(client);
    let mut msg = peer.hello();
    msg.extend(peer.exchange(&nonce).expect("y_C"));
    s.advance(Duration::from_millis(1));
    s.recv(client, &msg);
    s.finish_closes();
    assert_eq!(s.drops(), ["bad_mac"]);
    let c = counters(&s);
    assert_eq!(c.closed.get("bad_mac"), 1);
    assert_eq!(c.closed.total(), 1);
    assert_eq!(c.handshake_failures.get("bad_mac"), 1);
    assert_eq!(c.handshake_failures.total(), 1);
    assert_eq!(c.handshake_duration.count(), 0, "no handshake completed");
    assert_eq!(c.target_connect_duration.count(), 0, "no target connect");
    assert_eq!(c.received_bytes, [0, msg.len() as u64]);
    assert_eq!(c.sent_bytes, [0, nonce.len() as u64]);
    let ring = s.relay.metrics_snapshot().pipes[0]
        .keys
        .clone()
        .expect("key ring");
    assert_eq!(ring.status()[0].handshakes, 0);

    s.relay.turn(Duration::ZERO).expect("turn");
    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["mode"], "decrypt");
    assert_eq!(l["reason"], "bad_mac");
    assert!(
        l["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("handshake failed: bad MAC")),
        "{l}"
    );
    assert!(l["key"].is_null(), "no key was agreed");
    assert!(l["peer"].is_null(), "the fake client has no address");
    assert_eq!(l["bytes_from_client"], msg.len() as u64);
    assert_eq!(l["bytes_to_client"], nonce.len() as u64);
    assert_eq!(l["duration_seconds"], 0.001);
}

#[test]
fn a_handshake_timeout_counts_as_a_handshake_failure() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let _ = s.sent(client);
    s.advance(TIMEOUT);
    s.fire(Op::Deadline);
    let c = counters(&s);
    assert_eq!(c.closed.get("handshake_timeout"), 1);
    assert_eq!(c.handshake_failures.get("handshake_timeout"), 1);
}

#[test]
fn a_refused_target_is_a_close_reason_not_a_handshake_failure() {
    // -e: the target is refused before any handshake.
    let mut s = Sim::new(config(Mode::Encrypt));
    let _client = s.accept();
    let (_, token, _, _) = s.connect();
    s.connected(token, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    s.finish_closes();
    let c = counters(&s);
    assert_eq!(c.closed.get("target_refused"), 1);
    assert_eq!(c.closed.total(), 1);
    assert_eq!(c.handshake_failures.total(), 0);
    assert_eq!(
        c.target_connect_duration.count(),
        0,
        "only successes are timed"
    );
    assert_eq!(s.stats().dropped, 1);

    // -d: refused while the client's handshake finishes: still the target's fault.
    let mut s = Sim::new(config(Mode::Decrypt));
    let client = s.accept();
    let nonce = s.sent(client);
    let mut peer = Peer::new(Role::Client, KEY);
    let mut msg = peer.hello();
    msg.extend(peer.exchange(&nonce).expect("y_C"));
    s.recv(client, &msg);
    let (_, token, _, _) = s.connect();
    s.connected(token, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    s.finish_closes();
    let c = counters(&s);
    assert_eq!(s.drops(), ["target_refused"]);
    assert_eq!(c.closed.get("target_refused"), 1);
    assert_eq!(c.handshake_failures.total(), 0);
}

#[test]
fn the_limit_and_accept_backoffs_are_counted() {
    let mut cfg = config(Mode::Encrypt);
    cfg.max_connections = Some(1);
    let mut s = Sim::new(cfg);
    let _a = s.accept();
    let c = counters(&s);
    assert_eq!((c.accepted, c.limit_reached), (1, 1));
    assert_eq!(s.stats().limit_reached, 1);
    // Freed and reached again: one more.
    let (_, t, _, _) = s.connect();
    s.connected(t, Err(ConnectError::Os(Errno(libc::ECONNREFUSED))));
    s.finish_closes();
    assert!(s.accept_armed());
    let _b = s.accept();
    assert_eq!(counters(&s).limit_reached, 2);

    // EMFILE on accept: one back-off; accept errors are counted apart.
    let mut s = Sim::new(config(Mode::Decrypt));
    let token = s.io().accepts[0].1;
    s.io().accepts.clear();
    s.deliver(Event::AcceptFailed {
        token,
        error: Errno(libc::EMFILE),
        armed: false,
    });
    assert_eq!(counters(&s).accept_backoffs, 1);
    assert_eq!(s.stats().accept_errors, 1);
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    assert!(s.accept_armed());
    assert_eq!(counters(&s).accept_backoffs, 1, "re-armed: no new back-off");

    // A connection starved of target sockets: one back-off per period it waits.
    let mut s = Sim::new(config(Mode::Encrypt));
    for _ in 0..2 {
        s.io()
            .connect_errors
            .push_back(SubmitError::Socket(Errno(libc::EMFILE)));
    }
    let _client = s.accept();
    assert_eq!(counters(&s).accept_backoffs, 1);
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    assert_eq!(counters(&s).accept_backoffs, 2);
    s.advance(BACKOFF);
    s.fire(Op::Backoff);
    assert!(s.accept_armed());
    assert_eq!(counters(&s).accept_backoffs, 2);
    assert_eq!(s.stats().accept_errors, 0);
}

#[test]
fn a_key_removed_while_a_connection_lives_stays_listed_until_it_ends() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let fp = Key::from_key_file(KEY).fingerprint();
    let (client, target, _peer) = established_d(&mut s);
    let ring = s.relay.metrics_snapshot().pipes[0]
        .keys
        .clone()
        .expect("key ring");
    ring.replace(&KeySet::single(Key::from_key_file(OTHER_KEY)))
        .expect("replace");

    // The scrape thread's view: the snapshot through a board, encoded.
    let board = Board::new(ProcessInfo::new("io_uring"));
    let mut publisher = board.publisher();
    publisher.publish(s.now, s.relay.metrics_snapshot());
    let snap = board.collect();
    let pipe = &snap.pipes[0];
    assert_eq!(&*pipe.name, "default");
    assert_eq!(pipe.active, 1);
    let old = pipe
        .keys
        .iter()
        .find(|k| k.fingerprint == fp)
        .expect("the removed key is listed while in use");
    assert_eq!(key_state(old, ring_mode(Mode::Decrypt)), "removed");
    assert_eq!((old.live, old.handshakes), (1, 1));
    let text = encode::prometheus_text(&snap);
    let line = format!("spiperelay_key_connections{{pipe=\"default\",fingerprint=\"{fp}\"}} 1");
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    let line =
        format!("spiperelay_key_handshakes_total{{pipe=\"default\",fingerprint=\"{fp}\"}} 1");
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    assert!(
        text.lines()
            .any(|l| l == "spiperelay_connections_active{pipe=\"default\"} 1"),
        "{text}"
    );

    // The connection carries on, then ends: the key is gone from the table.
    s.eof(client);
    s.shutdown_done(target);
    s.eof(target);
    s.finish_closes();
    assert_eq!(counters(&s).closed.get("clean"), 1);
    let left = ring.status();
    assert!(
        left.iter().all(|k| k.fingerprint != fp),
        "a removed key with no live connection is dropped: {left:?}"
    );
}

#[test]
fn a_key_removed_mid_handshake_is_a_handshake_failure() {
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
    let c = counters(&s);
    assert_eq!(c.closed.get("key_removed"), 1);
    assert_eq!(c.handshake_failures.get("key_removed"), 1);
    assert_eq!(
        c.handshake_duration.count(),
        1,
        "the protocol handshake completed"
    );
}

#[test]
fn the_snapshot_lists_pipes_by_name_with_seeded_labels_and_the_pools() {
    let mut s = Sim::new(config(Mode::Encrypt));
    let mut cfg = config(Mode::Decrypt);
    cfg.name = "redis".into();
    let listener: OwnedFd = File::open("/dev/null").expect("/dev/null").into();
    let second = s.relay.add_pipe(listener, cfg).expect("pipe");
    let snap = s.relay.metrics_snapshot();
    let names: Vec<&str> = snap.pipes.iter().map(|p| &*p.name).collect();
    assert_eq!(names, ["default", "redis"]);
    assert_eq!(snap.pipes[1].mode, Mode::Decrypt);
    let c = snap.pipes[0].counters.as_ref().expect("counters");
    let labels: Vec<&str> = c.closed.iter().map(|(l, _)| l).collect();
    assert_eq!(labels, close_reasons());
    let labels: Vec<&str> = c.handshake_failures.iter().map(|(l, _)| l).collect();
    assert_eq!(labels, HANDSHAKE_FAILURE_REASONS);
    assert_eq!(
        snap.pools,
        [PoolSample {
            kind: "group14",
            ready: 3,
            pooled: 2,
            inline: 1
        }]
    );

    // A connection on "redis" (its accept was armed last), still open when the pipe stops:
    // the pipe is listed until it has drained.
    let _c = s.accept();
    s.relay.stop_pipe(second).expect("stop");
    let names: Vec<String> = (s.relay.metrics_snapshot().pipes.iter())
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["default", "redis"]);
    s.fire(Op::Deadline);
    s.finish_closes();
    // Gone: no longer listed; its counts stay in the relay's totals.
    let snap = s.relay.metrics_snapshot();
    let names: Vec<&str> = snap.pipes.iter().map(|p| &*p.name).collect();
    assert_eq!(names, ["default"]);
    assert_eq!(s.stats().accepted, 1);
    assert_eq!(counters(&s).accepted, 0, "not added to another pipe's");

    // A pipe added again under that name (a reload) counts on from the old one's counts.
    let mut cfg = config(Mode::Decrypt);
    cfg.name = "redis".into();
    let listener: OwnedFd = File::open("/dev/null").expect("/dev/null").into();
    let third = s.relay.add_pipe(listener, cfg).expect("pipe");
    let redis = |s: &Sim| {
        let snap = s.relay.metrics_snapshot();
        let p = snap.pipes.iter().find(|p| &*p.name == "redis").cloned();
        p.and_then(|p| p.counters).expect("redis listed")
    };
    let c = redis(&s);
    assert_eq!(c.accepted, 1);
    assert_eq!(c.closed.get("handshake_timeout"), 1);
    assert_eq!(c.handshake_failures.get("handshake_timeout"), 1);
    let _d = s.accept();
    assert_eq!(redis(&s).accepted, 2);
    assert_eq!(s.relay.pipe_stats(third).map(|st| st.accepted), Some(1));
}
