//! Re-arming an accept while the cancel of the previous one is still in flight (the relay does
//! this when a slot frees right after it stopped accepting at its `-n` limit), on both
//! drivers: only the newest accept delivers connections, the cancelled one ends with
//! `ECANCELED`, and clients that wait in the backlog meanwhile are all accepted without a
//! later client arriving.

mod io_common;
use io_common as common;

use std::time::{Duration, Instant};

use common::{Kind, TempDir, TestDriver};
use spiperelay::io::Event;

driver_tests!(rearm_while_the_cancel_is_in_flight_keeps_one_accept);

fn rearm_while_the_cancel_is_in_flight_keeps_one_accept<D: TestDriver>() {
    let dir = TempDir::new("rearm");
    let mut io = D::with_defaults();
    let (listener, addr) = common::listen(Kind::Unix, &dir, "acc");
    let l = io.adopt(listener.into());
    for round in 0..20u64 {
        // Tokens of this round: the accept, the one replaced before it ran, the newest.
        let (old, replaced, new) = (round * 3 + 1, round * 3 + 2, round * 3 + 3);
        io.accept(l, old).expect("accept");
        let _first = common::connect(&addr);
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got < 1 {
            assert!(
                Instant::now() < deadline,
                "round {round}: first client not accepted"
            );
            let mut evs = Vec::new();
            io.wait(&mut evs, Some(Duration::from_millis(100)))
                .expect("wait");
            for ev in evs {
                match ev {
                    Event::Accepted { token, .. } if token == old => got += 1,
                    other => panic!("round {round}: unexpected {other:?}"),
                }
            }
        }
        // Stop at the limit and re-arm twice in the same turn, before the cancel completes.
        io.cancel_accept(l);
        io.accept(l, replaced).expect("re-arm");
        io.accept(l, new).expect("re-arm again");
        let waiting: Vec<_> = (0..3).map(|_| common::connect(&addr)).collect();
        let (mut accepted, mut old_ended) = (0, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted < waiting.len() || !old_ended {
            assert!(
                Instant::now() < deadline,
                "round {round}: {accepted} of {} waiting clients accepted, old accept ended: \
                 {old_ended} (a lost wake-up leaves them in the backlog)",
                waiting.len()
            );
            let mut evs = Vec::new();
            io.wait(&mut evs, Some(Duration::from_millis(100)))
                .expect("wait");
            for ev in evs {
                match ev {
                    // Taken off the backlog by the old accept before its cancel took effect.
                    Event::Accepted { token, .. } if token == old || token == new => accepted += 1,
                    Event::AcceptFailed {
                        token,
                        error,
                        armed: false,
                    } if (token == old || token == replaced) && error.0 == libc::ECANCELED => {
                        old_ended |= token == old;
                    }
                    other => panic!("round {round}: unexpected {other:?}"),
                }
            }
        }
        // The newest accept is the one left armed: cancel it for the next round.
        io.cancel_accept(l);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ended = false;
        while !ended {
            assert!(
                Instant::now() < deadline,
                "round {round}: cancel never ended"
            );
            let mut evs = Vec::new();
            io.wait(&mut evs, Some(Duration::from_millis(100)))
                .expect("wait");
            for ev in evs {
                match ev {
                    Event::AcceptFailed {
                        token,
                        armed: false,
                        ..
                    } if token == new => ended = true,
                    other => panic!("round {round}: unexpected {other:?}"),
                }
            }
        }
    }
}
