//! Bursts of clients past the `-n` limit, on both io backends: every client is served, none
//! waits for a later arrival (reliability catalogue 2.1 and 2.10; the `-d` end once stopped
//! accepting its waiting clients after a burst at the limit on io_uring).
//!
//! Each burst connects `CLIENTS` clients at once to a `-e` → `-d` → echo chain with both ends at
//! `-n LIMIT`; each echoes `PAYLOAD` bytes. Both ends give the handshake a long `-o`, so a client
//! left in a listen queue shows up as a burst that does not finish within `BURST_LIMIT`, not as a
//! handshake timeout. `SPIPERELAY_ACCEPT_BURSTS` and `SPIPERELAY_ACCEPT_PAYLOAD` change the
//! number of bursts and the bytes per client; `SPIPERELAY_HEAVY=1` runs the reported case (40
//! bursts of 256 clients, 1 MiB each).

mod adv_common;
mod bin_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use adv_common::{backend_bin, backends, env_usize, fd_count, heavy, settle_fds};
use bin_common::{ChainSpec, Fam, exchange_with, random_bytes};

/// Clients connected at once in each burst.
const CLIENTS: usize = 256;
/// The `-n` of both ends (spiped's default).
const LIMIT: &str = "100";
/// No client may take longer than this: the whole burst moves a few hundred MiB at most.
const BURST_LIMIT: Duration = Duration::from_secs(60);

fn bursts_past_limit(backend: &str, fam: Fam) {
    let (bursts, payload_len) = if heavy() {
        (38, 1 << 20)
    } else {
        (
            env_usize("SPIPERELAY_ACCEPT_BURSTS", 10),
            env_usize("SPIPERELAY_ACCEPT_PAYLOAD", 64 * 1024),
        )
    };
    let bin = backend_bin(backend);
    let flags = ["-n", LIMIT, "-o", "120"];
    let mut spec = ChainSpec::new("acc", bin.clone(), bin).all(fam);
    spec.enc_flags = &flags;
    spec.dec_flags = &flags;
    let chain = spec.start();
    let front = chain.front().clone();
    // One exchange first: the event loops open their own descriptors (io_uring, eventfds)
    // after the listening socket exists, so the count at rest is taken once they serve.
    exchange_with(&front, b"warm-up", BURST_LIMIT).expect("warm-up exchange");
    let base_fds = (
        fd_count(chain.enc.pid()).unwrap_or(0),
        fd_count(chain.dec.pid()).unwrap_or(0),
    );
    let mut slowest = Duration::ZERO;
    for burst in 0..bursts {
        let start = Instant::now();
        let payload = Arc::new(random_bytes(0xacc0 + burst as u64, payload_len));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (front, payload) = (front.clone(), payload.clone());
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let x = exchange_with(&front, &payload, BURST_LIMIT)
                            .map_err(|e| format!("client {i}: connect: {e}"))?;
                        if !x.end.is_eof() || x.received.len() != payload.len() {
                            return Err(format!(
                                "client {i}: {} of {} bytes back, end {:?}, after {:?}",
                                x.received.len(),
                                payload.len(),
                                x.end,
                                x.elapsed
                            ));
                        }
                        if x.received != *payload {
                            return Err(format!("client {i}: wrong bytes"));
                        }
                        Ok(x.elapsed)
                    })
                    .expect("spawn client")
            })
            .collect();
        let mut failures = Vec::new();
        for c in clients {
            match c.join() {
                Ok(Ok(t)) => slowest = slowest.max(t),
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push("client panicked".into()),
            }
        }
        let took = start.elapsed();
        assert!(
            failures.is_empty(),
            "{backend}/{fam:?}, burst {burst}: {} of {CLIENTS} clients not served ({:?}); \
             first: {}; {}",
            failures.len(),
            took,
            failures[0],
            adv_common::saved_logs(&chain, &format!("accept-{backend}-{fam:?}"))
        );
        assert!(
            took < BURST_LIMIT,
            "{backend}/{fam:?}, burst {burst} took {took:?}: clients waited in a listen queue; {}",
            adv_common::saved_logs(&chain, &format!("accept-{backend}-{fam:?}"))
        );
    }
    // Every connection was released: both ends are back to their descriptors at rest.
    for (pid, base, what) in [
        (chain.enc.pid(), base_fds.0, "-e"),
        (chain.dec.pid(), base_fds.1, "-d"),
    ] {
        let n = settle_fds(pid, base, Duration::from_secs(10));
        assert!(
            n <= base,
            "{backend}: {what} holds {n} descriptors, {base} before"
        );
    }
    eprintln!(
        "{backend}/{fam:?}: {bursts} bursts of {CLIENTS} × {payload_len} B through -n {LIMIT}, \
         slowest client {slowest:?}"
    );
}

#[test]
fn bursts_past_the_connection_limit_are_all_served_tcp() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::V4);
    }
}

#[test]
fn bursts_past_the_connection_limit_are_all_served_unix() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::Unix);
    }
}
