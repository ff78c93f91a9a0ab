//! Metrics: counters kept by each event loop, snapshots of them handed to the scrape thread,
//! and their sum over the process.
//!
//! Cost model: the data path only adds to plain integers owned by the event loop that carries
//! the connection ([`PipeCounters`] beside each pipe, [`ConnMeter`] beside each connection):
//! no lock, no atomic, no allocation per packet. Each loop copies its counters into a
//! [`LoopSnapshot`] at most every [`PUBLISH_INTERVAL`] (checked once per loop turn with the
//! turn's clock reading, [`Publisher::due`]) and hands the copy to its [`Publisher`], whose
//! mutex is taken only then and by a scrape. A scrape ([`Board::collect`]) sums the latest
//! copy of every loop by pipe name (with `--threads` every loop serves every pipe), reads the
//! per-key table from each pipe's [`KeyRing`], and adds the process-wide values: build and
//! io backend, reloads, key-pair pools. [`encode`] turns the sum into the Prometheus text
//! format; [`http`] serves it.
//!
//! A loop turns at least every 250 ms (the daemon's tick), so a scrape sees every event that
//! happened more than one tick plus [`PUBLISH_INTERVAL`] ago.
//!
//! Labels: `pipe` is the pipe's name; `reason` is a [`DropReason`](super::engine::DropReason)
//! kind label (its `kind()`), or [`CLEAN`] for a connection whose directions both ended
//! normally; `side` is `plaintext` or `encrypted` ([`SIDES`]); `fingerprint` is a key's
//! [`Key::fingerprint`](crate::proto::key::Key::fingerprint), never key bytes.

pub mod encode;
pub mod http;

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::cli::Mode;

use super::conn::DropReason;
use super::keys::{KeyRing, KeyStatus, RingMode};

/// The shortest time between two snapshots of one event loop ([`Publisher::due`]).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The `reason` label of a connection that ended normally (both directions reached EOF).
pub const CLEAN: &str = "clean";

/// The `reason` labels of closed connections, exported (at 0) before they first occur:
/// [`CLEAN`] and every [`DropReason::KINDS`] label, in that order. A label not listed there is
/// still counted under its own name from its first occurrence on.
pub fn close_reasons() -> Vec<&'static str> {
    std::iter::once(CLEAN)
        .chain(DropReason::KINDS.iter().copied())
        .collect()
}

/// The `reason` labels of handshake failures exported (at 0) before they first occur: the
/// causes that only a handshake has. A connection dropped for another cause while its handshake
/// ran (a reset, say) is counted under that cause's label from its first occurrence on.
pub const HANDSHAKE_FAILURE_REASONS: [&str; 13] = [
    "bad_mac",
    "dh_out_of_range",
    "pfs_required",
    "peer_uses_x25519",
    "peer_not_x25519",
    "bad_x25519_padding",
    "zero_shared_secret",
    "handshake_failed",
    "handshake_timeout",
    "handshake_eof",
    "handshake_rejected",
    "handshake_evicted",
    "key_removed",
];

/// The `side` labels, by side index (the engine's `Side::index()`: 0 the plaintext socket,
/// 1 the encrypted one).
pub const SIDES: [&str; 2] = ["plaintext", "encrypted"];

/// Upper bounds of the duration histograms' buckets, in nanoseconds: 100 µs to 10 s in steps
/// of 1, 2.5, 5 (handshakes take about 1 ms with X25519 and a few ms with group 14; a target
/// connect on loopback or a Unix socket well under 1 ms). A last bucket, `+Inf`, follows.
pub const DURATION_BUCKETS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram of durations with the fixed buckets [`DURATION_BUCKETS_NANOS`], in plain
/// integers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; DURATION_BUCKETS_NANOS.len() + 1],
    count: u64,
    /// The sum of all observations, in nanoseconds (saturating).
    sum_nanos: u64,
}

impl Histogram {
    /// Counts one observation of `d`.
    pub fn observe(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = DURATION_BUCKETS_NANOS
            .iter()
            .position(|&upper| nanos <= upper)
            .unwrap_or(DURATION_BUCKETS_NANOS.len());
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// `(upper bound in seconds, observations in this bucket)` for each bucket but `+Inf`
    /// (whose count is [`Histogram::count`] minus the rest), as the encoder wants them.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        DURATION_BUCKETS_NANOS
            .iter()
            .zip(self.buckets.iter())
            .map(|(&upper, &n)| (upper as f64 / 1e9, n))
            .collect()
    }
}

/// Counts by `reason` label, seeded with a fixed list so that those labels are exported at 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonCounts(Vec<(&'static str, u64)>);

impl ReasonCounts {
    /// Every label of `labels` at 0.
    pub fn seeded(labels: &[&'static str]) -> Self {
        ReasonCounts(labels.iter().map(|&l| (l, 0)).collect())
    }

    /// Adds one under `label` (a new label is added to the list).
    pub fn add(&mut self, label: &'static str) {
        match self.0.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => self.0.push((label, 1)),
        }
    }

    /// The count under `label` (0 if it never occurred).
    pub fn get(&self, label: &str) -> u64 {
        self.0
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |&(_, n)| n)
    }

    /// The sum over all labels.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&(_, n)| n).sum()
    }

    /// Adds `other`'s counts to these, label by label.
    pub fn merge(&mut self, other: &ReasonCounts) {
        for &(label, n) in &other.0 {
            match self.0.iter_mut().find(|(l, _)| *l == label) {
                Some((_, m)) => *m += n,
                None => self.0.push((label, n)),
            }
        }
    }

    /// `(label, count)` pairs, seeded labels first in their order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }
}

/// What one pipe has done on one event loop. Kept by the loop beside the pipe and only ever
/// touched by that loop; every method is a few integer additions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipeCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed, by reason ([`close_reasons`]).
    pub closed: ReasonCounts,
    /// Connections closed while their handshake ran, by reason
    /// ([`HANDSHAKE_FAILURE_REASONS`]); also counted in `closed`.
    pub handshake_failures: ReasonCounts,
    /// Durations of completed handshakes, from the handshake's start (after the target connect
    /// with `-e`, at accept with `-d`) to its last byte sent and key claimed. A handshake whose
    /// key was removed from the ring meanwhile is timed too (the protocol exchange completed),
    /// and its connection, dropped, is also a `key_removed` handshake failure.
    pub handshake_duration: Histogram,
    /// Durations of successful target connects, from the connect's submission to its
    /// completion (one per address tried that succeeded).
    pub target_connect_duration: Histogram,
    /// Bytes received on each side, by side index ([`SIDES`]).
    pub received_bytes: [u64; 2],
    /// Bytes sent on each side, by side index ([`SIDES`]).
    pub sent_bytes: [u64; 2],
    /// Times the `-n` limit was reached and accepting paused (clients then wait in the kernel
    /// backlog, as with spiped: they are not refused).
    pub limit_reached: u64,
    /// Accept back-offs: times accepting paused for want of file descriptors (`EMFILE`,
    /// `ENFILE`) or after another accept error.
    pub accept_backoffs: u64,
}

impl Default for PipeCounters {
    fn default() -> Self {
        PipeCounters {
            accepted: 0,
            closed: ReasonCounts::seeded(&close_reasons()),
            handshake_failures: ReasonCounts::seeded(&HANDSHAKE_FAILURE_REASONS),
            handshake_duration: Histogram::default(),
            target_connect_duration: Histogram::default(),
            received_bytes: [0; 2],
            sent_bytes: [0; 2],
            limit_reached: 0,
            accept_backoffs: 0,
        }
    }
}

impl PipeCounters {
    /// A connection was accepted.
    pub fn on_accepted(&mut self) {
        self.accepted += 1;
    }

    /// A target connect succeeded after `d` ([`ConnMeter::connect_finished`]).
    pub fn on_target_connected(&mut self, d: Duration) {
        self.target_connect_duration.observe(d);
    }

    /// A handshake completed after `d` ([`ConnMeter::handshake_finished`]).
    pub fn on_handshake_done(&mut self, d: Duration) {
        self.handshake_duration.observe(d);
    }

    /// `n` bytes were received on side `side` (0 plaintext, 1 encrypted; other values are
    /// ignored).
    pub fn on_received(&mut self, side: usize, n: usize) {
        if let Some(c) = self.received_bytes.get_mut(side) {
            *c += n as u64;
        }
    }

    /// `n` bytes were sent on side `side` (0 plaintext, 1 encrypted; other values are ignored).
    pub fn on_sent(&mut self, side: usize, n: usize) {
        if let Some(c) = self.sent_bytes.get_mut(side) {
            *c += n as u64;
        }
    }

    /// A connection closed: `reason` is its `DropReason::kind()`, `None` for a clean close;
    /// `in_handshake` whether its handshake had started and not finished
    /// ([`ConnMeter::in_handshake`]), which also counts it as a handshake failure.
    pub fn on_closed(&mut self, reason: Option<&'static str>, in_handshake: bool) {
        let label = reason.unwrap_or(CLEAN);
        self.closed.add(label);
        if in_handshake && reason.is_some() {
            self.handshake_failures.add(label);
        }
    }

    /// Accepting paused at the `-n` limit.
    pub fn on_limit_reached(&mut self) {
        self.limit_reached += 1;
    }

    /// Accepting paused for a back-off.
    pub fn on_accept_backoff(&mut self) {
        self.accept_backoffs += 1;
    }

    /// Adds `other` (the same pipe on another loop) to these.
    pub fn merge(&mut self, other: &PipeCounters) {
        self.accepted += other.accepted;
        self.closed.merge(&other.closed);
        self.handshake_failures.merge(&other.handshake_failures);
        self.handshake_duration.merge(&other.handshake_duration);
        self.target_connect_duration
            .merge(&other.target_connect_duration);
        for i in 0..2 {
            self.received_bytes[i] += other.received_bytes[i];
            self.sent_bytes[i] += other.sent_bytes[i];
        }
        self.limit_reached += other.limit_reached;
        self.accept_backoffs += other.accept_backoffs;
    }
}

/// What one connection has done, kept by its event loop beside it: the start times of its
/// phases (for the duration histograms) and its byte counts and key (for the audit log).
#[derive(Clone, Debug)]
pub struct ConnMeter {
    accepted_at: Instant,
    accepted_wall: SystemTime,
    connect_started: Option<Instant>,
    handshake_started: Option<Instant>,
    handshake_done: bool,
    received: [u64; 2],
    sent: [u64; 2],
    fingerprint: Option<Box<str>>,
}

impl ConnMeter {
    /// A connection accepted at `now` (the loop's clock) and `wall` (the system clock, for
    /// the audit log).
    pub fn new(now: Instant, wall: SystemTime) -> Self {
        ConnMeter {
            accepted_at: now,
            accepted_wall: wall,
            connect_started: None,
            handshake_started: None,
            handshake_done: false,
            received: [0; 2],
            sent: [0; 2],
            fingerprint: None,
        }
    }

    /// A target connect was submitted at `now`.
    pub fn connect_started(&mut self, now: Instant) {
        self.connect_started = Some(now);
    }

    /// The target connect succeeded at `now`: how long it took, `None` if no start was seen.
    pub fn connect_finished(&mut self, now: Instant) -> Option<Duration> {
        self.connect_started
            .take()
            .map(|t| now.saturating_duration_since(t))
    }

    /// The handshake started at `now` (later calls are ignored).
    pub fn handshake_started(&mut self, now: Instant) {
        if self.handshake_started.is_none() {
            self.handshake_started = Some(now);
        }
    }

    /// The handshake completed at `now` with the key named `fingerprint`: how long it took,
    /// `None` if no start was seen. With `fingerprint` `None` (the key was removed from the
    /// ring while the handshake ran, so the connection is dropped) the duration is still
    /// returned but the connection stays [`ConnMeter::in_handshake`], so its close counts as a
    /// failed handshake.
    pub fn handshake_finished(
        &mut self,
        now: Instant,
        fingerprint: Option<&str>,
    ) -> Option<Duration> {
        self.handshake_done = fingerprint.is_some();
        self.fingerprint = fingerprint.map(Box::from);
        self.handshake_started
            .map(|t| now.saturating_duration_since(t))
    }

    /// Whether the handshake has started and not completed.
    pub fn in_handshake(&self) -> bool {
        self.handshake_started.is_some() && !self.handshake_done
    }

    /// `n` bytes were received on side `side` (0 plaintext, 1 encrypted).
    pub fn on_received(&mut self, side: usize, n: usize) {
        if let Some(c) = self.received.get_mut(side) {
            *c += n as u64;
        }
    }

    /// `n` bytes were sent on side `side` (0 plaintext, 1 encrypted).
    pub fn on_sent(&mut self, side: usize, n: usize) {
        if let Some(c) = self.sent.get_mut(side) {
            *c += n as u64;
        }
    }

    /// Bytes received on each side, by side index.
    pub fn received(&self) -> [u64; 2] {
        self.received
    }

    /// Bytes sent on each side, by side index.
    pub fn sent(&self) -> [u64; 2] {
        self.sent
    }

    /// The fingerprint of the connection's key, once its handshake completed.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// When the connection was accepted (system clock).
    pub fn accepted_wall(&self) -> SystemTime {
        self.accepted_wall
    }

    /// How long the connection has lived at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.accepted_at)
    }
}

/// One pipe in a [`LoopSnapshot`].
#[derive(Clone, Debug)]
pub struct PipeSample {
    /// The pipe's name (the label `pipe`).
    pub name: Arc<str>,
    /// `-e` or `-d`.
    pub mode: Mode,
    /// Connections open now on this loop (the engine's count, including those parked at the
    /// `-n` limit).
    pub active: u64,
    /// The loop's counters for the pipe; `None` where the event loop keeps none (then only
    /// `active` and the key table are reported).
    pub counters: Option<PipeCounters>,
    /// The pipe's key ring (shared by every loop), read when scraped.
    pub keys: Option<KeyRing>,
}

/// One key-pair pool in a [`LoopSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSample {
    /// `x25519` or `group14`.
    pub kind: &'static str,
    /// Key pairs ready now.
    pub ready: u64,
    /// Key pairs taken ready from the pool so far.
    pub pooled: u64,
    /// Key pairs computed inline because the pool was empty.
    pub inline: u64,
}

/// A copy of one event loop's counters, handed to the scrape thread.
#[derive(Clone, Debug, Default)]
pub struct LoopSnapshot {
    /// The loop's pipes.
    pub pipes: Vec<PipeSample>,
    /// The loop's key-pair pools.
    pub pools: Vec<PoolSample>,
}

/// What never changes while the process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The program's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// The io backend in use: `io_uring` or `epoll`.
    pub backend: &'static str,
    /// When the process started serving.
    pub started: SystemTime,
}

impl ProcessInfo {
    /// This build's version with `backend` (`io_uring` or `epoll`), started now.
    pub fn new(backend: &'static str) -> Self {
        ProcessInfo {
            version: env!("CARGO_PKG_VERSION"),
            backend,
            started: SystemTime::now(),
        }
    }
}

/// How a pipe is set up, for `status` (from the configuration, not the event loop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipeDescription {
    /// The pipe's name.
    pub name: Arc<str>,
    /// Its listening addresses, as the configuration writes them.
    pub listen: Vec<String>,
    /// Its target, as the configuration writes it.
    pub target: String,
}

/// One pipe summed over the event loops.
#[derive(Clone, Debug)]
pub struct PipeTotals {
    /// The pipe's name.
    pub name: Arc<str>,
    /// `-e` or `-d`.
    pub mode: Mode,
    /// Connections open now, over all loops.
    pub active: u64,
    /// The counters summed over the loops that keep them; `None` if none does.
    pub counters: Option<PipeCounters>,
    /// The key table, one line per key ([`KeyRing::status`]); empty without a key ring.
    pub keys: Vec<KeyStatus>,
    /// The `--max-keys` bound (0 without a key ring).
    pub max_keys: usize,
    /// How the pipe is set up, if it was described ([`Board::describe_pipes`]).
    pub description: Option<PipeDescription>,
}

/// The whole process at one scrape.
#[derive(Clone, Debug)]
pub struct ProcessSnapshot {
    /// Version, backend, start time.
    pub info: ProcessInfo,
    /// When the snapshot was taken.
    pub taken: SystemTime,
    /// Event loops that have published at least once.
    pub loops: usize,
    /// Configuration reloads that were applied.
    pub reloads_ok: u64,
    /// Configuration reloads refused (nothing changed).
    pub reloads_failed: u64,
    /// Every pipe, in the order first seen.
    pub pipes: Vec<PipeTotals>,
    /// The key-pair pools by kind (one per kind per process, shared by the loops).
    pub pools: Vec<PoolSample>,
}

/// Sums loop snapshots: pipes by name (counters, active connections; the key ring taken from
/// the first loop that has one). Pools are the process's, one per kind shared by every loop,
/// so each kind is taken once: the sample that has handed out the most pairs (the latest). Key tables are not read here
/// ([`Board::collect`] does).
pub fn sum_loops<'a>(
    loops: impl IntoIterator<Item = &'a LoopSnapshot>,
) -> (Vec<(PipeTotals, Option<KeyRing>)>, Vec<PoolSample>) {
    let mut pipes: Vec<(PipeTotals, Option<KeyRing>)> = Vec::new();
    let mut pools: Vec<PoolSample> = Vec::new();
    for snap in loops {
        for p in &snap.pipes {
            let (total, ring) = match pipes.iter_mut().find(|(t, _)| t.name == p.name) {
                Some(e) => e,
                None => {
                    pipes.push((
                        PipeTotals {
                            name: Arc::clone(&p.name),
                            mode: p.mode,
                            active: 0,
                            counters: None,
                            keys: Vec::new(),
                            max_keys: 0,
                            description: None,
                        },
                        None,
                    ));
                    let Some(last) = pipes.last_mut() else {
                        continue;
                    };
                    last
                }
            };
            total.active += p.active;
            match (&mut total.counters, &p.counters) {
                (Some(t), Some(c)) => t.merge(c),
                (t @ None, Some(c)) => *t = Some(c.clone()),
                (_, None) => {}
            }
            if ring.is_none() {
                ring.clone_from(&p.keys);
            }
        }
        for pool in &snap.pools {
            match pools.iter_mut().find(|t| t.kind == pool.kind) {
                Some(t) if pool.pooled + pool.inline > t.pooled + t.inline => *t = *pool,
                Some(_) => {}
                None => pools.push(*pool),
            }
        }
    }
    (pipes, pools)
}

/// The process's publication point: each event loop's latest [`LoopSnapshot`], the reload
/// counts and the pipe descriptions. Shared (`Arc`) by the loops, the main thread, the
/// metrics server and the control socket.
#[derive(Debug)]
pub struct Board {
    info: ProcessInfo,
    loops: Mutex<Vec<Arc<Mutex<Option<LoopSnapshot>>>>>,
    descriptions: Mutex<Vec<PipeDescription>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// Locks `m`, also after a panic elsewhere (every value behind these mutexes is whole after
/// each statement).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Board {
    /// A board for a process described by `info`, with no loop yet.
    pub fn new(info: ProcessInfo) -> Arc<Self> {
        Arc::new(Board {
            info,
            loops: Mutex::new(Vec::new()),
            descriptions: Mutex::new(Vec::new()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        })
    }

    /// A publisher for one more event loop (call once per loop, from any thread).
    pub fn publisher(&self) -> Publisher {
        let slot = Arc::new(Mutex::new(None));
        lock(&self.loops).push(Arc::clone(&slot));
        Publisher { slot, next: None }
    }

    /// Records a configuration reload: applied (`ok`) or refused.
    pub fn reload_done(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Relaxed);
    }

    /// Replaces the pipe descriptions (at startup and after each applied reload).
    pub fn describe_pipes(&self, pipes: Vec<PipeDescription>) {
        *lock(&self.descriptions) = pipes;
    }

    /// The process's version, backend and start time.
    pub fn info(&self) -> &ProcessInfo {
        &self.info
    }

    /// Sums the latest snapshot of every loop ([`sum_loops`]), reads each pipe's key table
    /// and adds the process-wide values. Holds each loop's mutex only to clone its snapshot.
    pub fn collect(&self) -> ProcessSnapshot {
        let slots: Vec<_> = lock(&self.loops).clone();
        let snaps: Vec<LoopSnapshot> = slots.iter().filter_map(|s| lock(s).clone()).collect();
        let (pipes, pools) = sum_loops(&snaps);
        let descriptions = lock(&self.descriptions).clone();
        let pipes = pipes
            .into_iter()
            .map(|(mut total, ring)| {
                if let Some(ring) = ring {
                    total.keys = ring.status();
                    total.max_keys = ring.max_keys();
                }
                total.description = descriptions.iter().find(|d| d.name == total.name).cloned();
                total
            })
            .collect();
        ProcessSnapshot {
            info: self.info.clone(),
            taken: SystemTime::now(),
            loops: snaps.len(),
            reloads_ok: self.reloads_ok.load(Relaxed),
            reloads_failed: self.reloads_failed.load(Relaxed),
            pipes,
            pools,
        }
    }
}

/// One event loop's hand-over to the [`Board`].
#[derive(Debug)]
pub struct Publisher {
    slot: Arc<Mutex<Option<LoopSnapshot>>>,
    /// When the next snapshot is due; `None`: at once.
    next: Option<Instant>,
}

impl Publisher {
    /// Whether a snapshot is due at `now` (the first at once, then every
    /// [`PUBLISH_INTERVAL`]). Call once per loop turn with the turn's clock reading.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|at| now >= at)
    }

    /// Hands over `snap` as this loop's latest, taken at `now`.
    pub fn publish(&mut self, now: Instant, snap: LoopSnapshot) {
        *lock(&self.slot) = Some(snap);
        self.next = Some(now + PUBLISH_INTERVAL);
    }
}

/// The `mode` label of a pipe: `encrypt` (`-e`) or `decrypt` (`-d`).
pub fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Encrypt => "encrypt",
        Mode::Decrypt => "decrypt",
    }
}

/// The state of a key in a pipe's table, as `keys status` names it: `accepted` (`-d`),
/// `current` or `standby` (`-e`), or `removed` (no longer accepted; listed until its last
/// live connection ends).
pub fn key_state(s: &KeyStatus, mode: RingMode) -> &'static str {
    match (s.accepted, s.primary, mode) {
        (false, _, _) => "removed",
        (true, _, RingMode::Decrypt) => "accepted",
        (true, true, RingMode::Encrypt) => "current",
        (true, false, RingMode::Encrypt) => "standby",
    }
}

/// The key ring mode of a pipe mode.
pub fn ring_mode(mode: Mode) -> RingMode {
    match mode {
        Mode::Encrypt => RingMode::Encrypt,
        Mode::Decrypt => RingMode::Decrypt,
    }
}

#[cfg(test)]
mod tests;
