//! The relay's event loop over one [`Driver`]: pipes (listeners with their settings) and the
//! connections they accept (spec §4).
//!
//! Each connection is a sans-IO [`Conn`] (see [`super::conn`] for its phases). This module only
//! maps driver events to it and carries out the [`Action`]s it returns: it owns the sockets,
//! timers, tokens, the clock reading and the randomness, and nothing about the protocol.
//!
//! A [`Relay`] carries any number of pipes ([`Relay::add_pipe`]); each has its listener, its
//! [`PipeConfig`], its accept state, its `-n` limit with the connections parked beyond it, and
//! its [`RelayStats`]. A pipe's listener runs a repeating accept, stopped at the `-n` limit
//! (clients then wait in the kernel backlog) and re-armed when a connection ends; re-armed
//! after a back-off when it fails with `EMFILE`/`ENFILE` instead of exiting as spiped does.
//!
//! Metrics: each pipe keeps a [`PipeCounters`] and each connection a [`ConnMeter`], plain
//! integers owned by this loop (no lock or atomic on the data path); [`RelayStats`] is read
//! from the same counters. [`Relay::metrics_snapshot`] copies them for the scrape thread, and
//! with [`Relay::set_audit`] every closed connection is written to the audit log as one line,
//! flushed once per [`Relay::turn`].

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use zeroize::{Zeroize, Zeroizing};

use crate::cli::Mode;
use crate::config::TcpOptions;
use crate::io::{
    Driver, Errno, Event, Handle, RecvBuf, SockAddr, SubmitError, TimerId, WaitError, sys,
};
use crate::os::random::fill_random;
use crate::proto::NONCE_LEN;
use crate::proto::handshake::{ExchangePolicy, KeyKind, KeyPair};

use super::audit::{self, AuditLog, AuditRecord};
use super::conn::{Action, Conn, Ctx, DropReason, Env, KeyPairError, PUMP_BUFFER, Side};
use super::keys::KeyRing;
use super::log::Logger;
use super::metrics::{CLEAN, ConnMeter, LoopSnapshot, PipeCounters, PipeSample, PoolSample};
use super::pool::{KeyPool, PoolStats, SharedPools};
use super::slots::{Op, Slots, split, token};
use super::tcp_opts;

/// Spare send buffers kept for reuse across connections (at most this many times
/// [`PUMP_BUFFER`] bytes stay allocated after a burst).
const SPARE_BUFFERS: usize = 64;

/// Nonce bytes drawn from the OS RNG at a time: one `getrandom` per 32 handshakes instead of
/// one per handshake.
const NONCE_BATCH: usize = 32 * NONCE_LEN;

/// Handshake nonces from the OS RNG, drawn [`NONCE_BATCH`] bytes at a time. Nonces are public
/// (each is sent in the clear, §1.3) and each byte is handed out once and wiped; the batch is
/// drawn on first use, so a process never shares one with a parent it forked from.
struct Nonces {
    buf: Zeroizing<[u8; NONCE_BATCH]>,
    /// Bytes of `buf` already handed out (all of it when empty).
    used: usize,
}

impl Nonces {
    fn new() -> Self {
        Self {
            buf: Zeroizing::new([0u8; NONCE_BATCH]),
            used: NONCE_BATCH,
        }
    }

    /// The next nonce, never handed out before.
    fn next(&mut self) -> Result<[u8; NONCE_LEN], Errno> {
        if self.used + NONCE_LEN > NONCE_BATCH {
            fill_random(self.buf.as_mut_slice())?;
            self.used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        let part = &mut self.buf[self.used..self.used + NONCE_LEN];
        nonce.copy_from_slice(part);
        part.zeroize();
        self.used += NONCE_LEN;
        Ok(nonce)
    }
}

/// The relay's [`Env`]: nonces from the OS RNG and key pairs from one background
/// [`KeyPool`] per kind, shared by every pipe that needs that kind (and, through
/// [`SharedPools`], by every event loop of the process).
struct OsEnv {
    nonces: Nonces,
    shared: SharedPools,
    /// The pools this relay has used so far (from `shared`), looked up without its lock.
    pools: Vec<Arc<KeyPool>>,
}

impl OsEnv {
    fn new(shared: SharedPools) -> Self {
        OsEnv {
            nonces: Nonces::new(),
            shared,
            pools: Vec::new(),
        }
    }
}

impl Env for OsEnv {
    fn nonce(&mut self) -> Result<[u8; NONCE_LEN], Errno> {
        self.nonces.next()
    }

    fn key_pair(&mut self, kind: KeyKind) -> Result<KeyPair, KeyPairError> {
        match self.pools.iter().find(|p| p.kind() == kind) {
            Some(pool) => pool.take().map_err(KeyPairError::Random),
            None => Err(KeyPairError::NoPool(kind)),
        }
    }
}

/// Where a [`Relay`] gets its randomness, with the pools it may have to set up.
trait RelayEnv: Env {
    /// Makes sure key pairs of `kind` can be handed out (starts that kind's pool once).
    fn prepare(&mut self, kind: KeyKind);

    /// What the key-pair pools have done, summed; `None` if there are none.
    fn pool_stats(&self) -> Option<PoolStats>;

    /// One sample per key-pair pool, for the metrics.
    fn pool_samples(&self) -> Vec<PoolSample>;
}

impl RelayEnv for OsEnv {
    fn prepare(&mut self, kind: KeyKind) {
        if !self.pools.iter().any(|p| p.kind() == kind) {
            self.pools.push(self.shared.get_or_start(kind));
        }
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        self.pools
            .iter()
            .map(|p| p.stats())
            .reduce(|a, b| PoolStats {
                pooled: a.pooled + b.pooled,
                inline: a.inline + b.inline,
                generated: a.generated + b.generated,
            })
    }

    fn pool_samples(&self) -> Vec<PoolSample> {
        self.pools
            .iter()
            .map(|pool| {
                let stats = pool.stats();
                PoolSample {
                    kind: key_kind_label(pool.kind()),
                    ready: pool.ready() as u64,
                    pooled: stats.pooled,
                    inline: stats.inline,
                }
            })
            .collect()
    }
}

/// The `kind` label of a key-pair pool in the metrics.
fn key_kind_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::X25519 => "x25519",
        KeyKind::Group14 => "group14",
    }
}

/// The settings of one pipe: what it does with each connection its listener accepts. Nothing
/// here is a command-line type: the spiped command line is one way to build one.
#[derive(Clone, Debug)]
pub struct PipeConfig {
    /// The pipe's name, in log lines (see [`PipeConfig::log_prefix`]), `spiperelay status`
    /// and the metrics.
    pub name: Arc<str>,
    /// `-e` (protocol client) or `-d` (protocol server).
    pub mode: Mode,
    /// The target's addresses, tried in order for each connection.
    pub targets: Vec<SockAddr>,
    /// Accepted keys, shared with the control socket (key rotation): each new handshake uses
    /// the set current at its start; the first key is used when this side is the protocol
    /// client.
    pub keys: KeyRing,
    /// The key exchange and forward-secrecy rule (`-f`, `-g`, `--x25519`).
    pub exchange: ExchangePolicy,
    /// `-n`: the most simultaneous connections, `None` for unlimited.
    pub max_connections: Option<usize>,
    /// `--handshake-limit`: the most connections still in the handshake (not yet
    /// authenticated) at once, `None` for no limit of their own. When a new connection starts
    /// with this many before it, the oldest of them is dropped
    /// ([`DropReason::HandshakeEvicted`]) to make room, so a flood of silent clients cannot
    /// keep a real one out for `-o` seconds. Connections past authentication are never
    /// dropped for it; `-n` still bounds them all.
    pub handshake_limit: Option<usize>,
    /// `-o`: the deadline of each setup phase (target connect, handshake).
    pub timeout: Duration,
    /// `SO_KEEPALIVE` after the handshake (`false` with `-j`).
    pub keepalive: bool,
    /// How long to wait before re-arming an accept that failed for lack of descriptors.
    pub accept_backoff: Duration,
    /// `-b`: the local address outgoing connections are bound to, if any.
    pub bind: Option<SockAddr>,
    /// Keep-alive timing and `TCP_USER_TIMEOUT` of the accepted sockets (the source leg),
    /// set with [`Action::SetSockOpts`]; the default (all `None`) leaves the kernel's.
    pub source_tcp: TcpOptions,
    /// The same for the sockets connected to the target (the target leg).
    pub target_tcp: TcpOptions,
}

impl PipeConfig {
    /// What the relay's log lines about this pipe start with: `pipe NAME: `, or nothing for
    /// the spiped command line's one pipe ([`COMMAND_LINE_PIPE`]), whose lines stay spiped's.
    pub fn log_prefix(&self) -> String {
        super::log::pipe_prefix(&self.name)
    }

    /// The TCP options of the socket on `side` of a connection of this pipe: `source_tcp`
    /// for the accepted side, `target_tcp` for the target side.
    pub fn tcp_options(&self, side: Side) -> &TcpOptions {
        if side == Side::accepted(self.mode) {
            &self.source_tcp
        } else {
            &self.target_tcp
        }
    }
}

/// Counters describing what a pipe (or a whole [`Relay`]) has done: a summary of the pipe's
/// [`PipeCounters`] (the same counts, not a second count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Handshakes completed (including those whose key was removed meanwhile, which are then
    /// dropped).
    pub handshakes: u64,
    /// Connections that ended after both directions finished cleanly.
    pub clean_closes: u64,
    /// Connections dropped for a [`DropReason`].
    pub dropped: u64,
    /// Accept errors (each followed by a back-off when the accept stopped).
    pub accept_errors: u64,
    /// Times the `-n` limit was reached.
    pub limit_reached: u64,
    /// Connections open now (including ones waiting for a free slot).
    pub active: usize,
}

impl RelayStats {
    fn add(&mut self, o: &RelayStats) {
        self.accepted += o.accepted;
        self.handshakes += o.handshakes;
        self.clean_closes += o.clean_closes;
        self.dropped += o.dropped;
        self.accept_errors += o.accept_errors;
        self.limit_reached += o.limit_reached;
        self.active += o.active;
    }
}

/// Why a pipe could not be added or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayError {
    /// Arming the accept on the listener failed.
    Accept(SubmitError),
    /// The configuration has no target address.
    NoTarget,
    /// No pipe has this id (never added, or stopped and gone).
    NoSuchPipe(PipeId),
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayError::Accept(e) => write!(f, "cannot start accepting connections: {e}"),
            RelayError::NoTarget => f.write_str("the target resolved to no address"),
            RelayError::NoSuchPipe(id) => write!(f, "there is no pipe {}", id.0),
        }
    }
}

impl std::error::Error for RelayError {}

/// Names a pipe of a [`Relay`]; never reused by a later pipe of the same relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipeId(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcceptState {
    /// A repeating accept is armed.
    Armed,
    /// Stopped at the `-n` limit.
    AtLimit,
    /// Stopped after an error; a back-off timer will re-arm it.
    BackingOff,
    /// Stopped for good (graceful shutdown, or the pipe is stopping).
    Stopped,
}

/// One pipe: its listener, its settings and its accept state.
struct Pipe {
    listener: Handle,
    cfg: Arc<PipeConfig>,
    accept: AcceptState,
    /// Bumped on every arm, so completions of an older accept are told apart.
    accept_epoch: u32,
    /// A back-off timer is pending.
    backoff_timer: bool,
    /// Connections accepted beyond the `-n` limit, waiting for a free slot.
    parked: VecDeque<u32>,
    /// Connections waiting for a descriptor to connect to the target: (slot, generation).
    starved: Vec<(u32, u32)>,
    /// With a handshake limit: the started connections that may still be in the handshake,
    /// oldest first, as (slot, generation). Those that have left it are pruned when a new
    /// connection starts.
    pre_auth: VecDeque<(u32, u32)>,
    /// What the pipe has done, for the metrics and [`Pipe::stats`].
    counters: PipeCounters,
    /// Connections open now (including ones waiting for a free slot).
    active: usize,
    /// Accept errors ([`RelayStats::accept_errors`]).
    accept_errors: u64,
    /// `TCP_NODELAY` and `SO_KEEPALIVE` are set on the (TCP) listener, so accepted sockets
    /// inherit them and [`Action::SetSockOpts`] sets them on the target socket only.
    listener_opts: bool,
    /// [`Relay::stop_pipe`] was called: the pipe goes once its listener is closed and its
    /// last connection has ended.
    stopping: bool,
    listener_closed: bool,
}

impl Pipe {
    fn at_limit(&self) -> bool {
        self.cfg
            .max_connections
            .is_some_and(|max| self.active >= max)
    }

    /// The pipe's [`RelayStats`], read from its counters.
    fn stats(&self) -> RelayStats {
        let c = &self.counters;
        let clean = c.closed.get(CLEAN);
        RelayStats {
            accepted: c.accepted,
            handshakes: c.handshake_duration.count(),
            clean_closes: clean,
            dropped: c.closed.total() - clean,
            accept_errors: self.accept_errors,
            limit_reached: c.limit_reached,
            active: self.active,
        }
    }

    fn mode_flag(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Encrypt => "-e",
            Mode::Decrypt => "-d",
        }
    }
}

/// The pipe `id` of `pipes`, if it is still there.
fn pipe_mut(pipes: &mut [Option<Pipe>], id: PipeId) -> Option<&mut Pipe> {
    pipes.get_mut(id.0 as usize).and_then(Option::as_mut)
}

/// A connection with what the event loop keeps for it: its pipe, the pipe's settings at
/// accept time, its sockets and its deadline timer.
struct Entry {
    conn: Conn,
    pipe: PipeId,
    cfg: Arc<PipeConfig>,
    sock: [Option<Handle>; 2],
    deadline: Option<TimerId>,
    /// Close operations still outstanding; `Some` once teardown started.
    closing: Option<u8>,
    /// Phase times, bytes and key, for the metrics and the audit log.
    meter: ConnMeter,
    /// The client's address, for the audit log (looked up at accept only when it is on).
    peer: Option<Box<str>>,
}

/// The relay event loop over one [`Driver`] and any number of pipes.
pub struct Relay<D: Driver> {
    io: D,
    /// By [`PipeId`]; `None` once a stopped pipe is gone.
    pipes: Vec<Option<Pipe>>,
    /// Counters of pipes that are gone.
    retired: RelayStats,
    /// The metrics counters of pipes that are gone, by name: added to those of a pipe of the
    /// same name (one replaced by a reload), so that its counters never go back.
    retired_counters: Vec<(Arc<str>, PipeCounters)>,
    conns: Slots<Entry>,
    env: Box<dyn RelayEnv>,
    log: Logger,
    events: Vec<Event>,
    spare: Vec<Vec<u8>>,
    /// Actions of the connection being driven, in order.
    actions: VecDeque<Action>,
    /// Parked connections given a free slot, to start once the current one's actions ran.
    to_start: Vec<u32>,
    /// Where closed connections are recorded, if anywhere ([`Relay::set_audit`]).
    audit: Option<AuditLog>,
    /// Every drop reason, in order (for the state-machine tests).
    #[cfg(test)]
    drops: Vec<DropReason>,
}

impl<D: Driver> fmt::Debug for Relay<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<D: Driver> Relay<D> {
    /// A relay with one pipe: adopts `listener` into `io` and starts accepting on it.
    ///
    /// # Errors
    /// As [`Relay::add_pipe`].
    pub fn new(io: D, listener: OwnedFd, cfg: PipeConfig, log: Logger) -> Result<Self, RelayError> {
        let mut relay = Self::empty(io, log);
        relay.add_pipe(listener, cfg)?;
        Ok(relay)
    }

    /// A relay with no pipes yet ([`Relay::add_pipe`] adds them), drawing its randomness from
    /// the operating system.
    pub fn empty(io: D, log: Logger) -> Self {
        Self::sharing_pools(io, log, SharedPools::default())
    }

    /// A relay with no pipes yet whose key-pair pools come from `pools`, which other relays
    /// (the process's other event loops) share: one pool per kind per process.
    pub fn sharing_pools(io: D, log: Logger, pools: SharedPools) -> Self {
        Self::with_env(io, log, Box::new(OsEnv::new(pools)))
    }

    /// A relay with no pipes yet, drawing its randomness from `env`.
    fn with_env(io: D, log: Logger, env: Box<dyn RelayEnv>) -> Self {
        Relay {
            io,
            pipes: Vec::new(),
            retired: RelayStats::default(),
            retired_counters: Vec::new(),
            conns: Slots::new(),
            env,
            log,
            events: Vec::new(),
            spare: Vec::new(),
            actions: VecDeque::new(),
            to_start: Vec::new(),
            audit: None,
            #[cfg(test)]
            drops: Vec::new(),
        }
    }

    /// Adds a pipe: adopts `listener` (a listening socket) into the driver and starts
    /// accepting on it with `cfg`. Sets up the key-pair pool of its exchange if no pipe has
    /// one yet (one pool per kind, shared by all pipes).
    ///
    /// # Errors
    /// [`RelayError::NoTarget`] for an empty target list; [`RelayError::Accept`] if the accept
    /// cannot be armed (the listener is then closed).
    pub fn add_pipe(&mut self, listener: OwnedFd, cfg: PipeConfig) -> Result<PipeId, RelayError> {
        if cfg.targets.is_empty() {
            return Err(RelayError::NoTarget);
        }
        if let Some(kind) = cfg.exchange.key_kind() {
            self.env.prepare(kind);
        }
        // Accepted TCP sockets inherit both options from the listener (Linux copies them at
        // accept; on a listening socket they have no effect of their own): two setsockopt
        // calls per connection fewer. Both fail on a Unix listener, which then keeps the
        // per-socket calls (failing harmlessly, as spiped's do).
        let listener_opts = sys::set_nodelay(listener.as_fd(), true).is_ok()
            && sys::set_keepalive(listener.as_fd(), cfg.keepalive).is_ok();
        let listener = self.io.adopt(listener);
        let id = PipeId(self.pipes.len() as u32);
        if let Err(e) = self.io.accept(listener, token(id.0, 0, Op::Accept)) {
            // No pipe owns this listener (its id goes to the next pipe added): the close is
            // tagged as one no teardown counts.
            let _ = self
                .io
                .close(listener, token(u32::MAX, 0, Op::DiscardTarget));
            return Err(RelayError::Accept(e));
        }
        self.pipes.push(Some(Pipe {
            listener,
            cfg: Arc::new(cfg),
            accept: AcceptState::Armed,
            accept_epoch: 0,
            backoff_timer: false,
            parked: VecDeque::new(),
            starved: Vec::new(),
            pre_auth: VecDeque::new(),
            counters: PipeCounters::default(),
            active: 0,
            accept_errors: 0,
            listener_opts,
            stopping: false,
            listener_closed: false,
        }));
        Ok(id)
    }

    /// Gives pipe `id` new settings. Connections accepted from now on use them; open ones keep
    /// the settings they were accepted with. A changed `-n` limit applies at once to the
    /// accept (stopped or re-armed).
    ///
    /// # Errors
    /// [`RelayError::NoSuchPipe`]; [`RelayError::NoTarget`] for an empty target list (nothing
    /// is changed).
    pub fn update_pipe(&mut self, id: PipeId, cfg: PipeConfig) -> Result<(), RelayError> {
        if cfg.targets.is_empty() {
            return Err(RelayError::NoTarget);
        }
        if pipe_mut(&mut self.pipes, id).is_none() {
            return Err(RelayError::NoSuchPipe(id));
        }
        if let Some(kind) = cfg.exchange.key_kind() {
            self.env.prepare(kind);
        }
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return Err(RelayError::NoSuchPipe(id));
        };
        pipe.cfg = Arc::new(cfg);
        if pipe.accept == AcceptState::Armed && pipe.at_limit() {
            self.io.cancel_accept(pipe.listener);
            pipe.accept = AcceptState::AtLimit;
        } else if pipe.accept == AcceptState::AtLimit && !pipe.at_limit() && pipe.starved.is_empty()
        {
            self.arm_accept(id);
        }
        Ok(())
    }

    /// Stops pipe `id`: no more accepts, and its listener is closed (new clients are refused).
    /// Its connections carry on; once the last has ended the pipe is gone and its counters
    /// count in [`Relay::stats`] only.
    ///
    /// # Errors
    /// [`RelayError::NoSuchPipe`].
    pub fn stop_pipe(&mut self, id: PipeId) -> Result<(), RelayError> {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return Err(RelayError::NoSuchPipe(id));
        };
        if pipe.stopping {
            return Ok(());
        }
        if pipe.accept == AcceptState::Armed {
            self.io.cancel_accept(pipe.listener);
        }
        pipe.accept = AcceptState::Stopped;
        pipe.stopping = true;
        let listener = pipe.listener;
        if self
            .io
            .close(listener, token(id.0, 0, Op::ListenerClose))
            .is_err()
        {
            if let Some(p) = pipe_mut(&mut self.pipes, id) {
                p.listener_closed = true;
            }
            self.remove_if_done(id);
        }
        Ok(())
    }

    /// What pipe `id` has done so far; `None` once it is gone.
    pub fn pipe_stats(&self, id: PipeId) -> Option<RelayStats> {
        self.pipes
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map(Pipe::stats)
    }

    /// What the relay has done so far, over all pipes (including those gone).
    pub fn stats(&self) -> RelayStats {
        let mut total = self.retired;
        for p in self.pipes.iter().flatten() {
            total.add(&p.stats());
        }
        total
    }

    /// Key pairs taken from the background pools and computed inline so far, summed over the
    /// pools (`None` when no pipe needs key pairs, as with `-f`). A `-d` end takes one only
    /// after a client's MAC verified.
    pub fn key_pool_stats(&self) -> Option<PoolStats> {
        self.env.pool_stats()
    }

    /// Connections open now, including those waiting for a free slot.
    pub fn active(&self) -> usize {
        self.pipes.iter().flatten().map(|p| p.active).sum()
    }

    /// Gives back the memory this relay keeps for busy times, when no connection is open
    /// (after a burst): drops the spare pump buffers and asks the driver to release its idle
    /// receive buffers ([`Driver::release_idle_buffers`], which keeps anything still in use).
    /// Returns the bytes released; 0 while connections are open, when nothing was kept, or
    /// when the driver keeps no such pool. Never fails; the memory is allocated (or faulted
    /// in) again when traffic returns, so call it after a burst, not per connection.
    pub fn release_idle_memory(&mut self) -> usize {
        if self.active() > 0 {
            return 0;
        }
        let spare: usize = self.spare.iter().map(Vec::capacity).sum();
        self.spare = Vec::new();
        spare + self.io.release_idle_buffers()
    }

    /// A copy of this loop's metrics, for the scrape thread (hand it to a
    /// [`Publisher`](super::metrics::Publisher)): one [`PipeSample`] per pipe still there
    /// (name, mode, open connections, its [`PipeCounters`] and its key ring, whose per-key
    /// table is read when scraped), in the order the pipes were added, and one [`PoolSample`]
    /// per key-pair pool. A pipe that is gone ([`Relay::stop_pipe`]) is no longer listed,
    /// but its counts are added to those of a pipe of the same name (the first listed), now or
    /// added later: a pipe replaced under its name by a reload keeps counting from where the
    /// old one was, so no counter ever goes back (which Prometheus would read as a restart).
    /// Two pipes of one name (the old one still draining) are both listed; the scrape sums
    /// them ([`sum_loops`](super::metrics::sum_loops)). Allocates and copies the counters:
    /// call it at most every [`PUBLISH_INTERVAL`](super::metrics::PUBLISH_INTERVAL), never
    /// per event. Never fails.
    pub fn metrics_snapshot(&self) -> LoopSnapshot {
        let mut pipes: Vec<PipeSample> = self
            .pipes
            .iter()
            .flatten()
            .map(|p| PipeSample {
                name: Arc::clone(&p.cfg.name),
                mode: p.cfg.mode,
                active: p.active as u64,
                counters: Some(p.counters.clone()),
                keys: Some(p.cfg.keys.clone()),
            })
            .collect();
        for (name, gone) in &self.retired_counters {
            if let Some(c) = pipes
                .iter_mut()
                .find(|p| p.name == *name)
                .and_then(|p| p.counters.as_mut())
            {
                c.merge(gone);
            }
        }
        LoopSnapshot {
            pipes,
            pools: self.env.pool_samples(),
        }
    }

    /// Records every connection that closes from now on in `log`, one [`AuditRecord`] each
    /// (time, pipe, mode, client address, key fingerprint, bytes each way, duration, close
    /// reason), replacing the log set before (whose buffered lines are written first). Lines
    /// are buffered and written once at the end of each [`Relay::turn`]; a failed write is
    /// logged as a warning and never stops the relay. With a log set, each accepted
    /// connection costs one `getpeername` call for its address.
    pub fn set_audit(&mut self, log: AuditLog) {
        if let Some(mut old) = self.audit.replace(log)
            && let Err(e) = old.flush()
        {
            self.log.warn(format_args!("{e}"));
        }
    }

    /// Replaces the target addresses of every pipe for new connections (after re-resolution;
    /// the command line's one pipe). An empty list is ignored.
    pub fn set_targets(&mut self, targets: Vec<SockAddr>) {
        if targets.is_empty() {
            return;
        }
        for p in self.pipes.iter_mut().flatten() {
            let mut cfg = PipeConfig::clone(&p.cfg);
            cfg.targets.clone_from(&targets);
            p.cfg = Arc::new(cfg);
        }
    }

    /// The logger, for messages from the caller's loop.
    pub fn log(&mut self) -> &mut Logger {
        &mut self.log
    }

    /// Stops accepting new connections on every pipe for good (graceful shutdown): each
    /// pipe is stopped as by [`Relay::stop_pipe`], so its accept is cancelled and this relay's
    /// descriptor of its listening socket is closed at once. Once every descriptor of a
    /// listening socket is closed, the kernel refuses new clients at once (clients still in
    /// its backlog are reset) instead of letting them wait for a drain that will never serve
    /// them. A socket another process also holds (systemd's under socket activation) stays
    /// listening there, so its new clients wait in its queue for the next instance. Open
    /// connections, including ones parked beyond `-n`, carry on; an accept the kernel
    /// completed before the cancel took effect is still served.
    pub fn stop_accepting(&mut self) {
        let ids: Vec<PipeId> = self
            .pipes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PipeId(i as u32))
            .collect();
        for id in ids {
            let _ = self.stop_pipe(id);
        }
    }

    /// Waits up to `timeout` for io events and handles them.
    ///
    /// # Errors
    /// A [`WaitError`] from the driver, which is fatal for the loop.
    pub fn turn(&mut self, timeout: Duration) -> Result<(), WaitError> {
        let mut events = std::mem::take(&mut self.events);
        self.io.wait(&mut events, Some(timeout))?;
        // One clock reading per batch: the connections see the time as an input.
        let now = Instant::now();
        for ev in events.drain(..) {
            self.handle(now, ev);
        }
        self.events = events;
        self.flush_audit();
        Ok(())
    }

    /// Writes the audit lines of the connections closed since the last call.
    fn flush_audit(&mut self) {
        if let Some(a) = &mut self.audit
            && let Err(e) = a.flush()
        {
            self.log.warn(format_args!("{e}"));
        }
    }

    /// Handles one driver event at time `now`.
    fn handle(&mut self, now: Instant, ev: Event) {
        let (slot, generation, op) = split(ev.token());
        let live = self.live(slot, generation).is_some();
        match (ev, op) {
            (Event::Accepted { conn, .. }, _) => self.on_accept(PipeId(slot), conn, now),
            (Event::AcceptFailed { error, armed, .. }, _) => {
                self.on_accept_failed(PipeId(slot), generation, error, armed);
            }
            (Event::Timer { .. }, Some(Op::Backoff)) => self.on_backoff(PipeId(slot), now),
            (Event::Timer { .. }, Some(Op::Deadline)) if live => {
                if let Some(e) = self.conns.get_mut(slot) {
                    e.deadline = None;
                }
                self.drive(slot, now, |c, cx| c.on_deadline(cx));
            }
            (Event::Connected { result, .. }, _) if live => {
                if result.is_ok() {
                    self.on_target_connected(slot, now);
                }
                self.drive(slot, now, |c, cx| c.on_connected(result, cx));
            }
            (Event::Received { buf, .. }, Some(Op::Recv(side))) if live => {
                self.on_received(slot, side, buf, now);
            }
            (Event::Received { buf, .. }, _) => self.io.recycle(buf),
            (Event::Eof { .. }, Some(Op::Recv(side))) if live => {
                self.drive(slot, now, |c, cx| c.on_eof(side, cx));
            }
            (Event::RecvFailed { error, .. }, Some(Op::Recv(side))) if live => {
                self.drive(slot, now, |c, cx| c.on_recv_failed(side, error, cx));
            }
            (Event::Sent { buf, result, .. }, op) => {
                if let (true, Some(Op::Send(side)), Ok(())) = (live, op, result) {
                    self.count_sent(slot, side, buf.len());
                }
                self.keep_spare(buf);
                if let (true, Some(Op::Send(side))) = (live, op) {
                    self.drive(slot, now, |c, cx| c.on_sent(side, result, cx));
                }
            }
            (Event::ShutdownDone { .. }, Some(Op::Shutdown(side))) if live => {
                self.drive(slot, now, |c, cx| c.on_shutdown_done(side, cx));
            }
            (Event::Closed { .. }, Some(Op::Close(_))) => self.on_closed(slot, generation),
            (Event::Closed { .. }, Some(Op::ListenerClose)) => {
                let id = PipeId(slot);
                if let Some(p) = pipe_mut(&mut self.pipes, id) {
                    p.listener_closed = true;
                }
                self.remove_if_done(id);
            }
            // The close of a failed connect's socket, or an event with a token we never made.
            _ => {}
        }
        self.start_parked(now);
    }

    /// Times the target connect of the connection in `slot` that just succeeded.
    fn on_target_connected(&mut self, slot: u32, now: Instant) {
        let Relay { conns, pipes, .. } = self;
        if let Some(e) = conns.get_mut(slot)
            && let Some(d) = e.meter.connect_finished(now)
            && let Some(p) = pipe_mut(pipes, e.pipe)
        {
            p.counters.on_target_connected(d);
        }
    }

    /// Counts `n` bytes sent on `side` of the connection in `slot`.
    fn count_sent(&mut self, slot: u32, side: Side, n: usize) {
        let Relay { conns, pipes, .. } = self;
        if let Some(e) = conns.get_mut(slot) {
            e.meter.on_sent(side.index(), n);
            if let Some(p) = pipe_mut(pipes, e.pipe) {
                p.counters.on_sent(side.index(), n);
            }
        }
    }

    /// The live (not closing) connection in `slot` at `generation`.
    fn live(&mut self, slot: u32, generation: u32) -> Option<&mut Entry> {
        if !self.conns.is_current(slot, generation) {
            return None;
        }
        self.conns
            .get_mut(slot)
            .filter(|e| e.closing.is_none() && !e.conn.is_closed())
    }

    /// Calls `f` on the connection in `slot` with its context, then carries out the actions
    /// it queued.
    fn drive(&mut self, slot: u32, now: Instant, f: impl FnOnce(&mut Conn, &mut Ctx<'_>)) {
        let Relay {
            conns,
            env,
            spare,
            actions,
            ..
        } = self;
        let Some(entry) = conns.get_mut(slot) else {
            return;
        };
        let mut cx = Ctx {
            now,
            cfg: &entry.cfg,
            env: &mut **env,
            spare,
            out: actions,
        };
        f(&mut entry.conn, &mut cx);
        self.run(slot, now);
    }

    /// A receive completed on `side`: the bytes go from the driver's buffer straight to the
    /// connection (while pumping, straight through the encoder or decoder) before the buffer
    /// is recycled.
    fn on_received(&mut self, slot: u32, side: Side, buf: RecvBuf, now: Instant) {
        let Relay {
            io,
            pipes,
            conns,
            env,
            spare,
            actions,
            ..
        } = self;
        if let Some(entry) = conns.get_mut(slot) {
            let data = io.data(&buf);
            entry.meter.on_received(side.index(), data.len());
            if let Some(p) = pipe_mut(pipes, entry.pipe) {
                p.counters.on_received(side.index(), data.len());
            }
            let mut cx = Ctx {
                now,
                cfg: &entry.cfg,
                env: &mut **env,
                spare,
                out: actions,
            };
            entry.conn.on_recv(side, data, &mut cx);
        }
        self.io.recycle(buf);
        self.run(slot, now);
    }

    /// Carries out the queued actions of the connection in `slot`, in order, including those
    /// queued while doing so (a failed submission drops the connection).
    fn run(&mut self, slot: u32, now: Instant) {
        while let Some(action) = self.actions.pop_front() {
            self.execute(slot, now, action);
        }
    }

    fn execute(&mut self, slot: u32, now: Instant, action: Action) {
        let Some(entry) = self.conns.get_mut(slot) else {
            if let Action::Send { buf, .. } = action {
                self.keep_spare(buf);
            }
            return;
        };
        if let Action::ArmDeadline(_) = action {
            // The one action a handshake's start queues (also when the handshake failed at
            // once, so that failure counts as one).
            entry.meter.handshake_started(now);
        }
        let skip = match &action {
            Action::Close { .. } => entry.closing.is_some(),
            Action::CancelDeadline => false,
            _ => entry.closing.is_some() || entry.conn.is_closed(),
        };
        if skip {
            match action {
                Action::Send { buf, .. } => self.keep_spare(buf),
                Action::Close { key: Some(k), .. } => entry.cfg.keys.end_use(k),
                _ => {}
            }
            return;
        }
        let mode = entry.cfg.mode;
        match action {
            Action::Connect { index, timeout } => {
                let target = Side::target(mode);
                let t = self.conns.token(slot, Op::Connect);
                let Some(entry) = self.conns.get_mut(slot) else {
                    return;
                };
                let Some(addr) = entry.cfg.targets.get(index) else {
                    return;
                };
                entry.meter.connect_started(now);
                match self
                    .io
                    .connect_from(addr, entry.cfg.bind.as_ref(), timeout, t)
                {
                    Ok(h) => entry.sock[target.index()] = Some(h),
                    Err(e) => self.on_connect_unsubmitted(slot, e, now),
                }
            }
            Action::DiscardTarget => {
                let target = Side::target(mode);
                let failed = entry.sock[target.index()].take();
                if let Some(h) = failed {
                    let t = self.conns.token(slot, Op::DiscardTarget);
                    let _ = self.io.close(h, t);
                }
            }
            Action::Send { side, buf } => {
                let Some(h) = entry.sock[side.index()] else {
                    self.keep_spare(buf);
                    return;
                };
                let t = self.conns.token(slot, Op::Send(side));
                if let Err(e) = self.io.send(h, buf, t) {
                    self.fail(slot, DropReason::Submit(e), now);
                }
            }
            Action::Recv(side) => {
                let Some(h) = entry.sock[side.index()] else {
                    return;
                };
                let t = self.conns.token(slot, Op::Recv(side));
                match self.io.recv(h, t) {
                    Ok(()) | Err(SubmitError::RecvPending) => {}
                    Err(e) => self.fail(slot, DropReason::Submit(e), now),
                }
            }
            Action::ShutdownWrite(side) => {
                let Some(h) = entry.sock[side.index()] else {
                    return;
                };
                let t = self.conns.token(slot, Op::Shutdown(side));
                if let Err(e) = self.io.shutdown_write(h, t) {
                    self.fail(slot, DropReason::Submit(e), now);
                }
            }
            Action::ArmDeadline(after) => {
                let t = self.conns.token(slot, Op::Deadline);
                let id = self.io.timer(after, t);
                if let Some(entry) = self.conns.get_mut(slot)
                    && let Some(old) = entry.deadline.replace(id)
                {
                    self.io.cancel_timer(old);
                }
            }
            Action::CancelDeadline => {
                if let Some(id) = entry.deadline.take() {
                    self.io.cancel_timer(id);
                }
            }
            Action::SetSockOpts => {
                let inherited = self
                    .pipes
                    .get(entry.pipe.0 as usize)
                    .and_then(Option::as_ref);
                let skip = inherited
                    .filter(|p| p.listener_opts)
                    .map(|_| Side::accepted(mode));
                let keepalive = entry.cfg.keepalive;
                for side in Side::BOTH {
                    let Some(fd) = entry.sock[side.index()].and_then(|h| self.io.fd(h)) else {
                        continue;
                    };
                    if Some(side) != skip {
                        // (Else set on the listener already: see `Relay::add_pipe`.) These
                        // fail harmlessly on Unix sockets; spiped ignores the errors too.
                        let _ = sys::set_nodelay(fd, true);
                        let _ = sys::set_keepalive(fd, keepalive);
                    }
                    // The pipe's per-leg options, per socket (not inherited from the listener,
                    // so a changed pipe applies to its new connections). Unix legs have none,
                    // and a Unix socket refusing them is not worth a line.
                    if let Err(e) = tcp_opts::apply(fd, entry.cfg.tcp_options(side))
                        && !tcp_opts::is_not_tcp(&e)
                    {
                        let who = entry.cfg.log_prefix();
                        self.log.warn(format_args!(
                            "{who}cannot set the {side} socket's TCP options: {e}"
                        ));
                    }
                }
            }
            Action::ClaimKey { keys, index } => {
                let pipe = entry.pipe;
                let claim = keys
                    .as_slice()
                    .get(index)
                    .and_then(|k| entry.cfg.keys.begin_use(k));
                // Timed here, key or not: with the key gone the connection is dropped
                // (`key_removed`) and counts as a failed handshake too.
                let took = entry
                    .meter
                    .handshake_finished(now, claim.as_ref().map(|c| c.fingerprint()));
                if let Some(p) = pipe_mut(&mut self.pipes, pipe) {
                    if let Some(d) = took {
                        p.counters.on_handshake_done(d);
                    }
                    if let Some(c) = &claim {
                        let (who, mode) = (p.cfg.log_prefix(), p.mode_flag());
                        self.log.notice(format_args!(
                            "{who}connection established ({mode}) with key {}",
                            c.fingerprint()
                        ));
                    }
                }
                self.drive_inner(slot, now, |c, cx| {
                    if let Some(unused) = c.on_key_claimed(claim, cx) {
                        cx.cfg.keys.end_use(unused);
                    }
                });
            }
            Action::Close { reason, key } => self.teardown(slot, reason, key, now),
        }
    }

    /// The connection's target connect could not be submitted.
    fn on_connect_unsubmitted(&mut self, slot: u32, error: SubmitError, now: Instant) {
        let mut starved = false;
        self.drive_inner(slot, now, |c, cx| {
            starved = c.on_connect_unsubmitted(error, cx);
        });
        if !starved {
            return;
        }
        // Out of descriptors: keep the connection, stop accepting, retry after the back-off
        // (within the phase's deadline).
        let generation = self.conns.generation(slot);
        let Some(pipe_id) = self.conns.get(slot).map(|e| e.pipe) else {
            return;
        };
        let Some(pipe) = pipe_mut(&mut self.pipes, pipe_id) else {
            return;
        };
        if pipe.starved.is_empty() {
            let (active, who) = (pipe.active, pipe.cfg.log_prefix());
            if let SubmitError::Socket(e) = error {
                self.log.warn(format_args!(
                    "{who}cannot create a socket for the target: {e}; pausing accepts and retrying \
                     (open connections: {active})"
                ));
            }
        }
        if let Some(pipe) = pipe_mut(&mut self.pipes, pipe_id) {
            pipe.starved.push((slot, generation));
        }
        self.start_backoff(pipe_id);
    }

    /// As [`Relay::drive`] without running the queued actions: for calls made while they run.
    fn drive_inner(&mut self, slot: u32, now: Instant, f: impl FnOnce(&mut Conn, &mut Ctx<'_>)) {
        let Relay {
            conns,
            env,
            spare,
            actions,
            ..
        } = self;
        let Some(entry) = conns.get_mut(slot) else {
            return;
        };
        let mut cx = Ctx {
            now,
            cfg: &entry.cfg,
            env: &mut **env,
            spare,
            out: actions,
        };
        f(&mut entry.conn, &mut cx);
    }

    /// Drops the connection for a fault found here (a failed submission); its close is queued
    /// behind the actions being run.
    fn fail(&mut self, slot: u32, reason: DropReason, now: Instant) {
        self.drive_inner(slot, now, |c, cx| c.fail(reason, cx));
    }

    /// Keeps a sent buffer for reuse. Its contents stay (the pumps overwrite them in place).
    fn keep_spare(&mut self, buf: Vec<u8>) {
        // Only pump-sized buffers: a small one (a handshake message) would grow, doubling,
        // past PUMP_BUFFER the first time a pump used it, and a larger one holds memory the
        // pumps never need.
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() == PUMP_BUFFER {
            self.spare.push(buf);
        }
    }

    // ---- accepting ----

    fn arm_accept(&mut self, id: PipeId) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        pipe.accept_epoch = pipe.accept_epoch.wrapping_add(1) & 0xff_ffff;
        let t = token(id.0, pipe.accept_epoch, Op::Accept);
        let listener = pipe.listener;
        let who = pipe.cfg.log_prefix();
        match self.io.accept(listener, t) {
            Ok(()) => {
                if let Some(pipe) = pipe_mut(&mut self.pipes, id) {
                    pipe.accept = AcceptState::Armed;
                }
            }
            Err(e) => {
                self.log.warn(format_args!(
                    "{who}cannot accept connections: {e}; retrying"
                ));
                self.start_backoff(id);
            }
        }
    }

    fn start_backoff(&mut self, id: PipeId) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        if pipe.accept == AcceptState::Armed {
            self.io.cancel_accept(pipe.listener);
        }
        if pipe.accept != AcceptState::Stopped {
            pipe.accept = AcceptState::BackingOff;
        }
        if !pipe.backoff_timer {
            pipe.counters.on_accept_backoff();
            pipe.backoff_timer = true;
            let after = pipe.cfg.accept_backoff;
            self.io.timer(after, token(id.0, 0, Op::Backoff));
        }
    }

    fn on_accept(&mut self, id: PipeId, client: Handle, now: Instant) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            // A pipe that is gone: its listener was closed before this arrived.
            let _ = self.io.close(client, token(u32::MAX, 0, Op::DiscardTarget));
            return;
        };
        pipe.counters.on_accepted();
        pipe.active += 1;
        let over = pipe
            .cfg
            .max_connections
            .is_some_and(|max| pipe.active > max);
        if pipe.at_limit() && pipe.accept == AcceptState::Armed {
            pipe.counters.on_limit_reached();
            let max = pipe.cfg.max_connections.unwrap_or(0);
            self.io.cancel_accept(pipe.listener);
            pipe.accept = AcceptState::AtLimit;
            let who = pipe.cfg.log_prefix();
            self.log.warn(format_args!(
                "{who}Maximum number of connections ({max}) reached; new clients wait until one \
                 closes"
            ));
        }
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        let cfg = Arc::clone(&pipe.cfg);
        let mut sock = [None, None];
        sock[Side::accepted(cfg.mode).index()] = Some(client);
        let peer = match self.audit {
            Some(_) => self
                .io
                .fd(client)
                .and_then(audit::peer_of)
                .map(String::into_boxed_str),
            None => None,
        };
        let slot = self.conns.insert(Entry {
            conn: Conn::new(cfg.mode, over),
            pipe: id,
            cfg,
            sock,
            deadline: None,
            closing: None,
            meter: ConnMeter::new(now, SystemTime::now()),
            peer,
        });
        if over {
            if let Some(pipe) = pipe_mut(&mut self.pipes, id) {
                pipe.parked.push_back(slot);
            }
        } else {
            self.start(slot, now);
        }
    }

    /// Starts serving the connection in `slot`. With a handshake limit, first drops the
    /// oldest connection of its pipe still in the handshake if the limit is reached.
    fn start(&mut self, slot: u32, now: Instant) {
        let Some(id) = self.conns.get(slot).map(|e| e.pipe) else {
            return;
        };
        let limit = self.conns.get(slot).and_then(|e| e.cfg.handshake_limit);
        if let Some(limit) = limit {
            self.make_handshake_room(id, limit, now);
            let generation = self.conns.generation(slot);
            if let Some(pipe) = pipe_mut(&mut self.pipes, id) {
                pipe.pre_auth.push_back((slot, generation));
            }
        }
        self.drive(slot, now, |c, cx| c.start(cx));
    }

    /// Prunes pipe `id`'s list of connections in the handshake, then drops its oldest ones
    /// until fewer than `limit` remain.
    fn make_handshake_room(&mut self, id: PipeId, limit: usize, now: Instant) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        let mut list = std::mem::take(&mut pipe.pre_auth);
        list.retain(|&(slot, generation)| {
            self.conns.is_current(slot, generation)
                && self
                    .conns
                    .get(slot)
                    .is_some_and(|e| e.closing.is_none() && e.conn.in_handshake())
        });
        while list.len() >= limit.max(1) {
            let Some((oldest, _)) = list.pop_front() else {
                break;
            };
            self.drive(oldest, now, |c, cx| {
                c.fail(DropReason::HandshakeEvicted { limit }, cx);
            });
        }
        if let Some(pipe) = pipe_mut(&mut self.pipes, id) {
            pipe.pre_auth = list;
        }
    }

    fn on_accept_failed(&mut self, id: PipeId, epoch: u32, error: Errno, armed: bool) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        if epoch != pipe.accept_epoch || pipe.accept != AcceptState::Armed {
            // The end of an accept we cancelled ourselves.
            return;
        }
        let who = pipe.cfg.log_prefix();
        if error.0 == libc::ECANCELED && !armed {
            // Our accept ended although we did not cancel it (we cancel only when leaving
            // `Armed`, and re-arm under a new epoch): without a new accept the pipe would be
            // deaf until a connection ends, with clients waiting in the backlog. Re-arm now.
            self.arm_accept(id);
            return;
        }
        pipe.accept_errors += 1;
        if armed {
            self.log
                .warn(format_args!("{who}accepting a connection failed: {error}"));
            return;
        }
        let ms = pipe.cfg.accept_backoff.as_millis();
        let active = pipe.active;
        if error.is_resource_exhaustion() {
            self.log.warn(format_args!(
                "{who}accepting a connection failed: {error}; pausing accepts for {ms} ms \
                 (open connections: {active})"
            ));
        } else {
            self.log.warn(format_args!(
                "{who}accepting a connection failed: {error}; retrying in {ms} ms"
            ));
        }
        self.start_backoff(id);
    }

    fn on_backoff(&mut self, id: PipeId, now: Instant) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        pipe.backoff_timer = false;
        // Connections that could not get a target socket retry first.
        let starved = std::mem::take(&mut pipe.starved);
        for (slot, generation) in starved {
            if self.live(slot, generation).is_some() {
                self.drive(slot, now, |c, cx| c.retry_connect(cx));
            }
        }
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        if !pipe.starved.is_empty() {
            self.start_backoff(id);
            return;
        }
        if pipe.accept != AcceptState::BackingOff {
            return;
        }
        if pipe.at_limit() {
            pipe.accept = AcceptState::AtLimit;
        } else {
            self.arm_accept(id);
        }
    }

    // ---- teardown ----

    /// Closes both sockets of `slot`, logging `reason` if it is an error, counting the close
    /// and recording it in the audit log, and handing the key use back. The driver defers each
    /// close until nothing is in flight on that socket.
    fn teardown(
        &mut self,
        slot: u32,
        reason: Option<DropReason>,
        key: Option<super::keys::KeyUse>,
        now: Instant,
    ) {
        let Some(entry) = self.conns.get_mut(slot) else {
            return;
        };
        entry.closing = Some(0);
        let socks = entry.sock;
        let pipe_id = entry.pipe;
        let keys = entry.cfg.keys.clone();
        if let Some(id) = entry.deadline.take() {
            self.io.cancel_timer(id);
        }
        if let Some(pipe) = pipe_mut(&mut self.pipes, pipe_id) {
            pipe.counters.on_closed(
                reason.as_ref().map(DropReason::kind),
                reason
                    .as_ref()
                    .is_some_and(|r| is_handshake_failure(r, &entry.meter)),
            );
            if let Some(log) = &mut self.audit {
                let rec = AuditRecord::from_meter(
                    &entry.meter,
                    now,
                    SystemTime::now(),
                    &entry.cfg.name,
                    entry.cfg.mode,
                    entry.peer.as_deref(),
                    reason.as_ref().map(|r| (r.kind(), r.to_string())),
                );
                if let Err(e) = log.record(&rec) {
                    self.log.warn(format_args!("{e}"));
                }
            }
            if let Some(r) = reason {
                let (who, mode) = (pipe.cfg.log_prefix(), pipe.mode_flag());
                match &key {
                    Some(u) => self.log.warn(format_args!(
                        "{who}connection dropped ({mode}): {r} (key {})",
                        u.fingerprint()
                    )),
                    None => self
                        .log
                        .warn(format_args!("{who}connection dropped ({mode}): {r}")),
                }
            }
        }
        #[cfg(test)]
        if let Some(r) = reason {
            self.drops.push(r);
        }
        if let Some(u) = key {
            keys.end_use(u);
        }
        let mut outstanding = 0u8;
        for side in Side::BOTH {
            if let Some(h) = socks[side.index()] {
                let t = self.conns.token(slot, Op::Close(side));
                if self.io.close(h, t).is_ok() {
                    outstanding += 1;
                }
            }
        }
        if let Some(entry) = self.conns.get_mut(slot) {
            entry.closing = Some(outstanding);
        }
        if outstanding == 0 {
            self.release(slot);
        }
    }

    fn on_closed(&mut self, slot: u32, generation: u32) {
        if !self.conns.is_current(slot, generation) {
            return;
        }
        let Some(entry) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(left) = entry.closing else {
            return;
        };
        let left = left.saturating_sub(1);
        entry.closing = Some(left);
        if left == 0 {
            self.release(slot);
        }
    }

    /// Frees `slot`: a parked connection of its pipe takes the place (started once the
    /// current actions have run), else the pipe's accept is re-armed if the limit stopped it.
    fn release(&mut self, slot: u32) {
        let Some(entry) = self.conns.remove(slot) else {
            return;
        };
        let id = entry.pipe;
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        pipe.active -= 1;
        if let Some(next) = pipe.parked.pop_front() {
            // A connection accepted beyond the limit takes the free slot.
            self.to_start.push(next);
        } else if pipe.accept == AcceptState::AtLimit && !pipe.at_limit() && pipe.starved.is_empty()
        {
            self.arm_accept(id);
        }
        self.remove_if_done(id);
    }

    /// Starts the parked connections given a slot by [`Relay::release`].
    fn start_parked(&mut self, now: Instant) {
        while let Some(slot) = self.to_start.pop() {
            self.start(slot, now);
        }
    }

    /// Forgets a stopping pipe once its listener is closed and its last connection ended.
    fn remove_if_done(&mut self, id: PipeId) {
        let Some(pipe) = pipe_mut(&mut self.pipes, id) else {
            return;
        };
        if pipe.stopping && pipe.listener_closed && pipe.active == 0 {
            let stats = pipe.stats();
            self.retired.add(&stats);
            let counters = std::mem::take(&mut pipe.counters);
            let name = Arc::clone(&pipe.cfg.name);
            match self.retired_counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => c.merge(&counters),
                None => self.retired_counters.push((name, counters)),
            }
            if let Some(entry) = self.pipes.get_mut(id.0 as usize) {
                *entry = None;
            }
        }
    }
}

/// Whether a connection closed for `reason` counts as a failed handshake: its handshake had
/// started and not finished (`meter`), or it was evicted by the handshake limit (with `-e`,
/// possibly while still connecting to the target). A target that could not be reached while a
/// `-d` handshake ran is the target's fault, not the handshake's.
fn is_handshake_failure(reason: &DropReason, meter: &ConnMeter) -> bool {
    match reason {
        DropReason::TargetConnect(_) | DropReason::TargetSocket(_) => false,
        DropReason::HandshakeEvicted { .. } => true,
        _ => meter.in_handshake(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod nonce_tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_across_batches_and_wiped_once_taken() {
        let mut nonces = Nonces::new();
        let per_batch = NONCE_BATCH / NONCE_LEN;
        let taken: Vec<[u8; NONCE_LEN]> = (0..2 * per_batch + 1)
            .map(|_| nonces.next().expect("getrandom"))
            .collect();
        let distinct: std::collections::HashSet<_> = taken.iter().collect();
        assert_eq!(distinct.len(), taken.len(), "a nonce was handed out twice");
        // The third batch has one nonce out: its bytes are wiped, the rest are not yet used.
        assert_eq!(nonces.used, NONCE_LEN);
        assert!(nonces.buf[..NONCE_LEN].iter().all(|&b| b == 0));
        assert_ne!(&nonces.buf[NONCE_LEN..2 * NONCE_LEN], &[0u8; NONCE_LEN][..]);
    }
}
