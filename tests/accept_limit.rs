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
//!
//! The same with both ends at `--threads 2`: each event loop accepts on a duplicate of the one
//! listening socket and stops at its share of `-n` (50), so loops stop and start accepting
//! while the other's accept is armed. `SPIPERELAY_ACCEPT_THREAD_BURSTS` changes the number of
//! bursts (default 4; `SPIPERELAY_HEAVY=1`: 30). `SPIPERELAY_ACCEPT_VERBOSE=1` prints each
//! burst's duration. A cancelled io_uring accept once took a
//! client's wake-up from the other loop's accept; `tests/io_accept_shared.rs` reproduces that
//! deterministically. Here such a client is still served once a connection of the stopped loop
//! ends, so these bursts check that every client is served in bounded time, not the wake-up.

mod adv_common;
mod bin_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use adv_common::{backend_bin, backends, env_usize, fd_count, heavy, settle_fds};
use bin_common::{ChainSpec, Fam, exchange_with, random_bytes, relay_is_ours};

/// Clients connected at once in each burst.
const CLIENTS: usize = 256;
/// The `-n` of both ends (spiped's default).
const LIMIT: &str = "100";
/// No client may take longer than this: the whole burst moves a few hundred MiB at most.
const BURST_LIMIT: Duration = Duration::from_secs(60);

/// Bursts with both ends at `--threads threads`, their number from `bursts_var` (default
/// `default_bursts`, or `heavy_bursts` under `SPIPERELAY_HEAVY=1`).
struct Threads {
    threads: &'static str,
    bursts_var: &'static str,
    default_bursts: usize,
    heavy_bursts: usize,
}

/// One event loop per end, the reported case.
const ONE_LOOP: Threads = Threads {
    threads: "1",
    bursts_var: "SPIPERELAY_ACCEPT_BURSTS",
    default_bursts: 10,
    heavy_bursts: 38,
};

/// Two event loops per end, each at `-n 50`.
const TWO_LOOPS: Threads = Threads {
    threads: "2",
    bursts_var: "SPIPERELAY_ACCEPT_THREAD_BURSTS",
    default_bursts: 4,
    heavy_bursts: 30,
};

fn bursts_past_limit(backend: &str, fam: Fam, loops: &Threads) {
    let (bursts, payload_len) = if heavy() {
        (loops.heavy_bursts, 1 << 20)
    } else {
        (
            env_usize(loops.bursts_var, loops.default_bursts),
            env_usize("SPIPERELAY_ACCEPT_PAYLOAD", 64 * 1024),
        )
    };
    let bin = backend_bin(backend);
    let threads = loops.threads;
    let mut flags = vec!["-n", LIMIT, "-o", "120"];
    if threads != "1" {
        // A spiperelay option: spiped (SPIPERELAY_TEST_BIN) has one loop only.
        if !relay_is_ours() {
            eprintln!("SKIP: --threads is a spiperelay option");
            return;
        }
        flags.extend(["--threads", threads]);
    }
    let mut spec = ChainSpec::new("acc", bin.clone(), bin).all(fam);
    spec.enc_flags = &flags;
    spec.dec_flags = &flags;
    let chain = spec.start();
    let front = chain.front().clone();
    // One exchange first: the event loops open their own descriptors (io_uring, eventfds)
    // after the listening socket exists, so the count at rest is taken once they serve.
    exchange_with(&front, b"warm-up", BURST_LIMIT).expect("warm-up exchange");
    if threads != "1" {
        // The exchange reached one loop: wait for the other's thread too, then let it open its
        // descriptors.
        for pid in [chain.enc.pid(), chain.dec.pid()] {
            let up = bin_common::wait_until(Duration::from_secs(10), || loop_threads(pid) >= 1);
            assert!(up, "{backend}: pid {pid} has no second event loop");
        }
        thread::sleep(Duration::from_millis(300));
    }
    let base_fds = (
        fd_count(chain.enc.pid()).unwrap_or(0),
        fd_count(chain.dec.pid()).unwrap_or(0),
    );
    let mut slowest = Duration::ZERO;
    let mut burst_times = Vec::with_capacity(bursts);
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
        burst_times.push(took);
        if std::env::var_os("SPIPERELAY_ACCEPT_VERBOSE").is_some() {
            eprintln!("{backend}/{fam:?}/threads {threads}, burst {burst}: {took:?}");
        }
        assert!(
            failures.is_empty(),
            "{backend}/{fam:?}/threads {threads}, burst {burst}: {} of {CLIENTS} clients not \
             served ({:?}); first: {}; {}",
            failures.len(),
            took,
            failures[0],
            adv_common::saved_logs(&chain, &format!("accept-{backend}-{fam:?}"))
        );
        assert!(
            took < BURST_LIMIT,
            "{backend}/{fam:?}/threads {threads}, burst {burst} took {took:?}: clients waited in a \
             listen queue; {}",
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
    burst_times.sort();
    let median = burst_times.get(burst_times.len() / 2).copied();
    let longest = burst_times.last().copied();
    eprintln!(
        "{backend}/{fam:?}: {bursts} bursts of {CLIENTS} × {payload_len} B through -n {LIMIT} \
         --threads {threads}, slowest client {slowest:?}, burst median {median:?}, longest \
         {longest:?}"
    );
}

/// Event-loop threads of `pid` besides its main thread (named `relay-loopN`).
fn loop_threads(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|n| n.starts_with("relay-loop"))
        .count()
}

#[test]
fn bursts_past_the_connection_limit_are_all_served_tcp() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::V4, &ONE_LOOP);
    }
}

#[test]
fn bursts_past_the_connection_limit_are_all_served_unix() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::Unix, &ONE_LOOP);
    }
}

#[test]
fn bursts_past_the_connection_limit_with_two_loops_are_all_served_tcp() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::V4, &TWO_LOOPS);
    }
}

#[test]
fn bursts_past_the_connection_limit_with_two_loops_are_all_served_unix() {
    for backend in backends() {
        bursts_past_limit(backend, Fam::Unix, &TWO_LOOPS);
    }
}

/// Clients held open at once, exactly the `-n` of a `--threads 2` end.
const HELD: usize = 4;

/// `HELD` clients connect at the same moment to an end at `-n 4 --threads 2` (each loop's
/// share: 2) and each must get its echo while all of them stay connected: one loop must not
/// take more clients than its share and leave them waiting for its own connections to end
/// while the other loop has room.
fn held_clients_fill_both_loops(backend: &str) {
    if !relay_is_ours() {
        eprintln!("SKIP: --threads is a spiperelay option");
        return;
    }
    use std::io::{Read, Write};
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rounds = env_usize("SPIPERELAY_ACCEPT_HELD_ROUNDS", 10);
    let bin = backend_bin(backend);
    let flags = ["--threads", "2", "-n", "4"];
    let mut spec = ChainSpec::new("held", bin.clone(), bin);
    spec.enc_flags = &flags;
    let chain = spec.start();
    let front = chain.front().clone();
    for round in 0..rounds {
        let start = Arc::new(Barrier::new(HELD));
        let echoed = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..HELD)
            .map(|i| {
                let (front, start, echoed) = (front.clone(), start.clone(), echoed.clone());
                thread::spawn(move || -> Result<(), String> {
                    start.wait();
                    let mut c = front.connect().map_err(|e| format!("client {i}: {e}"))?;
                    c.set_read_timeout(Duration::from_secs(10))
                        .map_err(|e| format!("client {i}: {e}"))?;
                    c.write_all(&[i as u8])
                        .map_err(|e| format!("client {i}: write: {e}"))?;
                    let mut b = [0u8; 1];
                    let got = c.read_exact(&mut b);
                    echoed.fetch_add(1, Ordering::SeqCst);
                    got.map_err(|e| format!("client {i}: no echo within 10 s: {e}"))?;
                    // Hold the connection until every client has had its answer (bounded).
                    let deadline = Instant::now() + Duration::from_secs(15);
                    while echoed.load(Ordering::SeqCst) < HELD && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Ok(())
                })
            })
            .collect();
        let failures: Vec<String> = clients
            .into_iter()
            .filter_map(|c| match c.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("client panicked".into()),
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{backend}, round {round}: {failures:?}; {}",
            adv_common::saved_logs(&chain, &format!("held-{backend}"))
        );
    }
    eprintln!("{backend}: {rounds} rounds of {HELD} held clients through -n 4 --threads 2");
}

#[test]
fn held_clients_at_the_limit_are_spread_over_both_loops() {
    for backend in backends() {
        held_clients_fill_both_loops(backend);
    }
}
