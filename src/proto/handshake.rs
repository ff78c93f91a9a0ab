//! The handshake as an explicit state machine for both roles (§1.3–§1.7).
//!
//! ```text
//!  client (spiped -e, spipe)                      server (spiped -d)
//!  send nonce_C ─────────────────────────────────  send nonce_S        (both at once, §1.3)
//!  read nonce_S                                    read nonce_C
//!  send y_C ‖ h_C ───────────────────────────────▶ read y_C ‖ h_C, validate (§1.5)
//!                                                  send y_S ‖ h_S
//!  read y_S ‖ h_S, validate ◀──────────────────── derive keys (§1.7)
//!  derive keys
//! ```
//! The machine does no I/O. Every call that moves it on returns the one [`Step`] it needs next,
//! in the manner of rustls's unbuffered `ConnectionState` and boringtun's `TunnResult`: bytes
//! to send (marked sent with [`Handshake::sent`]), a key pair
//! ([`Handshake::provide_key_pair`]), the deferred derivation ([`Handshake::derive`]), more
//! input (fed to [`Handshake::read`], which never consumes more than the handshake needs, so
//! bytes that follow the handshake stay with the caller), or the finished [`Session`].
//! [`Handshake::next_step`] gives the first step, and the current one again after a pause
//! (while a send is in flight). Nonces and DH private values are handed in; [`ExchangePolicy`]
//! names the exchange a pipe runs.
//!
//! ```text
//!  let mut step = hs.next_step()?;
//!  loop {
//!      step = match step {
//!          Step::Send(bytes) => { let n = write(bytes); hs.sent(n)? }
//!          Step::NeedKeyPair(kind) => hs.provide_key_pair(make(kind))?,
//!          Step::Derive => hs.derive()?,
//!          Step::NeedInput(n) => { let (used, step) = hs.read(next_bytes(n))?; step }
//!          Step::Done(session) => break session,
//!      }
//!  }
//! ```
//!
//! Two exchanges share this machine ([`Exchange`]): spiped's group 14 and spiperelay's
//! `--x25519` mode ([`crate::proto::x25519`]; same messages and lengths, domain-separated
//! derivations). The key pair may be handed in up front or deferred: a deferred handshake stops
//! with [`Step::NeedKeyPair`] where it needs one (a client after the server's nonce, a
//! server only after the client's MAC verified) and goes on after
//! [`Handshake::provide_key_pair`]. A bad MAC that verifies under the other exchange's
//! derivation is reported as a mode mismatch instead of a wrong key.
//!
//! A server made with [`Handshake::answer_before_deriving`] hands out `y_S ‖ h_S` and stops
//! before its shared-secret computation ([`Step::Derive`]) until [`Handshake::derive`], so a
//! caller can send the answer first and both ends compute at the same time (same bytes on the
//! wire).

use crate::proto::crypt::{
    DhKeyPair, DhMacKeys, DhMode, Role, SessionKeys, ValidatedPeer, dh_mac, find_mac_key,
    session_keys, validate_peer_policy,
};
use crate::proto::key::{Key, KeySet};
use crate::proto::packet::{Opener, Sealer};
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::x25519::{self, ValidatedX25519Peer, X25519KeyPair};
use crate::proto::{DH_PUBLIC_LEN, HANDSHAKE_LEN, HandshakeError, MAC_LEN, NONCE_LEN, YH_LEN};

/// Which key exchange a handshake runs, and the local key material it starts with.
///
/// The `Deferred` forms start without a key pair: the handshake asks for one through
/// [`Step::NeedKeyPair`] only when it needs it — a client after the server's nonce, a
/// server only after the client's MAC verified — so an unauthenticated client never costs a key
/// generation, let alone a shared-secret computation.
#[allow(clippy::large_enum_variant)] // moved a few times per handshake; a Box would allocate
#[derive(Debug)]
pub enum Exchange {
    /// spiped's group-14 exchange with the `-f`/`-g` policy and a ready key pair (§1.5, §1.6).
    Group14(DhMode),
    /// spiped's group-14 exchange; the key pair is supplied later. `require_pfs` is `-g`.
    Group14Deferred {
        /// `-g`: reject a peer that sends `y = 1`.
        require_pfs: bool,
    },
    /// spiperelay's X25519 mode (`--x25519`, see [`x25519`]) with a ready key pair.
    X25519(X25519KeyPair),
    /// spiperelay's X25519 mode; the key pair is supplied later.
    X25519Deferred,
}

/// Which key exchange a pipe runs and with which forward-secrecy rule: the one place where
/// `-f`, `-g` and `--x25519` meet. X25519 mode always has forward secrecy, so "X25519 without
/// forward secrecy" (`--x25519` with `-f`) cannot be expressed; the command line refuses that
/// pair of flags before building one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExchangePolicy {
    /// spiped's group 14 with `-f`: no Diffie-Hellman (`y = 1`, §1.6); needs no key pair.
    Group14NoPfs,
    /// spiped's group 14 with a fresh key pair per connection (§1.6).
    #[default]
    Group14Pfs,
    /// spiped's group 14 with `-g`: as [`ExchangePolicy::Group14Pfs`], and a peer that sends
    /// `y = 1` is dropped.
    Group14RequirePfs,
    /// spiperelay's X25519 mode (`--x25519`, see [`x25519`]).
    X25519,
}

impl ExchangePolicy {
    /// The kind of key pair each handshake under this policy needs; `None` for
    /// [`ExchangePolicy::Group14NoPfs`], which needs none.
    pub fn key_kind(self) -> Option<KeyKind> {
        match self {
            Self::Group14NoPfs => None,
            Self::Group14Pfs | Self::Group14RequirePfs => Some(KeyKind::Group14),
            Self::X25519 => Some(KeyKind::X25519),
        }
    }

    /// The [`Exchange`] of a handshake that asks for its key pair when it needs one
    /// ([`Step::NeedKeyPair`]); [`ExchangePolicy::Group14NoPfs`] never asks.
    pub fn deferred(self) -> Exchange {
        match self {
            Self::Group14NoPfs => Exchange::Group14(DhMode::NoPfs),
            Self::Group14Pfs => Exchange::Group14Deferred { require_pfs: false },
            Self::Group14RequirePfs => Exchange::Group14Deferred { require_pfs: true },
            Self::X25519 => Exchange::X25519Deferred,
        }
    }

    /// The [`Exchange`] of a handshake whose key pair is made now from `private` (32 random
    /// bytes; unused for [`ExchangePolicy::Group14NoPfs`]): one group-14 exponentiation or one
    /// X25519 base-point multiplication.
    pub fn with_private(self, private: [u8; 32]) -> Exchange {
        match self {
            Self::Group14NoPfs => Exchange::Group14(DhMode::NoPfs),
            Self::Group14Pfs => Exchange::Group14(DhMode::Pfs(DhKeyPair::from_private(private))),
            Self::Group14RequirePfs => {
                Exchange::Group14(DhMode::RequirePfs(DhKeyPair::from_private(private)))
            }
            Self::X25519 => Exchange::X25519(X25519KeyPair::from_private(private)),
        }
    }
}

/// What a handshake needs from its caller next, returned by every call that moves it on
/// ([`Handshake::read`], [`Handshake::sent`], [`Handshake::provide_key_pair`],
/// [`Handshake::derive`], [`Handshake::next_step`]), in the manner of boringtun's `TunnResult`:
/// exactly one thing at a time. Pending output comes first.
#[derive(Debug)]
pub enum Step<'a> {
    /// Send these bytes to the peer, then mark them sent with [`Handshake::sent`] (all of
    /// them, or as many as were written), which returns the step after. Until then every call
    /// returns them again (input is still read meanwhile).
    Send(&'a [u8]),
    /// Hand in a key pair of this kind with [`Handshake::provide_key_pair`]. Only handshakes
    /// started with a deferred [`Exchange`] ask; a server asks only after the client's MAC
    /// verified.
    NeedKeyPair(KeyKind),
    /// A server made with [`Handshake::answer_before_deriving`] has handed out its answer and
    /// waits for [`Handshake::derive`]; call it once the answer is on its way.
    Derive,
    /// Feed this many more peer bytes (at most) to [`Handshake::read`].
    NeedInput(usize),
    /// The handshake is complete and everything was sent; the session is handed over, and the
    /// handshake is spent (later calls return [`HandshakeError::UnexpectedKeyPair`]). When
    /// [`Handshake::read`] returns this, the input it did not consume is the peer's first data.
    Done(Box<Session>),
}

/// The kind of key pair a handshake asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A group-14 [`DhKeyPair`].
    Group14,
    /// An [`X25519KeyPair`].
    X25519,
}

/// A ready key pair of either kind, for [`Handshake::provide_key_pair`]. Used once; its private
/// part is zeroised when dropped.
#[allow(clippy::large_enum_variant)] // moved a few times per handshake; a Box would allocate
#[derive(Debug)]
pub enum KeyPair {
    /// A group-14 key pair.
    Group14(DhKeyPair),
    /// An X25519 key pair.
    X25519(X25519KeyPair),
}

impl KeyPair {
    /// Builds a key pair of `kind` from 32 random bytes (this function's copy is wiped; the
    /// caller wipes its own): one group-14
    /// exponentiation or one X25519 base-point multiplication. Never fails.
    pub fn from_private(kind: KeyKind, private: [u8; 32]) -> Self {
        match kind {
            KeyKind::Group14 => Self::Group14(DhKeyPair::from_private(private)),
            KeyKind::X25519 => Self::X25519(X25519KeyPair::from_private(private)),
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Group14(_) => KeyKind::Group14,
            Self::X25519(_) => KeyKind::X25519,
        }
    }

    /// The public value: 256 bytes for group 14, 32 for X25519.
    pub fn public(&self) -> &[u8] {
        match self {
            Self::Group14(p) => p.public(),
            Self::X25519(p) => p.public(),
        }
    }
}

/// The local side of the exchange as the handshake holds it.
#[allow(clippy::large_enum_variant)] // moved a few times per handshake; a Box would allocate
enum Local {
    /// Group 14: `mode` is `None` until the key pair arrives.
    Group14 {
        mode: Option<DhMode>,
        require_pfs: bool,
    },
    /// X25519: `None` until the key pair arrives.
    X25519(Option<X25519KeyPair>),
    /// The key pair has been used and dropped (zeroised).
    Spent,
}

impl Local {
    fn kind(&self) -> KeyKind {
        match self {
            Local::X25519(_) => KeyKind::X25519,
            Local::Group14 { .. } | Local::Spent => KeyKind::Group14,
        }
    }

    fn has_pair(&self) -> bool {
        matches!(
            self,
            Local::Group14 { mode: Some(_), .. } | Local::X25519(Some(_))
        )
    }
}

/// A peer value that passed its checks, in either mode.
#[allow(clippy::large_enum_variant)] // moved a few times per handshake; a Box would allocate
enum Validated {
    Group14(ValidatedPeer),
    X25519(ValidatedX25519Peer),
}

impl Validated {
    fn key_index(&self) -> usize {
        match self {
            Validated::Group14(p) => p.key_index(),
            Validated::X25519(p) => p.key_index(),
        }
    }
}

/// Where a handshake stands.
enum State {
    /// Waiting for the peer's nonce (C3 / S2 in spiped's DESIGN.md).
    ReadNonce,
    /// Client: the server's nonce is in; waiting for the caller's key pair to send `y_C ‖ h_C`.
    AwaitClientPair,
    /// Waiting for the peer's `y ‖ h`.
    ReadYh,
    /// Server: the client authenticated; waiting for the caller's key pair to answer.
    AwaitServerPair(Box<(Validated, DhMacKeys)>),
    /// Server with [`Handshake::answer_before_deriving`]: `y_S ‖ h_S` is queued; the session
    /// keys wait for [`Handshake::derive`].
    Answered(Box<Validated>),
    /// Keys derived; the session is ready once the output has been sent.
    Done(Box<Session>),
    /// The handshake failed; every later call reports this error.
    Failed(HandshakeError),
    /// The session was handed out ([`Step::Done`]).
    Finished,
}

/// What the peer closing the connection in the middle of a handshake means
/// ([`Handshake::peer_closed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerClosed {
    /// It closed right after our `y ‖ h`: it rejected our MAC.
    Rejected,
    /// It closed before the exchange reached that point.
    Early,
}

/// One side of a spiped handshake. See the module documentation for the call sequence.
pub struct Handshake {
    role: Role,
    keys: KeySet,
    local: Local,
    nonce_local: [u8; NONCE_LEN],
    nonce_peer: [u8; NONCE_LEN],
    state: State,
    /// Input collected for the current step (a nonce or `y ‖ h`).
    input: [u8; YH_LEN],
    input_len: usize,
    /// Bytes to send: `output[output_start..output_end]`.
    output: [u8; HANDSHAKE_LEN],
    output_start: usize,
    output_end: usize,
    /// Server: queue `y_S ‖ h_S` before deriving the session keys ([`State::Answered`]).
    answer_first: bool,
}

impl Handshake {
    /// Starts a spiped (group-14) handshake for `role`.
    ///
    /// - `keys`: the client uses the first key; the server accepts any of them (§1.1).
    /// - `nonce`: 32 bytes from a cryptographically secure RNG (§1.3).
    /// - `dh`: the local DH key pair and `-f`/`-g` policy (§1.6).
    ///
    /// The nonce is queued for sending at once: neither role waits for the peer's nonce first.
    /// Same as [`Handshake::with_exchange`] with [`Exchange::Group14`].
    pub fn new(role: Role, keys: KeySet, nonce: [u8; NONCE_LEN], dh: DhMode) -> Self {
        Self::with_exchange(role, keys, nonce, Exchange::Group14(dh))
    }

    /// Starts a handshake for `role` running `exchange` (spiped's group 14 or our X25519 mode,
    /// with the key pair now or deferred). Other arguments as in [`Handshake::new`].
    pub fn with_exchange(
        role: Role,
        keys: KeySet,
        nonce: [u8; NONCE_LEN],
        exchange: Exchange,
    ) -> Self {
        let local = match exchange {
            Exchange::Group14(mode) => Local::Group14 {
                require_pfs: matches!(mode, DhMode::RequirePfs(_)),
                mode: Some(mode),
            },
            Exchange::Group14Deferred { require_pfs } => Local::Group14 {
                mode: None,
                require_pfs,
            },
            Exchange::X25519(pair) => Local::X25519(Some(pair)),
            Exchange::X25519Deferred => Local::X25519(None),
        };
        let mut output = [0u8; HANDSHAKE_LEN];
        output[..NONCE_LEN].copy_from_slice(&nonce);
        Self {
            role,
            keys,
            local,
            nonce_local: nonce,
            nonce_peer: [0u8; NONCE_LEN],
            state: State::ReadNonce,
            input: [0u8; YH_LEN],
            input_len: 0,
            output,
            output_start: 0,
            output_end: NONCE_LEN,
            answer_first: false,
        }
    }

    /// Server: once the client's `y_C ‖ h_C` has validated, queue `y_S ‖ h_S` and stop before
    /// the shared-secret computation (§1.7) instead of doing it first. The caller sends the
    /// answer ([`Step::Send`]), then calls [`Handshake::derive`] when it gets [`Step::Derive`];
    /// the client's own shared-secret computation then runs while ours does, instead of after it.
    /// The bytes on the wire are unchanged. No effect on a client.
    pub fn answer_before_deriving(mut self) -> Self {
        self.answer_first = true;
        self
    }

    /// Derives the session keys of a server that returned [`Step::Derive`] and returns the
    /// next step: [`Step::Send`] if part of the answer is still unsent, else [`Step::Done`]
    /// with the session. The local key pair is dropped (zeroised) either way.
    ///
    /// # Errors
    /// [`HandshakeError::ZeroSharedSecret`] from the X25519 derivation, which kills the
    /// handshake as in [`Handshake::read`]; the error of a dead handshake;
    /// [`HandshakeError::UnexpectedKeyPair`] if no derivation was pending (the handshake is
    /// left as it was).
    pub fn derive(&mut self) -> Result<Step<'_>, HandshakeError> {
        match std::mem::replace(&mut self.state, State::ReadYh) {
            State::Answered(peer) => {
                if let Err(e) = self.derive_session(*peer) {
                    self.fail(e);
                    return Err(e);
                }
                self.next_step()
            }
            other => {
                let e = match other {
                    State::Failed(e) => e,
                    _ => HandshakeError::UnexpectedKeyPair,
                };
                self.state = other;
                Err(e)
            }
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Bytes waiting to be sent to the peer, in order. Empty when there is nothing to send now.
    fn output(&self) -> &[u8] {
        self.output
            .get(self.output_start..self.output_end)
            .unwrap_or_default()
    }

    /// What the handshake needs now; see [`Step`]. A driver asks this once at the start (the
    /// step is [`Step::Send`] with our nonce) and again after a pause of its own, such as a
    /// send in flight; every other call returns the step itself. Pending output comes first,
    /// so a server's answer is handed out before [`Step::Derive`] and the session only after
    /// the last byte is marked sent.
    ///
    /// # Errors
    /// The error of a failed handshake (as [`Handshake::read`] returned it);
    /// [`HandshakeError::UnexpectedKeyPair`] once the session has been handed out.
    pub fn next_step(&mut self) -> Result<Step<'_>, HandshakeError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        if self.output_start < self.output_end {
            return Ok(Step::Send(self.output()));
        }
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Done(session) => Ok(Step::Done(session)),
            State::Finished => Err(HandshakeError::UnexpectedKeyPair),
            other => {
                self.state = other;
                Ok(match self.state {
                    State::AwaitClientPair | State::AwaitServerPair(_) => {
                        Step::NeedKeyPair(self.local.kind())
                    }
                    State::Answered(_) => Step::Derive,
                    _ => Step::NeedInput(self.wanted()),
                })
            }
        }
    }

    /// What the peer closing the connection now means (a client that sent its `y_C ‖ h_C` and
    /// waits for the server's was rejected: wrong key, or `--x25519` on one end only, since a
    /// spiped server closes at once on a bad MAC).
    pub fn peer_closed(&self) -> PeerClosed {
        if self.role == Role::Client && matches!(self.state, State::ReadYh) {
            PeerClosed::Rejected
        } else {
            PeerClosed::Early
        }
    }

    /// Marks the first `n` bytes of the last [`Step::Send`] as sent and returns the next step
    /// (the rest of those bytes, if `n` was short). `n` larger than the pending output counts
    /// as all of it.
    ///
    /// # Errors
    /// As [`Handshake::next_step`]: the error of a failed handshake;
    /// [`HandshakeError::UnexpectedKeyPair`] once the session has been handed out.
    pub fn sent(&mut self, n: usize) -> Result<Step<'_>, HandshakeError> {
        self.output_start = self.output_end.min(self.output_start.saturating_add(n));
        self.next_step()
    }

    /// How many more input bytes the current step needs; 0 once done or failed, and while a key
    /// pair is awaited ([`Step::NeedInput`] carries it).
    fn wanted(&self) -> usize {
        match self.state {
            State::ReadNonce => NONCE_LEN - self.input_len,
            State::ReadYh => YH_LEN - self.input_len,
            State::AwaitClientPair
            | State::AwaitServerPair(_)
            | State::Answered(_)
            | State::Done(_)
            | State::Failed(_)
            | State::Finished => 0,
        }
    }

    /// `Some(kind)` when the handshake cannot go on without a key pair of `kind`.
    fn wants_key_pair(&self) -> Option<KeyKind> {
        match self.state {
            State::AwaitClientPair | State::AwaitServerPair(_) => Some(self.local.kind()),
            _ => None,
        }
    }

    /// Hands in the key pair that [`Step::NeedKeyPair`] asked for, does the waiting step's work
    /// and returns the next step: a client queues `y_C ‖ h_C` ([`Step::Send`]); a server
    /// queues `y_S ‖ h_S` ([`Step::Send`]) and derives the session keys, or, made with
    /// [`Handshake::answer_before_deriving`], leaves them for [`Step::Derive`]. The pair is
    /// used once and dropped (zeroised) once the keys are derived.
    ///
    /// # Errors
    /// [`HandshakeError::UnexpectedKeyPair`] if no pair was asked for or `pair` is of the wrong
    /// kind; [`HandshakeError::ZeroSharedSecret`] from the X25519 derivation. Either kills the
    /// handshake, as in [`Handshake::read`].
    pub fn provide_key_pair(&mut self, pair: KeyPair) -> Result<Step<'_>, HandshakeError> {
        if let Err(e) = self.install_and_continue(pair) {
            self.fail(e);
            return Err(e);
        }
        self.next_step()
    }

    fn install_and_continue(&mut self, pair: KeyPair) -> Result<(), HandshakeError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        if self.wants_key_pair() != Some(pair.kind()) {
            return Err(HandshakeError::UnexpectedKeyPair);
        }
        match (&mut self.local, pair) {
            (Local::Group14 { mode, require_pfs }, KeyPair::Group14(p)) => {
                *mode = Some(if *require_pfs {
                    DhMode::RequirePfs(p)
                } else {
                    DhMode::Pfs(p)
                });
            }
            (Local::X25519(slot), KeyPair::X25519(p)) => *slot = Some(p),
            _ => return Err(HandshakeError::UnexpectedKeyPair),
        }
        match std::mem::replace(&mut self.state, State::ReadYh) {
            State::AwaitClientPair => self.queue_client_value(),
            State::AwaitServerPair(b) => {
                let (peer, dk1) = *b;
                self.complete(peer, &dk1)
            }
            _ => Err(HandshakeError::UnexpectedKeyPair),
        }
    }

    /// Feeds bytes read from the peer. Consumes at most what the handshake still needs and
    /// returns how many bytes it consumed, with the next step. The rest (`input[consumed..]`)
    /// belongs to this method again once the step asked for is done (a client's key pair
    /// after the server's nonce), or, after [`Step::Done`], to the session's decoder.
    /// Empty input only returns the current step.
    ///
    /// When a step completes this does that step's work: the client queues `y_C ‖ h_C` after the
    /// server's nonce; either side validates the peer's `y ‖ h` (MAC first, before any modular
    /// exponentiation or X25519 operation, §1.5) and derives the session keys; the server then
    /// queues `y_S ‖ h_S`. A deferred handshake stops instead where it needs its key pair.
    ///
    /// # Errors
    /// [`HandshakeError::BadDhMac`], [`HandshakeError::DhOutOfRange`],
    /// [`HandshakeError::PfsRequired`] as found by the §1.5 checks;
    /// [`HandshakeError::PeerUsesX25519`] / [`HandshakeError::PeerNotX25519`] when the MAC
    /// verifies under the other mode's derivation; [`HandshakeError::BadX25519Padding`] and
    /// [`HandshakeError::ZeroSharedSecret`] in X25519 mode. After an error the handshake is
    /// dead: later calls return the same error, and no further output is queued. Once the
    /// session has been handed out: [`HandshakeError::UnexpectedKeyPair`].
    pub fn read(&mut self, input: &[u8]) -> Result<(usize, Step<'_>), HandshakeError> {
        let mut consumed = 0;
        loop {
            if let State::Failed(e) = self.state {
                return Err(e);
            }
            let want = self.wanted();
            let rest = input.get(consumed..).unwrap_or_default();
            if want == 0 || rest.is_empty() {
                return Ok((consumed, self.next_step()?));
            }
            let take = want.min(rest.len());
            let dst = self
                .input
                .get_mut(self.input_len..self.input_len + take)
                .unwrap_or_default();
            dst.copy_from_slice(rest.get(..take).unwrap_or_default());
            self.input_len += take;
            consumed += take;
            if take == want {
                self.input_len = 0;
                if let Err(e) = self.step() {
                    self.fail(e);
                    return Err(e);
                }
            }
        }
    }

    /// Marks the handshake dead and drops the local key pair.
    fn fail(&mut self, e: HandshakeError) {
        self.state = State::Failed(e);
        self.local = Local::Spent;
    }

    /// Performs the work of the step whose input just completed.
    fn step(&mut self) -> Result<(), HandshakeError> {
        match self.state {
            State::ReadNonce => {
                self.nonce_peer
                    .copy_from_slice(self.input.get(..NONCE_LEN).unwrap_or_default());
                if self.role == Role::Client {
                    if self.local.has_pair() {
                        self.state = State::ReadYh;
                        return self.queue_client_value();
                    }
                    self.state = State::AwaitClientPair;
                    return Ok(());
                }
                self.state = State::ReadYh;
                Ok(())
            }
            State::ReadYh => {
                let (peer, dk1) = self.validate()?;
                if self.local.has_pair() {
                    self.complete(peer, &dk1)
                } else {
                    // S: the client authenticated; only now is a key pair worth having.
                    self.state = State::AwaitServerPair(Box::new((peer, dk1)));
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The accepted keys for the peer's MAC: the server tries all, the client only its own.
    fn candidates(&self) -> &[Key] {
        match self.role {
            Role::Client => std::slice::from_ref(self.keys.first()),
            Role::Server => self.keys.as_slice(),
        }
    }

    /// Checks the peer's `y ‖ h` in `self.input` with the local mode's checks (MAC first).
    fn validate(&self) -> Result<(Validated, DhMacKeys), HandshakeError> {
        let peer_role = self.role.peer();
        let (nonce_c, nonce_s) = self.nonces();
        let result = match &self.local {
            Local::Group14 { require_pfs, .. } => validate_peer_policy(
                &self.input,
                peer_role,
                self.candidates(),
                nonce_c,
                nonce_s,
                *require_pfs,
            )
            .map(|(p, d)| (Validated::Group14(p), d)),
            Local::X25519(_) => {
                x25519::validate_peer(&self.input, peer_role, self.candidates(), nonce_c, nonce_s)
                    .map(|(p, d)| (Validated::X25519(p), d))
            }
            Local::Spent => Err(HandshakeError::UnexpectedKeyPair),
        };
        match result {
            Err(HandshakeError::BadDhMac) => Err(self.classify_bad_mac()),
            other => other,
        }
    }

    /// After a bad MAC: whether the MAC verifies under the other mode's dk_1 (a mode mismatch
    /// rather than a wrong key). Costs HMACs only.
    fn classify_bad_mac(&self) -> HandshakeError {
        let peer_role = self.role.peer();
        let (nonce_c, nonce_s) = self.nonces();
        let mut y = [0u8; DH_PUBLIC_LEN];
        y.copy_from_slice(&self.input[..DH_PUBLIC_LEN]);
        let h = &self.input[DH_PUBLIC_LEN..];
        let cands = self.candidates();
        let other_mode = match self.local {
            Local::X25519(_) => find_mac_key(cands, peer_role, &y, h, |key| {
                DhMacKeys::derive(key, nonce_c, nonce_s)
            })
            .map(|_| HandshakeError::PeerNotX25519),
            _ => find_mac_key(cands, peer_role, &y, h, |key| {
                x25519::dh_mac_keys(key, nonce_c, nonce_s)
            })
            .map(|_| HandshakeError::PeerUsesX25519),
        };
        other_mode.unwrap_or(HandshakeError::BadDhMac)
    }

    /// Derives the session keys from a validated peer, queues a server's answer, drops the
    /// local key pair and moves to `Done`; with `answer_first`, a server queues its answer and
    /// moves to `Answered` instead.
    fn complete(&mut self, peer: Validated, dk1: &DhMacKeys) -> Result<(), HandshakeError> {
        let answer = match self.role {
            // S: only now, with a valid y_C, send y_S ‖ h_S (§1.3).
            Role::Server => Some(self.local_message(dk1)?),
            Role::Client => None,
        };
        if let (true, Some(msg)) = (self.answer_first, answer) {
            self.queue(&msg);
            self.state = State::Answered(Box::new(peer));
            return Ok(());
        }
        self.derive_session(peer)?;
        if let Some(msg) = answer {
            self.queue(&msg);
        }
        Ok(())
    }

    /// Derives the session keys from a validated peer (§1.7), drops the local key pair and
    /// moves to `Done`.
    fn derive_session(&mut self, peer: Validated) -> Result<(), HandshakeError> {
        let key_index = peer.key_index();
        let (nonce_c, nonce_s) = self.nonces();
        let key = self
            .candidates()
            .get(key_index)
            .unwrap_or_else(|| self.keys.first());
        let keys: SessionKeys = match (&self.local, &peer) {
            (Local::Group14 { mode: Some(m), .. }, Validated::Group14(p)) => {
                session_keys(key, nonce_c, nonce_s, m, p)
            }
            (Local::X25519(Some(pair)), Validated::X25519(p)) => {
                x25519::session_keys(key, nonce_c, nonce_s, self.role, pair, p)?
            }
            _ => return Err(HandshakeError::UnexpectedKeyPair),
        };
        self.local = Local::Spent;
        let peer_role = self.role.peer();
        self.state = State::Done(Box::new(Session {
            sealer: Sealer::new(&keys, self.role),
            opener: Opener::new(&keys, peer_role),
            key_index,
        }));
        Ok(())
    }

    /// C: queues y_C ‖ h_C, MAC'd with dhmac_C of our (first) key (§1.4, §1.5).
    fn queue_client_value(&mut self) -> Result<(), HandshakeError> {
        let (nonce_c, nonce_s) = self.nonces();
        let key = self.keys.first();
        let dk1 = match self.local {
            Local::X25519(_) => x25519::dh_mac_keys(key, nonce_c, nonce_s),
            _ => DhMacKeys::derive(key, nonce_c, nonce_s),
        };
        let msg = self.local_message(&dk1)?;
        self.queue(&msg);
        Ok(())
    }

    /// Our `y ‖ h` (group 14, §1.5) or `v ‖ h` (X25519 mode) under `dk1`.
    fn local_message(&self, dk1: &DhMacKeys) -> Result<[u8; YH_LEN], HandshakeError> {
        match &self.local {
            Local::Group14 { mode: Some(m), .. } => {
                let y = m.public();
                let h: [u8; MAC_LEN] = dh_mac(dk1.for_role(self.role), y);
                let mut yh = [0u8; YH_LEN];
                yh[..y.len()].copy_from_slice(y);
                yh[y.len()..].copy_from_slice(&h);
                Ok(yh)
            }
            Local::X25519(Some(pair)) => Ok(x25519::message(dk1, self.role, pair.public())),
            _ => Err(HandshakeError::UnexpectedKeyPair),
        }
    }

    /// The nonces in protocol order: client's first (§1.4).
    fn nonces(&self) -> (&[u8; NONCE_LEN], &[u8; NONCE_LEN]) {
        match self.role {
            Role::Client => (&self.nonce_local, &self.nonce_peer),
            Role::Server => (&self.nonce_peer, &self.nonce_local),
        }
    }

    /// Appends a `y ‖ h` message to the output.
    fn queue(&mut self, yh: &[u8; YH_LEN]) {
        if let Some(dst) = self
            .output
            .get_mut(self.output_end..self.output_end + YH_LEN)
        {
            dst.copy_from_slice(yh);
            self.output_end += YH_LEN;
        }
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::ReadNonce => "read-nonce",
            State::AwaitClientPair | State::AwaitServerPair(_) => "await-key-pair",
            State::Answered(_) => "answered",
            State::ReadYh => "read-yh",
            State::Done(_) => "done",
            State::Failed(_) => "failed",
            State::Finished => "finished",
        };
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("state", &state)
            .field("pending_output", &(self.output_end - self.output_start))
            .finish_non_exhaustive()
    }
}

/// An established session: the packet sealer for our direction and the opener for the peer's.
pub struct Session {
    sealer: Sealer,
    opener: Opener,
    key_index: usize,
}

impl Session {
    /// Index in the handshake's [`KeySet`] of the key this session uses (always 0 for a client).
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// The sealer for the packets we send and the opener for the packets we receive.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }

    /// The stream encoder for our direction and the stream decoder for the peer's.
    pub fn into_stream(self) -> (Encoder, Decoder) {
        (Encoder::new(self.sealer), Decoder::new(self.opener))
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key_index", &self.key_index)
            .finish_non_exhaustive()
    }
}

/// Drivers for handshakes that run in memory, for the crate's tests and fuzz harnesses.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testing {
    use super::{Handshake, HandshakeError, KeyKind, KeyPair, Role, Session, Step};

    /// What [`pump`] did.
    #[derive(Debug, Default)]
    pub struct Pumped {
        /// How many bytes of the input the handshake consumed (the rest follows the handshake).
        pub consumed: usize,
        /// Every byte the handshake handed out to send (all marked sent).
        pub sent: Vec<u8>,
        /// The session, if the handshake finished.
        pub session: Option<Box<Session>>,
    }

    /// Feeds `input` to `hs` and does what each returned step asks until the handshake needs
    /// more input or hands over its session: bytes to send are collected and marked sent, a
    /// key pair comes from `pair`, a pending derivation runs. Empty input just drives it on.
    ///
    /// # Errors
    /// The first error any call returned (the handshake is then dead).
    pub fn pump(
        hs: &mut Handshake,
        input: &[u8],
        pair: &mut dyn FnMut(KeyKind) -> KeyPair,
    ) -> Result<Pumped, HandshakeError> {
        let mut done = Pumped::default();
        let (used, mut step) = hs.read(input)?;
        done.consumed = used;
        loop {
            step = match step {
                Step::Send(bytes) => {
                    let n = bytes.len();
                    done.sent.extend_from_slice(bytes);
                    hs.sent(n)?
                }
                Step::NeedKeyPair(kind) => hs.provide_key_pair(pair(kind))?,
                Step::Derive => hs.derive()?,
                Step::NeedInput(_) if done.consumed < input.len() => {
                    let rest = input.get(done.consumed..).unwrap_or_default();
                    let (used, step) = hs.read(rest)?;
                    done.consumed += used;
                    step
                }
                Step::NeedInput(_) => return Ok(done),
                Step::Done(session) => {
                    done.session = Some(session);
                    return Ok(done);
                }
            }
        }
    }

    /// A key-pair source for [`pump`] that makes every pair from `private`.
    pub fn pairs_from(private: [u8; 32]) -> impl FnMut(KeyKind) -> KeyPair {
        move |kind| KeyPair::from_private(kind, private)
    }

    /// Runs `c` (client) against `s` (server) in memory until both hand over their sessions
    /// (at most four rounds), key pairs from [`pairs_from`] with `3` and `4`.
    ///
    /// # Errors
    /// The first error, with the role whose call returned it; `UnexpectedKeyPair` on the
    /// client's side if four rounds did not finish both.
    pub fn run_pair(
        c: &mut Handshake,
        s: &mut Handshake,
    ) -> Result<(Session, Session), (Role, HandshakeError)> {
        run_pair_with(c, s, &mut pairs_from([3; 32]), &mut pairs_from([4; 32]))
    }

    /// [`run_pair`] with the client's key pairs from `cp` and the server's from `sp`.
    ///
    /// # Errors
    /// As [`run_pair`].
    pub fn run_pair_with(
        c: &mut Handshake,
        s: &mut Handshake,
        cp: &mut dyn FnMut(KeyKind) -> KeyPair,
        sp: &mut dyn FnMut(KeyKind) -> KeyPair,
    ) -> Result<(Session, Session), (Role, HandshakeError)> {
        let mut to_s = Vec::new();
        let mut to_c = Vec::new();
        let (mut cs, mut ss) = (None, None);
        for _ in 0..4 {
            if cs.is_none() {
                let p = pump(c, &std::mem::take(&mut to_c), cp).map_err(|e| (Role::Client, e))?;
                to_s.extend_from_slice(&p.sent);
                cs = p.session;
            }
            if ss.is_none() {
                let p = pump(s, &std::mem::take(&mut to_s), sp).map_err(|e| (Role::Server, e))?;
                to_c.extend_from_slice(&p.sent);
                ss = p.session;
            }
            if cs.is_some() && ss.is_some() {
                break;
            }
        }
        match (cs, ss) {
            (Some(client), Some(server)) => Ok((*client, *server)),
            _ => Err((Role::Client, HandshakeError::UnexpectedKeyPair)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{pairs_from, pump};
    use super::*;

    const KEY: &[u8] = b"handshake step test key\n";

    fn start(role: Role, policy: ExchangePolicy, nonce: u8) -> Handshake {
        let keys = KeySet::single(Key::from_key_file(KEY));
        Handshake::with_exchange(role, keys, [nonce; NONCE_LEN], policy.deferred())
            .answer_before_deriving()
    }

    #[test]
    fn the_returned_steps_alone_drive_both_roles_to_a_session_under_every_policy() {
        for policy in [
            ExchangePolicy::Group14NoPfs,
            ExchangePolicy::X25519,
            ExchangePolicy::Group14Pfs,
            ExchangePolicy::Group14RequirePfs,
        ] {
            let mut c = start(Role::Client, policy, 1);
            let mut s = start(Role::Server, policy, 2);
            let (cs, ss) = testing::run_pair(&mut c, &mut s).expect("sessions");
            let (mut enc, _) = cs.into_stream();
            let (_, mut dec) = ss.into_stream();
            let mut wire = Vec::new();
            enc.encode(b"ping", &mut wire).expect("encode");
            let mut plain = Vec::new();
            dec.decode(&wire, &mut plain).expect("decode");
            assert_eq!(plain, b"ping", "{policy:?}");
            assert_eq!(c.next_step().err(), Some(HandshakeError::UnexpectedKeyPair));
            assert_eq!(c.read(&[0]).err(), Some(HandshakeError::UnexpectedKeyPair));
        }
    }

    #[test]
    fn each_call_returns_the_step_after_it() {
        assert_eq!(ExchangePolicy::Group14NoPfs.key_kind(), None);
        assert_eq!(ExchangePolicy::X25519.key_kind(), Some(KeyKind::X25519));
        let mut c = start(Role::Client, ExchangePolicy::X25519, 1);
        assert!(matches!(c.next_step(), Ok(Step::Send(b)) if b.len() == NONCE_LEN));
        // A short send leaves the rest to send.
        assert!(matches!(c.sent(10), Ok(Step::Send(b)) if b.len() == NONCE_LEN - 10));
        assert!(matches!(c.sent(NONCE_LEN), Ok(Step::NeedInput(NONCE_LEN))));
        assert!(matches!(c.read(&[5; 10]), Ok((10, Step::NeedInput(22)))));
        assert!(matches!(
            c.read(&[5; NONCE_LEN]),
            Ok((22, Step::NeedKeyPair(KeyKind::X25519)))
        ));
        assert_eq!(c.peer_closed(), PeerClosed::Early);
        // A pair of the wrong kind is refused and kills the handshake.
        let mut wrong = start(Role::Client, ExchangePolicy::X25519, 1);
        wrong.read(&[5; NONCE_LEN]).expect("nonce");
        assert_eq!(
            wrong
                .provide_key_pair(KeyPair::from_private(KeyKind::Group14, [7; 32]))
                .err(),
            Some(HandshakeError::UnexpectedKeyPair)
        );
        let step = c.provide_key_pair(KeyPair::from_private(KeyKind::X25519, [7; 32]));
        assert!(matches!(step, Ok(Step::Send(b)) if b.len() == YH_LEN));
        assert!(matches!(c.sent(YH_LEN), Ok(Step::NeedInput(YH_LEN))));
        assert_eq!(c.peer_closed(), PeerClosed::Rejected);
        assert_eq!(c.derive().err(), Some(HandshakeError::UnexpectedKeyPair));
        // A failed handshake reports its error from every call.
        assert_eq!(c.read(&[0; YH_LEN]).err(), Some(HandshakeError::BadDhMac));
        assert_eq!(c.next_step().err(), Some(HandshakeError::BadDhMac));
        assert_eq!(c.sent(0).err(), Some(HandshakeError::BadDhMac));
    }

    #[test]
    fn a_server_answers_then_asks_to_derive_then_hands_over() {
        let mut c = start(Role::Client, ExchangePolicy::Group14NoPfs, 1);
        let mut s = start(Role::Server, ExchangePolicy::Group14NoPfs, 2);
        let none = &mut pairs_from([9; 32]);
        let c_out = pump(&mut c, &[], none).expect("client nonce").sent;
        assert!(matches!(s.next_step(), Ok(Step::Send(b)) if b.len() == NONCE_LEN));
        let s_nonce = pump(&mut s, &[], none).expect("server nonce").sent;
        let c_yh = pump(&mut c, &s_nonce, none).expect("client value").sent;
        assert_eq!(c_yh.len(), YH_LEN);
        let (used, step) = s.read(&[c_out, c_yh].concat()).expect("server reads");
        assert_eq!(used, HANDSHAKE_LEN);
        let Step::Send(answer) = step else {
            panic!("no answer: {step:?}");
        };
        let answer = answer.to_vec();
        assert!(matches!(s.sent(YH_LEN), Ok(Step::Derive)));
        assert!(matches!(s.derive(), Ok(Step::Done(_))));
        let (used, step) = c
            .read(&[&answer[..], b"data"].concat())
            .expect("client reads");
        assert_eq!(
            used, YH_LEN,
            "the data after the handshake stays with the caller"
        );
        assert!(matches!(step, Step::Done(_)));
    }
}
