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
//! The machine does no I/O: the caller sends [`Handshake::output`], feeds what it reads to
//! [`Handshake::read`] (which never consumes more than the handshake needs, so bytes that follow
//! the handshake stay with the caller), and calls [`Handshake::finish`] once
//! [`Handshake::is_done`] and all output is sent. Nonces and DH private values are handed in.

use crate::proto::crypt::{DhMacKeys, DhMode, Role, dh_mac, session_keys, validate_peer};
use crate::proto::key::KeySet;
use crate::proto::packet::{Opener, Sealer};
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::{HANDSHAKE_LEN, HandshakeError, MAC_LEN, NONCE_LEN, YH_LEN};

/// Where a handshake stands.
enum State {
    /// Waiting for the peer's nonce (C3 / S2 in spiped's DESIGN.md).
    ReadNonce,
    /// Waiting for the peer's `y ‖ h`.
    ReadYh,
    /// Keys derived; the session is ready once the output has been sent.
    Done(Box<Session>),
    /// The handshake failed; every later call reports this error.
    Failed(HandshakeError),
}

/// One side of a spiped handshake. See the module documentation for the call sequence.
pub struct Handshake {
    role: Role,
    keys: KeySet,
    dh: DhMode,
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
}

impl Handshake {
    /// Starts a handshake for `role`.
    ///
    /// - `keys`: the client uses the first key; the server accepts any of them (§1.1).
    /// - `nonce`: 32 bytes from a cryptographically secure RNG (§1.3).
    /// - `dh`: the local DH key pair and `-f`/`-g` policy (§1.6).
    ///
    /// The nonce is queued for sending at once: neither role waits for the peer's nonce first.
    pub fn new(role: Role, keys: KeySet, nonce: [u8; NONCE_LEN], dh: DhMode) -> Self {
        let mut output = [0u8; HANDSHAKE_LEN];
        output[..NONCE_LEN].copy_from_slice(&nonce);
        Self {
            role,
            keys,
            dh,
            nonce_local: nonce,
            nonce_peer: [0u8; NONCE_LEN],
            state: State::ReadNonce,
            input: [0u8; YH_LEN],
            input_len: 0,
            output,
            output_start: 0,
            output_end: NONCE_LEN,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Bytes waiting to be sent to the peer, in order. Empty when there is nothing to send now.
    pub fn output(&self) -> &[u8] {
        self.output
            .get(self.output_start..self.output_end)
            .unwrap_or_default()
    }

    /// Marks the first `n` bytes of [`Handshake::output`] as sent. `n` larger than the pending
    /// output counts as all of it.
    pub fn consume_output(&mut self, n: usize) {
        self.output_start = self.output_end.min(self.output_start.saturating_add(n));
    }

    /// How many more input bytes the current step needs; 0 once done or failed. A caller that
    /// reads exactly this many bytes at a time never reads past the handshake.
    pub fn wanted(&self) -> usize {
        match self.state {
            State::ReadNonce => NONCE_LEN - self.input_len,
            State::ReadYh => YH_LEN - self.input_len,
            State::Done(_) | State::Failed(_) => 0,
        }
    }

    /// Whether the keys are derived (the output may still hold `y_S ‖ h_S` for a server).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Feeds bytes read from the peer. Consumes at most what the handshake still needs and
    /// returns how many bytes it consumed; the rest (`input[consumed..]`) belongs to the data
    /// phase and must be given to the session's decoder.
    ///
    /// When a step completes this does that step's work: the client queues `y_C ‖ h_C` after the
    /// server's nonce; either side validates the peer's `y ‖ h` (MAC first, before any modular
    /// exponentiation, §1.5) and derives the session keys; the server then queues `y_S ‖ h_S`.
    ///
    /// # Errors
    /// [`HandshakeError::BadDhMac`], [`HandshakeError::DhOutOfRange`],
    /// [`HandshakeError::PfsRequired`] as found by the §1.5 checks. After an error the handshake
    /// is dead: later calls return the same error, and no further output is queued.
    pub fn read(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        loop {
            if let State::Failed(e) = self.state {
                return Err(e);
            }
            let want = self.wanted();
            let rest = input.get(consumed..).unwrap_or_default();
            if want == 0 || rest.is_empty() {
                return Ok(consumed);
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
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
        }
    }

    /// Ends the handshake and returns the session, once [`Handshake::is_done`] and every output
    /// byte has been consumed. Otherwise returns the handshake unchanged.
    pub fn finish(self) -> Result<Session, Box<Self>> {
        match self.state {
            State::Done(session) if self.output_start == self.output_end => Ok(*session),
            _ => Err(Box::new(self)),
        }
    }

    /// Performs the work of the step whose input just completed.
    fn step(&mut self) -> Result<(), HandshakeError> {
        match self.state {
            State::ReadNonce => {
                self.nonce_peer
                    .copy_from_slice(self.input.get(..NONCE_LEN).unwrap_or_default());
                if self.role == Role::Client {
                    // C: send y_C ‖ h_C, MAC'd with dhmac_C of our (first) key (§1.4, §1.5).
                    let (nonce_c, nonce_s) = self.nonces();
                    let dk1 = DhMacKeys::derive(self.keys.first(), nonce_c, nonce_s);
                    self.queue_yh(&dk1);
                }
                self.state = State::ReadYh;
                Ok(())
            }
            State::ReadYh => {
                let peer_role = self.role.peer();
                let (nonce_c, nonce_s) = self.nonces();
                let candidates = match self.role {
                    Role::Client => std::slice::from_ref(self.keys.first()),
                    Role::Server => self.keys.as_slice(),
                };
                let (peer, dk1) = validate_peer(
                    &self.input,
                    peer_role,
                    candidates,
                    nonce_c,
                    nonce_s,
                    &self.dh,
                )?;
                let key_index = peer.key_index();
                let key = candidates
                    .get(key_index)
                    .unwrap_or_else(|| self.keys.first());
                let keys = session_keys(key, nonce_c, nonce_s, &self.dh, &peer);
                if self.role == Role::Server {
                    // S: only now, with a valid y_C, send y_S ‖ h_S (§1.3).
                    self.queue_yh(&dk1);
                }
                self.state = State::Done(Box::new(Session {
                    sealer: Sealer::new(&keys, self.role),
                    opener: Opener::new(&keys, peer_role),
                    key_index,
                }));
                Ok(())
            }
            State::Done(_) | State::Failed(_) => Ok(()),
        }
    }

    /// The nonces in protocol order: client's first (§1.4).
    fn nonces(&self) -> (&[u8; NONCE_LEN], &[u8; NONCE_LEN]) {
        match self.role {
            Role::Client => (&self.nonce_local, &self.nonce_peer),
            Role::Server => (&self.nonce_peer, &self.nonce_local),
        }
    }

    /// Appends our `y ‖ h` to the output.
    fn queue_yh(&mut self, dk1: &DhMacKeys) {
        let y = self.dh.public();
        let h: [u8; MAC_LEN] = dh_mac(dk1.for_role(self.role), y);
        let mut yh = [0u8; YH_LEN];
        yh[..y.len()].copy_from_slice(y);
        yh[y.len()..].copy_from_slice(&h);
        if let Some(dst) = self
            .output
            .get_mut(self.output_end..self.output_end + YH_LEN)
        {
            dst.copy_from_slice(&yh);
            self.output_end += YH_LEN;
        }
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::ReadNonce => "read-nonce",
            State::ReadYh => "read-yh",
            State::Done(_) => "done",
            State::Failed(_) => "failed",
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
