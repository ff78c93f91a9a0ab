//! Error types of the protocol core: one small enum per layer, one variant per cause.
//!
//! Every variant says what the peer (or the caller) did wrong in words an operator can act on;
//! none carries key material.

use std::fmt;

/// Why a handshake failed (§1.3–§1.6). Any of these ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The MAC `h` on the peer's DH value did not verify under any accepted key: the peer uses a
    /// different key file, is not a spiped peer of the opposite role, or the bytes were altered
    /// (§1.5 check 1).
    BadDhMac,
    /// The peer's DH value is not below the group-14 prime p (§1.5 check 2).
    DhOutOfRange,
    /// The peer sent `y = 1` (it runs with `-f`, no forward secrecy) and we require forward
    /// secrecy (`-g`, §1.6).
    PfsRequired,
    /// The MAC on the peer's value verified under spiperelay's X25519-mode derivation: the peer
    /// runs with `--x25519` and this end does not (§5.5).
    PeerUsesX25519,
    /// This end runs with `--x25519`, and the MAC on the peer's value verified under spiped's
    /// derivation: the peer is spiped, or spiperelay without `--x25519` (§5.5).
    PeerNotX25519,
    /// X25519 mode: the MAC verified but the 224 padding bytes after the public key are not
    /// zero (a broken peer).
    BadX25519Padding,
    /// X25519 mode: the shared secret is all zero because the peer sent a low-order point.
    ZeroSharedSecret,
    /// The caller handed in a key pair the handshake did not ask for, or of the wrong kind (a
    /// bug in the caller, not the peer).
    UnexpectedKeyPair,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadDhMac => "handshake failed: bad MAC on the peer's DH value (wrong key?)",
            Self::DhOutOfRange => "handshake failed: peer's DH value is not below the prime p",
            Self::PfsRequired => {
                "handshake failed: peer does not use perfect forward secrecy (it runs with -f) \
                 and -g requires it"
            }
            Self::PeerUsesX25519 => {
                "handshake failed: the peer runs in --x25519 mode and this end does not \
                 (use --x25519 on both ends or on neither)"
            }
            Self::PeerNotX25519 => {
                "handshake failed: this end runs in --x25519 mode and the peer does not (it is \
                 spiped, or spiperelay without --x25519)"
            }
            Self::BadX25519Padding => {
                "handshake failed: peer's X25519 message has non-zero padding"
            }
            Self::ZeroSharedSecret => {
                "handshake failed: the X25519 shared secret is all zero (peer sent a \
                 low-order point)"
            }
            Self::UnexpectedKeyPair => {
                "handshake failed: a key pair was supplied that the handshake did not ask for"
            }
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Why one packet could not be sealed or opened (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketError {
    /// The packet's HMAC did not verify: it was altered, replayed, reordered, reflected from the
    /// other direction, or a packet before it was dropped.
    BadMac,
    /// The MAC verified but the length field is 0 or above 1024 (§2 receiver step 3).
    BadLength {
        /// The length field as received.
        len: u32,
    },
    /// The 64-bit packet counter of this direction is used up; sending or accepting one more
    /// packet would reuse a counter value (§1.7: at most 2^64 packets per direction).
    CounterExhausted,
    /// The caller asked to seal an empty payload; spiped treats `L = 0` as an error, so it is
    /// never sent (§2).
    EmptyPayload,
    /// The caller asked to seal more than 1024 bytes into one packet.
    PayloadTooLarge {
        /// The payload length asked for.
        len: usize,
    },
    /// The caller handed in a ciphertext run whose length is not a multiple of 1060 bytes, or an
    /// output buffer too small for the result.
    BadBufferLength {
        /// The length handed in.
        len: usize,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMac => f.write_str(
                "bad packet: MAC check failed (altered, replayed, reordered or dropped data)",
            ),
            Self::BadLength { len } => {
                write!(f, "bad packet: length field {len} is outside 1..=1024")
            }
            Self::CounterExhausted => {
                f.write_str("packet counter exhausted: 2^64 packets sent in one direction")
            }
            Self::EmptyPayload => f.write_str("cannot seal an empty payload"),
            Self::PayloadTooLarge { len } => {
                write!(f, "cannot seal {len} bytes into one packet (at most 1024)")
            }
            Self::BadBufferLength { len } => {
                write!(
                    f,
                    "buffer of {len} bytes does not fit a whole number of packets"
                )
            }
        }
    }
}

impl std::error::Error for PacketError {}

/// Why a byte stream of packets could not be decoded or encoded (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamError {
    /// A packet in the stream failed; see [`PacketError`].
    Packet(PacketError),
    /// The stream ended inside a packet: `have` bytes (1..=1059) of a 1060-byte packet arrived
    /// before EOF. spiped silently treats this as a clean EOF (its issue #446); we report it.
    Truncated {
        /// Bytes of the incomplete trailing packet.
        have: usize,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Packet(e) => e.fmt(f),
            Self::Truncated { have } => write!(
                f,
                "truncated stream: EOF after {have} bytes of a {}-byte packet",
                crate::proto::PACKET_LEN
            ),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Packet(e) => Some(e),
            Self::Truncated { .. } => None,
        }
    }
}

impl From<PacketError> for StreamError {
    fn from(e: PacketError) -> Self {
        Self::Packet(e)
    }
}
