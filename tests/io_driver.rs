//! Tests of the drivers through the `Driver` interface: timers, connect deadlines, closing with
//! operations in flight, buffer-pool starvation, large sends and deferred shutdown. Each test
//! is generic over the backend and runs once for io_uring and once for epoll
//! (`uring::name`, `epoll::name`).

mod io_common;
use io_common as common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Kind, TempDir, TestDriver};
use socket2::{Domain, SockAddr, Socket, Type};
use spiperelay::io::uring::SetupError;
use spiperelay::io::{ConnectError, Event, Handle, SubmitError};

driver_tests!(
    timer_fires_and_cancelled_timer_does_not,
    connect_refused_and_timed_out,
    connect_waits_for_room_in_a_full_backlog,
    close_cancels_pending_recv_and_handle_goes_stale,
    starved_recv_waits_for_a_recycled_buffer,
    large_send_completes_and_shutdown_waits_for_it,
    recv_reports_eof_and_reset,
    accept_is_repeating_until_cancelled,
    short_data_then_eof_are_both_reported,
    tcp_connect_succeeds_or_is_refused,
    streams_survive_pool_exhaustion_in_order,
    data_sent_while_no_recv_is_pending_is_kept_in_order,
    reset_while_no_recv_is_pending_is_reported_by_the_next_recv,
);

/// Waits (bounded) for the next batch of events, returning them.
fn next<D: TestDriver>(io: &mut D) -> Vec<Event> {
    let mut evs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while evs.is_empty() {
        assert!(Instant::now() < deadline, "no event within 10 s");
        io.wait(&mut evs, Some(Duration::from_millis(100)))
            .expect("wait");
    }
    evs
}

/// A connected pair: a client socket kept by the test and the accepted side adopted by `io`.
fn pair<D: TestDriver>(io: &mut D, dir: &TempDir) -> (Socket, Handle) {
    let (listener, addr) = common::listen(Kind::Unix, dir, &format!("l{}", rand_name()));
    let client = common::connect(&addr);
    let (server, _) = listener.accept().expect("accept");
    (client, io.adopt(server.into()))
}

/// A Unix listener at `path` that never accepts, with its backlog filled by the returned
/// client sockets, so that one more connect cannot complete until room is made.
fn full_backlog(path: &std::path::Path) -> (Socket, SockAddr, Vec<Socket>) {
    let l = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    let addr = SockAddr::unix(path).expect("addr");
    l.bind(&addr).expect("bind");
    l.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        if s.connect(&addr).is_err() {
            break;
        }
        fillers.push(s);
    }
    (l, addr, fillers)
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn probe_succeeds_here() {
    spiperelay::io::uring::probe().expect("io_uring is available on the test machine");
}

#[test]
fn setup_error_names_the_likely_cause() {
    let msg = SetupError::Blocked.to_string();
    assert!(msg.contains("EPERM") && msg.contains("seccomp") && msg.contains("io_uring_disabled"));
    assert!(SetupError::NotImplemented.to_string().contains("ENOSYS"));
}

fn timer_fires_and_cancelled_timer_does_not<D: TestDriver>() {
    let mut io = D::with_defaults();
    let start = Instant::now();
    let cancelled = io.timer(Duration::from_millis(50), 1);
    io.timer(Duration::from_millis(150), 2);
    io.cancel_timer(cancelled);
    let evs = next(&mut io);
    assert_eq!(evs.len(), 1);
    assert!(matches!(evs[0], Event::Timer { token: 2 }));
    assert!(start.elapsed() >= Duration::from_millis(140));
    assert_eq!(io.ops_in_flight(), 0);
}

fn connect_refused_and_timed_out<D: TestDriver>() {
    let dir = TempDir::new("connect");
    let mut io = D::with_defaults();
    // Nobody listens: ENOENT for a Unix path.
    let missing = SockAddr::unix(dir.0.join("missing")).expect("addr");
    let h = io
        .connect(&missing, Duration::from_secs(5), 7)
        .expect("submit");
    match &next(&mut io)[..] {
        [
            Event::Connected {
                token: 7,
                result: Err(ConnectError::Os(e)),
            },
        ] => {
            assert_eq!(e.0, libc::ENOENT);
        }
        other => panic!("unexpected {other:?}"),
    }
    io.close(h, 8).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 8 }]));

    // A Unix listener with a full backlog that never accepts: the connect must time out.
    let (_listener, addr, _fillers) = full_backlog(&dir.0.join("full"));
    let start = Instant::now();
    let h = io
        .connect(&addr, Duration::from_millis(200), 9)
        .expect("submit");
    match &next(&mut io)[..] {
        [
            Event::Connected {
                token: 9,
                result: Err(ConnectError::TimedOut),
            },
        ] => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(190));
    io.close(h, 10).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 10 }]));
    assert_eq!(io.open_handles(), 0);
}

fn close_cancels_pending_recv_and_handle_goes_stale<D: TestDriver>() {
    let dir = TempDir::new("close");
    let mut io = D::with_defaults();
    let (mut client, h) = pair(&mut io, &dir);
    io.recv(h, 1).expect("recv");
    assert_eq!(io.recv(h, 1), Err(SubmitError::RecvPending));
    io.close(h, 2).expect("close");
    assert_eq!(io.recv(h, 3), Err(SubmitError::Closing));
    // Only the close reports; the cancelled receive is silent.
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 2 }]));
    assert_eq!(io.recv(h, 3), Err(SubmitError::StaleHandle));
    assert_eq!(io.send(h, vec![1], 3), Err(SubmitError::StaleHandle));
    let mut buf = [0u8; 4];
    assert_eq!(client.read(&mut buf).expect("read"), 0, "peer sees EOF");
    assert_eq!(io.ops_in_flight(), 0);
    assert_eq!(io.open_handles(), 0);
}

fn starved_recv_waits_for_a_recycled_buffer<D: TestDriver>() {
    let dir = TempDir::new("starve");
    let mut io = D::with_pool(1, 16);
    let (mut c1, h1) = pair(&mut io, &dir);
    let (mut c2, h2) = pair(&mut io, &dir);
    io.recv(h1, 1).expect("recv");
    c1.write_all(b"one").expect("write");
    let first = match next(&mut io).pop() {
        Some(Event::Received { token: 1, buf }) => buf,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(io.data(&first), b"one");
    // The only buffer is lent out: the second receive must wait, not fail.
    io.recv(h2, 2).expect("recv");
    c2.write_all(b"two").expect("write");
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(Duration::from_millis(200)))
        .expect("wait");
    assert!(evs.is_empty(), "unexpected {evs:?}");
    io.recycle(first);
    match next(&mut io).pop() {
        Some(Event::Received { token: 2, buf }) => {
            assert_eq!(io.data(&buf), b"two");
            io.recycle(buf);
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn large_send_completes_and_shutdown_waits_for_it<D: TestDriver>() {
    let dir = TempDir::new("send");
    let mut io = D::with_defaults();
    let (mut client, h) = pair(&mut io, &dir);
    let data = common::payload(8 << 20, 42);
    io.send(h, data.clone(), 1).expect("send");
    // Submitted while the send is in flight: must take effect only after all bytes.
    io.shutdown_write(h, 2).expect("shutdown");
    let reader = std::thread::spawn(move || common::read_to_eof(&mut client, 8 << 20));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(next(&mut io));
    }
    match &seen[..] {
        [
            Event::Sent {
                token: 1,
                buf,
                result: Ok(()),
            },
            Event::ShutdownDone {
                token: 2,
                result: Ok(()),
            },
        ] => assert_eq!(buf.len(), 8 << 20),
        other => panic!("unexpected {other:?}"),
    }
    let got = reader.join().expect("reader").expect("read");
    assert!(got == data, "data mismatch");
    io.close(h, 3).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 3 }]));
}

fn recv_reports_eof_and_reset<D: TestDriver>() {
    let dir = TempDir::new("eof");
    let mut io = D::with_defaults();
    let (client, h) = pair(&mut io, &dir);
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    io.recv(h, 1).expect("recv");
    assert!(matches!(next(&mut io)[..], [Event::Eof { token: 1 }]));

    let (l, addr) = common::listen(Kind::Tcp, &dir, "tcp");
    let c = common::connect(&addr);
    let (s, _) = l.accept().expect("accept");
    let h2 = io.adopt(s.into());
    io.recv(h2, 2).expect("recv");
    c.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(c);
    match &next(&mut io)[..] {
        [Event::RecvFailed { token: 2, error }] => assert_eq!(error.0, libc::ECONNRESET),
        other => panic!("unexpected {other:?}"),
    }
}

/// A Unix listener with a full backlog: a connect waits (instead of failing) and succeeds once
/// the listener accepts and makes room, well before its deadline.
fn connect_waits_for_room_in_a_full_backlog<D: TestDriver>() {
    let dir = TempDir::new("backlog");
    let mut io = D::with_defaults();
    let (l, addr, fillers) = full_backlog(&dir.0.join("full"));
    assert!(!fillers.is_empty(), "could not fill the backlog");
    let h = io
        .connect(&addr, Duration::from_secs(10), 1)
        .expect("submit");
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(Duration::from_millis(150)))
        .expect("wait");
    assert!(
        evs.is_empty(),
        "connect finished with a full backlog: {evs:?}"
    );
    // Make room: accept every queued connection.
    l.set_nonblocking(true).expect("nonblocking");
    let mut accepted = Vec::new();
    while let Ok((s, _)) = l.accept() {
        accepted.push(s);
    }
    let start = Instant::now();
    let mut seen = Vec::new();
    while seen.is_empty() {
        seen.extend(next(&mut io));
        // Keep making room in case the connect lands behind others.
        while let Ok((s, _)) = l.accept() {
            accepted.push(s);
        }
    }
    match &seen[..] {
        [
            Event::Connected {
                token: 1,
                result: Ok(()),
            },
        ] => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "connect waited for its deadline"
    );
    io.close(h, 2).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 2 }]));
    drop(fillers);
}

/// One armed accept reports every connection; after `cancel_accept` it ends with `ECANCELED`
/// and `armed: false`, and later clients wait in the backlog.
fn accept_is_repeating_until_cancelled<D: TestDriver>() {
    let dir = TempDir::new("accept");
    let mut io = D::with_defaults();
    let (listener, addr) = common::listen(Kind::Unix, &dir, "acc");
    let l = io.adopt(listener.into());
    io.accept(l, 5).expect("accept");
    let clients: Vec<_> = (0..3).map(|_| common::connect(&addr)).collect();
    let mut conns = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while conns.len() < 3 {
        assert!(Instant::now() < deadline, "accepted only {}", conns.len());
        for ev in next(&mut io) {
            match ev {
                Event::Accepted { token: 5, conn } => conns.push(conn),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    io.cancel_accept(l);
    let mut ended = false;
    while !ended {
        for ev in next(&mut io) {
            match ev {
                Event::Accepted { token: 5, conn } => conns.push(conn),
                Event::AcceptFailed {
                    token: 5,
                    error,
                    armed: false,
                } => {
                    assert_eq!(error.0, libc::ECANCELED);
                    ended = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let late = common::connect(&addr);
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(Duration::from_millis(150)))
        .expect("wait");
    assert!(evs.is_empty(), "accepted after cancel: {evs:?}");
    // Re-arming picks up the client that waited in the backlog.
    io.accept(l, 6).expect("re-arm");
    assert!(matches!(
        next(&mut io)[..],
        [Event::Accepted { token: 6, .. }]
    ));
    drop((clients, late));
}

/// Data and the peer's EOF arriving together: a receive shorter than the buffer must not hide
/// the EOF behind it (the epoll backend treats a short receive as "drained").
fn short_data_then_eof_are_both_reported<D: TestDriver>() {
    let dir = TempDir::new("shorteof");
    let mut io = D::with_defaults();
    for round in 0..2 {
        let (mut client, h) = pair(&mut io, &dir);
        if round == 1 {
            // Let the driver see the socket idle first, so the data comes as a fresh edge.
            let mut evs = Vec::new();
            io.recv(h, 1).expect("recv");
            io.wait(&mut evs, Some(Duration::from_millis(50)))
                .expect("wait");
            assert!(evs.is_empty(), "unexpected {evs:?}");
        } else {
            io.recv(h, 1).expect("recv");
        }
        client.write_all(b"abc").expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        match next(&mut io).pop() {
            Some(Event::Received { token: 1, buf }) => {
                assert_eq!(io.data(&buf), b"abc");
                io.recycle(buf);
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
        io.recv(h, 2).expect("recv");
        assert!(
            matches!(next(&mut io)[..], [Event::Eof { token: 2 }]),
            "round {round}: EOF not reported"
        );
        io.close(h, 3).expect("close");
        assert!(matches!(next(&mut io)[..], [Event::Closed { token: 3 }]));
    }
}

/// TCP connects complete asynchronously: one to a live listener succeeds and carries data, one
/// to a closed port reports `ECONNREFUSED`.
fn tcp_connect_succeeds_or_is_refused<D: TestDriver>() {
    let dir = TempDir::new("tcpconn");
    let mut io = D::with_defaults();
    let (listener, addr) = common::listen(Kind::Tcp, &dir, "tcp");
    let h = io
        .connect(&addr, Duration::from_secs(5), 1)
        .expect("submit");
    assert!(matches!(
        next(&mut io)[..],
        [Event::Connected {
            token: 1,
            result: Ok(())
        }]
    ));
    let (mut server, _) = listener.accept().expect("accept");
    io.send(h, b"over tcp".to_vec(), 2).expect("send");
    assert!(matches!(
        next(&mut io)[..],
        [Event::Sent {
            token: 2,
            result: Ok(()),
            ..
        }]
    ));
    let mut got = [0u8; 8];
    server.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"over tcp");
    io.close(h, 3).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 3 }]));

    drop(listener);
    let h = io
        .connect(&addr, Duration::from_secs(5), 4)
        .expect("submit");
    match &next(&mut io)[..] {
        [
            Event::Connected {
                token: 4,
                result: Err(ConnectError::Os(e)),
            },
        ] => assert_eq!(e.0, libc::ECONNREFUSED),
        other => panic!("unexpected {other:?}"),
    }
    io.close(h, 5).expect("close");
    assert!(matches!(next(&mut io)[..], [Event::Closed { token: 5 }]));
}

/// Closes every handle in `hs`, waits (bounded) for their `Closed` events and checks that the
/// driver holds nothing afterwards.
fn close_all<D: TestDriver>(io: &mut D, hs: &[Handle]) {
    for (i, &h) in hs.iter().enumerate() {
        io.close(h, 100 + i as u64).expect("close");
    }
    let mut closed = 0;
    while closed < hs.len() {
        closed += next(io)
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count();
    }
    assert_eq!(io.ops_in_flight(), 0);
    assert_eq!(io.open_handles(), 0);
}

/// A test stream of `len` bytes: a pattern whose loss or reordering shows.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Two sockets stream 64 KiB each through a pool of two 64-byte buffers, and the test holds
/// both buffers before returning them, so receives keep finding the pool empty (`ENOBUFS` for
/// io_uring's multishot receive, which must be re-armed): every byte still arrives, in order,
/// followed by EOF, and nothing is left in flight after the close.
fn streams_survive_pool_exhaustion_in_order<D: TestDriver>() {
    const LEN: usize = 64 * 1024;
    let dir = TempDir::new("exhaust");
    let mut io = D::with_pool(2, 64);
    let (c1, h1) = pair(&mut io, &dir);
    let (c2, h2) = pair(&mut io, &dir);
    let want = [pattern(0x11, LEN), pattern(0x77, LEN)];
    let writers: Vec<_> = [c1, c2]
        .into_iter()
        .zip(want.clone())
        .map(|(mut c, data)| {
            std::thread::spawn(move || {
                for chunk in data.chunks(1000) {
                    c.write_all(chunk).expect("client write");
                }
                c.shutdown(std::net::Shutdown::Write).expect("shutdown");
                c
            })
        })
        .collect();
    let handles = [h1, h2];
    let mut got = [Vec::new(), Vec::new()];
    let mut eof = [false, false];
    let mut pending = [false, false];
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !eof.iter().all(|&e| e) {
        assert!(Instant::now() < deadline, "streams incomplete after 30 s");
        for i in 0..2 {
            if !pending[i] && !eof[i] {
                io.recv(handles[i], i as u64).expect("recv");
                pending[i] = true;
            }
        }
        let mut evs = Vec::new();
        io.wait(&mut evs, Some(Duration::from_millis(20)))
            .expect("wait");
        for ev in evs {
            match ev {
                Event::Received { token, buf } => {
                    let i = token as usize;
                    got[i].extend_from_slice(io.data(&buf));
                    pending[i] = false;
                    held.push(buf);
                }
                Event::Eof { token } => {
                    eof[token as usize] = true;
                    pending[token as usize] = false;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Give the buffers back only once both are lent out (or at the end).
        if held.len() >= 2 || eof.iter().all(|&e| e) {
            for b in held.drain(..) {
                io.recycle(b);
            }
        }
    }
    for (i, w) in writers.into_iter().enumerate() {
        drop(w.join().expect("writer"));
        assert!(got[i] == want[i], "stream {i}: bytes lost or reordered");
    }
    close_all(&mut io, &[h1, h2]);
}

/// Data (in several segments) and then EOF arriving while the caller has no receive pending
/// produce no event; later receives get all of it, in order, then EOF.
fn data_sent_while_no_recv_is_pending_is_kept_in_order<D: TestDriver>() {
    let dir = TempDir::new("paused");
    let mut io = D::with_pool(8, 16);
    let (mut client, h) = pair(&mut io, &dir);
    io.recv(h, 1).expect("recv");
    client.write_all(b"first").expect("write");
    match next(&mut io).pop() {
        Some(Event::Received { token: 1, buf }) => {
            assert_eq!(io.data(&buf), b"first");
            io.recycle(buf);
        }
        other => panic!("unexpected {other:?}"),
    }
    let want = pattern(0x5a, 200);
    for chunk in want.chunks(20) {
        client.write_all(chunk).expect("write");
        std::thread::sleep(Duration::from_millis(5));
    }
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(Duration::from_millis(200)))
        .expect("wait");
    assert!(evs.is_empty(), "event without a pending recv: {evs:?}");
    let mut got = Vec::new();
    for round in 0..1000 {
        io.recv(h, 2).expect("recv");
        match next(&mut io).pop() {
            Some(Event::Received { token: 2, buf }) => {
                got.extend_from_slice(io.data(&buf));
                io.recycle(buf);
            }
            Some(Event::Eof { token: 2 }) => break,
            other => panic!("round {round}: unexpected {other:?}"),
        }
    }
    assert!(got == want, "bytes lost or reordered: {got:?}");
    close_all(&mut io, &[h]);
}

/// A TCP peer that resets the connection while no receive is pending: the next receive
/// reports `ECONNRESET`, and the socket still closes cleanly.
fn reset_while_no_recv_is_pending_is_reported_by_the_next_recv<D: TestDriver>() {
    let dir = TempDir::new("reset");
    let mut io = D::with_defaults();
    let (l, addr) = common::listen(Kind::Tcp, &dir, "tcp");
    let mut c = common::connect(&addr);
    let (s, _) = l.accept().expect("accept");
    let h = io.adopt(s.into());
    io.recv(h, 1).expect("recv");
    c.write_all(b"abc").expect("write");
    match next(&mut io).pop() {
        Some(Event::Received { token: 1, buf }) => {
            assert_eq!(io.data(&buf), b"abc");
            io.recycle(buf);
        }
        other => panic!("unexpected {other:?}"),
    }
    c.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(c);
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(Duration::from_millis(100)))
        .expect("wait");
    assert!(evs.is_empty(), "event without a pending recv: {evs:?}");
    io.recv(h, 2).expect("recv");
    match &next(&mut io)[..] {
        [Event::RecvFailed { token: 2, error }] => assert_eq!(error.0, libc::ECONNRESET),
        other => panic!("unexpected {other:?}"),
    }
    close_all(&mut io, &[h]);
}
