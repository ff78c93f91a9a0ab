//! A pool of ready handshake key pairs, refilled by a background thread, so
//! that a connection's handshake does not wait for its key generation.
//!
//! Key generation (`2^x mod p` for group 14, a base-point multiplication for X25519) is the
//! part of a handshake that does not depend on the peer, so a worker thread computes pairs ahead
//! of time and the event loop only pops one. Each pair is handed out exactly once (moved out of
//! the pool) and its private part is zeroised when the handshake drops it. When the pool is
//! empty (a burst larger than [`POOL_CAPACITY`], or the worker is stopped), [`KeyPool::take`]
//! computes the pair inline, so a connection never waits for the worker.
//!
//! This moves key generation off the connection's latency path, not off the CPU; the worker
//! runs at a lower scheduling priority so the event loop wins when both want a core.
//!
//! A process has one pool per kind, whatever its pipes and event loops: [`SharedPools`] starts
//! each kind's pool once and hands every event loop the same one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use crate::io::Errno;
use crate::os::random::fill_random;
use crate::proto::handshake::{KeyKind, KeyPair};

/// How many ready pairs the worker keeps: enough for a reconnect storm of a connection pool
/// (64–256 is the useful range; 128 group-14 pairs take ~37 KiB and ~15 ms to fill).
pub const POOL_CAPACITY: usize = 128;

/// X25519 pools wake their worker only once they are this fraction of their capacity short,
/// and it then refills them completely: one wake-up per `capacity / REFILL_FRACTION`
/// connections instead of a thread wake-up and two context switches per connection, which cost
/// about as much as the key generation itself (~20 µs). Group-14 pools wake it on every take: a
/// key generation there is ~140 µs, so the wake-up is cheap next to it, and refilling 16 at
/// once would be a 2 ms burst competing with the event loop.
const REFILL_FRACTION: usize = 8;

/// Fills a private value with random bytes; the OS RNG in production, a stub in tests.
pub type RandomSource = fn(&mut [u8; 32]) -> Result<(), Errno>;

/// Counters of a [`KeyPool`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pairs handed out from the pool.
    pub pooled: u64,
    /// Pairs computed inline because the pool was empty.
    pub inline: u64,
    /// Pairs the worker has generated.
    pub generated: u64,
}

struct Shared {
    ready: Mutex<Vec<KeyPair>>,
    /// Signalled when a pair is taken (the worker refills) or on shutdown.
    wake: Condvar,
    stop: std::sync::atomic::AtomicBool,
    pooled: AtomicU64,
    inline: AtomicU64,
    generated: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<KeyPair>> {
        // A panic elsewhere cannot leave a Vec of pairs inconsistent; keep going.
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The key-pair pools of a process, one per [`KeyKind`], shared by every event loop (each
/// holds a clone) and so by every pipe. Cloning shares; a pool lives while any holder does.
#[derive(Clone, Debug, Default)]
pub struct SharedPools(Arc<Mutex<Vec<Arc<KeyPool>>>>);

impl SharedPools {
    /// The pool of `kind`, started (with its worker thread) by the first caller that needs
    /// it. Never fails: a pool whose worker cannot start computes pairs inline.
    pub fn get_or_start(&self, kind: KeyKind) -> Arc<KeyPool> {
        let mut pools = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pools.iter().find(|p| p.kind() == kind) {
            return Arc::clone(p);
        }
        let pool = Arc::new(KeyPool::new(kind));
        pools.push(Arc::clone(&pool));
        pool
    }
}

/// Ready key pairs of one [`KeyKind`], refilled in the background. Dropping the pool stops and
/// joins the worker; pairs still in it are dropped (zeroised).
pub struct KeyPool {
    kind: KeyKind,
    capacity: usize,
    random: RandomSource,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("kind", &self.kind)
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn os_random(buf: &mut [u8; 32]) -> Result<(), Errno> {
    fill_random(buf)
}

impl KeyPool {
    /// A pool of [`POOL_CAPACITY`] pairs of `kind` drawn from the OS RNG, with its worker
    /// started (it fills the pool at once). If the thread cannot be spawned the pool stays
    /// empty and every [`KeyPool::take`] computes inline.
    pub fn new(kind: KeyKind) -> Self {
        Self::with_source(kind, POOL_CAPACITY, os_random, true)
    }

    /// A pool of `capacity` pairs whose private values come from `random`; the worker runs
    /// only if `start_worker` (tests use `false` to observe the inline fallback).
    pub fn with_source(
        kind: KeyKind,
        capacity: usize,
        random: RandomSource,
        start_worker: bool,
    ) -> Self {
        let shared = Arc::new(Shared {
            ready: Mutex::new(Vec::with_capacity(capacity)),
            wake: Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
            pooled: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            generated: AtomicU64::new(0),
        });
        let worker = if start_worker && capacity > 0 {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("spiperelay-keys".into())
                .spawn(move || refill(&shared, kind, capacity, random))
                .ok()
        } else {
            None
        };
        Self {
            kind,
            capacity,
            random,
            shared,
            worker,
        }
    }

    /// The kind of pairs this pool holds.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// A fresh key pair, never handed out before: from the pool if one is ready, else computed
    /// inline now. The worker is woken to refill the pool (for X25519 only once it is an eighth
    /// short, see [`REFILL_FRACTION`]).
    ///
    /// # Errors
    /// The [`Errno`] of the RNG when the pool is empty and the inline computation cannot draw
    /// its private value.
    pub fn take(&self) -> Result<KeyPair, Errno> {
        let (popped, left) = {
            let mut ready = self.shared.lock();
            let popped = ready.pop();
            (popped, ready.len())
        };
        if let Some(pair) = popped {
            self.shared.pooled.fetch_add(1, Relaxed);
            let batch = match self.kind {
                KeyKind::X25519 => (self.capacity / REFILL_FRACTION).max(1),
                KeyKind::Group14 => 1,
            };
            let low_water = self.capacity - batch;
            if left <= low_water {
                self.shared.wake.notify_one();
            }
            return Ok(pair);
        }
        self.shared.inline.fetch_add(1, Relaxed);
        self.shared.wake.notify_one();
        generate(self.kind, self.random)
    }

    /// Pairs ready now.
    pub fn ready(&self) -> usize {
        self.shared.lock().len()
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            pooled: self.shared.pooled.load(Relaxed),
            inline: self.shared.inline.load(Relaxed),
            generated: self.shared.generated.load(Relaxed),
        }
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        {
            // Hold the lock while notifying so the worker cannot miss the wake-up between its
            // stop check and its wait.
            let _guard = self.shared.lock();
            self.shared.wake.notify_all();
        }
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        // Remaining pairs drop here, zeroising their private parts.
        self.shared.lock().clear();
    }
}

/// One pair of `kind` with a private value from `random`.
fn generate(kind: KeyKind, random: RandomSource) -> Result<KeyPair, Errno> {
    let mut private = Zeroizing::new([0u8; 32]);
    random(&mut private)?;
    // The array is Copy: from_private wipes its own copy, Zeroizing wipes this one.
    Ok(KeyPair::from_private(kind, *private))
}

/// The worker: keeps the pool full, sleeping while it is.
fn refill(shared: &Shared, kind: KeyKind, capacity: usize, random: RandomSource) {
    crate::os::thread::make_background_thread();
    loop {
        {
            let mut ready = shared.lock();
            while ready.len() >= capacity && !shared.stop.load(Relaxed) {
                ready = shared
                    .wake
                    .wait(ready)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if shared.stop.load(Relaxed) {
            return;
        }
        // Generate outside the lock, so take() never waits for an exponentiation.
        let Ok(pair) = generate(kind, random) else {
            // The RNG failed: stop refilling; take() falls back to inline (and reports it).
            return;
        };
        shared.generated.fetch_add(1, Relaxed);
        shared.lock().push(pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    /// Bounded wait for `cond`, polling every 2 ms for at most 20 s.
    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        cond()
    }

    fn failing(_: &mut [u8; 32]) -> Result<(), Errno> {
        Err(Errno(libc::EIO))
    }

    #[test]
    fn fills_then_hands_each_pair_out_once() {
        for kind in [KeyKind::X25519, KeyKind::Group14] {
            let pool = KeyPool::with_source(kind, 8, os_random, true);
            assert!(
                wait_for(|| pool.ready() == 8),
                "{kind:?}: pool never filled"
            );
            let mut seen = HashSet::new();
            for _ in 0..24 {
                let pair = pool.take().expect("take");
                assert_eq!(pair.kind(), kind);
                assert!(
                    seen.insert(pair.public().to_vec()),
                    "{kind:?}: a key pair was handed out twice"
                );
            }
            let s = pool.stats();
            assert_eq!(s.pooled + s.inline, 24);
            assert!(s.pooled >= 8, "{s:?}");
        }
    }

    #[test]
    fn refills_after_a_burst() {
        let pool = KeyPool::with_source(KeyKind::X25519, 16, os_random, true);
        assert!(wait_for(|| pool.ready() == 16));
        let burst: Vec<_> = (0..16).map(|_| pool.take().expect("take")).collect();
        assert_eq!(burst.len(), 16);
        assert!(wait_for(|| pool.ready() == 16), "pool did not refill");
        let s = pool.stats();
        assert!(s.generated >= 32, "{s:?}");
        assert!(pool.ready() <= 16, "never above capacity");
    }

    #[test]
    fn worker_wakes_at_the_low_water_mark() {
        // Group 14: one take is enough to get the pair replaced.
        let pool = KeyPool::with_source(KeyKind::Group14, 4, os_random, true);
        assert!(wait_for(|| pool.ready() == 4));
        drop(pool.take().expect("take"));
        assert!(wait_for(|| pool.ready() == 4), "group 14: not replaced");
        // X25519, capacity 16: refilled in batches of 2; taking down to 14 wakes the worker,
        // which fills the pool completely.
        let pool = KeyPool::with_source(KeyKind::X25519, 16, os_random, true);
        assert!(wait_for(|| pool.ready() == 16));
        let taken: Vec<_> = (0..2).map(|_| pool.take().expect("take")).collect();
        assert_eq!(taken.len(), 2);
        assert!(wait_for(|| pool.ready() == 16), "x25519: not refilled");
        assert!(pool.stats().generated >= 18, "{:?}", pool.stats());
    }

    #[test]
    fn empty_pool_computes_inline() {
        let pool = KeyPool::with_source(KeyKind::Group14, 4, os_random, false);
        assert_eq!(pool.ready(), 0);
        let a = pool.take().expect("inline pair");
        let b = pool.take().expect("inline pair");
        assert_ne!(a.public(), b.public());
        assert_eq!(
            pool.stats(),
            PoolStats {
                pooled: 0,
                inline: 2,
                generated: 0
            }
        );
        // The inline pair is a real one: its public value is 2^x mod p for its private value.
        let KeyPair::Group14(p) = a else {
            panic!("wrong kind")
        };
        assert!(crate::proto::dh::is_below_p(p.public()));
    }

    #[test]
    fn rng_failure_is_reported_not_hidden() {
        let pool = KeyPool::with_source(KeyKind::X25519, 4, failing, true);
        assert_eq!(pool.take().map(|_| ()), Err(Errno(libc::EIO)));
        // Dropping joins the (stopped) worker without hanging.
        drop(pool);
    }

    #[test]
    fn drop_stops_a_waiting_worker() {
        let pool = KeyPool::with_source(KeyKind::X25519, 2, os_random, true);
        assert!(wait_for(|| pool.ready() == 2));
        drop(pool); // must return: the worker is woken and joined
    }
}
