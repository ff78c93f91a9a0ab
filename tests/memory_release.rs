//! After a burst, the relay gives memory back: once an event loop's last connection closes
//! after it had many open at once, it drops its spare buffers, returns the io_uring receive
//! pool's pages and trims the allocator's free heap (`src/relay/supervisor/loops.rs`).
//!
//! 96 clients at once stream 512 KiB each way through an `-e` → `-d` pair on io_uring (whose
//! 8 MiB receive pool then is all resident); a few seconds after the last one closed, each
//! end's resident set must have fallen by at least [`MIN_RETURNED_KIB`] from its peak. Before
//! the release was wired in, both ends stayed at their peak. (io_uring only: epoll's pool
//! lends at most a batch per turn, so there is little to give back.)

mod adv_common;
mod bin_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use adv_common::{backend_bin, backends, rss_kib, status_kib};
use bin_common::{ChainSpec, Fam, exchange_with, random_bytes, relay_is_ours};

/// Clients at once: above the loops' release threshold of 64 open connections.
const CLIENTS: usize = 96;
/// Bytes each client streams each way.
const PAYLOAD: usize = 512 * 1024;
/// The io_uring receive pool is 8 MiB per loop; at least this much must come back.
const MIN_RETURNED_KIB: u64 = 4 * 1024;

#[test]
fn a_burst_s_memory_is_given_back() {
    if !relay_is_ours() || !backends().contains(&"io_uring") {
        eprintln!("SKIP: needs our relay on io_uring");
        return;
    }
    let bin = backend_bin("io_uring");
    let mut spec = ChainSpec::new("memrel", bin.clone(), bin).all(Fam::Unix);
    spec.enc_flags = &["-n", "0"];
    spec.dec_flags = &["-n", "0"];
    let chain = spec.start();
    let front = chain.front().clone();
    let payload = Arc::new(random_bytes(0x3e3, PAYLOAD));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (front, payload) = (front.clone(), payload.clone());
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let x = exchange_with(&front, &payload, Duration::from_secs(60))
                        .map_err(|e| format!("client {i}: {e}"))?;
                    if x.received != *payload {
                        return Err(format!("client {i}: {} bytes back", x.received.len()));
                    }
                    Ok(())
                })
                .expect("spawn client")
        })
        .collect();
    for c in clients {
        c.join().expect("client thread").expect("echo");
    }
    for (pid, what) in [(chain.enc.pid(), "-e"), (chain.dec.pid(), "-d")] {
        let peak = status_kib(pid, "VmHWM").expect("VmHWM");
        // The loop notices its last connection close within a tick or two.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rss = rss_kib(pid).expect("VmRSS");
        while peak.saturating_sub(rss) < MIN_RETURNED_KIB && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            rss = rss_kib(pid).expect("VmRSS");
        }
        assert!(
            peak.saturating_sub(rss) >= MIN_RETURNED_KIB,
            "{what}: peak {peak} KiB, {rss} KiB 10 s after the burst; {}",
            chain.logs()
        );
    }
}
