//! Returning the receive pool's memory after a burst ([`Driver::release_idle_buffers`]), on
//! both drivers: nothing is released while a receive is armed; once the last connection is
//! closed the io_uring pool's pages are released (and leave the resident set), the epoll
//! backend releases nothing; and data received afterwards, into the released buffers, is
//! intact.

mod io_common;
use io_common as common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Kind, TempDir, TestDriver};
use spiperelay::io::{Event, Handle};

driver_tests!(the_pool_is_released_only_when_idle_and_still_works_after);

/// Pool geometry: 64 buffers of 12 KiB, 768 KiB in all, a mapping size nothing else here has.
const BUFFERS: u16 = 64;
const BUF_SIZE: u32 = 12 * 1024;
const POOL_BYTES: usize = BUFFERS as usize * BUF_SIZE as usize;

/// Bytes each client sends: enough to cycle through every buffer of the pool several times.
const PAYLOAD: usize = 2 << 20;

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const CLOSE: u64 = 3;

fn the_pool_is_released_only_when_idle_and_still_works_after<D: TestDriver>() {
    let dir = TempDir::new("release");
    let mut io = D::with_pool(BUFFERS, BUF_SIZE);
    let (listener, addr) = common::listen(Kind::Unix, &dir, "rel");
    let l = io.adopt(listener.into());
    io.accept(l, ACCEPT).expect("accept");

    for round in 0..2u64 {
        let client = common::connect(&addr);
        let conn = accepted(&mut io, round);
        io.recv(conn, RECV).expect("recv");
        let payload = common::payload(PAYLOAD, round);
        let writer = {
            let payload = payload.clone();
            let mut w = client.try_clone().expect("clone client");
            std::thread::spawn(move || {
                w.write_all(&payload).expect("client write");
                w.shutdown(std::net::Shutdown::Write)
                    .expect("client shutdown");
            })
        };
        // The first receive is armed: nothing may be released while it is.
        assert_eq!(io.release_idle_buffers(), 0, "{} round {round}", D::NAME);
        let got = receive_all(&mut io, conn, round);
        writer.join().expect("writer");
        assert!(got == payload, "{} round {round}: data differs", D::NAME);

        // Closed and reaped: the pool is idle.
        io.close(conn, CLOSE).expect("close");
        wait_for(
            &mut io,
            round,
            |ev| matches!(ev, Event::Closed { token } if *token == CLOSE),
        );
        drop(client);
        let resident_before = io.pool_resident();
        let released = io.release_idle_buffers();
        let resident_after = io.pool_resident();
        eprintln!(
            "{} round {round}: released {released} B; pool resident {resident_before:?} -> \
             {resident_after:?} B",
            D::NAME
        );
        if D::NAME == "uring" {
            assert_eq!(released, POOL_BYTES, "round {round}");
            let (Some(before), Some(after)) = (resident_before, resident_after) else {
                panic!("round {round}: mincore said nothing about the pool");
            };
            // Every buffer was written at least once (the payload cycles through them all).
            assert!(
                before == POOL_BYTES && after == 0,
                "round {round}: pool resident {before} -> {after} B"
            );
        } else {
            assert_eq!(
                released, 0,
                "round {round}: the epoll backend keeps its pool"
            );
        }
    }
}

/// Waits (bounded) for the next [`Event::Accepted`] and returns its connection.
fn accepted<D: TestDriver>(io: &mut D, round: u64) -> Handle {
    let mut conn = None;
    wait_for(io, round, |ev| match ev {
        Event::Accepted { token, conn: c } if *token == ACCEPT => {
            conn = Some(*c);
            true
        }
        _ => false,
    });
    conn.expect("accepted")
}

/// Receives on `conn` until EOF (bounded), recycling each buffer at once.
fn receive_all<D: TestDriver>(io: &mut D, conn: Handle, round: u64) -> Vec<u8> {
    let mut got = Vec::with_capacity(PAYLOAD);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "round {round}: receive timed out"
        );
        let mut evs = Vec::new();
        io.wait(&mut evs, Some(Duration::from_millis(100)))
            .expect("wait");
        for ev in evs {
            match ev {
                Event::Received { token, buf } if token == RECV => {
                    got.extend_from_slice(io.data(&buf));
                    io.recycle(buf);
                    io.recv(conn, RECV).expect("recv again");
                }
                Event::Eof { token } if token == RECV => return got,
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
    }
}

/// Waits (bounded) for the next event, which must be the only one and accepted by `done`.
fn wait_for<D: TestDriver>(io: &mut D, round: u64, mut done: impl FnMut(&Event) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "round {round}: event not seen");
        let mut evs = Vec::new();
        io.wait(&mut evs, Some(Duration::from_millis(100)))
            .expect("wait");
        if let Some(ev) = evs.first() {
            assert!(
                done(ev) && evs.len() == 1,
                "round {round}: unexpected {evs:?}"
            );
            return;
        }
    }
}

/// [`AnyDriver`] passes the call on: a fresh io_uring driver (nothing received, nothing in
/// flight) releases its whole pool, an epoll one nothing.
#[test]
fn any_driver_passes_the_release_on() {
    use spiperelay::io::Driver;
    use spiperelay::io::any::AnyDriver;
    use spiperelay::io::epoll::Epoll;
    use spiperelay::io::uring::Uring;
    if spiperelay::io::uring::probe().is_ok() {
        let mut any = AnyDriver::Uring(<Uring as TestDriver>::with_pool(BUFFERS, BUF_SIZE));
        assert_eq!(any.release_idle_buffers(), POOL_BYTES);
    }
    let mut any = AnyDriver::Epoll(<Epoll as TestDriver>::with_pool(BUFFERS, BUF_SIZE));
    assert_eq!(any.release_idle_buffers(), 0);
}
