//! Two drivers accepting on duplicates of one listening socket (what `--threads N` runs): when
//! one stops accepting at its share of `-n` while the other's accept is still armed, a client
//! arriving while the first one's cancel is in flight is accepted by the second, without a
//! later client arriving. On io_uring an accept waits on the listener as an *exclusive*
//! waiter, and a cancelled accept whose wait entry was not yet removed (its cancel completes
//! in the owning ring's task work, i.e. at that ring's next wait) took the wake-up and
//! dropped it, leaving the client in the backlog with the other ring's accept asleep.

mod io_common;
use io_common as common;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Kind, TempDir, TestDriver};
use spiperelay::io::{Driver, Event};

driver_tests!(a_cancel_in_flight_on_one_driver_does_not_hide_a_client_from_the_other);

/// Rounds, each with fresh drivers (so the first driver's accept is always the older waiter).
const ROUNDS: u64 = 10;
/// How long the second driver gets to accept the client.
const ACCEPT_LIMIT: Duration = Duration::from_secs(3);

/// Token of the first driver's accept, the second's, and the first's shutdown.
const A_ACCEPT: u64 = 1;
const B_ACCEPT: u64 = 2;
const A_SHUTDOWN: u64 = 3;

fn a_cancel_in_flight_on_one_driver_does_not_hide_a_client_from_the_other<D: TestDriver>() {
    let dir = TempDir::new("shared-accept");
    for round in 0..ROUNDS {
        let (listener, addr) = common::listen(Kind::Unix, &dir, &format!("acc{round}"));
        let dup = listener.try_clone().expect("dup listener");
        let mut a = D::with_defaults();
        let mut b = D::with_defaults();
        let la = a.adopt(listener.into());
        let lb = b.adopt(dup.into());
        // Arm the first driver's accept, then the second's: the first waits ahead of it.
        a.accept(la, A_ACCEPT).expect("accept a");
        pump(&mut a, Duration::from_millis(20), round, "a (arm)");
        b.accept(lb, B_ACCEPT).expect("accept b");
        pump(&mut b, Duration::from_millis(20), round, "b (arm)");

        // The first driver reaches its share: it cancels its accept, and its next wait returns
        // at once with an event already at hand (as an event loop under load does), so the
        // cancel is submitted but its completion work has not run yet.
        let (mine, _peer) = UnixStream::pair().expect("socketpair");
        let s = a.adopt(OwnedFd::from(mine));
        a.cancel_accept(la);
        a.shutdown_write(s, A_SHUTDOWN).expect("shutdown");
        let mut evs = Vec::new();
        a.wait(&mut evs, Some(Duration::ZERO)).expect("wait a");
        let mut a_ended = false;
        for ev in evs {
            match ev {
                Event::ShutdownDone { token, .. } if token == A_SHUTDOWN => {}
                // epoll ends a cancelled accept at once.
                ev if is_cancelled_end(&ev) => a_ended = true,
                other => panic!("{} round {round}: a: unexpected {other:?}", D::NAME),
            }
        }

        // A client arrives now. Both drivers keep running their loops; only the second may
        // (and must) accept it.
        let _client = common::connect(&addr);
        let deadline = Instant::now() + ACCEPT_LIMIT;
        let mut b_got = false;
        while !(b_got && a_ended) {
            assert!(
                Instant::now() < deadline,
                "{} round {round}: second driver accepted the client: {b_got}, first driver's \
                 cancelled accept ended: {a_ended} (a client left in the backlog with an accept \
                 armed is a lost wake-up)",
                D::NAME
            );
            for (io, who) in [(&mut a, "a"), (&mut b, "b")] {
                let mut evs = Vec::new();
                io.wait(&mut evs, Some(Duration::from_millis(10)))
                    .expect("wait");
                for ev in evs {
                    match (who, ev) {
                        ("b", Event::Accepted { token, .. }) if token == B_ACCEPT => b_got = true,
                        ("a", ev) if is_cancelled_end(&ev) => a_ended = true,
                        (who, other) => {
                            panic!("{} round {round}: {who}: unexpected {other:?}", D::NAME)
                        }
                    }
                }
            }
        }
    }
}

/// Waits on `io` for `t`, expecting no event.
fn pump<D: Driver>(io: &mut D, t: Duration, round: u64, what: &str) {
    let mut evs = Vec::new();
    io.wait(&mut evs, Some(t)).expect("wait");
    assert!(evs.is_empty(), "round {round}: {what}: unexpected {evs:?}");
}

/// Whether `ev` is the end of the first driver's accept after its cancel.
fn is_cancelled_end(ev: &Event) -> bool {
    matches!(ev, Event::AcceptFailed { token, error, armed: false }
        if *token == A_ACCEPT && error.0 == libc::ECANCELED)
}
