//! The connection state machine of `spiperelay -e` / `-d` on a [`Driver`] (spec §4).
//!
//! Per connection:
//! - `-e`: accept the plaintext client, connect to the target (deadline `-o`), then run the
//!   handshake as the protocol client (a second `-o` deadline).
//! - `-d`: accept the encrypted client and run the handshake as the protocol server (deadline
//!   `-o`). As soon as the client has authenticated (its MAC verified), connect to the target (a
//!   second deadline) while the handshake finishes, so the connect overlaps our answer and both
//!   ends' shared-secret computation; the pumps start once both are done. spiped connects at
//!   accept, so its target also sees unauthenticated clients (its issue #429); ours never does.
//! - Then two independent pumps: plaintext side → seal → encrypted side, and encrypted side →
//!   open → plaintext side. Each pump keeps reading while its previous write is in flight, up
//!   to [`HIGH_WATER`] bytes, so the next write carries everything read meanwhile (large
//!   coalesced writes instead of spiped's 8 KiB ones).
//! - EOF in one direction becomes `shutdown(SHUT_WR)` on the other socket once everything read
//!   before it is written; the connection closes when both directions have ended. Any error
//!   closes both sockets at once and is logged with its [`DropReason`].
//!
//! The listener: a repeating accept, stopped at the `-n` limit (clients then wait in the kernel
//! backlog) and re-armed when a connection ends; re-armed after a back-off when it fails with
//! `EMFILE`/`ENFILE` instead of exiting as spiped does (its issue #463).

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use crate::cli::{Mode, PfsPolicy};
use crate::io::slots::{Slots, split, token};
use crate::io::{
    ConnectError, Driver, Errno, Event, Handle, RecvBuf, SockAddr, SubmitError, TimerId, Token,
    WaitError, sys,
};
use crate::proto::crypt::{DhMode, Role};
use crate::proto::handshake::{Exchange, Handshake, KeyKind};
use crate::proto::key::KeySet;
use crate::proto::packet::sealed_len;
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::{HandshakeError, NONCE_LEN, StreamError};

use super::keys::{KeyRing, KeyUse};
use super::log::Logger;
use super::pool::{KeyPool, PoolStats};

/// A pump stops reading while this many bytes of output, in flight to the other side and
/// waiting behind that send together, are not yet written (backpressure, as spiped's
/// one-buffer pumps provide). With the two directions this bounds a pumping connection's
/// buffers to about `4 * PUMP_BUFFER` bytes.
pub const HIGH_WATER: usize = 16 * 1024;

/// Capacity of a pump buffer: [`HIGH_WATER`] plus the output of the one receive that may cross
/// it (a sealed 4 KiB read, or the plaintext of one read of packets), so it never grows.
const PUMP_BUFFER: usize = HIGH_WATER + 8 * 1024;

/// Spare send buffers kept for reuse across connections (at most this many times
/// [`SPARE_MAX_CAPACITY`] bytes stay allocated after a burst).
const SPARE_BUFFERS: usize = 64;

/// Spare buffers larger than this are dropped rather than kept.
const SPARE_MAX_CAPACITY: usize = PUMP_BUFFER;

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
            sys::fill_random(self.buf.as_mut_slice())?;
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

/// Settings of a [`Relay`].
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// `-e` (protocol client) or `-d` (protocol server).
    pub mode: Mode,
    /// The target's addresses, tried in order for each connection.
    pub targets: Vec<SockAddr>,
    /// Accepted keys, shared with the control socket (key rotation): each new handshake uses
    /// the set current at its start; the first key is used when this side is the protocol
    /// client.
    pub keys: KeyRing,
    /// `-f` / `-g` / neither.
    pub pfs: PfsPolicy,
    /// `--x25519`: run spiperelay's X25519 handshake instead of spiped's group-14 one (both
    /// ends must agree; PROTOCOL.md). Cannot be combined with `-f`.
    pub x25519: bool,
    /// `-n`: the most simultaneous connections, `None` for unlimited.
    pub max_connections: Option<usize>,
    /// `-o`: the deadline of each setup phase (target connect, handshake).
    pub timeout: Duration,
    /// `SO_KEEPALIVE` after the handshake (`false` with `-j`).
    pub keepalive: bool,
    /// How long to wait before re-arming an accept that failed for lack of descriptors.
    pub accept_backoff: Duration,
    /// `-b`: the local address outgoing connections are bound to, if any.
    pub bind: Option<SockAddr>,
}

/// Why a connection was dropped; each is logged as one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The handshake failed: the peer's DH value did not verify (usually a wrong key), was out
    /// of range, or PFS was required and the peer sent `y = 1`.
    Handshake(HandshakeError),
    /// The handshake did not finish within `-o` seconds.
    HandshakeTimeout,
    /// The peer closed the connection before the handshake finished.
    HandshakeEof,
    /// The peer closed the connection right after our DH value, i.e. it rejected our MAC
    /// (wrong key, or one end runs `--x25519` and the other does not).
    HandshakeRejected,
    /// Connecting to the target failed or timed out.
    TargetConnect(ConnectError),
    /// A socket for the target connection could not be created (e.g. `EMFILE`).
    TargetSocket(Errno),
    /// Reading from a socket failed, e.g. `ECONNRESET`.
    Recv(Side, Errno),
    /// Writing to a socket failed, e.g. `EPIPE`.
    Send(Side, Errno),
    /// An encrypted packet failed to verify or had a bad length field.
    BadStream(StreamError),
    /// The system's random number generator failed.
    Random(Errno),
    /// An io operation could not be submitted.
    Submit(SubmitError),
    /// `-d`: the handshake finished with a key that was removed from the accepted set
    /// (`keys set` or a reload) while it ran.
    KeyRemoved,
}

/// The two sockets of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The socket that carries plaintext (the local client with `-e`, the target with `-d`).
    Plain,
    /// The socket that carries the spiped protocol (the target with `-e`, the client with `-d`).
    Crypt,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Plain => "plaintext",
            Side::Crypt => "encrypted",
        })
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Handshake(HandshakeError::BadDhMac) => {
                f.write_str("handshake failed: bad MAC on the peer's DH value (wrong key?)")
            }
            DropReason::Handshake(e) => e.fmt(f),
            DropReason::HandshakeTimeout => f.write_str("handshake timed out"),
            DropReason::HandshakeEof => {
                f.write_str("peer closed the connection during the handshake")
            }
            DropReason::HandshakeRejected => f.write_str(
                "handshake failed: peer closed the connection after our DH value, so it \
                 rejected our MAC (wrong key, or --x25519 on one end only?)",
            ),
            DropReason::TargetConnect(ConnectError::TimedOut) => {
                f.write_str("connecting to the target timed out")
            }
            DropReason::TargetConnect(ConnectError::Os(e)) => {
                write!(f, "connecting to the target failed: {e}")
            }
            DropReason::TargetSocket(e) => write!(f, "cannot create a socket for the target: {e}"),
            DropReason::Recv(side, e) if e.0 == libc::ECONNRESET => {
                write!(f, "{side} peer reset the connection")
            }
            DropReason::Recv(side, e) => write!(f, "reading from the {side} socket failed: {e}"),
            DropReason::Send(side, e) => write!(f, "writing to the {side} socket failed: {e}"),
            DropReason::BadStream(StreamError::Truncated { have }) => write!(
                f,
                "encrypted stream truncated: EOF inside a packet ({have} bytes of it received)"
            ),
            DropReason::BadStream(e) => write!(f, "bad packet: {e}"),
            DropReason::Random(e) => write!(f, "the random number generator failed: {e}"),
            DropReason::Submit(e) => write!(f, "io error: {e}"),
            DropReason::KeyRemoved => {
                f.write_str("its key was removed from the accepted keys during the handshake")
            }
        }
    }
}

/// Counters describing what a [`Relay`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Handshakes completed.
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

// Token layout: bits 0..8 tag, 8..32 generation (or accept epoch), 32..64 connection slot.
const TAG_ACCEPT: u64 = 1;
const TAG_BACKOFF: u64 = 2;
const TAG_CONNECT: u64 = 3;
const TAG_HS_TIMER: u64 = 4;
/// Plus the [`Side`] index for the next four.
const TAG_RECV: u64 = 8;
const TAG_SEND: u64 = 10;
const TAG_SHUT: u64 = 12;
const TAG_CLOSE: u64 = 14;
/// Or'ed into a close tag for a failed connect socket.
const FAILED_CONNECT_CLOSE: u64 = 0x80;

const PLAIN: usize = 0;
const CRYPT: usize = 1;
/// Direction `ENC` reads the plaintext side and writes the encrypted side.
const ENC: usize = 0;
/// Direction `DEC` reads the encrypted side and writes the plaintext side.
const DEC: usize = 1;

/// `-e` or `-d`, for log lines.
fn mode_flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Encrypt => "-e",
        Mode::Decrypt => "-d",
    }
}

fn side_of(index: usize) -> Side {
    if index == PLAIN {
        Side::Plain
    } else {
        Side::Crypt
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted beyond the `-n` limit (in the window before the accept stopped); waits for a
    /// free slot without being served, as if it were still in the backlog.
    Parked,
    /// `-e`: connecting to the target before the handshake.
    ConnectFirst,
    /// Handshake running on the encrypted side.
    Handshake,
    /// `-d`: the handshake is done; waiting for the target connect it started.
    ConnectAfter,
    /// Both pumps running.
    Pumping,
}

/// One direction of a running connection.
#[derive(Default)]
struct Pump {
    /// A receive is pending on the source socket.
    reading: bool,
    /// A send is pending on the destination socket.
    writing: bool,
    /// Output not yet handed to a send is `pending[..filled]`. The bytes after it are left
    /// from an earlier use of the buffer: the encoder and decoder overwrite them in place, so
    /// a reused buffer is not zero-filled again before each use.
    pending: Vec<u8>,
    /// Bytes of output at the start of `pending`.
    filled: usize,
    /// Bytes of the send in flight (0 when `writing` is false).
    in_flight: usize,
    /// The source reached EOF.
    eof: bool,
    /// The destination's write side has been shut down (or the shutdown is pending).
    shut: bool,
    /// The shutdown finished: this direction has ended.
    done: bool,
}

struct Conn {
    sock: [Option<Handle>; 2],
    phase: Phase,
    /// Handshake state while `phase == Handshake` (and until its last output is sent).
    hs: Option<Box<Handshake>>,
    /// The key set the handshake was started with (its `key_index` refers to it).
    hs_keys: Option<KeySet>,
    /// The key this connection uses, counted in the [`KeyRing`] until teardown.
    key_use: Option<KeyUse>,
    /// A handshake send is in flight on the encrypted side.
    hs_sending: bool,
    /// The deadline timer of the current setup phase.
    timer: Option<TimerId>,
    /// When the current connect phase must end, and which target address is being tried.
    connect_deadline: Instant,
    target_index: usize,
    /// `-d`: the target connect has been started (during the handshake, once the client
    /// authenticated), and whether it has succeeded.
    connect_started: bool,
    target_up: bool,
    /// Encrypted bytes read after the end of the handshake, before the pumps started.
    leftover: Vec<u8>,
    encoder: Option<Encoder>,
    decoder: Option<Decoder>,
    pump: [Pump; 2],
    /// Close operations still outstanding; `Some` once teardown started.
    closing: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcceptState {
    /// A repeating accept is armed.
    Armed,
    /// Stopped at the `-n` limit.
    AtLimit,
    /// Stopped after an error; a back-off timer will re-arm it.
    BackingOff,
    /// Stopped for good (graceful shutdown).
    Stopped,
}

/// Why a [`Relay`] could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayError {
    /// Arming the accept on the listener failed.
    Accept(SubmitError),
    /// The configuration has no target address.
    NoTarget,
    /// `--x25519` together with `-f`: X25519 mode always uses forward secrecy.
    X25519WithoutPfs,
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayError::Accept(e) => write!(f, "cannot start accepting connections: {e}"),
            RelayError::NoTarget => f.write_str("the target resolved to no address"),
            RelayError::X25519WithoutPfs => f.write_str(
                "--x25519 cannot be combined with -f: X25519 mode always uses forward secrecy",
            ),
        }
    }
}

impl std::error::Error for RelayError {}

/// The relay event loop over one [`Driver`] and one listening socket.
pub struct Relay<D: Driver> {
    io: D,
    listener: Handle,
    cfg: RelayConfig,
    conns: Slots<Conn>,
    parked: VecDeque<u32>,
    /// Connections waiting for a descriptor to connect to the target: (slot, generation,
    /// target address index).
    starved: Vec<(u32, u32, usize)>,
    /// A back-off timer is pending.
    backoff_timer: bool,
    accept: AcceptState,
    /// Bumped on every arm, so completions of an older accept are told apart.
    accept_epoch: u32,
    stats: RelayStats,
    log: Logger,
    events: Vec<Event>,
    spare: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    /// Ready handshake key pairs (`None` with `-f`, which needs none).
    pool: Option<KeyPool>,
    /// `TCP_NODELAY` and `SO_KEEPALIVE` are set on the (TCP) listener, so accepted sockets
    /// inherit them and [`Relay::start_pumps`] sets them on the target socket only.
    listener_opts: bool,
    nonces: Nonces,
}

/// Runs `data` read on the source of direction `dir` of `c` through its encoder or decoder,
/// appending to the pump's pending output (taken from `spare` if it has no buffer yet).
fn transform_into(
    c: &mut Conn,
    dir: usize,
    data: &[u8],
    spare: &mut Vec<Vec<u8>>,
) -> Result<(), StreamError> {
    let pump = &mut c.pump[dir];
    if pump.pending.capacity() == 0 {
        pump.pending = spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PUMP_BUFFER));
    }
    let written = if dir == ENC {
        match c.encoder.as_mut() {
            Some(enc) => {
                let room = output_room(pump, sealed_len(data.len()));
                enc.encode_into(data, room)?
            }
            None => 0,
        }
    } else {
        match c.decoder.as_mut() {
            Some(dec) => {
                let room = output_room(pump, dec.max_output(data.len()));
                dec.decode_into(data, room)?
            }
            None => 0,
        }
    };
    pump.filled += written;
    Ok(())
}

/// The `need` bytes of `pump.pending` after its output, growing the buffer (zero-filling only
/// the growth) if it is shorter.
fn output_room(pump: &mut Pump, need: usize) -> &mut [u8] {
    let end = pump.filled.saturating_add(need);
    if pump.pending.len() < end {
        pump.pending.resize(end, 0);
    }
    pump.pending.get_mut(pump.filled..end).unwrap_or_default()
}

impl<D: Driver> fmt::Debug for Relay<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("stats", &self.stats)
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> Relay<D> {
    /// Adopts `listener` into `io` and starts accepting on it.
    ///
    /// # Errors
    /// [`RelayError::NoTarget`] for an empty target list; [`RelayError::Accept`] if the accept
    /// cannot be armed.
    pub fn new(
        mut io: D,
        listener: std::os::fd::OwnedFd,
        cfg: RelayConfig,
        log: Logger,
    ) -> Result<Self, RelayError> {
        if cfg.targets.is_empty() {
            return Err(RelayError::NoTarget);
        }
        if cfg.x25519 && cfg.pfs == PfsPolicy::Disabled {
            return Err(RelayError::X25519WithoutPfs);
        }
        let pool = match (cfg.x25519, cfg.pfs) {
            (true, _) => Some(KeyPool::new(KeyKind::X25519)),
            (false, PfsPolicy::Disabled) => None,
            (false, _) => Some(KeyPool::new(KeyKind::Group14)),
        };
        // Accepted TCP sockets inherit both options from the listener (Linux copies them at
        // accept; on a listening socket they have no effect of their own): two setsockopt
        // calls per connection fewer. Both fail on a Unix listener, which then keeps the
        // per-socket calls (failing harmlessly, as spiped's do).
        let listener_opts = sys::set_nodelay(listener.as_fd(), true).is_ok()
            && sys::set_keepalive(listener.as_fd(), cfg.keepalive).is_ok();
        let listener = io.adopt(listener);
        io.accept(listener, token(0, 0, TAG_ACCEPT))
            .map_err(RelayError::Accept)?;
        Ok(Relay {
            io,
            listener,
            cfg,
            conns: Slots::new(),
            parked: VecDeque::new(),
            starved: Vec::new(),
            backoff_timer: false,
            accept: AcceptState::Armed,
            accept_epoch: 0,
            stats: RelayStats::default(),
            log,
            events: Vec::new(),
            spare: Vec::new(),
            scratch: Vec::new(),
            pool,
            listener_opts,
            nonces: Nonces::new(),
        })
    }

    /// What the relay has done so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Key pairs taken from the background pool and computed inline so far (`None` with `-f`,
    /// which uses none). A `-d` end takes one only after a client's MAC verified.
    pub fn key_pool_stats(&self) -> Option<PoolStats> {
        self.pool.as_ref().map(KeyPool::stats)
    }

    /// Connections open now, including those waiting for a free slot.
    pub fn active(&self) -> usize {
        self.stats.active
    }

    /// Replaces the target addresses used for new connections (after re-resolution).
    /// An empty list is ignored.
    pub fn set_targets(&mut self, targets: Vec<SockAddr>) {
        if !targets.is_empty() {
            self.cfg.targets = targets;
        }
    }

    /// The logger, for messages from the caller's loop.
    pub fn log(&mut self) -> &mut Logger {
        &mut self.log
    }

    /// Stops accepting new connections for good (graceful shutdown). Open connections carry on;
    /// the listening socket stays open, so new clients wait in its backlog as with spiped.
    pub fn stop_accepting(&mut self) {
        if self.accept == AcceptState::Armed {
            self.io.cancel_accept(self.listener);
        }
        self.accept = AcceptState::Stopped;
    }

    /// Waits up to `timeout` for io events and handles them.
    ///
    /// # Errors
    /// A [`WaitError`] from the driver, which is fatal for the loop.
    pub fn turn(&mut self, timeout: Duration) -> Result<(), WaitError> {
        let mut events = std::mem::take(&mut self.events);
        self.io.wait(&mut events, Some(timeout))?;
        for ev in events.drain(..) {
            self.handle(ev);
        }
        self.events = events;
        Ok(())
    }

    fn handle(&mut self, ev: Event) {
        let (slot, generation, tag) = split(ev.token());
        match ev {
            Event::Accepted { conn, .. } => self.on_accept(conn),
            Event::AcceptFailed { error, armed, .. } => {
                self.on_accept_failed(generation, error, armed)
            }
            Event::Timer { .. } if tag == TAG_BACKOFF => self.on_backoff(),
            Event::Timer { .. } => {
                if self.live(slot, generation) {
                    if let Some(c) = self.conn(slot) {
                        c.timer = None;
                    }
                    self.drop_conn(slot, DropReason::HandshakeTimeout);
                }
            }
            Event::Connected { result, .. } => {
                if self.live(slot, generation) {
                    self.on_connected(slot, result);
                }
            }
            Event::Received { buf, .. } => {
                let side = (tag - TAG_RECV) as usize;
                if self.live(slot, generation) {
                    self.on_received(slot, side, buf);
                } else {
                    self.io.recycle(buf);
                }
            }
            Event::Eof { .. } => {
                if self.live(slot, generation) {
                    self.on_eof(slot, (tag - TAG_RECV) as usize);
                }
            }
            Event::RecvFailed { error, .. } => {
                if self.live(slot, generation) {
                    let side = (tag - TAG_RECV) as usize;
                    self.drop_conn(slot, DropReason::Recv(side_of(side), error));
                }
            }
            Event::Sent { buf, result, .. } => {
                self.keep_spare(buf);
                if self.live(slot, generation) {
                    let side = (tag - TAG_SEND) as usize;
                    match result {
                        Ok(()) => self.on_sent(slot, side),
                        Err(e) => self.drop_conn(slot, DropReason::Send(side_of(side), e)),
                    }
                }
            }
            Event::ShutdownDone { .. } => {
                if self.live(slot, generation) {
                    let side = (tag - TAG_SHUT) as usize;
                    // Shutting down side `s` ends the direction that writes to it.
                    let dir = if side == CRYPT { ENC } else { DEC };
                    if let Some(c) = self.conn(slot) {
                        c.pump[dir].done = true;
                        if c.pump.iter().all(|p| p.done) {
                            self.teardown(slot, None);
                        }
                    }
                }
            }
            // The close of a target socket whose connect failed while another address is
            // tried (marked with bit 7 of the tag): not counted in the teardown.
            Event::Closed { .. } if tag & FAILED_CONNECT_CLOSE != 0 => {}
            Event::Closed { .. } => self.on_closed(slot, generation),
        }
    }

    // ---- accepting ----

    fn arm_accept(&mut self) {
        self.accept_epoch = self.accept_epoch.wrapping_add(1) & 0xff_ffff;
        match self
            .io
            .accept(self.listener, token(0, self.accept_epoch, TAG_ACCEPT))
        {
            Ok(()) => self.accept = AcceptState::Armed,
            Err(e) => {
                self.log
                    .warn(format_args!("cannot accept connections: {e}; retrying"));
                self.start_backoff();
            }
        }
    }

    fn start_backoff(&mut self) {
        if self.accept == AcceptState::Armed {
            self.io.cancel_accept(self.listener);
        }
        if self.accept != AcceptState::Stopped {
            self.accept = AcceptState::BackingOff;
        }
        if !self.backoff_timer {
            self.backoff_timer = true;
            self.io
                .timer(self.cfg.accept_backoff, token(0, 0, TAG_BACKOFF));
        }
    }

    fn at_limit(&self) -> bool {
        self.cfg
            .max_connections
            .is_some_and(|max| self.stats.active >= max)
    }

    fn on_accept(&mut self, client: Handle) {
        self.stats.accepted += 1;
        self.stats.active += 1;
        let over = self
            .cfg
            .max_connections
            .is_some_and(|max| self.stats.active > max);
        if self.at_limit() && self.accept == AcceptState::Armed {
            self.stats.limit_reached += 1;
            let max = self.cfg.max_connections.unwrap_or(0);
            self.log.warn(format_args!(
                "Maximum number of connections ({max}) reached; new clients wait until one closes"
            ));
            self.io.cancel_accept(self.listener);
            self.accept = AcceptState::AtLimit;
        }
        let slot = self.alloc_slot(client);
        if over {
            if let Some(c) = self.conn(slot) {
                c.phase = Phase::Parked;
            }
            self.parked.push_back(slot);
        } else {
            self.start(slot);
        }
    }

    fn on_accept_failed(&mut self, epoch: u32, error: Errno, armed: bool) {
        if epoch != self.accept_epoch & 0xff_ffff || self.accept != AcceptState::Armed {
            // The end of an accept we cancelled ourselves.
            return;
        }
        if error.0 == libc::ECANCELED && !armed {
            return;
        }
        self.stats.accept_errors += 1;
        if armed {
            self.log
                .warn(format_args!("accepting a connection failed: {error}"));
            return;
        }
        let ms = self.cfg.accept_backoff.as_millis();
        if error.is_resource_exhaustion() {
            self.log.warn(format_args!(
                "accepting a connection failed: {error}; pausing accepts for {ms} ms \
                 (open connections: {})",
                self.stats.active
            ));
        } else {
            self.log.warn(format_args!(
                "accepting a connection failed: {error}; retrying in {ms} ms"
            ));
        }
        self.start_backoff();
    }

    fn on_backoff(&mut self) {
        self.backoff_timer = false;
        // Connections that could not get a target socket retry first.
        let starved = std::mem::take(&mut self.starved);
        for (slot, generation, index) in starved {
            if self.live(slot, generation) {
                self.connect_next(slot, index);
            }
        }
        if !self.starved.is_empty() {
            self.start_backoff();
            return;
        }
        if self.accept != AcceptState::BackingOff {
            return;
        }
        if self.at_limit() {
            self.accept = AcceptState::AtLimit;
        } else {
            self.arm_accept();
        }
    }

    // ---- connection slots ----

    fn alloc_slot(&mut self, client: Handle) -> u32 {
        let mut sock = [None, None];
        sock[self.accepted_side()] = Some(client);
        self.conns.insert(Conn {
            sock,
            phase: Phase::Handshake,
            hs: None,
            hs_keys: None,
            key_use: None,
            hs_sending: false,
            timer: None,
            connect_deadline: Instant::now(),
            target_index: 0,
            connect_started: false,
            target_up: false,
            leftover: Vec::new(),
            encoder: None,
            decoder: None,
            pump: [Pump::default(), Pump::default()],
            closing: None,
        })
    }

    fn conn(&mut self, slot: u32) -> Option<&mut Conn> {
        self.conns.get_mut(slot)
    }

    /// True if `slot` holds the connection of that generation and it is not being torn down.
    fn live(&self, slot: u32, generation: u32) -> bool {
        self.conns.is_current(slot, generation)
            && self.conns.get(slot).is_some_and(|c| c.closing.is_none())
    }

    fn tok(&self, slot: u32, tag: u64) -> Token {
        self.conns.token(slot, tag)
    }

    /// An empty spare buffer.
    fn take_spare(&mut self) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Keeps a sent buffer for reuse. Its contents stay (the pumps overwrite them in place,
    /// see [`Pump::pending`]); [`Relay::take_spare`] empties it for other uses.
    fn keep_spare(&mut self, buf: Vec<u8>) {
        // Only pump-sized buffers: a small one (a handshake message) would grow, doubling,
        // past PUMP_BUFFER the first time a pump used it.
        if self.spare.len() < SPARE_BUFFERS
            && (PUMP_BUFFER..=SPARE_MAX_CAPACITY).contains(&buf.capacity())
        {
            self.spare.push(buf);
        }
    }

    // ---- setup phases ----

    fn start(&mut self, slot: u32) {
        match self.cfg.mode {
            Mode::Encrypt => {
                if let Some(c) = self.conn(slot) {
                    c.phase = Phase::ConnectFirst;
                }
                self.begin_connect(slot);
            }
            Mode::Decrypt => self.begin_handshake(slot),
        }
    }

    fn begin_connect(&mut self, slot: u32) {
        let deadline = Instant::now() + self.cfg.timeout;
        if let Some(c) = self.conn(slot) {
            c.connect_deadline = deadline;
            c.target_index = 0;
            c.connect_started = true;
        }
        self.connect_next(slot, 0);
    }

    /// Connects to target address `index` within what is left of the phase's deadline.
    fn connect_next(&mut self, slot: u32, index: usize) {
        let Some(deadline) = self.conn(slot).map(|c| c.connect_deadline) else {
            return;
        };
        let Some(addr) = self.cfg.targets.get(index).cloned() else {
            return;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.drop_conn(slot, DropReason::TargetConnect(ConnectError::TimedOut));
            return;
        }
        let t = self.tok(slot, TAG_CONNECT);
        match self.io.connect_from(&addr, self.cfg.bind.as_ref(), left, t) {
            Ok(h) => {
                let side = self.target_side();
                if let Some(c) = self.conn(slot) {
                    c.target_index = index;
                    c.sock[side] = Some(h);
                }
            }
            Err(SubmitError::Socket(e)) if e.is_resource_exhaustion() => {
                // Out of descriptors: keep the connection, stop accepting, retry after the
                // back-off (within the phase's deadline).
                let generation = self.conns.generation(slot);
                if self.starved.is_empty() {
                    self.log.warn(format_args!(
                        "cannot create a socket for the target: {e}; pausing accepts and \
                         retrying (open connections: {})",
                        self.stats.active
                    ));
                }
                self.starved.push((slot, generation, index));
                self.start_backoff();
            }
            Err(SubmitError::Socket(e)) => self.drop_conn(slot, DropReason::TargetSocket(e)),
            Err(e) => self.drop_conn(slot, DropReason::Submit(e)),
        }
    }

    /// The socket index of the accepted connection: the plaintext side with `-e`.
    fn accepted_side(&self) -> usize {
        match self.cfg.mode {
            Mode::Encrypt => PLAIN,
            Mode::Decrypt => CRYPT,
        }
    }

    /// The socket index of the target connection: the encrypted side with `-e`.
    fn target_side(&self) -> usize {
        match self.cfg.mode {
            Mode::Encrypt => CRYPT,
            Mode::Decrypt => PLAIN,
        }
    }

    fn on_connected(&mut self, slot: u32, result: Result<(), ConnectError>) {
        let side = self.target_side();
        match result {
            Ok(()) => match self.cfg.mode {
                Mode::Encrypt => self.begin_handshake(slot),
                Mode::Decrypt => {
                    let Some(c) = self.conn(slot) else {
                        return;
                    };
                    c.target_up = true;
                    // During the handshake: the pumps start when it finishes.
                    if c.phase == Phase::ConnectAfter {
                        self.start_pumps(slot);
                    }
                }
            },
            Err(e) => {
                let Some(c) = self.conn(slot) else {
                    return;
                };
                let next = c.target_index + 1;
                let failed = c.sock[side].take();
                if next < self.cfg.targets.len() && e != ConnectError::TimedOut {
                    if let Some(h) = failed {
                        let t = self.tok(slot, TAG_CLOSE + side as u64);
                        let _ = self.io.close(h, t | FAILED_CONNECT_CLOSE);
                    }
                    self.connect_next(slot, next);
                } else {
                    if let Some(c) = self.conn(slot) {
                        c.sock[side] = failed;
                    }
                    self.drop_conn(slot, DropReason::TargetConnect(e));
                }
            }
        }
    }

    fn begin_handshake(&mut self, slot: u32) {
        let nonce = match self.nonces.next() {
            Ok(n) => n,
            Err(e) => {
                self.drop_conn(slot, DropReason::Random(e));
                return;
            }
        };
        // The key pair is deferred: the handshake asks for it (from the pool) when it needs it,
        // a server only after the client's MAC verified.
        let exchange = match (self.cfg.x25519, self.cfg.pfs) {
            (true, _) => Exchange::X25519Deferred,
            (false, PfsPolicy::Disabled) => Exchange::Group14(DhMode::NoPfs),
            (false, pfs) => Exchange::Group14Deferred {
                require_pfs: pfs == PfsPolicy::Required,
            },
        };
        let role = match self.cfg.mode {
            Mode::Encrypt => Role::Client,
            Mode::Decrypt => Role::Server,
        };
        let keys = self.cfg.keys.current();
        // A server sends y_S ‖ h_S before its shared-secret computation, so the client's runs
        // at the same time (on_sent derives once the answer is out).
        let hs =
            Handshake::with_exchange(role, keys.clone(), nonce, exchange).answer_before_deriving();
        let t = self.tok(slot, TAG_HS_TIMER);
        let timer = self.io.timer(self.cfg.timeout, t);
        if let Some(c) = self.conn(slot) {
            c.phase = Phase::Handshake;
            c.hs = Some(Box::new(hs));
            c.hs_keys = Some(keys);
            c.timer = Some(timer);
        }
        self.flush_handshake(slot);
        self.recv(slot, CRYPT);
    }

    /// Sends the handshake's pending output if no handshake send is in flight.
    fn flush_handshake(&mut self, slot: u32) {
        let mut out = self.take_spare();
        let Some(c) = self.conn(slot) else {
            return;
        };
        let (Some(hs), Some(h)) = (c.hs.as_mut(), c.sock[CRYPT]) else {
            return;
        };
        if c.hs_sending || hs.output().is_empty() {
            self.keep_spare(out);
            return;
        }
        out.extend_from_slice(hs.output());
        hs.consume_output(out.len());
        c.hs_sending = true;
        let t = self.tok(slot, TAG_SEND + CRYPT as u64);
        if let Err(e) = self.io.send(h, out, t) {
            self.drop_conn(slot, DropReason::Submit(e));
        }
    }

    fn on_handshake_data(&mut self, slot: u32, data: &[u8]) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        let Some(mut hs) = c.hs.take() else {
            return;
        };
        let mut rest = data;
        let fed = loop {
            match hs.read(rest) {
                Ok(consumed) => rest = rest.get(consumed..).unwrap_or_default(),
                Err(e) => break Err(DropReason::Handshake(e)),
            }
            let Some(kind) = hs.wants_key_pair() else {
                break Ok(());
            };
            let pair = self.pool.as_ref().map(KeyPool::take);
            match pair {
                Some(Ok(pair)) if pair.kind() == kind => {
                    if let Err(e) = hs.provide_key_pair(pair) {
                        break Err(DropReason::Handshake(e));
                    }
                }
                Some(Err(e)) => break Err(DropReason::Random(e)),
                _ => break Err(DropReason::Handshake(HandshakeError::UnexpectedKeyPair)),
            }
        };
        let done = hs.is_done();
        let answered = hs.wants_derive();
        let decrypt = self.cfg.mode == Mode::Decrypt;
        let Some(c) = self.conn(slot) else {
            return;
        };
        c.hs = Some(hs);
        if let Err(reason) = fed {
            self.drop_conn(slot, reason);
            return;
        }
        c.leftover.extend_from_slice(rest);
        let connect_now = decrypt && (done || answered) && !c.connect_started;
        self.flush_handshake(slot);
        if connect_now {
            // The client has authenticated: connect to the target while the handshake ends.
            self.begin_connect(slot);
            if self.conn(slot).is_none_or(|c| c.closing.is_some()) {
                return;
            }
        }
        if done {
            self.try_finish_handshake(slot);
        } else if !answered {
            self.recv(slot, CRYPT);
        }
        // Answered: the keys are derived once y_S ‖ h_S is sent (on_sent); further input waits
        // in the kernel until the pumps read it.
    }

    /// Server: derives the session keys once its answer `y_S ‖ h_S` has been handed to the
    /// kernel, so this computation overlaps the client's (see `answer_before_deriving`).
    fn derive_if_answered(&mut self, slot: u32) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.hs_sending {
            return;
        }
        let Some(hs) = c.hs.as_mut() else {
            return;
        };
        if !hs.wants_derive() {
            return;
        }
        if let Err(e) = hs.derive() {
            self.drop_conn(slot, DropReason::Handshake(e));
        }
    }

    /// Completes the handshake once the keys exist and every handshake byte has been sent.
    fn try_finish_handshake(&mut self, slot: u32) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.hs_sending || !c.hs.as_ref().is_some_and(|h| h.is_done()) {
            return;
        }
        let Some(hs) = c.hs.take() else {
            return;
        };
        let session = match hs.finish() {
            Ok(s) => s,
            Err(hs) => {
                // Output is still pending; keep waiting for its send.
                c.hs = Some(hs);
                return;
            }
        };
        let key_index = session.key_index();
        let (encoder, decoder) = session.into_stream();
        c.encoder = Some(encoder);
        c.decoder = Some(decoder);
        let timer = c.timer.take();
        if let Some(id) = timer {
            self.io.cancel_timer(id);
        }
        self.stats.handshakes += 1;
        if !self.claim_key(slot, key_index) {
            return;
        }
        match self.cfg.mode {
            Mode::Encrypt => self.start_pumps(slot),
            Mode::Decrypt => {
                let Some(c) = self.conn(slot) else {
                    return;
                };
                if c.target_up {
                    self.start_pumps(slot);
                    return;
                }
                c.phase = Phase::ConnectAfter;
                if !c.connect_started {
                    self.begin_connect(slot);
                }
            }
        }
    }

    /// Counts the connection against the key its handshake used and logs that key's
    /// fingerprint (as a notice: rate-limited, but on its own budget, so it never hides a
    /// warning). Returns false (and drops the
    /// connection) if the key was removed while the handshake ran.
    fn claim_key(&mut self, slot: u32, key_index: usize) -> bool {
        let Some(c) = self.conn(slot) else {
            return false;
        };
        let key = c
            .hs_keys
            .take()
            .and_then(|set| set.as_slice().get(key_index).cloned());
        let claim = key.and_then(|k| self.cfg.keys.begin_use(&k));
        let Some(claim) = claim else {
            self.drop_conn(slot, DropReason::KeyRemoved);
            return false;
        };
        let mode = mode_flag(self.cfg.mode);
        self.log.notice(format_args!(
            "connection established ({mode}) with key {}",
            claim.fingerprint()
        ));
        if let Some(c) = self.conn(slot) {
            c.key_use = Some(claim);
        }
        true
    }

    // ---- pumps ----

    fn start_pumps(&mut self, slot: u32) {
        let keepalive = self.cfg.keepalive;
        let accepted = self.accepted_side();
        let inherited = self.listener_opts;
        let Some(c) = self.conn(slot) else {
            return;
        };
        c.phase = Phase::Pumping;
        let mut socks = c.sock;
        if inherited {
            // Set on the listener already (see `Relay::new`).
            socks[accepted] = None;
        }
        for h in socks.into_iter().flatten() {
            if let Some(fd) = self.io.fd(h) {
                // These fail harmlessly on Unix sockets; spiped ignores the errors too (§4).
                let _ = sys::set_nodelay(fd, true);
                let _ = sys::set_keepalive(fd, keepalive);
            }
        }
        // Encrypted bytes that arrived with the end of the handshake come first.
        let leftover = self
            .conn(slot)
            .map(|c| std::mem::take(&mut c.leftover))
            .unwrap_or_default();
        if !leftover.is_empty() {
            if !self.transform(slot, DEC, &leftover) {
                return;
            }
            self.push_output(slot, DEC);
        }
        self.recv(slot, PLAIN);
        self.recv(slot, CRYPT);
    }

    /// Runs `data` read on the source of `dir` through the encoder or decoder into the pump's
    /// pending output. Returns false if the connection was dropped.
    fn transform(&mut self, slot: u32, dir: usize, data: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(slot) else {
            return false;
        };
        if let Err(e) = transform_into(c, dir, data, &mut self.spare) {
            self.drop_conn(slot, DropReason::BadStream(e));
            return false;
        }
        true
    }

    /// A receive completed on `side` of a live connection. While pumping, the bytes go from the
    /// driver's buffer straight through the encoder or decoder (no intermediate copy) before the
    /// buffer is recycled; during setup they take the general path of [`Relay::on_data`].
    fn on_received(&mut self, slot: u32, side: usize, buf: RecvBuf) {
        let Some(c) = self.conns.get_mut(slot) else {
            self.io.recycle(buf);
            return;
        };
        if c.phase != Phase::Pumping {
            let mut data = std::mem::take(&mut self.scratch);
            data.clear();
            data.extend_from_slice(self.io.data(&buf));
            self.io.recycle(buf);
            self.on_data(slot, side, &data);
            self.scratch = data;
            return;
        }
        // Side PLAIN feeds direction ENC, side CRYPT feeds DEC.
        let dir = side;
        c.pump[dir].reading = false;
        let result = transform_into(c, dir, self.io.data(&buf), &mut self.spare);
        self.io.recycle(buf);
        if let Err(e) = result {
            self.drop_conn(slot, DropReason::BadStream(e));
            return;
        }
        self.push_output(slot, dir);
        self.recv(slot, side);
    }

    /// Starts a send of the pump's pending output if none is in flight; shuts the destination
    /// down once the source has ended and everything is written.
    fn push_output(&mut self, slot: u32, dir: usize) {
        let dst = if dir == ENC { CRYPT } else { PLAIN };
        let Some(c) = self.conn(slot) else {
            return;
        };
        let Some(h) = c.sock[dst] else {
            return;
        };
        let pump = &mut c.pump[dir];
        if pump.writing {
            return;
        }
        if pump.filled > 0 {
            let mut out = std::mem::take(&mut pump.pending);
            out.truncate(pump.filled);
            pump.in_flight = pump.filled;
            pump.filled = 0;
            pump.writing = true;
            let t = self.tok(slot, TAG_SEND + dst as u64);
            if let Err(e) = self.io.send(h, out, t) {
                self.drop_conn(slot, DropReason::Submit(e));
            }
            return;
        }
        if pump.eof && !pump.shut {
            pump.shut = true;
            if c.pump[1 - dir].done {
                // The other direction has ended, so `dst` has delivered its EOF (its receive
                // queue is empty) and nothing is in flight on it: closing it sends the same
                // FIN after the same queued bytes as shutdown(SHUT_WR) followed by the close
                // that would come next, one system call and one loop turn fewer (§4 teardown).
                c.pump[dir].done = true;
                self.teardown(slot, None);
                return;
            }
            let t = self.tok(slot, TAG_SHUT + dst as u64);
            if let Err(e) = self.io.shutdown_write(h, t) {
                self.drop_conn(slot, DropReason::Submit(e));
            }
        }
    }

    /// Arms a receive on `side` unless one is pending, its direction ended or its pump's output
    /// is above [`HIGH_WATER`].
    fn recv(&mut self, slot: u32, side: usize) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        let Some(h) = c.sock[side] else {
            return;
        };
        if c.phase == Phase::Pumping {
            // Side PLAIN feeds direction ENC, side CRYPT feeds DEC.
            let pump = &mut c.pump[side];
            if pump.reading || pump.eof || pump.filled + pump.in_flight >= HIGH_WATER {
                return;
            }
            pump.reading = true;
        }
        let t = self.tok(slot, TAG_RECV + side as u64);
        match self.io.recv(h, t) {
            Ok(()) | Err(SubmitError::RecvPending) => {}
            Err(e) => self.drop_conn(slot, DropReason::Submit(e)),
        }
    }

    /// Data received before the pumps run (the pumps take theirs in [`Relay::on_received`]).
    fn on_data(&mut self, slot: u32, side: usize, data: &[u8]) {
        let Some(phase) = self.conn(slot).map(|c| c.phase) else {
            return;
        };
        if side == CRYPT && phase == Phase::Handshake {
            self.on_handshake_data(slot, data);
        } else if side == CRYPT && phase != Phase::Pumping {
            // Handshake done, target connect pending: keep the bytes for the decoder.
            if let Some(c) = self.conn(slot) {
                c.leftover.extend_from_slice(data);
            }
        }
    }

    fn on_sent(&mut self, slot: u32, side: usize) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.phase == Phase::Handshake || c.hs.is_some() {
            c.hs_sending = false;
            self.flush_handshake(slot);
            self.derive_if_answered(slot);
            self.try_finish_handshake(slot);
            return;
        }
        // A send to `side` belongs to the direction that writes `side`.
        let dir = if side == CRYPT { ENC } else { DEC };
        c.pump[dir].writing = false;
        c.pump[dir].in_flight = 0;
        self.push_output(slot, dir);
        // The source side of `dir` has the same index as `dir`.
        self.recv(slot, dir);
    }

    fn on_eof(&mut self, slot: u32, side: usize) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.phase != Phase::Pumping {
            if side == CRYPT && c.phase == Phase::Handshake {
                let rejected = c.hs.as_ref().is_some_and(|h| h.awaiting_peer_value());
                let reason = if rejected {
                    DropReason::HandshakeRejected
                } else {
                    DropReason::HandshakeEof
                };
                self.drop_conn(slot, reason);
            }
            return;
        }
        let dir = side;
        c.pump[dir].reading = false;
        c.pump[dir].eof = true;
        if dir == DEC {
            if let Some(Err(e)) = c.decoder.as_ref().map(Decoder::finish) {
                self.drop_conn(slot, DropReason::BadStream(e));
                return;
            }
        }
        self.push_output(slot, dir);
    }

    // ---- teardown ----

    fn drop_conn(&mut self, slot: u32, reason: DropReason) {
        self.teardown(slot, Some(reason));
    }

    /// Closes both sockets of `slot`, logging `reason` if it is an error. The driver defers
    /// each close until nothing is in flight on that socket.
    fn teardown(&mut self, slot: u32, reason: Option<DropReason>) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        c.closing = Some(0);
        let socks = c.sock;
        let timer = c.timer.take();
        let key_use = c.key_use.take();
        if let Some(id) = timer {
            self.io.cancel_timer(id);
        }
        match reason {
            Some(r) => {
                self.stats.dropped += 1;
                let mode = mode_flag(self.cfg.mode);
                match &key_use {
                    Some(u) => self.log.warn(format_args!(
                        "connection dropped ({mode}): {r} (key {})",
                        u.fingerprint()
                    )),
                    None => self
                        .log
                        .warn(format_args!("connection dropped ({mode}): {r}")),
                }
            }
            None => self.stats.clean_closes += 1,
        }
        if let Some(u) = key_use {
            self.cfg.keys.end_use(u);
        }
        let mut outstanding = 0u8;
        for (side, h) in socks.iter().enumerate() {
            if let Some(h) = h {
                let t = self.tok(slot, TAG_CLOSE + side as u64);
                if self.io.close(*h, t).is_ok() {
                    outstanding += 1;
                }
            }
        }
        if let Some(c) = self.conn(slot) {
            c.closing = Some(outstanding);
            c.hs = None;
            c.hs_keys = None;
            c.encoder = None;
            c.decoder = None;
            c.pump = [Pump::default(), Pump::default()];
        }
        if outstanding == 0 {
            self.release(slot);
        }
    }

    fn on_closed(&mut self, slot: u32, generation: u32) {
        if !self.conns.is_current(slot, generation) {
            return;
        }
        let Some(c) = self.conn(slot) else {
            return;
        };
        let Some(left) = c.closing else {
            return;
        };
        let left = left.saturating_sub(1);
        c.closing = Some(left);
        if left == 0 {
            self.release(slot);
        }
    }

    fn release(&mut self, slot: u32) {
        if self.conns.remove(slot).is_none() {
            return;
        }
        self.stats.active -= 1;
        if let Some(next) = self.parked.pop_front() {
            // A connection accepted beyond the limit takes the free slot.
            self.start(next);
        } else if self.accept == AcceptState::AtLimit && !self.at_limit() && self.starved.is_empty()
        {
            self.arm_accept();
        }
    }
}

#[cfg(test)]
mod tests {
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
