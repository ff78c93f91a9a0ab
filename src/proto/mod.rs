//! The spiped 1.6 wire protocol, sans-IO.
//!
//! Section numbers (§) refer to `docs/protocol.md`, the byte-level specification this module
//! implements. Nothing in here performs I/O, reads a clock, spawns a thread or draws randomness:
//! callers hand in key-file bytes, nonces and Diffie-Hellman private values, and move the bytes
//! this module produces.
//!
//! - [`kernels`]: our kernel crates or only the reference RustCrypto paths, chosen at run time.
//! - [`key`]: `K = SHA-256(key file)` (§1.1).
//! - [`crypt`]: dk_1, the DH-value MACs and their checks, dk_2 (§1.4–§1.7).
//! - [`dh`]: RFC 3526 group 14 Diffie-Hellman, constant time (§1.5).
//! - [`handshake`]: the client and server handshake state machines (§1.3–§1.7).
//! - [`packet`]: one 1060-byte packet sealed or opened, and contiguous batches of them (§2).
//! - [`stream`]: an encoder and a decoder over arbitrarily chunked byte streams (§2).
//! - [`x25519`]: spiperelay's `--x25519` handshake mode (ours ↔ ours; §5).
//!
//! `fuzzing` (hidden) holds the bodies of the cargo-fuzz targets in `fuzz/`; it is compiled only
//! for tests and with the `fuzzing` feature, which `fuzz/` turns on. See `FUZZING.md`.

#![forbid(unsafe_code)]

pub mod crypt;
pub mod dh;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod kernels;
pub mod key;
pub mod packet;
pub mod stream;
pub mod x25519;

pub use error::{HandshakeError, PacketError, StreamError};

/// Length of each side's random nonce, the first handshake message (§1.3, `PCRYPT_NONCE_LEN`).
pub const NONCE_LEN: usize = 32;

/// Length of an HMAC-SHA256 output, used for every MAC in the protocol (§1.5, §2).
pub const MAC_LEN: usize = 32;

/// Length of a Diffie-Hellman public value `y`: 2048 bits, big-endian, left-padded (§1.5).
pub const DH_PUBLIC_LEN: usize = 256;

/// Length of the second handshake message, `y ‖ h` (§1.3, `PCRYPT_YH_LEN`).
pub const YH_LEN: usize = DH_PUBLIC_LEN + MAC_LEN;

/// Bytes each side sends during the handshake: nonce, then `y ‖ h` (§1.3).
pub const HANDSHAKE_LEN: usize = NONCE_LEN + YH_LEN;

/// The most payload one packet carries (§2, `PCRYPT_MAXDSZ`).
pub const MAX_PAYLOAD: usize = 1024;

/// Length of the big-endian payload-length field that follows the padded payload (§2).
pub const LENGTH_FIELD_LEN: usize = 4;

/// Length of the encrypted part of a packet: padded payload and length field (§2).
pub const CIPHERTEXT_LEN: usize = MAX_PAYLOAD + LENGTH_FIELD_LEN;

/// Size of every packet on the wire: ciphertext then MAC (§2, `PCRYPT_ESZ` = 1060).
pub const PACKET_LEN: usize = CIPHERTEXT_LEN + MAC_LEN;

/// Length of an AES-256 key and of an HMAC-SHA256 key in the session keys (§1.7).
pub const SESSION_KEY_LEN: usize = 32;
