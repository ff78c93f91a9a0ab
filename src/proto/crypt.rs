//! The handshake's cryptography (spiped `proto_crypt.c`): dk_1 and the DH-value MACs (§1.4),
//! the receiver checks on a peer's DH value (§1.5), and the session keys dk_2 (§1.7).
//!
//! PBKDF2-HMAC-SHA256 with one iteration is computed directly as HMAC blocks
//! `T_i = HMAC-SHA256(K, salt ‖ BE32(i))` (§1.4); there are no label strings anywhere.
//!
//! Key derivation is gated by type: [`session_keys`] takes a [`ValidatedPeer`], and the only way
//! to obtain one is [`validate_peer`], which runs the §1.5 checks in spiped's order. A caller
//! therefore cannot derive keys from a DH value whose MAC was never checked.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::proto::dh::{self, DH_PRIVATE_LEN};
use crate::proto::key::Key;
use crate::proto::{DH_PUBLIC_LEN, HandshakeError, MAC_LEN, NONCE_LEN, SESSION_KEY_LEN, YH_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Length of dk_1: the client's and the server's DH MAC keys (§1.4).
pub const DK1_LEN: usize = 2 * MAC_LEN;

/// Length of dk_2: four 32-byte session keys (§1.7).
pub const DK2_LEN: usize = 4 * SESSION_KEY_LEN;

/// Which end of the protocol this is (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The encrypting side (`spiped -e`, `spipe`): sends `y_C` after reading the server's nonce.
    Client,
    /// The decrypting side (`spiped -d`): validates `y_C` before it sends `y_S`.
    Server,
}

impl Role {
    /// The other role.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// Fills `out` with PBKDF2-HMAC-SHA256(password = K, salt = parts concatenated, c = 1).
///
/// `out.len()` must be a multiple of 32 (it is 64 or 128 here).
pub(crate) fn pbkdf2_one_iteration(key: &Key, salt_parts: &[&[u8]], out: &mut [u8]) {
    // Key the HMAC and absorb the salt once, then clone that state per block: the blocks
    // differ only in the trailing BE32(i), so the salt's whole SHA-256 blocks are compressed
    // once instead of once per output block (dk_2's 320-byte group-14 salt: 5 of its 6 inner
    // compressions per block).
    let mut salted = <HmacSha256 as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    for part in salt_parts {
        salted.update(part);
    }
    for (i, block) in (1u32..).zip(out.chunks_mut(MAC_LEN)) {
        let mut mac = salted.clone();
        mac.update(&i.to_be_bytes());
        let t = mac.finalize().into_bytes();
        block.copy_from_slice(&t[..block.len()]);
    }
}

/// One 32-byte secret key (a DH MAC key or a session key). Zeroised on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; SESSION_KEY_LEN]>);

impl SecretKey {
    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        let mut k = Zeroizing::new([0u8; SESSION_KEY_LEN]);
        k.copy_from_slice(bytes);
        Self(k)
    }

    /// The key bytes, for building ciphers and for known-answer tests. Never log them.
    pub fn as_bytes(&self) -> &[u8; SESSION_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<secret>)")
    }
}

/// dk_1 split into the two DH MAC keys (§1.4).
#[derive(Clone, Debug)]
pub struct DhMacKeys {
    /// `dhmac_C = dk_1[0..32]`: the client MACs its `y_C` with it.
    pub client: SecretKey,
    /// `dhmac_S = dk_1[32..64]`: the server MACs its `y_S` with it.
    pub server: SecretKey,
}

impl DhMacKeys {
    /// Derives dk_1 = PBKDF2-HMAC-SHA256(K, nonce_C ‖ nonce_S, 1, 64) (§1.4).
    ///
    /// The salt is always the client's nonce first, whatever the local role. Never fails.
    pub fn derive(
        key: &Key,
        nonce_client: &[u8; NONCE_LEN],
        nonce_server: &[u8; NONCE_LEN],
    ) -> Self {
        let mut dk1 = Zeroizing::new([0u8; DK1_LEN]);
        pbkdf2_one_iteration(key, &[nonce_client, nonce_server], dk1.as_mut_slice());
        Self {
            client: SecretKey::from_slice(&dk1[..MAC_LEN]),
            server: SecretKey::from_slice(&dk1[MAC_LEN..]),
        }
    }

    /// The MAC key that `role` uses on its own DH value.
    pub fn for_role(&self, role: Role) -> &SecretKey {
        match role {
            Role::Client => &self.client,
            Role::Server => &self.server,
        }
    }
}

/// The first of `candidates` (its index and dk_1, from `derive`) under which
/// `h = HMAC(dhmac of peer_role, value)`, compared in constant time; `None` if there is none.
/// Costs one dk_1 derivation and one HMAC per candidate tried; no exponentiation.
pub(crate) fn find_mac_key(
    candidates: &[Key],
    peer_role: Role,
    value: &[u8; DH_PUBLIC_LEN],
    h: &[u8],
    derive: impl Fn(&Key) -> DhMacKeys,
) -> Option<(usize, DhMacKeys)> {
    candidates.iter().enumerate().find_map(|(index, key)| {
        let dk1 = derive(key);
        bool::from(dh_mac(dk1.for_role(peer_role), value).ct_eq(h)).then_some((index, dk1))
    })
}

/// `h = HMAC-SHA256(key = dhmac, message = y)` over the 256-byte DH value (§1.5).
pub fn dh_mac(dhmac: &SecretKey, y: &[u8; DH_PUBLIC_LEN]) -> [u8; MAC_LEN] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(dhmac.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(y);
    mac.finalize().into_bytes().into()
}

/// The DH value `y = 1` that a side running with `-f` sends: 255 zero bytes, then 0x01 (§1.6).
pub const Y_ONE: [u8; DH_PUBLIC_LEN] = {
    let mut y = [0u8; DH_PUBLIC_LEN];
    y[DH_PUBLIC_LEN - 1] = 1;
    y
};

/// An ephemeral group-14 key pair: the random private value and `y = 2^x mod p` (§1.5).
///
/// The private value is zeroised on drop. Computing the public value is the expensive part of
/// key generation, which is why a caller may build pairs ahead of time and hand them in.
pub struct DhKeyPair {
    private: Zeroizing<[u8; DH_PRIVATE_LEN]>,
    public: [u8; DH_PUBLIC_LEN],
}

impl DhKeyPair {
    /// Builds the key pair for the 32 random bytes `private` (which must come from a
    /// cryptographically secure RNG; the exponent is `2^258 + private`, §1.5). `private` is
    /// wiped from the caller's copy. Never fails.
    pub fn from_private(mut private: [u8; DH_PRIVATE_LEN]) -> Self {
        let public = dh::public_from_private(&private);
        let pair = Self {
            private: Zeroizing::new(private),
            public,
        };
        private.zeroize();
        pair
    }

    /// The public value `y`, 256 bytes big-endian.
    pub fn public(&self) -> &[u8; DH_PUBLIC_LEN] {
        &self.public
    }
}

impl std::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DhKeyPair(<secret>)")
    }
}

/// How the local side takes part in the Diffie-Hellman exchange: spiped's `-f` and `-g` (§1.6).
///
/// `-f` together with `-g` cannot be expressed, as spiped refuses that combination.
#[derive(Debug)]
pub enum DhMode {
    /// The default: send our ephemeral `y`, accept any valid peer `y` including 1.
    Pfs(DhKeyPair),
    /// `-g`: as [`DhMode::Pfs`], and reject a peer that sends `y = 1`.
    RequirePfs(DhKeyPair),
    /// `-f`: send `y = 1` and use `y_SC = 1` whatever the peer sends; no forward secrecy.
    NoPfs,
}

impl DhMode {
    /// The DH value this side sends: its public value, or 1 with `-f`.
    pub fn public(&self) -> &[u8; DH_PUBLIC_LEN] {
        match self {
            Self::Pfs(pair) | Self::RequirePfs(pair) => pair.public(),
            Self::NoPfs => &Y_ONE,
        }
    }

    fn requires_pfs(&self) -> bool {
        matches!(self, Self::RequirePfs(_))
    }
}

/// Proof that a peer's DH value passed every §1.5 receiver check under one of our keys.
///
/// Only [`validate_peer`] constructs it; [`session_keys`] requires it. Not `Clone`, so one
/// validation yields one derivation.
pub struct ValidatedPeer {
    y: [u8; DH_PUBLIC_LEN],
    key_index: usize,
}

impl ValidatedPeer {
    /// Index, in the candidates given to [`validate_peer`], of the key whose MAC verified.
    pub fn key_index(&self) -> usize {
        self.key_index
    }
}

impl std::fmt::Debug for ValidatedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedPeer")
            .field("key_index", &self.key_index)
            .finish_non_exhaustive()
    }
}

/// Runs the receiver checks of §1.5 on a peer's `y ‖ h`, in spiped's order, before any modular
/// exponentiation:
/// 1. `h` must equal HMAC(dhmac of the peer's role, y) under some key of `candidates`, tried in
///    order (constant-time comparison; each candidate costs one PBKDF2 block pair and one HMAC);
/// 2. `y < p`;
/// 3. with `mode` = [`DhMode::RequirePfs`] (`-g`), `y != 1`.
///
/// `nonce_client`/`nonce_server` are the two nonces in protocol order (client first). On success
/// returns the proof and the dk_1 of the matching key, which the caller needs for its own MAC.
///
/// # Errors
/// [`HandshakeError::BadDhMac`] if no key's MAC matches (wrong key, wrong role, or tampering);
/// [`HandshakeError::DhOutOfRange`] if `y ≥ p`; [`HandshakeError::PfsRequired`] if `y = 1`
/// under `-g`.
pub fn validate_peer(
    yh: &[u8; YH_LEN],
    peer_role: Role,
    candidates: &[Key],
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
    mode: &DhMode,
) -> Result<(ValidatedPeer, DhMacKeys), HandshakeError> {
    validate_peer_policy(
        yh,
        peer_role,
        candidates,
        nonce_client,
        nonce_server,
        mode.requires_pfs(),
    )
}

/// [`validate_peer`] with the `-g` policy given as `require_pfs` instead of a [`DhMode`], for a
/// handshake whose own key pair does not exist yet (the server asks for it only after this
/// check, so an unauthenticated client never costs a key generation). Same checks, order and
/// errors.
pub fn validate_peer_policy(
    yh: &[u8; YH_LEN],
    peer_role: Role,
    candidates: &[Key],
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
    require_pfs: bool,
) -> Result<(ValidatedPeer, DhMacKeys), HandshakeError> {
    let (y, h) = yh.split_at(DH_PUBLIC_LEN);
    let mut y_arr = [0u8; DH_PUBLIC_LEN];
    y_arr.copy_from_slice(y);

    // Check 1: the MAC, trying each accepted key in order (§1.5; a decrypting end holds
    // several keys while a key rotation is under way).
    let (key_index, dk1) = find_mac_key(candidates, peer_role, &y_arr, h, |key| {
        DhMacKeys::derive(key, nonce_client, nonce_server)
    })
    .ok_or(HandshakeError::BadDhMac)?;

    // Check 2: y < p.
    if !dh::is_below_p(&y_arr) {
        return Err(HandshakeError::DhOutOfRange);
    }
    // Check 3: with -g, y != 1.
    if require_pfs && y_arr == Y_ONE {
        return Err(HandshakeError::PfsRequired);
    }
    Ok((
        ValidatedPeer {
            y: y_arr,
            key_index,
        },
        dk1,
    ))
}

/// dk_2 split into the four per-direction session keys (§1.7).
#[derive(Clone, Debug)]
pub struct SessionKeys {
    /// `E_C`: AES-256 key for client→server packets.
    pub enc_client: SecretKey,
    /// `H_C`: HMAC-SHA256 key for client→server packets.
    pub mac_client: SecretKey,
    /// `E_S`: AES-256 key for server→client packets.
    pub enc_server: SecretKey,
    /// `H_S`: HMAC-SHA256 key for server→client packets.
    pub mac_server: SecretKey,
}

/// Derives the session keys (§1.7): computes the shared value `y_SC` (the peer's `y` to our
/// private exponent, or 1 if we run with `-f`), then
/// dk_2 = PBKDF2-HMAC-SHA256(K, nonce_C ‖ nonce_S ‖ y_SC, 1, 128).
///
/// `key` must be the key that validated the peer (candidate `peer.key_index()`). This is the
/// one place a variable-base modular exponentiation happens, and it needs a [`ValidatedPeer`].
/// Never fails.
pub fn session_keys(
    key: &Key,
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
    mode: &DhMode,
    peer: &ValidatedPeer,
) -> SessionKeys {
    let y_sc = Zeroizing::new(match mode {
        DhMode::Pfs(pair) | DhMode::RequirePfs(pair) => dh::shared_secret(&peer.y, &pair.private),
        DhMode::NoPfs => Y_ONE,
    });
    let mut dk2 = Zeroizing::new([0u8; DK2_LEN]);
    pbkdf2_one_iteration(
        key,
        &[nonce_client, nonce_server, y_sc.as_slice()],
        dk2.as_mut_slice(),
    );
    let k = |i: usize| SecretKey::from_slice(&dk2[i * SESSION_KEY_LEN..(i + 1) * SESSION_KEY_LEN]);
    SessionKeys {
        enc_client: k(0),
        mac_client: k(1),
        enc_server: k(2),
        mac_server: k(3),
    }
}
