//! Data packets (§2): one 1060-byte packet sealed or opened, and contiguous runs of packets.
//!
//! ```text
//! plain  = M ‖ 0x00 × (1024 − len(M)) ‖ BE32(len(M))                       (1028 bytes)
//! cipher = AES-256-CTR(E_dir, counter block = BE64(pnum) ‖ BE64(i))(plain)
//! packet = cipher ‖ HMAC-SHA256(H_dir, cipher ‖ BE64(pnum))                (1060 bytes)
//! ```
//! Each direction has its own key pair and its own 64-bit packet number starting at 0, so
//! replayed, reordered, dropped or reflected packets fail the MAC. The AES key schedule and the
//! keyed HMAC state are built once per session; each packet clones them (no re-keying per packet).

use aes::Aes256;
use ctr::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::proto::crypt::{Role, SecretKey, SessionKeys};
use crate::proto::{CIPHERTEXT_LEN, LENGTH_FIELD_LEN, MAX_PAYLOAD, PACKET_LEN, PacketError};

type HmacSha256 = Hmac<Sha256>;
type Aes256Ctr = ctr::Ctr128BE<Aes256>;

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

/// The keys and packet counter of one direction, shared by [`Sealer`] and [`Opener`].
#[derive(Clone)]
struct DirectionState {
    aes: Aes256,
    mac: HmacSha256,
    /// The packet number of the next packet, or `None` once all 2^64 have been used.
    next: Option<u64>,
}

impl DirectionState {
    fn new(enc: &SecretKey, mac: &SecretKey) -> Self {
        Self {
            aes: Aes256::new(enc.as_bytes().into()),
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

    fn keystream(&self, pnum: u64) -> Aes256Ctr {
        let mut iv = [0u8; COUNTER_BLOCK_LEN];
        iv[..8].copy_from_slice(&pnum.to_be_bytes());
        Aes256Ctr::from_core(ctr::CtrCore::inner_iv_init(self.aes.clone(), &iv.into()))
    }

    fn tag(&self, ciphertext: &[u8], pnum: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(ciphertext);
        mac.update(&pnum.to_be_bytes());
        mac
    }
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
        let (data, len_field) = body.split_at_mut(MAX_PAYLOAD);
        let (msg, pad) = data.split_at_mut(payload.len());
        msg.copy_from_slice(payload);
        pad.fill(0);
        // payload.len() <= 1024, so the cast is exact.
        len_field.copy_from_slice(&(payload.len() as u32).to_be_bytes());
        self.0.keystream(pnum).apply_keystream(body);
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
        let mut plain = [0u8; CIPHERTEXT_LEN];
        let len = self.open_one(packet, &mut plain)?;
        out.copy_from_slice(&plain[..MAX_PAYLOAD]);
        Ok(len)
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
        // Each packet decrypts its full 1028 bytes at the current end; the next one overwrites
        // the padding, so the buffer needs room for every payload plus one length field.
        out.resize(
            start + packets.len() / PACKET_LEN * MAX_PAYLOAD + LENGTH_FIELD_LEN,
            0,
        );
        let mut end = start;
        for packet in packets.chunks_exact(PACKET_LEN) {
            let dst = out.get_mut(end..end + CIPHERTEXT_LEN).unwrap_or_default();
            match self.open_one(packet, dst) {
                Ok(len) => end += len,
                Err(e) => {
                    out.truncate(end);
                    return Err(e);
                }
            }
        }
        out.truncate(end);
        Ok(end - start)
    }

    /// The packet number the next packet must carry, or `None` when exhausted.
    pub fn next_packet_number(&self) -> Option<u64> {
        self.0.next
    }

    /// Opens one packet (`packet.len() == PACKET_LEN`) into `plain` (`CIPHERTEXT_LEN` bytes).
    fn open_one(&mut self, packet: &[u8], plain: &mut [u8]) -> Result<usize, PacketError> {
        let pnum = self.0.next.ok_or(PacketError::CounterExhausted)?;
        let (ciphertext, tag) = packet.split_at(CIPHERTEXT_LEN);
        self.0
            .tag(ciphertext, pnum)
            .verify_slice(tag)
            .map_err(|_| PacketError::BadMac)?;
        self.0
            .keystream(pnum)
            .apply_keystream_b2b(ciphertext, plain)
            .map_err(|_| PacketError::BadBufferLength { len: plain.len() })?;
        self.0.take()?;
        let mut len_field = [0u8; LENGTH_FIELD_LEN];
        len_field.copy_from_slice(plain.get(MAX_PAYLOAD..CIPHERTEXT_LEN).unwrap_or_default());
        let len = u32::from_be_bytes(len_field);
        if len == 0 || len as usize > MAX_PAYLOAD {
            return Err(PacketError::BadLength { len });
        }
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
