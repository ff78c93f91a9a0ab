//! One relayed connection as a sans-IO state machine (quinn-proto's `Connection` is the model).
//!
//! A [`Conn`] owns no socket, clock, timer or random number generator. The event loop
//! ([`Relay`](super::Relay)) feeds it what the io driver reported — the target connect
//! finished, bytes arrived on a [`Side`], a send finished, the deadline passed — together with
//! the time `now`, and carries out the [`Action`]s it queues: connect to target address `i`,
//! send bytes on a side, arm a receive, shut a side's write half, arm or cancel the deadline,
//! set the socket options, close the connection. Nonces and key pairs come from an [`Env`]
//! handed in with each event, so tests drive a connection with a fake clock and fixed
//! randomness and no sockets at all.
//!
//! Phases (spec §4):
//! - `-e`: connect to the target (deadline `-o`, carried by the connect itself), then run the
//!   handshake as the protocol client under a second `-o` deadline.
//! - `-d`: run the handshake as the protocol server (deadline `-o`). As soon as the client has
//!   authenticated (its MAC verified), connect to the target while the handshake finishes, so
//!   the connect overlaps our answer and both ends' shared-secret computation; the pumps start
//!   once both are done. The target never sees an unauthenticated client.
//! - Then two independent pumps ([`Dir::Enc`]: plaintext side → seal → encrypted side,
//!   [`Dir::Dec`]: encrypted side → open → plaintext side). Each keeps reading while its
//!   previous write is in flight, up to [`HIGH_WATER`] bytes, so the next write carries
//!   everything read meanwhile.
//! - EOF in one direction becomes `shutdown(SHUT_WR)` on the other side once everything read
//!   before it is written; the connection closes when both directions have ended. Any error
//!   closes both sockets at once, with its [`DropReason`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::cli::Mode;
use crate::io::{ConnectError, Errno, SubmitError};
use crate::proto::crypt::Role;
use crate::proto::handshake::{Handshake, KeyKind, KeyPair, PeerClosed, Session, Step};
use crate::proto::key::KeySet;
use crate::proto::packet::sealed_len;
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::{HandshakeError, NONCE_LEN, StreamError};

use super::engine::PipeConfig;
use super::keys::KeyUse;

/// A pump stops reading while this many bytes of output, in flight to the other side and
/// waiting behind that send together, are not yet written (backpressure, as spiped's
/// one-buffer pumps provide). With the two directions this bounds a pumping connection's
/// buffers to about `4 * PUMP_BUFFER` bytes.
pub const HIGH_WATER: usize = 16 * 1024;

/// Capacity of a pump buffer: just under [`HIGH_WATER`] of output plus the output of the one
/// receive that may cross it, so it never grows as long as a receive is at most
/// [`HIGH_WATER`] bytes (the daemon's receive buffers are that size): the sealed packets of a
/// plaintext read are the larger of the two outputs (the plaintext of a read of packets is
/// smaller than the read).
pub const PUMP_BUFFER: usize = HIGH_WATER + sealed_len(HIGH_WATER);

/// The two sockets of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The socket that carries plaintext (the local client with `-e`, the target with `-d`).
    Plain,
    /// The socket that carries the spiped protocol (the target with `-e`, the client with `-d`).
    Crypt,
}

impl Side {
    /// Both sides, plaintext first.
    pub const BOTH: [Side; 2] = [Side::Plain, Side::Crypt];

    /// 0 for the plaintext side, 1 for the encrypted side (an index into per-side arrays).
    pub fn index(self) -> usize {
        match self {
            Side::Plain => 0,
            Side::Crypt => 1,
        }
    }

    /// The side of an accepted connection in `mode`: the plaintext side with `-e`.
    pub fn accepted(mode: Mode) -> Side {
        match mode {
            Mode::Encrypt => Side::Plain,
            Mode::Decrypt => Side::Crypt,
        }
    }

    /// The side of the target connection in `mode`: the encrypted side with `-e`.
    pub fn target(mode: Mode) -> Side {
        match mode {
            Mode::Encrypt => Side::Crypt,
            Mode::Decrypt => Side::Plain,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Plain => "plaintext",
            Side::Crypt => "encrypted",
        })
    }
}

/// The two directions of a running connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Reads the plaintext side, seals, writes the encrypted side.
    Enc,
    /// Reads the encrypted side, opens, writes the plaintext side.
    Dec,
}

impl Dir {
    /// The direction that reads `side`.
    pub fn reading(side: Side) -> Dir {
        match side {
            Side::Plain => Dir::Enc,
            Side::Crypt => Dir::Dec,
        }
    }

    /// The direction that writes `side`.
    pub fn writing(side: Side) -> Dir {
        match side {
            Side::Crypt => Dir::Enc,
            Side::Plain => Dir::Dec,
        }
    }

    /// The side this direction reads.
    pub fn source(self) -> Side {
        match self {
            Dir::Enc => Side::Plain,
            Dir::Dec => Side::Crypt,
        }
    }

    /// The side this direction writes.
    pub fn dest(self) -> Side {
        match self {
            Dir::Enc => Side::Crypt,
            Dir::Dec => Side::Plain,
        }
    }

    fn index(self) -> usize {
        self.source().index()
    }

    fn other(self) -> Dir {
        match self {
            Dir::Enc => Dir::Dec,
            Dir::Dec => Dir::Enc,
        }
    }
}

/// A fault of this program rather than of a peer or the system: logged as an internal error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalBug {
    /// A handshake asked for a key pair of a kind no pool was set up for.
    NoKeyPool(KeyKind),
    /// The handshake refused what we handed it (a key pair it did not ask for, a derivation
    /// that was not pending, a session taken twice).
    HandshakeMisuse,
}

impl fmt::Display for LocalBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalBug::NoKeyPool(kind) => write!(f, "no {kind:?} key-pair pool was set up"),
            LocalBug::HandshakeMisuse => {
                f.write_str("the handshake was driven out of order by the relay")
            }
        }
    }
}

/// Why a connection was dropped; each is logged as one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The peer failed the handshake: its DH value did not verify (usually a wrong key), was
    /// out of range, PFS was required and the peer sent `y = 1`, or the ends disagree on
    /// `--x25519`. Never [`HandshakeError::UnexpectedKeyPair`], which is a [`LocalBug`].
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
    /// Reading from a socket failed, e.g. `ECONNRESET`, or `ETIMEDOUT` when the keep-alive
    /// probes or `TCP_USER_TIMEOUT` found the peer gone (kind `peer_timeout`; `EHOSTUNREACH`
    /// and `ENETUNREACH` there are `peer_unreachable`).
    Recv(Side, Errno),
    /// Writing to a socket failed, e.g. `EPIPE`; `ETIMEDOUT`, `EHOSTUNREACH` and
    /// `ENETUNREACH` as for [`DropReason::Recv`].
    Send(Side, Errno),
    /// An encrypted packet failed to verify or had a bad length field, or the encrypted
    /// stream ended inside a packet.
    BadStream(StreamError),
    /// The system's random number generator failed.
    Random(Errno),
    /// An io operation could not be submitted.
    Submit(SubmitError),
    /// `-d`: the handshake finished with a key that was removed from the accepted set
    /// (`keys set` or a reload) while it ran.
    KeyRemoved,
    /// A bug of ours, not the peer's.
    Internal(LocalBug),
    /// Still in the handshake when its pipe's handshake limit was reached: the oldest such
    /// connection is dropped to let a new one start.
    HandshakeEvicted {
        /// The pipe's handshake limit.
        limit: usize,
    },
}

impl DropReason {
    /// Every label [`DropReason::kind`] can return, for metrics that export each at 0 before it
    /// first occurs.
    pub const KINDS: &'static [&'static str] = &[
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
        "target_timeout",
        "target_refused",
        "target_unreachable",
        "target_socket",
        "peer_reset",
        "peer_timeout",
        "peer_unreachable",
        "recv_failed",
        "send_failed",
        "truncated_stream",
        "bad_packet_mac",
        "bad_packet",
        "rng_failed",
        "io_submit_failed",
        "key_removed",
        "internal_error",
    ];

    /// A stable short label of the cause, for log fields and metrics: lower case, words joined
    /// by `_`, never changed once released; one of [`DropReason::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            DropReason::Handshake(e) => match e {
                HandshakeError::BadDhMac => "bad_mac",
                HandshakeError::DhOutOfRange => "dh_out_of_range",
                HandshakeError::PfsRequired => "pfs_required",
                HandshakeError::PeerUsesX25519 => "peer_uses_x25519",
                HandshakeError::PeerNotX25519 => "peer_not_x25519",
                HandshakeError::BadX25519Padding => "bad_x25519_padding",
                HandshakeError::ZeroSharedSecret => "zero_shared_secret",
                _ => "handshake_failed",
            },
            DropReason::HandshakeTimeout => "handshake_timeout",
            DropReason::HandshakeEof => "handshake_eof",
            DropReason::HandshakeRejected => "handshake_rejected",
            DropReason::TargetConnect(ConnectError::TimedOut) => "target_timeout",
            DropReason::TargetConnect(ConnectError::Os(e)) if e.0 == libc::ECONNREFUSED => {
                "target_refused"
            }
            DropReason::TargetConnect(ConnectError::Os(_)) => "target_unreachable",
            DropReason::TargetSocket(_) => "target_socket",
            DropReason::Recv(_, e) if e.0 == libc::ECONNRESET => "peer_reset",
            DropReason::Recv(_, e) | DropReason::Send(_, e) if e.0 == libc::ETIMEDOUT => {
                "peer_timeout"
            }
            DropReason::Recv(_, e) | DropReason::Send(_, e) if gave_up_unreachable(*e) => {
                "peer_unreachable"
            }
            DropReason::Recv(..) => "recv_failed",
            DropReason::Send(..) => "send_failed",
            DropReason::BadStream(StreamError::Truncated { .. }) => "truncated_stream",
            DropReason::BadStream(StreamError::Packet(crate::proto::PacketError::BadMac)) => {
                "bad_packet_mac"
            }
            DropReason::BadStream(_) => "bad_packet",
            DropReason::Random(_) => "rng_failed",
            DropReason::Submit(_) => "io_submit_failed",
            DropReason::KeyRemoved => "key_removed",
            DropReason::Internal(_) => "internal_error",
            DropReason::HandshakeEvicted { .. } => "handshake_evicted",
        }
    }

    /// Whether the cause lies with this program rather than a peer, the target or the system.
    pub fn is_local_bug(&self) -> bool {
        matches!(self, DropReason::Internal(_))
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            DropReason::Recv(side, e) | DropReason::Send(side, e) if e.0 == libc::ETIMEDOUT => {
                write!(
                    f,
                    "{side} peer unreachable: timed out (no answer to keep-alive probes, or \
                     data unacknowledged past TCP_USER_TIMEOUT or the retransmission limit)"
                )
            }
            DropReason::Recv(side, e) | DropReason::Send(side, e) if gave_up_unreachable(*e) => {
                write!(
                    f,
                    "{side} peer unreachable: {e} (the kernel gave up on the connection: \
                     keep-alive probes, TCP_USER_TIMEOUT or retransmissions)"
                )
            }
            DropReason::Recv(side, e) => write!(f, "reading from the {side} socket failed: {e}"),
            DropReason::Send(side, e) => write!(f, "writing to the {side} socket failed: {e}"),
            DropReason::BadStream(StreamError::Truncated { have }) => write!(
                f,
                "encrypted stream truncated: EOF inside a packet ({have} bytes of it received)"
            ),
            // The packet errors say "bad packet: ..." themselves.
            DropReason::BadStream(e) => e.fmt(f),
            DropReason::Random(e) => write!(f, "the random number generator failed: {e}"),
            DropReason::Submit(e) => write!(f, "io error: {e}"),
            DropReason::KeyRemoved => {
                f.write_str("its key was removed from the accepted keys during the handshake")
            }
            DropReason::Internal(bug) => write!(f, "internal error (a bug in spiperelay): {bug}"),
            DropReason::HandshakeEvicted { limit } => write!(
                f,
                "evicted while still in the handshake to admit a new client (handshake limit \
                 {limit} reached; it was the oldest)"
            ),
        }
    }
}

/// Whether a receive or send error on an established connection means the kernel gave up on
/// an unreachable peer: on Linux a route failure (`EHOSTUNREACH`, `ENETUNREACH`, from ICMP or
/// from our own routing table once the link is gone) is only a soft error on such a socket, and
/// surfaces in place of `ETIMEDOUT` when the keep-alive probes, `TCP_USER_TIMEOUT` or the
/// retransmissions run out.
fn gave_up_unreachable(e: Errno) -> bool {
    e.0 == libc::EHOSTUNREACH || e.0 == libc::ENETUNREACH
}

/// Why an [`Env`] could not hand out a key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPairError {
    /// The random number generator failed.
    Random(Errno),
    /// No source of key pairs of this kind was set up (a bug of ours).
    NoPool(KeyKind),
}

/// Where a connection gets its randomness: handshake nonces and key pairs. The relay's is the
/// OS RNG and the background key-pair pools; tests hand in fixed values.
pub trait Env {
    /// A nonce never handed out before (§1.3).
    ///
    /// # Errors
    /// The RNG's error.
    fn nonce(&mut self) -> Result<[u8; NONCE_LEN], Errno>;

    /// A fresh key pair of `kind`, never handed out before.
    ///
    /// # Errors
    /// [`KeyPairError::Random`] when the RNG fails; [`KeyPairError::NoPool`] when this
    /// environment has no source for `kind`.
    fn key_pair(&mut self, kind: KeyKind) -> Result<KeyPair, KeyPairError>;
}

/// What a [`Conn`] asks its event loop to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Connect a new socket for target address `index` of the pipe's list, giving up after
    /// `timeout`. The socket becomes the target [`Side`]. If no socket can be created, report
    /// it with [`Conn::on_connect_unsubmitted`].
    Connect {
        /// Index into the pipe's target addresses.
        index: usize,
        /// What is left of the connect phase's deadline.
        timeout: Duration,
    },
    /// Close the target socket of a failed connect attempt (the next address is tried); the
    /// close does not count towards the connection's teardown.
    DiscardTarget,
    /// Send all of `buf` on `side`; [`Conn::on_sent`] follows.
    Send {
        /// Where to send.
        side: Side,
        /// The bytes; handed back by the driver when the send ends.
        buf: Vec<u8>,
    },
    /// Arm one receive on `side` (none is pending); [`Conn::on_recv`], [`Conn::on_eof`] or
    /// [`Conn::on_recv_failed`] follows.
    Recv(Side),
    /// `shutdown(SHUT_WR)` on `side` after its pending send; [`Conn::on_shutdown_done`] follows.
    ShutdownWrite(Side),
    /// Arm the setup deadline to fire after this long ([`Conn::on_deadline`]).
    ArmDeadline(Duration),
    /// Cancel the armed setup deadline.
    CancelDeadline,
    /// Set `TCP_NODELAY` and the pipe's `SO_KEEPALIVE` on both sockets (they fail harmlessly
    /// on Unix sockets, as spiped's do, §4), and each leg's keep-alive timing and
    /// `TCP_USER_TIMEOUT` ([`PipeConfig::tcp_options`]) on its socket.
    SetSockOpts,
    /// The handshake is done: count this connection against key `index` of `keys` (the set
    /// the handshake ran with) in the pipe's key ring and report the outcome with
    /// [`Conn::on_key_claimed`] (`None` if the key was removed from the accepted set while the
    /// handshake ran). The set travels by its heap pointer: no key bytes are copied into the
    /// action queue.
    ClaimKey {
        /// The key set the handshake started with.
        keys: KeySet,
        /// The index of the session's key in it.
        index: usize,
    },
    /// Close both sockets and free the connection once the closes are done. `reason` is the
    /// drop to log and count (`None`: both directions ended cleanly); `key` is the key use to
    /// hand back to the key ring.
    Close {
        /// Why the connection was dropped, if it was.
        reason: Option<DropReason>,
        /// The key this connection counted against, if it got that far.
        key: Option<KeyUse>,
    },
}

/// Where the events of one call go, with the inputs a [`Conn`] may not own: the time, the
/// pipe's settings, the randomness and the spare send buffers.
pub struct Ctx<'a> {
    /// The time of the event.
    pub now: Instant,
    /// The settings of the connection's pipe as they were when it was accepted.
    pub cfg: &'a PipeConfig,
    /// Nonces and key pairs.
    pub env: &'a mut dyn Env,
    /// Spare send buffers (taken for new output, returned by the event loop after sends).
    pub spare: &'a mut Vec<Vec<u8>>,
    /// The actions queued so far, in order.
    pub out: &'a mut VecDeque<Action>,
}

impl Ctx<'_> {
    fn push(&mut self, action: Action) {
        self.out.push_back(action);
    }

    /// An empty spare buffer.
    fn take_spare(&mut self) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted beyond the `-n` limit; waits for a free slot without being served, as if it
    /// were still in the backlog ([`Conn::start`] ends this).
    Parked,
    /// `-e`: connecting to the target before the handshake.
    ConnectFirst,
    /// Handshake running on the encrypted side (`-d`: the target connect may run alongside).
    Handshake,
    /// `-d`: the handshake is done; waiting for the target connect it started.
    ConnectAfter,
    /// Both pumps running.
    Pumping,
    /// Closed: the [`Action::Close`] has been queued; later events are ignored.
    Closed,
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

/// The target connect of a connection.
#[derive(Clone, Copy, Debug, Default)]
struct Target {
    /// The connect has been started (`-d`: during the handshake, once the client
    /// authenticated).
    started: bool,
    /// It succeeded.
    up: bool,
    /// When the connect phase must end.
    deadline: Option<Instant>,
    /// Which target address is being tried.
    index: usize,
}

/// The handshake of a connection while it runs.
struct Setup {
    hs: Handshake,
    /// The key set the handshake was started with (its session's `key_index` refers to it).
    keys: KeySet,
    /// A handshake send is in flight on the encrypted side: the next one, the derivation and
    /// the pumps wait for it.
    sending: bool,
    /// Handshake bytes handed out while a send was in flight: they go out when it completes.
    queued: Vec<u8>,
    /// `-d`: the client's MAC verified (the target connect may start).
    authenticated: bool,
    /// A receive is armed on the encrypted side.
    reading: bool,
    /// The session, once the handshake handed it over while its last send was still in flight
    /// (the peer's answer can be handled before our send's completion): the pumps must not
    /// send on the encrypted side before that completion.
    ready: Option<Box<Session>>,
}

/// One relayed connection; see the module documentation.
pub struct Conn {
    mode: Mode,
    phase: Phase,
    setup: Option<Box<Setup>>,
    /// The key this connection uses, counted in the key ring until [`Action::Close`].
    key_use: Option<KeyUse>,
    /// The setup deadline is armed.
    deadline_armed: bool,
    target: Target,
    /// Encrypted bytes read after the end of the handshake, before the pumps started.
    leftover: Vec<u8>,
    encoder: Option<Encoder>,
    decoder: Option<Decoder>,
    pump: [Pump; 2],
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("mode", &self.mode)
            .field("phase", &self.phase)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection just accepted by a pipe in `mode`. With `parked` it waits (holding its
    /// socket, doing nothing) until [`Conn::start`]; otherwise call [`Conn::start`] at once.
    pub fn new(mode: Mode, parked: bool) -> Self {
        Conn {
            mode,
            phase: if parked {
                Phase::Parked
            } else {
                Phase::Handshake
            },
            setup: None,
            key_use: None,
            deadline_armed: false,
            target: Target::default(),
            leftover: Vec::new(),
            encoder: None,
            decoder: None,
            pump: [Pump::default(), Pump::default()],
        }
    }

    /// Whether the connection has closed (its [`Action::Close`] is queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether it waits, parked, for a free slot.
    pub fn is_parked(&self) -> bool {
        self.phase == Phase::Parked
    }

    /// Whether it has started and not yet authenticated its peer: `-e` until the handshake
    /// is done (target connect included), `-d` until the client's MAC verified. Only such
    /// connections count against a handshake limit.
    pub fn in_handshake(&self) -> bool {
        match self.phase {
            Phase::ConnectFirst => true,
            Phase::Handshake => !self.setup.as_ref().is_some_and(|s| s.authenticated),
            _ => false,
        }
    }

    /// Whether the send in flight on the encrypted side belongs to the handshake.
    fn handshake_sending(&self) -> bool {
        self.setup.as_ref().is_some_and(|s| s.sending)
    }

    /// Starts serving: `-e` connects to the target, `-d` starts the handshake.
    pub fn start(&mut self, cx: &mut Ctx<'_>) {
        match self.mode {
            Mode::Encrypt => {
                self.phase = Phase::ConnectFirst;
                self.begin_connect(cx);
            }
            Mode::Decrypt => self.begin_handshake(cx),
        }
    }

    /// Drops the connection for `reason` (for faults the event loop finds itself, such as a
    /// submission that failed). Does nothing once closed.
    pub fn fail(&mut self, reason: DropReason, cx: &mut Ctx<'_>) {
        self.close(Some(reason), cx);
    }

    // ---- target connect ----

    /// The one place a target connect starts: sets the phase deadline and tries the first
    /// address.
    fn begin_connect(&mut self, cx: &mut Ctx<'_>) {
        self.target.started = true;
        self.target.deadline = Some(cx.now + cx.cfg.timeout);
        self.connect_to(0, cx);
    }

    /// Connects to target address `index` within what is left of the phase's deadline.
    fn connect_to(&mut self, index: usize, cx: &mut Ctx<'_>) {
        let deadline = self.target.deadline.unwrap_or(cx.now);
        let left = deadline.saturating_duration_since(cx.now);
        if left.is_zero() {
            self.fail(DropReason::TargetConnect(ConnectError::TimedOut), cx);
            return;
        }
        self.target.index = index;
        cx.push(Action::Connect {
            index,
            timeout: left,
        });
    }

    /// The [`Action::Connect`] for address `index` could not be submitted. Returns true when
    /// the connection should wait for descriptors (out of them: the event loop retries with
    /// [`Conn::retry_connect`] after a back-off, within the phase's deadline); otherwise the
    /// connection is dropped.
    pub fn on_connect_unsubmitted(&mut self, error: SubmitError, cx: &mut Ctx<'_>) -> bool {
        match error {
            SubmitError::Socket(e) if e.is_resource_exhaustion() => true,
            SubmitError::Socket(e) => {
                self.fail(DropReason::TargetSocket(e), cx);
                false
            }
            e => {
                self.fail(DropReason::Submit(e), cx);
                false
            }
        }
    }

    /// Retries the connect to the address that was starved of descriptors.
    pub fn retry_connect(&mut self, cx: &mut Ctx<'_>) {
        if self.phase != Phase::Closed {
            self.connect_to(self.target.index, cx);
        }
    }

    /// The target connect finished. On failure the next address is tried (unless it timed
    /// out or none is left).
    pub fn on_connected(&mut self, result: Result<(), ConnectError>, cx: &mut Ctx<'_>) {
        if self.phase == Phase::Closed {
            return;
        }
        match result {
            Ok(()) => {
                self.target.up = true;
                match self.phase {
                    Phase::ConnectFirst => self.begin_handshake(cx),
                    Phase::ConnectAfter => self.start_pumps(cx),
                    // -d: the handshake is still running; the pumps start when it ends.
                    _ => {}
                }
            }
            Err(e) => {
                let next = self.target.index + 1;
                if next < cx.cfg.targets.len() && e != ConnectError::TimedOut {
                    cx.push(Action::DiscardTarget);
                    self.connect_to(next, cx);
                } else {
                    self.fail(DropReason::TargetConnect(e), cx);
                }
            }
        }
    }

    // ---- handshake ----

    fn begin_handshake(&mut self, cx: &mut Ctx<'_>) {
        let nonce = match cx.env.nonce() {
            Ok(n) => n,
            Err(e) => {
                self.fail(DropReason::Random(e), cx);
                return;
            }
        };
        let role = match self.mode {
            Mode::Encrypt => Role::Client,
            Mode::Decrypt => Role::Server,
        };
        let keys = cx.cfg.keys.current();
        // The key pair is deferred: the handshake asks for it when it needs it, a server only
        // after the client's MAC verified. A server sends y_S ‖ h_S before its shared-secret
        // computation, so the client's runs at the same time (derived once the answer is out).
        let hs = Handshake::with_exchange(role, keys.clone(), nonce, cx.cfg.exchange.deferred())
            .answer_before_deriving();
        self.phase = Phase::Handshake;
        self.setup = Some(Box::new(Setup {
            hs,
            keys,
            sending: false,
            queued: Vec::new(),
            authenticated: false,
            reading: false,
            ready: None,
        }));
        self.deadline_armed = true;
        cx.push(Action::ArmDeadline(cx.cfg.timeout));
        self.drive_handshake(cx);
    }

    /// Feeds handshake bytes read on the encrypted side; bytes after the handshake are kept for
    /// the decoder.
    fn on_handshake_data(&mut self, data: &[u8], cx: &mut Ctx<'_>) {
        let Some(setup) = self.setup.as_mut() else {
            return;
        };
        setup.reading = false;
        let server = setup.hs.role() == Role::Server;
        let mut rest = data;
        loop {
            let step = match setup.hs.read(rest) {
                Ok((consumed, step)) => {
                    rest = rest.get(consumed..).unwrap_or_default();
                    step
                }
                Err(e) => {
                    self.fail(handshake_fault(e), cx);
                    return;
                }
            };
            // Our output was all taken before this read, so a server that asks for anything
            // but input has validated the client's MAC (§1.5): the client authenticated.
            match step {
                Step::NeedInput(_) => break,
                Step::NeedKeyPair(kind) => {
                    // A key pair is handed in as soon as it is asked for (a client after the
                    // server's nonce, a server once the client's MAC verified); then the rest
                    // is read on. The `y ‖ h` it queues is sent by `drive_handshake`.
                    setup.authenticated |= server;
                    match provide_pair(&mut setup.hs, kind, cx) {
                        Ok(Step::Done(session)) => {
                            setup.ready = Some(session);
                            break;
                        }
                        Ok(_) => {}
                        Err(reason) => {
                            self.fail(reason, cx);
                            return;
                        }
                    }
                }
                Step::Done(session) => {
                    setup.authenticated |= server;
                    setup.ready = Some(session);
                    break;
                }
                Step::Send(_) | Step::Derive => {
                    setup.authenticated |= server;
                    break;
                }
            }
        }
        self.leftover.extend_from_slice(rest);
        self.drive_handshake(cx);
    }

    /// The one place the handshake is driven: does what each step asks for until it waits for
    /// input or for its send in flight, then starts the target connect (`-d`, once the client
    /// authenticated) and finishes the handshake when it is done.
    fn drive_handshake(&mut self, cx: &mut Ctx<'_>) {
        let outcome = 'drive: {
            let Some(setup) = self.setup.as_mut() else {
                return;
            };
            if !setup.sending && !setup.queued.is_empty() {
                // What was handed out while the last send was in flight goes out now.
                setup.sending = true;
                cx.push(Action::Send {
                    side: Side::Crypt,
                    buf: std::mem::take(&mut setup.queued),
                });
            }
            if let Some(session) = setup.ready.take() {
                if setup.sending {
                    setup.ready = Some(session);
                    break 'drive Ok(None);
                }
                break 'drive Ok(Some(session));
            }
            let mut step = match setup.hs.next_step() {
                Ok(step) => step,
                Err(e) => break 'drive Err(handshake_fault(e)),
            };
            loop {
                let next = match step {
                    Step::Send(bytes) => {
                        let n = bytes.len();
                        if setup.sending {
                            // The next message waits for the send in flight; input may not.
                            if setup.queued.is_empty() {
                                setup.queued = cx.take_spare();
                            }
                            setup.queued.extend_from_slice(bytes);
                        } else {
                            let mut buf = cx.take_spare();
                            buf.extend_from_slice(bytes);
                            setup.sending = true;
                            cx.push(Action::Send {
                                side: Side::Crypt,
                                buf,
                            });
                        }
                        setup.hs.sent(n).map_err(handshake_fault)
                    }
                    Step::NeedKeyPair(kind) => provide_pair(&mut setup.hs, kind, cx),
                    Step::Derive if setup.sending => break Ok(None),
                    Step::Derive => setup.hs.derive().map_err(handshake_fault),
                    Step::NeedInput(_) => {
                        if !setup.reading {
                            setup.reading = true;
                            cx.push(Action::Recv(Side::Crypt));
                        }
                        break Ok(None);
                    }
                    Step::Done(session) if setup.sending => {
                        setup.ready = Some(session);
                        break Ok(None);
                    }
                    Step::Done(session) => break Ok(Some(session)),
                };
                step = match next {
                    Ok(step) => step,
                    Err(reason) => break Err(reason),
                };
            }
        };
        let session = match outcome {
            Err(reason) => {
                self.fail(reason, cx);
                return;
            }
            Ok(s) => s,
        };
        let authenticated = self.setup.as_ref().is_some_and(|s| s.authenticated);
        if self.mode == Mode::Decrypt
            && (authenticated || session.is_some())
            && !self.target.started
        {
            // The client has authenticated: connect to the target while the handshake ends.
            self.begin_connect(cx);
            if self.phase == Phase::Closed {
                return;
            }
        }
        if let Some(session) = session {
            self.finish_handshake(session, cx);
        }
    }

    /// The handshake is done and every byte of it sent: takes its session and asks for the key
    /// to be counted ([`Action::ClaimKey`]).
    fn finish_handshake(&mut self, session: Box<Session>, cx: &mut Ctx<'_>) {
        let Some(setup) = self.setup.take() else {
            return;
        };
        let key_index = session.key_index();
        let (encoder, decoder) = session.into_stream();
        self.encoder = Some(encoder);
        self.decoder = Some(decoder);
        if self.deadline_armed {
            self.deadline_armed = false;
            cx.push(Action::CancelDeadline);
        }
        self.phase = Phase::ConnectAfter;
        cx.push(Action::ClaimKey {
            keys: setup.keys,
            index: key_index,
        });
    }

    /// The outcome of [`Action::ClaimKey`]: `None` drops the connection (its key was removed
    /// from the accepted set while the handshake ran); otherwise the pumps start, or with `-d`
    /// wait for the target connect. A claim this connection cannot take (it closed meanwhile)
    /// is handed back for the key ring.
    #[must_use = "a claim handed back must be returned to the key ring"]
    pub fn on_key_claimed(&mut self, claim: Option<KeyUse>, cx: &mut Ctx<'_>) -> Option<KeyUse> {
        if self.phase != Phase::ConnectAfter || self.key_use.is_some() {
            return claim;
        }
        let Some(claim) = claim else {
            self.fail(DropReason::KeyRemoved, cx);
            return None;
        };
        self.key_use = Some(claim);
        if self.target.up {
            self.start_pumps(cx);
        }
        None
    }

    /// The deadline of the current setup phase passed.
    pub fn on_deadline(&mut self, cx: &mut Ctx<'_>) {
        self.deadline_armed = false;
        self.fail(DropReason::HandshakeTimeout, cx);
    }

    // ---- io completions ----

    /// Bytes arrived on `side`. While pumping they go from `data` (the driver's buffer)
    /// straight through the encoder or decoder, with no intermediate copy.
    pub fn on_recv(&mut self, side: Side, data: &[u8], cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Pumping => {
                let dir = Dir::reading(side);
                self.pump[dir.index()].reading = false;
                if let Err(e) = self.transform(dir, data, cx.spare) {
                    self.fail(DropReason::BadStream(e), cx);
                    return;
                }
                self.push_output(dir, cx);
                self.recv(side, cx);
            }
            Phase::Handshake if side == Side::Crypt => self.on_handshake_data(data, cx),
            // Handshake done, target connect pending: keep the bytes for the decoder.
            Phase::ConnectAfter if side == Side::Crypt => self.leftover.extend_from_slice(data),
            _ => {}
        }
    }

    /// The peer of `side` shut down its write half.
    pub fn on_eof(&mut self, side: Side, cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Pumping => {
                let dir = Dir::reading(side);
                let pump = &mut self.pump[dir.index()];
                pump.reading = false;
                pump.eof = true;
                if dir == Dir::Dec
                    && let Some(Err(e)) = self.decoder.as_ref().map(Decoder::finish)
                {
                    self.fail(DropReason::BadStream(e), cx);
                    return;
                }
                self.push_output(dir, cx);
            }
            Phase::Handshake if side == Side::Crypt => {
                let reason = match self.setup.as_ref().map(|s| s.hs.peer_closed()) {
                    Some(PeerClosed::Rejected) => DropReason::HandshakeRejected,
                    _ => DropReason::HandshakeEof,
                };
                self.fail(reason, cx);
            }
            _ => {}
        }
    }

    /// A receive on `side` failed.
    pub fn on_recv_failed(&mut self, side: Side, error: Errno, cx: &mut Ctx<'_>) {
        self.fail(DropReason::Recv(side, error), cx);
    }

    /// A send on `side` ended (the event loop keeps the buffer).
    pub fn on_sent(&mut self, side: Side, result: Result<(), Errno>, cx: &mut Ctx<'_>) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(e) = result {
            self.fail(DropReason::Send(side, e), cx);
            return;
        }
        if side == Side::Crypt && self.handshake_sending() {
            if let Some(setup) = self.setup.as_mut() {
                setup.sending = false;
            }
            self.drive_handshake(cx);
            return;
        }
        let dir = Dir::writing(side);
        let pump = &mut self.pump[dir.index()];
        pump.writing = false;
        pump.in_flight = 0;
        self.push_output(dir, cx);
        self.recv(dir.source(), cx);
    }

    /// The `shutdown(SHUT_WR)` of `side` finished: the direction writing it has ended.
    pub fn on_shutdown_done(&mut self, side: Side, cx: &mut Ctx<'_>) {
        if self.phase != Phase::Pumping {
            return;
        }
        self.pump[Dir::writing(side).index()].done = true;
        if self.pump.iter().all(|p| p.done) {
            self.close(None, cx);
        }
    }

    // ---- pumps ----

    /// The one place the pumps start: after the handshake, with the target connected.
    fn start_pumps(&mut self, cx: &mut Ctx<'_>) {
        self.phase = Phase::Pumping;
        cx.push(Action::SetSockOpts);
        // Encrypted bytes that arrived with the end of the handshake come first.
        let leftover = std::mem::take(&mut self.leftover);
        if !leftover.is_empty() {
            if let Err(e) = self.transform(Dir::Dec, &leftover, cx.spare) {
                self.fail(DropReason::BadStream(e), cx);
                return;
            }
            self.push_output(Dir::Dec, cx);
        }
        self.recv(Side::Plain, cx);
        self.recv(Side::Crypt, cx);
    }

    /// Runs `data` read on the source of `dir` through the encoder or decoder, appending to
    /// the pump's pending output (taken from `spare` if it has no buffer yet).
    fn transform(
        &mut self,
        dir: Dir,
        data: &[u8],
        spare: &mut Vec<Vec<u8>>,
    ) -> Result<(), StreamError> {
        let pump = &mut self.pump[dir.index()];
        if pump.pending.capacity() == 0 {
            pump.pending = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(PUMP_BUFFER));
        }
        let written = match dir {
            Dir::Enc => match self.encoder.as_mut() {
                Some(enc) => {
                    let room = output_room(pump, sealed_len(data.len()));
                    enc.encode_into(data, room)?
                }
                None => 0,
            },
            Dir::Dec => match self.decoder.as_mut() {
                Some(dec) => {
                    let room = output_room(pump, dec.max_output(data.len()));
                    dec.decode_into(data, room)?
                }
                None => 0,
            },
        };
        pump.filled += written;
        Ok(())
    }

    /// Starts a send of the pump's pending output if none is in flight; shuts the destination
    /// down once the source has ended and everything is written.
    fn push_output(&mut self, dir: Dir, cx: &mut Ctx<'_>) {
        let other_done = self.pump[dir.other().index()].done;
        let pump = &mut self.pump[dir.index()];
        if pump.writing {
            return;
        }
        if pump.filled > 0 {
            let mut buf = std::mem::take(&mut pump.pending);
            buf.truncate(pump.filled);
            pump.in_flight = pump.filled;
            pump.filled = 0;
            pump.writing = true;
            cx.push(Action::Send {
                side: dir.dest(),
                buf,
            });
            return;
        }
        if pump.eof && !pump.shut {
            pump.shut = true;
            if other_done {
                // The other direction has ended, so the destination has delivered its EOF
                // (its receive queue is empty) and nothing is in flight on it: closing it
                // sends the same FIN after the same queued bytes as shutdown(SHUT_WR) followed
                // by the close that would come next, one system call and one loop turn fewer
                // (§4 teardown).
                pump.done = true;
                self.close(None, cx);
                return;
            }
            cx.push(Action::ShutdownWrite(dir.dest()));
        }
    }

    /// Arms a receive on `side` unless one is pending, its direction ended or its pump's output
    /// (pending and in flight) is at [`HIGH_WATER`] or above.
    fn recv(&mut self, side: Side, cx: &mut Ctx<'_>) {
        let pump = &mut self.pump[Dir::reading(side).index()];
        if pump.reading || pump.eof || pump.filled + pump.in_flight >= HIGH_WATER {
            return;
        }
        pump.reading = true;
        cx.push(Action::Recv(side));
    }

    // ---- teardown ----

    /// The one place a connection ends: cancels the deadline and queues the close.
    fn close(&mut self, reason: Option<DropReason>, cx: &mut Ctx<'_>) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        if self.deadline_armed {
            self.deadline_armed = false;
            cx.push(Action::CancelDeadline);
        }
        self.setup = None;
        self.encoder = None;
        self.decoder = None;
        self.pump = [Pump::default(), Pump::default()];
        cx.push(Action::Close {
            reason,
            key: self.key_use.take(),
        });
    }
}

/// Takes a key pair of `kind` from the environment, hands it to the handshake and returns the
/// step after.
fn provide_pair<'s>(
    hs: &'s mut Handshake,
    kind: KeyKind,
    cx: &mut Ctx<'_>,
) -> Result<Step<'s>, DropReason> {
    let pair = match cx.env.key_pair(kind) {
        Ok(p) => p,
        Err(KeyPairError::Random(e)) => return Err(DropReason::Random(e)),
        Err(KeyPairError::NoPool(kind)) => {
            return Err(DropReason::Internal(LocalBug::NoKeyPool(kind)));
        }
    };
    hs.provide_key_pair(pair).map_err(handshake_fault)
}

/// A handshake error as a drop reason: peer faults stay [`DropReason::Handshake`]; a refusal
/// of what we handed in is our bug.
fn handshake_fault(e: HandshakeError) -> DropReason {
    match e {
        HandshakeError::UnexpectedKeyPair => DropReason::Internal(LocalBug::HandshakeMisuse),
        e => DropReason::Handshake(e),
    }
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

#[cfg(test)]
mod kind_tests {
    use super::*;
    use crate::io::SubmitError;
    use crate::proto::{HandshakeError, PacketError};

    /// One reason of every variant (and every errno the labels tell apart).
    fn samples() -> Vec<DropReason> {
        let e = |n| Errno(n);
        let mut v: Vec<DropReason> = [
            HandshakeError::BadDhMac,
            HandshakeError::DhOutOfRange,
            HandshakeError::PfsRequired,
            HandshakeError::PeerUsesX25519,
            HandshakeError::PeerNotX25519,
            HandshakeError::BadX25519Padding,
            HandshakeError::ZeroSharedSecret,
        ]
        .into_iter()
        .map(DropReason::Handshake)
        .collect();
        v.extend([
            DropReason::HandshakeTimeout,
            DropReason::HandshakeEof,
            DropReason::HandshakeRejected,
            DropReason::HandshakeEvicted { limit: 8 },
            DropReason::TargetConnect(ConnectError::TimedOut),
            DropReason::TargetConnect(ConnectError::Os(e(libc::ECONNREFUSED))),
            DropReason::TargetConnect(ConnectError::Os(e(libc::EHOSTUNREACH))),
            DropReason::TargetSocket(e(libc::EMFILE)),
            DropReason::Recv(Side::Crypt, e(libc::ECONNRESET)),
            DropReason::Recv(Side::Crypt, e(libc::ETIMEDOUT)),
            DropReason::Send(Side::Plain, e(libc::EHOSTUNREACH)),
            DropReason::Recv(Side::Plain, e(libc::EIO)),
            DropReason::Send(Side::Plain, e(libc::EPIPE)),
            DropReason::BadStream(StreamError::Truncated { have: 3 }),
            DropReason::BadStream(StreamError::Packet(PacketError::BadMac)),
            DropReason::Random(e(libc::EIO)),
            DropReason::Submit(SubmitError::RecvPending),
            DropReason::KeyRemoved,
            DropReason::Internal(LocalBug::HandshakeMisuse),
        ]);
        v
    }

    #[test]
    fn every_kind_is_listed_and_every_listed_kind_occurs() {
        let seen: std::collections::BTreeSet<&str> =
            samples().iter().map(DropReason::kind).collect();
        for k in &seen {
            assert!(
                DropReason::KINDS.contains(k),
                "{k} is not in DropReason::KINDS"
            );
        }
        for k in DropReason::KINDS {
            assert!(
                seen.contains(k) || *k == "handshake_failed" || *k == "bad_packet",
                "{k} is listed but no sample produces it"
            );
        }
    }

    /// Whether `r` can only happen while a handshake runs. Exhaustive on purpose: a new
    /// variant must be placed here before it compiles.
    fn handshake_phase(r: &DropReason) -> bool {
        match r {
            DropReason::Handshake(_)
            | DropReason::HandshakeTimeout
            | DropReason::HandshakeEof
            | DropReason::HandshakeRejected
            | DropReason::HandshakeEvicted { .. }
            | DropReason::KeyRemoved => true,
            DropReason::TargetConnect(_)
            | DropReason::TargetSocket(_)
            | DropReason::Recv(..)
            | DropReason::Send(..)
            | DropReason::BadStream(_)
            | DropReason::Random(_)
            | DropReason::Submit(_)
            | DropReason::Internal(_) => false,
        }
    }

    #[test]
    fn every_kind_is_a_seeded_metrics_label() {
        use crate::relay::metrics::{HANDSHAKE_FAILURE_REASONS, close_reasons};
        let closed = close_reasons();
        for r in samples() {
            let k = r.kind();
            assert!(
                closed.contains(&k),
                "{k} is not in metrics::close_reasons()"
            );
            if handshake_phase(&r) {
                assert!(
                    HANDSHAKE_FAILURE_REASONS.contains(&k),
                    "{k} is not in metrics::HANDSHAKE_FAILURE_REASONS"
                );
            }
        }
        // And the other way: each handshake-failure label names a handshake-phase cause
        // ("handshake_failed" is the catch-all of handshake errors no sample makes).
        for l in HANDSHAKE_FAILURE_REASONS {
            assert!(
                l == "handshake_failed"
                    || samples()
                        .iter()
                        .any(|r| handshake_phase(r) && r.kind() == l),
                "{l} is not the label of a handshake-phase cause"
            );
        }
    }
}
