//! Helpers shared by the protocol tests.
#![allow(dead_code, unreachable_pub)]

use spiperelay::proto::HandshakeError;
use spiperelay::proto::crypt::{DhKeyPair, DhMode, Role};
use spiperelay::proto::handshake::{Handshake, Session, Step};
use spiperelay::proto::kernels::Kernels;
use spiperelay::proto::key::{Key, KeySet};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes lower-case hex; panics on bad input (test vectors only).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// A small deterministic PRNG (xorshift64*) so every test run is reproducible.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
}

/// Which of `-f`/`-g` (or neither) one side runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Default.
    Default,
    /// `-f`.
    NoPfs,
    /// `-g`.
    Require,
}

/// Builds the DH mode for `pfs`, drawing the private value from `rng`.
pub fn dh_mode(pfs: Flag, rng: &mut TestRng) -> DhMode {
    match pfs {
        Flag::Default => DhMode::Pfs(DhKeyPair::from_private(rng.bytes())),
        Flag::Require => DhMode::RequirePfs(DhKeyPair::from_private(rng.bytes())),
        Flag::NoPfs => DhMode::NoPfs,
    }
}

/// Selects the kernel set named by `SPIPERELAY_KERNELS` (`fast` or `reference`), once per
/// test binary, so the in-process tests (e.g. tamper.rs) run in reference mode when the
/// variable says so, as the binary does. Panics on any other value.
pub fn kernels_from_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(v) = std::env::var_os("SPIPERELAY_KERNELS") {
            Kernels::parse(&v.to_string_lossy())
                .expect("SPIPERELAY_KERNELS")
                .select();
        }
    });
}

/// A client and a server handshake with the given keys and flags, on the kernel set of
/// [`kernels_from_env`].
pub fn pair(
    client_key: &[u8],
    server_keys: &[&[u8]],
    client_pfs: Flag,
    server_pfs: Flag,
    rng: &mut TestRng,
) -> (Handshake, Handshake) {
    kernels_from_env();
    let ck = KeySet::single(Key::from_key_file(client_key));
    let sk = KeySet::new(server_keys.iter().map(|k| Key::from_key_file(k)).collect())
        .expect("at least one server key");
    let c = Handshake::new(Role::Client, ck, rng.bytes(), dh_mode(client_pfs, rng));
    let s = Handshake::new(Role::Server, sk, rng.bytes(), dh_mode(server_pfs, rng));
    (c, s)
}

/// What [`pump`] did: the bytes `hs` handed out to send (all marked sent), how many input
/// bytes it consumed, and its session if it finished.
pub struct Pumped {
    pub sent: Vec<u8>,
    pub consumed: usize,
    pub session: Option<Session>,
}

/// Feeds `input` to `hs` and does what each returned step asks until it needs more input or
/// hands over its session. The handshakes here have their key pairs up front and derive at
/// once, so a step asking for either is a test failure.
pub fn pump(hs: &mut Handshake, input: &[u8]) -> Result<Pumped, HandshakeError> {
    let (consumed, mut step) = hs.read(input)?;
    let mut sent = Vec::new();
    loop {
        step = match step {
            Step::Send(bytes) => {
                let n = bytes.len();
                sent.extend_from_slice(bytes);
                hs.sent(n)?
            }
            Step::NeedInput(_) => {
                assert_eq!(consumed, input.len(), "input left over mid-handshake");
                return Ok(Pumped {
                    sent,
                    consumed,
                    session: None,
                });
            }
            Step::Done(session) => {
                return Ok(Pumped {
                    sent,
                    consumed,
                    session: Some(*session),
                });
            }
            other => panic!("a handshake with its key pair asked for {other:?}"),
        };
    }
}

/// Which side failed, and how, when driving a pair.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides finished.
    Done,
    /// The client reported an error.
    ClientFailed(HandshakeError),
    /// The server reported an error.
    ServerFailed(HandshakeError),
}

/// Drives both handshakes to completion, passing client→server bytes through `c2s` and
/// server→client bytes through `s2c`. Bounded: at most 8 rounds. Returns the outcome and, when
/// both finished, the sessions (client, server).
pub fn drive(
    c: &mut Handshake,
    s: &mut Handshake,
    c2s: &mut dyn FnMut(&mut Vec<u8>),
    s2c: &mut dyn FnMut(&mut Vec<u8>),
) -> (Outcome, Option<(Session, Session)>) {
    let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
    let (mut cs, mut ss) = (None, None);
    for _ in 0..8 {
        if cs.is_none() {
            match pump(c, &std::mem::take(&mut to_c)) {
                Ok(mut p) => {
                    c2s(&mut p.sent);
                    to_s = p.sent;
                    cs = p.session;
                }
                Err(e) => return (Outcome::ClientFailed(e), None),
            }
        }
        if ss.is_none() {
            match pump(s, &std::mem::take(&mut to_s)) {
                Ok(mut p) => {
                    s2c(&mut p.sent);
                    to_c = p.sent;
                    ss = p.session;
                }
                Err(e) => return (Outcome::ServerFailed(e), None),
            }
        }
        if let (Some(_), Some(_)) = (&cs, &ss) {
            return (Outcome::Done, cs.zip(ss));
        }
    }
    panic!("handshake did not finish in 8 rounds: {c:?} {s:?}");
}

/// Runs an untampered handshake and returns the two sessions (client, server).
pub fn established(c: Handshake, s: Handshake) -> (Session, Session) {
    let (mut c, mut s) = (c, s);
    let (outcome, sessions) = drive(&mut c, &mut s, &mut |_| {}, &mut |_| {});
    assert_eq!(outcome, Outcome::Done);
    sessions.expect("both sessions")
}
