//! Data packets (§2): one 1060-byte packet sealed or opened, and contiguous runs of packets.
//!
//! ```text
//! plain  = M ‖ 0x00 × (1024 − len(M)) ‖ BE32(len(M))                       (1028 bytes)
//! cipher = AES-256-CTR(E_dir, counter block = BE64(pnum) ‖ BE64(i))(plain)
//! packet = cipher ‖ HMAC-SHA256(H_dir, cipher ‖ BE64(pnum))                (1060 bytes)
//! ```
//! Each direction has its own key pair and its own 64-bit packet number starting at 0, so
//! replayed, reordered, dropped or reflected packets fail the MAC. The AES key schedule and the
//! keyed HMAC state are built once per session. Each packet borrows the key schedule (no copy)
//! and clones only the small keyed HMAC state; no packet re-keys anything.

use aes::Aes256Enc;
use ctr::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherSeek};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::proto::crypt::{Role, SecretKey, SessionKeys};
use crate::proto::{CIPHERTEXT_LEN, LENGTH_FIELD_LEN, MAX_PAYLOAD, PACKET_LEN, PacketError};

type HmacSha256 = Hmac<Sha256>;
/// AES-256-CTR over a borrowed key schedule, so a packet never copies (or wipes) the schedule.
type Aes256Ctr<'a> = ctr::Ctr128BE<&'a Aes256Enc>;

/// Length of the AES-CTR counter block: BE64(pnum) ‖ BE64(block index) (§2).
const COUNTER_BLOCK_LEN: usize = 16;

/// How many packets spiped cuts `len` plaintext bytes into: full 1024-byte packets, then the
/// remainder (§2). Zero bytes give zero packets.
pub const fn packets_for(len: usize) -> usize {
    len.div_ceil(MAX_PAYLOAD)
}

/// Bytes on the wire for `len` plaintext bytes cut as [`packets_for`] says.
pub const fn sealed_len(len: usize) -> usize {
    packets_for(len) * PACKET_LEN
}

/// The most payload bytes `len` bytes of whole packets can carry: 1024 per 1060-byte packet
/// (the room [`Opener::open_into`] needs). A trailing partial packet counts for nothing.
pub const fn opened_max_len(len: usize) -> usize {
    len / PACKET_LEN * MAX_PAYLOAD
}

/// The keys and packet counter of one direction, shared by [`Sealer`] and [`Opener`].
#[derive(Clone)]
struct DirectionState {
    /// Encryption-only key schedule: CTR mode never runs the AES decryption direction.
    aes: Aes256Enc,
    mac: HmacSha256,
    /// The packet number of the next packet, or `None` once all 2^64 have been used.
    next: Option<u64>,
}

impl DirectionState {
    fn new(enc: &SecretKey, mac: &SecretKey) -> Self {
        Self {
            aes: Aes256Enc::new(enc.as_bytes().into()),
            mac: <HmacSha256 as Mac>::new_from_slice(mac.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
            next: Some(0),
        }
    }

    /// Checks that `n` more packet numbers are available, so a batch either fully succeeds or
    /// changes nothing.
    fn reserve(&self, n: usize) -> Result<(), PacketError> {
        let remaining = match self.next {
            Some(next) => u128::from(u64::MAX - next) + 1,
            None => 0,
        };
        if n as u128 > remaining {
            return Err(PacketError::CounterExhausted);
        }
        Ok(())
    }

    /// Takes the next packet number, refusing to wrap (§1.7).
    fn take(&mut self) -> Result<u64, PacketError> {
        let pnum = self.next.ok_or(PacketError::CounterExhausted)?;
        self.next = pnum.checked_add(1);
        Ok(pnum)
    }

    fn keystream(&self, pnum: u64) -> Aes256Ctr<'_> {
        let mut iv = [0u8; COUNTER_BLOCK_LEN];
        iv[..8].copy_from_slice(&pnum.to_be_bytes());
        Aes256Ctr::from_core(ctr::CtrCore::inner_iv_init(&self.aes, &iv.into()))
    }

    fn tag(&self, ciphertext: &[u8], pnum: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(ciphertext);
        mac.update(&pnum.to_be_bytes());
        mac
    }
}

/// Compares a computed MAC with a received one in constant time (§2: the MAC is checked before
/// anything is decrypted). The XOR of each 8-byte word is OR-ed into one accumulator without
/// branching, and only that word goes through `subtle`'s comparison: one optimisation barrier
/// per packet instead of the one per byte of `Mac::verify_slice` (3 % of the receiver's CPU in
/// a bulk transfer). Slices of different lengths are unequal.
fn tags_equal(expected: &[u8], received: &[u8]) -> bool {
    if expected.len() != received.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a_words, b_words) = (expected.chunks_exact(8), received.chunks_exact(8));
    for (a, b) in a_words.remainder().iter().zip(b_words.remainder()) {
        diff |= u64::from(a ^ b);
    }
    for (a, b) in a_words.zip(b_words) {
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x.copy_from_slice(a);
        y.copy_from_slice(b);
        diff |= u64::from_ne_bytes(x) ^ u64::from_ne_bytes(y);
    }
    bool::from(diff.ct_eq(&0))
}

/// Seals plaintext into packets for one direction (§2 "Sender").
#[derive(Clone)]
pub struct Sealer(DirectionState);

impl Sealer {
    /// A sealer for the packets that `role` sends, with the keys of `keys` (E_C/H_C for the
    /// client, E_S/H_S for the server) and packet number 0.
    pub fn new(keys: &SessionKeys, role: Role) -> Self {
        Self(match role {
            Role::Client => DirectionState::new(&keys.enc_client, &keys.mac_client),
            Role::Server => DirectionState::new(&keys.enc_server, &keys.mac_server),
        })
    }

    /// Seals `payload` (1..=1024 bytes) into one packet in `out`, using the next packet number.
    ///
    /// # Errors
    /// [`PacketError::EmptyPayload`] or [`PacketError::PayloadTooLarge`] for a payload outside
    /// 1..=1024, [`PacketError::CounterExhausted`] after 2^64 packets. On error nothing is
    /// written and the counter is unchanged.
    pub fn seal(&mut self, payload: &[u8], out: &mut [u8; PACKET_LEN]) -> Result<(), PacketError> {
        if payload.is_empty() {
            return Err(PacketError::EmptyPayload);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(PacketError::PayloadTooLarge { len: payload.len() });
        }
        let pnum = self.0.take()?;
        self.seal_one(pnum, payload, out);
        Ok(())
    }

    /// Seals all of `plaintext` into `out` the way spiped cuts a read (§2): full 1024-byte
    /// packets, then the remainder; never an empty packet. Returns the bytes written,
    /// [`sealed_len`]`(plaintext.len())`, which is 0 for empty input.
    ///
    /// # Errors
    /// [`PacketError::BadBufferLength`] if `out` is shorter than [`sealed_len`];
    /// [`PacketError::CounterExhausted`] if the batch would need more packet numbers than remain.
    /// On error nothing is written and the counter is unchanged.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, PacketError> {
        let need = sealed_len(plaintext.len());
        let Some(out) = out.get_mut(..need) else {
            return Err(PacketError::BadBufferLength { len: out.len() });
        };
        self.0.reserve(packets_for(plaintext.len()))?;
        for (payload, packet) in plaintext
            .chunks(MAX_PAYLOAD)
            .zip(out.chunks_exact_mut(PACKET_LEN))
        {
            let pnum = self.0.take()?;
            self.seal_one(pnum, payload, packet);
        }
        Ok(need)
    }

    /// Like [`Sealer::seal_into`], appending the packets to `out`.
    ///
    /// # Errors
    /// [`PacketError::CounterExhausted`], as for `seal_into`; `out` is then unchanged.
    pub fn seal_append(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), PacketError> {
        self.0.reserve(packets_for(plaintext.len()))?;
        let start = out.len();
        out.resize(start + sealed_len(plaintext.len()), 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        match self.seal_into(plaintext, tail) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The packet number the next sealed packet will carry, or `None` when exhausted.
    pub fn next_packet_number(&self) -> Option<u64> {
        self.0.next
    }

    /// Writes one packet. `payload` is 1..=1024 bytes and `packet` exactly PACKET_LEN bytes
    /// (guaranteed by every caller).
    fn seal_one(&self, pnum: u64, payload: &[u8], packet: &mut [u8]) {
        let (body, tag) = packet.split_at_mut(CIPHERTEXT_LEN);
        let (msg, rest) = body.split_at_mut(payload.len());
        let (pad, len_field) = rest.split_at_mut(rest.len() - LENGTH_FIELD_LEN);
        pad.fill(0);
        // payload.len() <= 1024, so the cast is exact.
        len_field.copy_from_slice(&(payload.len() as u32).to_be_bytes());
        // One keystream over the 1028 bytes: the payload is encrypted straight from the
        // caller's buffer (no separate copy), then the padding and length field in place.
        let mut keystream = self.0.keystream(pnum);
        keystream
            .apply_keystream_b2b(payload, msg)
            .unwrap_or_else(|_| unreachable!("msg is exactly payload.len() bytes"));
        keystream.apply_keystream(rest);
        tag.copy_from_slice(&self.0.tag(body, pnum).finalize().into_bytes());
    }

    #[cfg(test)]
    pub(crate) fn set_next_packet_number(&mut self, next: Option<u64>) {
        self.0.next = next;
    }
}

/// Verifies and decrypts the packets of one direction (§2 "Receiver").
///
/// After any error the stream is broken (the counter no longer matches the sender's): callers
/// must close the connection and not open further packets. [`crate::proto::stream::Decoder`]
/// enforces that.
#[derive(Clone)]
pub struct Opener(DirectionState);

impl Opener {
    /// An opener for the packets that `peer` sends (E_C/H_C if the peer is the client), starting
    /// at packet number 0.
    pub fn new(keys: &SessionKeys, peer: Role) -> Self {
        Self(Sealer::new(keys, peer).0)
    }

    /// Opens one packet into `out` and returns the payload length L; the payload is
    /// `out[..L]`. Order of checks (§2): MAC (constant time) under the expected packet number,
    /// then decrypt, then L must be in 1..=1024.
    ///
    /// # Errors
    /// [`PacketError::BadMac`] (nothing decrypted, counter unchanged),
    /// [`PacketError::BadLength`], [`PacketError::CounterExhausted`].
    pub fn open(
        &mut self,
        packet: &[u8; PACKET_LEN],
        out: &mut [u8; MAX_PAYLOAD],
    ) -> Result<usize, PacketError> {
        self.open_one(packet, out, MAX_PAYLOAD)
    }

    /// Opens a contiguous run of whole packets and appends their payloads to `out`, contiguous.
    /// Returns how many payload bytes were appended.
    ///
    /// # Errors
    /// [`PacketError::BadBufferLength`] if `packets.len()` is not a multiple of 1060 (nothing is
    /// opened); otherwise the first packet's error, as for [`Opener::open`]. On a packet error
    /// `out` keeps the payloads of the packets before the bad one (they were authentic) and
    /// nothing after it.
    pub fn open_append(&mut self, packets: &[u8], out: &mut Vec<u8>) -> Result<usize, PacketError> {
        if packets.len() % PACKET_LEN != 0 {
            return Err(PacketError::BadBufferLength { len: packets.len() });
        }
        let start = out.len();
        out.resize(start + opened_max_len(packets.len()), 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        let (result, written) = self.open_run(packets, tail);
        out.truncate(start + written);
        result.map(|()| written)
    }

    /// Like [`Opener::open_append`], writing the payloads to the start of `out` instead, which
    /// must hold [`opened_max_len`]`(packets.len())` bytes (so a caller can reuse one buffer
    /// without clearing it). Returns the payload bytes written; `out` beyond them is untouched.
    ///
    /// # Errors
    /// [`PacketError::BadBufferLength`] if `packets.len()` is not a multiple of 1060 or `out` is
    /// shorter than [`opened_max_len`] (nothing is opened); otherwise the first packet's error,
    /// as for [`Opener::open`]. On a packet error `out` starts with the payloads of the packets
    /// before the bad one, but their length is not returned: the stream is broken (type docs).
    pub fn open_into(&mut self, packets: &[u8], out: &mut [u8]) -> Result<usize, PacketError> {
        if packets.len() % PACKET_LEN != 0 {
            return Err(PacketError::BadBufferLength { len: packets.len() });
        }
        let Some(out) = out.get_mut(..opened_max_len(packets.len())) else {
            return Err(PacketError::BadBufferLength { len: out.len() });
        };
        let (result, written) = self.open_run(packets, out);
        result.map(|()| written)
    }

    /// Opens whole packets into `out` (at least [`opened_max_len`] bytes), payloads contiguous.
    /// Returns the first error, if any, and the bytes of authentic payload written before it.
    pub(crate) fn open_run(
        &mut self,
        packets: &[u8],
        out: &mut [u8],
    ) -> (Result<(), PacketError>, usize) {
        let mut end = 0;
        for packet in packets.chunks_exact(PACKET_LEN) {
            // Each packet decrypts just its payload at the current end, so the buffer needs
            // room for at most 1024 bytes per packet.
            let dst = out.get_mut(end..end + MAX_PAYLOAD).unwrap_or_default();
            match self.open_one(packet, dst, 0) {
                Ok(len) => end += len,
                Err(e) => return (Err(e), end),
            }
        }
        (Ok(()), end)
    }

    /// The packet number the next packet must carry, or `None` when exhausted.
    pub fn next_packet_number(&self) -> Option<u64> {
        self.0.next
    }

    /// Opens one packet (`packet.len() == PACKET_LEN`) into `out` (`MAX_PAYLOAD` bytes) and
    /// returns the payload length L. Decrypts the length field first, so on any error `out` is
    /// untouched; then decrypts `max(L, min_decrypt)` bytes of the padded payload into `out`
    /// (`open` asks for all 1024, `open_append` only for the payload, as the rest of its buffer
    /// is overwritten or truncated anyway).
    fn open_one(
        &mut self,
        packet: &[u8],
        out: &mut [u8],
        min_decrypt: usize,
    ) -> Result<usize, PacketError> {
        let pnum = self.0.next.ok_or(PacketError::CounterExhausted)?;
        let (ciphertext, tag) = packet.split_at(CIPHERTEXT_LEN);
        let expected = self.0.tag(ciphertext, pnum).finalize().into_bytes();
        if !tags_equal(&expected, tag) {
            return Err(PacketError::BadMac);
        }
        self.0.take()?;
        let (data, len_ct) = ciphertext.split_at(MAX_PAYLOAD);
        let mut keystream = self.0.keystream(pnum);
        keystream.seek(MAX_PAYLOAD as u64);
        let mut len_field = [0u8; LENGTH_FIELD_LEN];
        keystream
            .apply_keystream_b2b(len_ct, &mut len_field)
            .map_err(|_| PacketError::BadBufferLength { len: len_ct.len() })?;
        let len = u32::from_be_bytes(len_field);
        if len == 0 || len as usize > MAX_PAYLOAD {
            return Err(PacketError::BadLength { len });
        }
        let n = (len as usize).max(min_decrypt);
        let (Some(src), Some(dst)) = (data.get(..n), out.get_mut(..n)) else {
            return Err(PacketError::BadBufferLength { len: out.len() });
        };
        keystream.seek(0u64);
        keystream
            .apply_keystream_b2b(src, dst)
            .map_err(|_| PacketError::BadBufferLength { len: dst.len() })?;
        Ok(len as usize)
    }

    #[cfg(test)]
    pub(crate) fn set_next_packet_number(&mut self, next: Option<u64>) {
        self.0.next = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MAC_LEN;
    use crate::proto::crypt::DhMode;
    use crate::proto::handshake::Handshake;
    use crate::proto::key::{Key, KeySet};

    /// A (client sealer, server opener) pair from an in-memory `-f` handshake.
    fn c2s() -> (Sealer, Opener) {
        let keys = KeySet::single(Key::from_key_file(b"k"));
        let mut c = Handshake::new(Role::Client, keys.clone(), [1; 32], DhMode::NoPfs);
        let mut s = Handshake::new(Role::Server, keys, [2; 32], DhMode::NoPfs);
        for _ in 0..3 {
            let out = c.output().to_vec();
            c.consume_output(out.len());
            assert_eq!(s.read(&out), Ok(out.len()));
            let out = s.output().to_vec();
            s.consume_output(out.len());
            assert_eq!(c.read(&out), Ok(out.len()));
        }
        let (sealer, _) = c.finish().expect("client").into_parts();
        let (_, opener) = s.finish().expect("server").into_parts();
        (sealer, opener)
    }

    #[test]
    fn seal_rejects_empty_and_oversized_payloads_without_using_a_counter() {
        let (mut s, _) = c2s();
        let mut p = [0u8; PACKET_LEN];
        assert_eq!(s.seal(&[], &mut p), Err(PacketError::EmptyPayload));
        assert_eq!(
            s.seal(&[0; 1025], &mut p),
            Err(PacketError::PayloadTooLarge { len: 1025 })
        );
        assert_eq!(s.next_packet_number(), Some(0));
        assert_eq!(s.seal(&[0; 1024], &mut p), Ok(()));
        assert_eq!(s.next_packet_number(), Some(1));
    }

    #[test]
    fn seal_into_checks_the_buffer_and_cuts_like_spiped() {
        let (mut s, mut o) = c2s();
        let mut small = vec![0u8; 2 * PACKET_LEN - 1];
        assert_eq!(
            s.seal_into(&[5; 1025], &mut small),
            Err(PacketError::BadBufferLength { len: small.len() })
        );
        assert_eq!(s.next_packet_number(), Some(0));
        let mut buf = vec![0u8; 3 * PACKET_LEN];
        assert_eq!(s.seal_into(&[5; 1025], &mut buf), Ok(2 * PACKET_LEN));
        assert_eq!(s.seal_into(&[], &mut buf), Ok(0));
        let mut out = Vec::new();
        assert_eq!(o.open_append(&buf[..2 * PACKET_LEN], &mut out), Ok(1025));
        assert_eq!(out, [5; 1025]);
    }

    #[test]
    fn open_writes_the_whole_padded_payload_and_open_append_only_payloads() {
        let (mut s, o) = c2s();
        let mut wire = Vec::new();
        for len in [1, 17, 1023, 1024, 5] {
            s.seal_append(&vec![0xab; len], &mut wire).expect("seal");
        }
        // `open` overwrites all 1024 bytes: the payload, then the (zero) padding.
        let mut single = o.clone();
        for (i, len) in [1, 17, 1023, 1024, 5].into_iter().enumerate() {
            let mut out = [0xff; MAX_PAYLOAD];
            let packet: &[u8; PACKET_LEN] = wire[i * PACKET_LEN..(i + 1) * PACKET_LEN]
                .try_into()
                .expect("one packet");
            assert_eq!(single.open(packet, &mut out), Ok(len));
            assert!(out[..len].iter().all(|&b| b == 0xab));
            assert!(out[len..].iter().all(|&b| b == 0));
        }
        // `open_append` appends exactly the payloads, contiguous.
        let mut batch = o;
        let mut out = vec![7u8; 3];
        assert_eq!(
            batch.open_append(&wire, &mut out),
            Ok(1 + 17 + 1023 + 1024 + 5)
        );
        assert_eq!(out[..3], [7, 7, 7]);
        assert!(out[3..].iter().all(|&b| b == 0xab));
    }

    #[test]
    fn tags_equal_compares_every_byte() {
        let a: Vec<u8> = (0..MAC_LEN as u8).collect();
        assert!(tags_equal(&a, &a));
        for i in 0..MAC_LEN {
            for bit in 0..8 {
                let mut b = a.clone();
                b[i] ^= 1 << bit;
                assert!(!tags_equal(&a, &b), "byte {i} bit {bit}");
            }
        }
        assert!(!tags_equal(&a, &a[..MAC_LEN - 1]));
        assert!(tags_equal(&a[..13], &a[..13]));
        assert!(!tags_equal(&a[..13], &[0; 13]));
    }

    #[test]
    fn open_into_checks_its_buffer_and_leaves_the_rest_untouched() {
        let (mut s, o) = c2s();
        let mut wire = Vec::new();
        s.seal_append(&[3; 1500], &mut wire).expect("seal");
        let mut short = vec![0; opened_max_len(wire.len()) - 1];
        let mut tried = o.clone();
        assert_eq!(
            tried.open_into(&wire, &mut short),
            Err(PacketError::BadBufferLength { len: short.len() })
        );
        assert_eq!(tried.next_packet_number(), Some(0));
        assert_eq!(
            tried.open_into(&wire[1..], &mut [0; 4096]),
            Err(PacketError::BadBufferLength {
                len: wire.len() - 1
            })
        );
        let mut out = vec![9u8; 3000];
        let mut good = o.clone();
        assert_eq!(good.open_into(&wire, &mut out), Ok(1500));
        assert!(out[..1500].iter().all(|&b| b == 3));
        assert!(out[2048..].iter().all(|&b| b == 9));
        // A tampered second packet: the error, and the counter stops there.
        let mut bad = wire.clone();
        bad[PACKET_LEN + 5] ^= 1;
        let mut broken = o;
        assert_eq!(broken.open_into(&bad, &mut out), Err(PacketError::BadMac));
        assert_eq!(broken.next_packet_number(), Some(1));
    }

    #[test]
    fn open_append_rejects_a_partial_packet_run() {
        let (_, mut o) = c2s();
        let mut out = Vec::new();
        assert_eq!(
            o.open_append(&[0; PACKET_LEN + 1], &mut out),
            Err(PacketError::BadBufferLength {
                len: PACKET_LEN + 1
            })
        );
        assert!(out.is_empty());
        assert_eq!(o.next_packet_number(), Some(0));
    }

    #[test]
    fn the_last_packet_number_is_usable_and_the_counter_never_wraps() {
        let (mut s, mut o) = c2s();
        s.set_next_packet_number(Some(u64::MAX));
        o.set_next_packet_number(Some(u64::MAX));
        let mut p = [0u8; PACKET_LEN];
        // A batch larger than what is left fails whole, leaving the counter alone.
        let mut buf = vec![0u8; 2 * PACKET_LEN];
        assert_eq!(
            s.seal_into(&[1; 2000], &mut buf),
            Err(PacketError::CounterExhausted)
        );
        let mut v = Vec::new();
        assert_eq!(
            s.seal_append(&[1; 2000], &mut v),
            Err(PacketError::CounterExhausted)
        );
        assert!(v.is_empty());
        assert_eq!(s.seal(b"last", &mut p), Ok(()));
        assert_eq!(s.next_packet_number(), None);
        assert_eq!(s.seal(b"more", &mut p), Err(PacketError::CounterExhausted));
        let mut out = [0u8; MAX_PAYLOAD];
        // The opener at u64::MAX accepts the last packet, then refuses any more.
        let last = {
            let (mut s2, _) = c2s();
            s2.set_next_packet_number(Some(u64::MAX));
            let mut q = [0u8; PACKET_LEN];
            s2.seal(b"last", &mut q).expect("seal");
            q
        };
        assert_eq!(o.open(&last, &mut out), Ok(4));
        assert_eq!(&out[..4], b"last");
        assert_eq!(o.open(&last, &mut out), Err(PacketError::CounterExhausted));
    }
}
