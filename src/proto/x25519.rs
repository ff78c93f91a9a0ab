//! spiperelay's X25519 handshake mode (`--x25519`, ours ↔ ours only; §5 of `docs/protocol.md`).
//!
//! Same messages, lengths and packet format as spiped (§1.3, §2): each side sends a 32-byte
//! nonce, then a 288-byte `v ‖ h`. Only the content of `v` and the derivations differ:
//!
//! - `v` = the 32-byte X25519 public key (RFC 7748 u-coordinate, little-endian) followed by
//!   [`PADDING_LEN`] zero bytes, so `v ‖ h` is exactly [`YH_LEN`] bytes like spiped's `y ‖ h`.
//! - dk_1 = PBKDF2-HMAC-SHA256(K, [`DK1_LABEL`] ‖ nonce_C ‖ nonce_S, 1, 64); `h` =
//!   HMAC-SHA256(dhmac of the sender's role, v), the halves as in §1.4.
//! - dk_2 = PBKDF2-HMAC-SHA256(K, [`DK2_LABEL`] ‖ nonce_C ‖ nonce_S ‖ pub_C ‖ pub_S ‖ s, 1, 128)
//!   with `s` = X25519(own scalar, peer's public key); split into E_C, H_C, E_S, H_S as in §1.7.
//!
//! The labels make every MAC key differ from spiped's (whose salt is just `nonce_C ‖ nonce_S`),
//! so a peer in the other mode fails the very first MAC check, which happens before any X25519
//! or modular-exponentiation work. Because the message lengths are spiped's, neither side ever
//! waits for bytes the other will not send: a mismatch is found as soon as the first `v ‖ h`
//! arrives. An all-zero shared secret (a low-order peer point) is rejected.

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::proto::crypt::{
    DK1_LEN, DK2_LEN, DhMacKeys, Role, SecretKey, SessionKeys, dh_mac, find_mac_key,
    pbkdf2_one_iteration,
};
use crate::proto::key::Key;
use crate::proto::{DH_PUBLIC_LEN, HandshakeError, MAC_LEN, NONCE_LEN, SESSION_KEY_LEN, YH_LEN};

/// Length of an X25519 public key (RFC 7748 §5: a 32-byte little-endian u-coordinate).
pub const PUBLIC_LEN: usize = 32;

/// Length of the random private scalar handed in by the caller (RFC 7748 §5; clamped by the
/// X25519 function itself).
pub const PRIVATE_LEN: usize = 32;

/// Zero bytes after the public key in the 256-byte value field, so the message keeps spiped's
/// length (§1.3).
pub const PADDING_LEN: usize = DH_PUBLIC_LEN - PUBLIC_LEN;

/// Length of an X25519 shared secret.
pub const SHARED_LEN: usize = 32;

/// Salt prefix of this mode's dk_1 (domain separation from spiped's §1.4 derivation).
pub const DK1_LABEL: &[u8] = b"spiperelay x25519 v1 dk1";

/// Salt prefix of this mode's dk_2 (domain separation from spiped's §1.7 derivation).
pub const DK2_LABEL: &[u8] = b"spiperelay x25519 v1 dk2";

/// An ephemeral X25519 key pair: a private scalar and its public key.
///
/// The scalar is zeroised on drop (x25519-dalek's `zeroize` feature); `Debug` is redacted.
pub struct X25519KeyPair {
    secret: StaticSecret,
    public: [u8; PUBLIC_LEN],
}

impl X25519KeyPair {
    /// Builds the key pair for the 32 random bytes `private` (from a cryptographically secure
    /// RNG). `private` is wiped from the caller's copy. Costs one X25519 base-point
    /// multiplication. Never fails.
    pub fn from_private(mut private: [u8; PRIVATE_LEN]) -> Self {
        let secret = StaticSecret::from(private);
        private.zeroize();
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// The public key, 32 bytes (RFC 7748 encoding).
    pub fn public(&self) -> &[u8; PUBLIC_LEN] {
        &self.public
    }
}

impl std::fmt::Debug for X25519KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X25519KeyPair(<secret>)")
    }
}

/// Derives this mode's dk_1 = PBKDF2-HMAC-SHA256(K, [`DK1_LABEL`] ‖ nonce_C ‖ nonce_S, 1, 64),
/// split into the client's and the server's MAC keys. Never fails.
pub fn dh_mac_keys(
    key: &Key,
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
) -> DhMacKeys {
    let mut dk1 = Zeroizing::new([0u8; DK1_LEN]);
    pbkdf2_one_iteration(
        key,
        &[DK1_LABEL, nonce_client, nonce_server],
        dk1.as_mut_slice(),
    );
    DhMacKeys {
        client: SecretKey::from_slice(&dk1[..MAC_LEN]),
        server: SecretKey::from_slice(&dk1[MAC_LEN..]),
    }
}

/// The 256-byte value field for `public`: the key, then [`PADDING_LEN`] zero bytes.
pub fn value_field(public: &[u8; PUBLIC_LEN]) -> [u8; DH_PUBLIC_LEN] {
    let mut v = [0u8; DH_PUBLIC_LEN];
    v[..PUBLIC_LEN].copy_from_slice(public);
    v
}

/// The whole 288-byte message `v ‖ h` that `role` sends with `public` under `dk1`.
pub fn message(dk1: &DhMacKeys, role: Role, public: &[u8; PUBLIC_LEN]) -> [u8; YH_LEN] {
    let v = value_field(public);
    let h = dh_mac(dk1.for_role(role), &v);
    let mut out = [0u8; YH_LEN];
    out[..DH_PUBLIC_LEN].copy_from_slice(&v);
    out[DH_PUBLIC_LEN..].copy_from_slice(&h);
    out
}

/// Proof that a peer's `v ‖ h` passed this mode's checks under one of our keys; only
/// [`validate_peer`] constructs it and [`session_keys`] requires it.
pub struct ValidatedX25519Peer {
    public: [u8; PUBLIC_LEN],
    key_index: usize,
}

impl ValidatedX25519Peer {
    /// Index, in the candidates given to [`validate_peer`], of the key whose MAC verified.
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// The peer's public key.
    pub fn public(&self) -> &[u8; PUBLIC_LEN] {
        &self.public
    }
}

impl std::fmt::Debug for ValidatedX25519Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedX25519Peer")
            .field("key_index", &self.key_index)
            .finish_non_exhaustive()
    }
}

/// Checks a peer's `v ‖ h`, cheapest first and before any X25519 operation:
/// 1. `h` = HMAC(this mode's dhmac of `peer_role`, v) under some key of `candidates`, in order
///    (constant-time comparison);
/// 2. the [`PADDING_LEN`] bytes after the public key are zero.
///
/// Returns the proof and the matching key's dk_1 (for our own MAC).
///
/// # Errors
/// [`HandshakeError::BadDhMac`] if no key's MAC matches; [`HandshakeError::BadX25519Padding`]
/// if the MAC verifies but the padding is not zero.
pub fn validate_peer(
    vh: &[u8; YH_LEN],
    peer_role: Role,
    candidates: &[Key],
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
) -> Result<(ValidatedX25519Peer, DhMacKeys), HandshakeError> {
    let mut v = [0u8; DH_PUBLIC_LEN];
    v.copy_from_slice(&vh[..DH_PUBLIC_LEN]);
    let h = &vh[DH_PUBLIC_LEN..];
    let (key_index, dk1) = find_mac_key(candidates, peer_role, &v, h, |key| {
        dh_mac_keys(key, nonce_client, nonce_server)
    })
    .ok_or(HandshakeError::BadDhMac)?;
    if v[PUBLIC_LEN..].iter().any(|&b| b != 0) {
        return Err(HandshakeError::BadX25519Padding);
    }
    let mut public = [0u8; PUBLIC_LEN];
    public.copy_from_slice(&v[..PUBLIC_LEN]);
    Ok((ValidatedX25519Peer { public, key_index }, dk1))
}

/// Derives the session keys: `s` = X25519(our scalar, peer's public key), then
/// dk_2 = PBKDF2-HMAC-SHA256(K, [`DK2_LABEL`] ‖ nonce_C ‖ nonce_S ‖ pub_C ‖ pub_S ‖ s, 1, 128).
///
/// `local_role` says whether our public key is pub_C or pub_S; `key` must be the key that
/// validated the peer. This is the only X25519 operation on the peer's value, and it needs a
/// [`ValidatedX25519Peer`].
///
/// # Errors
/// [`HandshakeError::ZeroSharedSecret`] if `s` is all zero (the peer sent a low-order point,
/// so the exchange would contribute nothing secret).
pub fn session_keys(
    key: &Key,
    nonce_client: &[u8; NONCE_LEN],
    nonce_server: &[u8; NONCE_LEN],
    local_role: Role,
    pair: &X25519KeyPair,
    peer: &ValidatedX25519Peer,
) -> Result<SessionKeys, HandshakeError> {
    let shared = pair.secret.diffie_hellman(&PublicKey::from(peer.public));
    if !shared.was_contributory() {
        return Err(HandshakeError::ZeroSharedSecret);
    }
    let (pub_c, pub_s) = match local_role {
        Role::Client => (&pair.public, &peer.public),
        Role::Server => (&peer.public, &pair.public),
    };
    let mut dk2 = Zeroizing::new([0u8; DK2_LEN]);
    pbkdf2_one_iteration(
        key,
        &[
            DK2_LABEL,
            nonce_client,
            nonce_server,
            pub_c,
            pub_s,
            shared.as_bytes(),
        ],
        dk2.as_mut_slice(),
    );
    let k = |i: usize| SecretKey::from_slice(&dk2[i * SESSION_KEY_LEN..(i + 1) * SESSION_KEY_LEN]);
    Ok(SessionKeys {
        enc_client: k(0),
        mac_client: k(1),
        enc_server: k(2),
        mac_server: k(3),
    })
}

#[cfg(test)]
mod tests;
