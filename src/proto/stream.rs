//! Stream framing over arbitrary chunking (§2): an [`Encoder`] that cuts plaintext reads into
//! packets exactly as spiped does, and a [`Decoder`] that accepts ciphertext split anywhere.

use crate::proto::packet::{Opener, Sealer, opened_max_len};
use crate::proto::{PACKET_LEN, PacketError, StreamError};

/// Turns plaintext, one read at a time, into packets (§2 "How spiped cuts a stream").
///
/// Whatever one read returned is sealed at once as ⌈n/1024⌉ packets: full 1024-byte packets, then
/// the remainder. There is no coalescing across reads and no delay, and an empty read produces
/// nothing (spiped drops a connection that sends `L = 0`).
#[derive(Clone)]
pub struct Encoder {
    sealer: Sealer,
}

impl Encoder {
    /// An encoder that seals with `sealer` (the local role's direction keys).
    pub fn new(sealer: Sealer) -> Self {
        Self { sealer }
    }

    /// Appends the packets for `plaintext` to `out` ([`crate::proto::packet::sealed_len`] bytes).
    ///
    /// # Errors
    /// [`StreamError::Packet`] with [`crate::proto::PacketError::CounterExhausted`] once the
    /// direction has used 2^64 packets; `out` is then unchanged.
    pub fn encode(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        Ok(self.sealer.seal_append(plaintext, out)?)
    }

    /// Like [`Encoder::encode`], writing the packets to the start of `out`, which must hold
    /// [`crate::proto::packet::sealed_len`]`(plaintext.len())` bytes (so a caller can reuse one
    /// buffer without clearing it). Returns the bytes written.
    ///
    /// # Errors
    /// [`StreamError::Packet`] with [`PacketError::BadBufferLength`] if `out` is too short, or
    /// with [`PacketError::CounterExhausted`] as for `encode`; nothing is written then.
    pub fn encode_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, StreamError> {
        Ok(self.sealer.seal_into(plaintext, out)?)
    }

    /// The underlying sealer, for callers that seal into their own buffers.
    pub fn sealer_mut(&mut self) -> &mut Sealer {
        &mut self.sealer
    }
}

/// Turns ciphertext, split at arbitrary points, back into plaintext (§2 "Receiver").
///
/// Whole packets in the input are opened straight from it; only a packet split across calls is
/// buffered, so an idle decoder holds no packet buffer. After the first error the decoder is
/// poisoned: every later call returns that error and delivers nothing.
pub struct Decoder {
    opener: Opener,
    /// Bytes of a packet split across calls (fewer than PACKET_LEN). Allocated only when needed.
    partial: Vec<u8>,
    failed: Option<StreamError>,
}

impl Decoder {
    /// A decoder that opens with `opener` (the peer role's direction keys).
    pub fn new(opener: Opener) -> Self {
        Self {
            opener,
            partial: Vec::new(),
            failed: None,
        }
    }

    /// Feeds `ciphertext` (any length, including 0) and appends the plaintext of every packet
    /// it completes to `out`.
    ///
    /// # Errors
    /// The first [`StreamError::Packet`] error in the stream. `out` then holds the plaintext of
    /// every packet before the bad one and nothing from it or after it; the decoder stays failed.
    pub fn decode(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let start = out.len();
        out.resize(start + self.max_output(ciphertext.len()), 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        let (result, written) = self.decode_run(ciphertext, tail);
        out.truncate(start + written);
        result
    }

    /// Like [`Decoder::decode`], writing the plaintext to the start of `out` instead, which
    /// must hold [`Decoder::max_output`]`(ciphertext.len())` bytes, so a caller can reuse one
    /// buffer without clearing it. Returns the plaintext bytes written; `out` beyond them is
    /// untouched.
    ///
    /// # Errors
    /// [`StreamError::Packet`] with [`crate::proto::PacketError::BadBufferLength`] if `out` is
    /// too short (nothing is consumed and the decoder is not failed). Otherwise the first
    /// packet error in the stream, as for `decode`: `out` then starts with the plaintext of
    /// the packets before the bad one, but its length is not returned, and the decoder stays
    /// failed.
    pub fn decode_into(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let need = self.max_output(ciphertext.len());
        if out.len() < need {
            return Err(StreamError::Packet(PacketError::BadBufferLength {
                len: out.len(),
            }));
        }
        let (result, written) = self.decode_run(ciphertext, out);
        result.map(|()| written)
    }

    /// The most plaintext bytes the next `decode` of `len` ciphertext bytes can produce: 1024
    /// per packet it completes, counting the bytes of a split packet already held.
    pub fn max_output(&self, len: usize) -> usize {
        opened_max_len(self.partial.len().saturating_add(len))
    }

    /// Decodes into `out` (at least [`Decoder::max_output`] bytes). Returns the first error,
    /// if any, and the plaintext bytes written before it.
    fn decode_run(
        &mut self,
        mut ciphertext: &[u8],
        out: &mut [u8],
    ) -> (Result<(), StreamError>, usize) {
        let mut written = 0;
        // Complete a packet split across calls first.
        if !self.partial.is_empty() {
            let take = (PACKET_LEN - self.partial.len()).min(ciphertext.len());
            let (head, rest) = ciphertext.split_at(take);
            self.partial.extend_from_slice(head);
            ciphertext = rest;
            if self.partial.len() < PACKET_LEN {
                return (Ok(()), 0);
            }
            let (result, n) = self.opener.open_run(&self.partial, out);
            self.partial.clear();
            written = n;
            if let Err(e) = self.check(result) {
                return (Err(e), written);
            }
        }
        // Open every whole packet directly from the input, then keep the tail.
        let whole = ciphertext.len() - ciphertext.len() % PACKET_LEN;
        let (packets, tail) = ciphertext.split_at(whole);
        if !packets.is_empty() {
            let dst = out.get_mut(written..).unwrap_or_default();
            let (result, n) = self.opener.open_run(packets, dst);
            written += n;
            if let Err(e) = self.check(result) {
                return (Err(e), written);
            }
        }
        if !tail.is_empty() {
            if self.partial.capacity() == 0 {
                self.partial.reserve_exact(PACKET_LEN);
            }
            self.partial.extend_from_slice(tail);
        }
        (Ok(()), written)
    }

    /// Reports how the stream ended when the peer's EOF arrives.
    ///
    /// # Errors
    /// The decoder's earlier error if it failed; otherwise [`StreamError::Truncated`] if 1..=1059
    /// bytes of a packet are pending (spiped would call that a clean EOF, its issue #446).
    /// `Ok(())` means a clean EOF at a packet boundary.
    pub fn finish(&self) -> Result<(), StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(StreamError::Truncated {
                have: self.partial.len(),
            })
        }
    }

    /// Bytes of an incomplete packet held since the last call (0..1060).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Releases the buffer of the split-packet area if it is empty (for idle connections).
    pub fn shrink(&mut self) {
        if self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }

    fn check<T>(&mut self, result: Result<T, PacketError>) -> Result<T, StreamError> {
        result.map_err(|e| {
            let e = StreamError::Packet(e);
            self.failed = Some(e);
            self.partial = Vec::new();
            e
        })
    }
}
