//! Data packets (§2): one 1060-byte packet sealed or opened, and contiguous runs of packets.
//!
//! ```text
//! plain  = M ‖ 0x00 × (1024 − len(M)) ‖ BE32(len(M))                       (1028 bytes)
//! cipher = AES-256-CTR(E_dir, counter block = BE64(pnum) ‖ BE64(i))(plain)
//! packet = cipher ‖ HMAC-SHA256(H_dir, cipher ‖ BE64(pnum))                (1060 bytes)
//! ```
//! Each direction has its own key pair and its own 64-bit packet number starting at 0, so
//! replayed, reordered, dropped or reflected packets fail the MAC. The AES key schedule and the
//! keyed HMAC state are built once per session. Each packet borrows the key schedule (no copy);
//! no packet re-keys anything. AES-256-CTR runs on the `aes-ctr-x86` crate (a VAES kernel
//! chosen at run time, else the `aes` + `ctr` crates), which takes the counter layout directly.
//!
//! HMAC-SHA256 (RFC 2104) is computed from the two SHA-256 states after the ipad and opad
//! blocks, precomputed per direction ([`MacKey`]). Every packet's MAC is independent and the
//! same length (17 inner blocks, 1 outer block), so runs of packets are MAC'd up to
//! [`MAC_GROUP`] at a time with the multi-buffer kernel of the `sha256-mb` crate (16 streams in
//! AVX-512 lanes, or SHA-NI streams interleaved, chosen at run time; portable fallback); the
//! tags are those of one-by-one HMAC (tests).

use aes_ctr_x86::Aes256CtrKey;
use sha256_mb::Backend;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::proto::crypt::{Role, SecretKey, SessionKeys};
use crate::proto::kernels::Kernels;
use crate::proto::{
    CIPHERTEXT_LEN, LENGTH_FIELD_LEN, MAC_LEN, MAX_PAYLOAD, PACKET_LEN, PacketError,
    SESSION_KEY_LEN,
};

/// Length of the AES-CTR counter block: BE64(pnum) ‖ BE64(block index) (§2).
const COUNTER_BLOCK_LEN: usize = aes_ctr_x86::BLOCK_LEN;
/// The keystream block index of the length field: it starts at byte 1024 = block 64 (§2).
const LENGTH_FIELD_BLOCK: u64 = (MAX_PAYLOAD / COUNTER_BLOCK_LEN) as u64;
const _: () = assert!(MAX_PAYLOAD.is_multiple_of(COUNTER_BLOCK_LEN));

/// Bytes of the packet number appended to the ciphertext under the MAC: BE64(pnum) (§2).
const PNUM_LEN: usize = 8;
/// SHA-256's (and so HMAC-SHA256's) block length B (RFC 2104 §2).
const SHA256_BLOCK: usize = sha256_mb::BLOCK_LEN;
/// RFC 2104's inner and outer pad bytes.
const IPAD: u8 = 0x36;
/// See [`IPAD`].
const OPAD: u8 = 0x5c;
/// The ciphertext bytes that fill whole inner blocks (16 × 64 = 1024); the other 4 go into the
/// last block with BE64(pnum) and the padding.
const INNER_WHOLE: usize = CIPHERTEXT_LEN / SHA256_BLOCK * SHA256_BLOCK;
/// Bytes the inner hash covers: ipad block ‖ ciphertext ‖ BE64(pnum) = 1100.
const INNER_MSG_LEN: usize = SHA256_BLOCK + CIPHERTEXT_LEN + PNUM_LEN;
/// Bytes the outer hash covers: opad block ‖ inner digest = 96.
const OUTER_MSG_LEN: usize = SHA256_BLOCK + MAC_LEN;
/// Offset of SHA-256's BE64 bit-length field in a final block.
const SHA256_LEN_FIELD: usize = SHA256_BLOCK - 8;
/// SHA-256's padding marker byte (FIPS 180-4 §5.1.1).
const SHA256_PAD: u8 = 0x80;
/// Most packets whose MACs are computed together by the multi-buffer kernel: one call of the
/// 16-lane AVX-512 kernel of `sha256-mb` (two of its 8-lane AVX2 kernel). On CPUs where the
/// crate prefers SHA-NI it runs such a group as interleaved SHA-NI pairs, so the group size
/// costs nothing there (`benches/packet_mac.rs`, PERFORMANCE.md). A run's last, smaller group
/// goes through the same call; a single packet is one SHA-NI stream, as before grouping.
pub const MAC_GROUP: usize = sha256_mb::AVX512_LANES;

// The layout the MAC code relies on: the key fits one block, and the tail of the ciphertext,
// the packet number, the marker and the length field fit one last inner block.
const _: () = assert!(SESSION_KEY_LEN <= SHA256_BLOCK);
const _: () = assert!(CIPHERTEXT_LEN - INNER_WHOLE + PNUM_LEN < SHA256_LEN_FIELD);
const _: () = assert!(MAC_LEN < SHA256_LEN_FIELD);

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

/// HMAC-SHA256 under one key, as the SHA-256 states after the ipad block and after the opad
/// block (RFC 2104), so a tag costs 17 + 1 compressions and no re-keying. The states are key
/// material: wiped on drop.
#[derive(Clone)]
struct MacKey {
    inner: [u32; 8],
    outer: [u32; 8],
    /// The multi-buffer kernel, detected once per key.
    backend: Backend,
    /// [`Kernels::Reference`]: the key itself, and every tag through the `hmac` crate instead
    /// of the states above (which are then unused).
    reference: Option<SecretKey>,
}

impl Drop for MacKey {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl MacKey {
    fn new(key: &SecretKey, kernels: Kernels) -> Self {
        match kernels {
            Kernels::Fast => Self::with_backend(key, Backend::detect()),
            Kernels::Reference => Self {
                reference: Some(key.clone()),
                ..Self::with_backend(key, Backend::portable())
            },
        }
    }

    fn with_backend(key: &SecretKey, backend: Backend) -> Self {
        let keyed = |pad: u8| {
            let mut block = Zeroizing::new([pad; SHA256_BLOCK]);
            for (b, k) in block.iter_mut().zip(key.as_bytes()) {
                *b ^= k;
            }
            let mut state = sha256_mb::IV;
            sha256_mb::compress(&mut state, &block[..]);
            state
        };
        Self {
            inner: keyed(IPAD),
            outer: keyed(OPAD),
            backend,
            reference: None,
        }
    }

    /// HMAC-SHA256(key, `ciphertexts[i]` ‖ BE64(`pnums[i]`)) for each i, all through one
    /// [`MacKey::tags_into`] with room for exactly `N`.
    fn tags<const N: usize>(
        &self,
        ciphertexts: [&[u8; CIPHERTEXT_LEN]; N],
        pnums: [u64; N],
    ) -> [[u8; MAC_LEN]; N] {
        let mut tags = [[0u8; MAC_LEN]; N];
        self.tags_into::<N>(&ciphertexts, &pnums, &mut tags);
        tags
    }

    /// HMAC-SHA256(key, `ciphertexts[i]` ‖ BE64(`pnums[i]`)) into `tags[i]` for each i: the
    /// 16 whole inner blocks of every packet, then their last inner blocks, then the outer
    /// blocks, each step one `compress_many` call over all the packets (so one packet costs
    /// one SHA-NI stream and a group one kernel call). `CAP` is the room on the stack, at
    /// least the slices' common length (every caller's fixed layout); entries past the
    /// shortest slice or past `CAP` are ignored.
    fn tags_into<const CAP: usize>(
        &self,
        ciphertexts: &[&[u8; CIPHERTEXT_LEN]],
        pnums: &[u64],
        tags: &mut [[u8; MAC_LEN]],
    ) {
        let n = ciphertexts.len().min(pnums.len()).min(tags.len()).min(CAP);
        if let Some(key) = &self.reference {
            for ((tag, ct), pnum) in tags.iter_mut().zip(ciphertexts).zip(pnums).take(n) {
                *tag = reference_tag(key, ct, *pnum);
            }
            return;
        }
        let mut states = [self.inner; CAP];
        let states = &mut states[..n];
        let mut data: [&[u8]; CAP] = [&[]; CAP];
        for (d, ct) in data.iter_mut().zip(ciphertexts) {
            *d = &ct[..INNER_WHOLE];
        }
        self.backend.compress_many(states, &data[..n]);

        let mut blocks = [[0u8; SHA256_BLOCK]; CAP];
        for ((block, ct), pnum) in blocks.iter_mut().zip(ciphertexts).zip(pnums) {
            let rest = &ct[INNER_WHOLE..];
            let (data, pad) = block.split_at_mut(rest.len());
            data.copy_from_slice(rest);
            pad[..PNUM_LEN].copy_from_slice(&pnum.to_be_bytes());
            pad[PNUM_LEN] = SHA256_PAD;
            block[SHA256_LEN_FIELD..].copy_from_slice(&bit_len(INNER_MSG_LEN));
        }
        for (d, block) in data.iter_mut().zip(&blocks) {
            *d = &block[..];
        }
        self.backend.compress_many(states, &data[..n]);

        let mut outer_blocks = [[0u8; SHA256_BLOCK]; CAP];
        for (block, inner) in outer_blocks.iter_mut().zip(states.iter()) {
            let (digest, pad) = block.split_at_mut(MAC_LEN);
            for (d, w) in digest.chunks_exact_mut(4).zip(inner) {
                d.copy_from_slice(&w.to_be_bytes());
            }
            pad[0] = SHA256_PAD;
            block[SHA256_LEN_FIELD..].copy_from_slice(&bit_len(OUTER_MSG_LEN));
        }
        for (d, block) in data.iter_mut().zip(&outer_blocks) {
            *d = &block[..];
        }
        states.fill(self.outer);
        self.backend.compress_many(states, &data[..n]);
        for (tag, outer) in tags.iter_mut().zip(states.iter()) {
            for (t, w) in tag.chunks_exact_mut(4).zip(outer) {
                t.copy_from_slice(&w.to_be_bytes());
            }
        }
    }
}

/// HMAC-SHA256(`key`, `ciphertext` ‖ BE64(`pnum`)) by the `hmac` and `sha2` crates alone
/// ([`Kernels::Reference`]).
fn reference_tag(key: &SecretKey, ciphertext: &[u8; CIPHERTEXT_LEN], pnum: u64) -> [u8; MAC_LEN] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(ciphertext);
    mac.update(&pnum.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// SHA-256's final length field for a message of `len` bytes: BE64 of its length in bits.
const fn bit_len(len: usize) -> [u8; 8] {
    ((len as u64) * 8).to_be_bytes()
}

/// The ciphertext of a whole packet (`packet.len() >= PACKET_LEN`, as every caller's
/// `chunks_exact(PACKET_LEN)` guarantees).
fn ciphertext_of(packet: &[u8]) -> &[u8; CIPHERTEXT_LEN] {
    match packet.first_chunk() {
        Some(ct) => ct,
        None => unreachable!("a whole packet holds its ciphertext"),
    }
}

/// The keys and packet counter of one direction, shared by [`Sealer`] and [`Opener`].
#[derive(Clone)]
struct DirectionState {
    /// Encryption-only key schedule (CTR mode never runs the AES decryption direction), on
    /// the fastest AES-CTR kernel of this CPU (`aes-ctr-x86`: VAES, else the `aes` crate).
    aes: Aes256CtrKey,
    mac: MacKey,
    /// The packet number of the next packet, or `None` once all 2^64 have been used.
    next: Option<u64>,
}

impl DirectionState {
    fn new(enc: &SecretKey, mac: &SecretKey, kernels: Kernels) -> Self {
        let aes_backend = match kernels {
            Kernels::Fast => aes_ctr_x86::Backend::detect(),
            // The `aes` + `ctr` crates (`ctr::Ctr128BE<Aes256>`), no kernel of ours.
            Kernels::Reference => aes_ctr_x86::Backend::portable(),
        };
        Self {
            aes: Aes256CtrKey::with_backend(enc.as_bytes(), aes_backend),
            mac: MacKey::new(mac, kernels),
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

    /// The MAC of one packet's ciphertext under packet number `pnum`.
    fn tag(&self, ciphertext: &[u8; CIPHERTEXT_LEN], pnum: u64) -> [u8; MAC_LEN] {
        let [tag] = self.mac.tags([ciphertext], [pnum]);
        tag
    }

    /// The MACs of the whole packets of `group` (2..=[`MAC_GROUP`] of them) under the next
    /// packet numbers, in `tags[..count]`; `None` if `group` is not 2..=MAC_GROUP whole packets
    /// or fewer numbers remain (the caller then goes one by one, meeting the exhaustion where
    /// the single-packet path does).
    fn group_tags(&self, group: &[u8]) -> Option<[[u8; MAC_LEN]; MAC_GROUP]> {
        let first = self.next?;
        let count = group.len() / PACKET_LEN;
        first.checked_add(count.checked_sub(1)? as u64)?;
        let mut pnums = [0u64; MAC_GROUP];
        for (i, p) in pnums.iter_mut().enumerate().take(count) {
            // No overflow: first + count - 1 was checked above.
            *p = first + i as u64;
        }
        self.group_tags_at(group, &pnums)
    }

    /// The MACs of the whole packets of `group` (2..=[`MAC_GROUP`] of them) under `pnums`
    /// (one per packet), in `tags[..count]`, or `None` if `group` is not 2..=MAC_GROUP whole
    /// packets. A lone packet (a small message) is left to the caller's one-by-one path, which
    /// needs no group-sized arrays.
    fn group_tags_at(&self, group: &[u8], pnums: &[u64]) -> Option<[[u8; MAC_LEN]; MAC_GROUP]> {
        let count = group.len() / PACKET_LEN;
        if !group.len().is_multiple_of(PACKET_LEN) || !(2..=MAC_GROUP).contains(&count) {
            return None;
        }
        let mut ciphertexts = [ciphertext_of(group); MAC_GROUP];
        for (ct, packet) in ciphertexts.iter_mut().zip(group.chunks_exact(PACKET_LEN)) {
            *ct = ciphertext_of(packet);
        }
        let mut tags = [[0u8; MAC_LEN]; MAC_GROUP];
        let (cts, pnums) = (&ciphertexts[..count], pnums.get(..count)?);
        self.mac
            .tags_into::<MAC_GROUP>(cts, pnums, &mut tags[..count]);
        Some(tags)
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
    /// client, E_S/H_S for the server) and packet number 0, on the process-wide
    /// [`Kernels::current`] implementations.
    pub fn new(keys: &SessionKeys, role: Role) -> Self {
        Self::with_kernels(keys, role, Kernels::current())
    }

    /// Like [`Sealer::new`] on the implementations of `kernels` (the same packets either way).
    pub fn with_kernels(keys: &SessionKeys, role: Role, kernels: Kernels) -> Self {
        Self(match role {
            Role::Client => DirectionState::new(&keys.enc_client, &keys.mac_client, kernels),
            Role::Server => DirectionState::new(&keys.enc_server, &keys.mac_server, kernels),
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
        // MAC_GROUP packets at a time: encrypt each, then MAC them together (a last, smaller
        // group too).
        for (payloads, packets) in plaintext
            .chunks(MAC_GROUP * MAX_PAYLOAD)
            .zip(out.chunks_mut(MAC_GROUP * PACKET_LEN))
        {
            let mut pnums = [0u64; MAC_GROUP];
            for ((payload, packet), pnum) in payloads
                .chunks(MAX_PAYLOAD)
                .zip(packets.chunks_exact_mut(PACKET_LEN))
                .zip(&mut pnums)
            {
                *pnum = self.0.take()?;
                self.encrypt_one(*pnum, payload, packet);
            }
            match self.0.group_tags_at(packets, &pnums) {
                Some(tags) => {
                    for (packet, tag) in packets.chunks_exact_mut(PACKET_LEN).zip(tags) {
                        packet[CIPHERTEXT_LEN..].copy_from_slice(&tag);
                    }
                }
                None => {
                    for (packet, pnum) in packets.chunks_exact_mut(PACKET_LEN).zip(pnums) {
                        let tag = self.0.tag(ciphertext_of(packet), pnum);
                        packet[CIPHERTEXT_LEN..].copy_from_slice(&tag);
                    }
                }
            }
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
        self.encrypt_one(pnum, payload, packet);
        let tag = self.0.tag(ciphertext_of(packet), pnum);
        packet[CIPHERTEXT_LEN..].copy_from_slice(&tag);
    }

    /// Writes the ciphertext of one packet (its first 1028 bytes), not the MAC; arguments as
    /// for [`Sealer::seal_one`].
    fn encrypt_one(&self, pnum: u64, payload: &[u8], packet: &mut [u8]) {
        let (body, _tag) = packet.split_at_mut(CIPHERTEXT_LEN);
        let (msg, rest) = body.split_at_mut(payload.len());
        let (pad, len_field) = rest.split_at_mut(rest.len() - LENGTH_FIELD_LEN);
        pad.fill(0);
        // payload.len() <= 1024, so the cast is exact.
        len_field.copy_from_slice(&(payload.len() as u32).to_be_bytes());
        // The payload's whole keystream blocks are encrypted straight from the caller's buffer
        // (no separate copy); its last partial block (< 16 bytes) is copied, and from there
        // the padding and length field are encrypted in place, continuing the keystream.
        let whole = payload.len() / COUNTER_BLOCK_LEN * COUNTER_BLOCK_LEN;
        let (head, tail) = payload.split_at(whole);
        let (msg_head, msg_tail) = msg.split_at_mut(whole);
        self.0.aes.apply_keystream_b2b(pnum, 0, head, msg_head);
        msg_tail.copy_from_slice(tail);
        let from_block = (whole / COUNTER_BLOCK_LEN) as u64;
        self.0
            .aes
            .apply_keystream(pnum, from_block, &mut body[whole..]);
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

    /// Like [`Opener::new`] on the implementations of `kernels` (the same results either way).
    pub fn with_kernels(keys: &SessionKeys, peer: Role, kernels: Kernels) -> Self {
        Self(Sealer::with_kernels(keys, peer, kernels).0)
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
        if !packets.len().is_multiple_of(PACKET_LEN) {
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
        if !packets.len().is_multiple_of(PACKET_LEN) {
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
        // MAC_GROUP packets' MACs at a time (a pure function of the bytes and the expected
        // packet numbers), then each packet in order exactly as `open_one` would: compare,
        // count, decrypt. So the first bad packet stops the run with the same error, output and
        // counter as the one-by-one path. A group that would outlast the counter goes one by
        // one.
        for group in packets.chunks(MAC_GROUP * PACKET_LEN) {
            let tags = self.0.group_tags(group);
            for (i, packet) in group.chunks_exact(PACKET_LEN).enumerate() {
                // Each packet decrypts just its payload at the current end, so the buffer needs
                // room for at most 1024 bytes per packet.
                let dst = out.get_mut(end..end + MAX_PAYLOAD).unwrap_or_default();
                let opened = match &tags {
                    Some(tags) => self.open_verified(packet, &tags[i], dst, 0),
                    None => self.open_one(packet, dst, 0),
                };
                match opened {
                    Ok(len) => end += len,
                    Err(e) => return (Err(e), end),
                }
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
        let expected = self.0.tag(ciphertext_of(packet), pnum);
        self.open_verified(packet, &expected, out, min_decrypt)
    }

    /// The rest of [`Opener::open_one`] once the MAC `expected` of `packet` under the next
    /// packet number is known: compare it with the received one in constant time, then count
    /// the packet and decrypt.
    fn open_verified(
        &mut self,
        packet: &[u8],
        expected: &[u8; MAC_LEN],
        out: &mut [u8],
        min_decrypt: usize,
    ) -> Result<usize, PacketError> {
        let (ciphertext, tag) = packet.split_at(CIPHERTEXT_LEN);
        if !tags_equal(expected, tag) {
            return Err(PacketError::BadMac);
        }
        let pnum = self.0.take()?;
        let (data, len_ct) = ciphertext.split_at(MAX_PAYLOAD);
        let mut len_field = [0u8; LENGTH_FIELD_LEN];
        let Some(len_ct) = len_ct.get(..LENGTH_FIELD_LEN) else {
            return Err(PacketError::BadBufferLength { len: len_ct.len() });
        };
        self.0
            .aes
            .apply_keystream_b2b(pnum, LENGTH_FIELD_BLOCK, len_ct, &mut len_field);
        let len = u32::from_be_bytes(len_field);
        if len == 0 || len as usize > MAX_PAYLOAD {
            return Err(PacketError::BadLength { len });
        }
        let n = (len as usize).max(min_decrypt);
        let (Some(src), Some(dst)) = (data.get(..n), out.get_mut(..n)) else {
            return Err(PacketError::BadBufferLength { len: out.len() });
        };
        self.0.aes.apply_keystream_b2b(pnum, 0, src, dst);
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
    use crate::proto::handshake::testing::run_pair;
    use crate::proto::key::{Key, KeySet};

    /// A (client sealer, server opener) pair from an in-memory `-f` handshake.
    fn c2s() -> (Sealer, Opener) {
        let keys = KeySet::single(Key::from_key_file(b"k"));
        let mut c = Handshake::new(Role::Client, keys.clone(), [1; 32], DhMode::NoPfs);
        let mut s = Handshake::new(Role::Server, keys, [2; 32], DhMode::NoPfs);
        let (cs, ss) = run_pair(&mut c, &mut s).expect("handshake");
        let (sealer, _) = cs.into_parts();
        let (_, opener) = ss.into_parts();
        (sealer, opener)
    }

    /// `n` packets of distinct payloads (the last one `last` bytes), sealed one by one with
    /// `seal` from packet number `from`: the reference for the grouped paths.
    fn sealed_one_by_one(from: u64, n: usize, last: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut s, _) = c2s();
        s.set_next_packet_number(Some(from));
        let (mut plain, mut wire) = (Vec::new(), Vec::new());
        for i in 0..n {
            let len = if i + 1 == n { last } else { MAX_PAYLOAD };
            let payload: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            let mut p = [0u8; PACKET_LEN];
            s.seal(&payload, &mut p).expect("seal");
            plain.extend_from_slice(&payload);
            wire.extend_from_slice(&p);
        }
        (plain, wire)
    }

    /// Opens `wire` one packet at a time with `open`, as the reference for `open_run`: the
    /// payloads before the first error, the error, and the counter after.
    fn open_one_by_one(o: &mut Opener, wire: &[u8]) -> (Vec<u8>, Result<(), PacketError>) {
        let mut got = Vec::new();
        for chunk in wire.chunks_exact(PACKET_LEN) {
            let mut out = [0u8; MAX_PAYLOAD];
            match o.open(chunk.try_into().expect("one packet"), &mut out) {
                Ok(len) => got.extend_from_slice(&out[..len]),
                Err(e) => return (got, Err(e)),
            }
        }
        (got, Ok(()))
    }

    /// Checks that the grouped `open_append` agrees with `open_one_by_one` on `wire`.
    fn assert_run_matches_one_by_one(o: &Opener, wire: &[u8], what: &str) {
        let mut single = o.clone();
        let (want, want_result) = open_one_by_one(&mut single, wire);
        let mut batch = o.clone();
        let mut got = Vec::new();
        let result = batch.open_append(wire, &mut got);
        assert_eq!(got, want, "{what}: payloads");
        assert_eq!(result.map(|_| ()), want_result, "{what}: result");
        assert_eq!(
            batch.next_packet_number(),
            single.next_packet_number(),
            "{what}: counter"
        );
    }

    #[test]
    fn grouped_macs_equal_the_hmac_crate_on_every_backend() {
        use hmac::{Hmac, Mac};
        let key = SecretKey::from_slice(&[0x5a; SESSION_KEY_LEN]);
        let reference = |ct: &[u8; CIPHERTEXT_LEN], pnum: u64| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes())
                .expect("any key length");
            mac.update(ct);
            mac.update(&pnum.to_be_bytes());
            <[u8; MAC_LEN]>::from(mac.finalize().into_bytes())
        };
        let cts: Vec<[u8; CIPHERTEXT_LEN]> = (0..MAC_GROUP as u8)
            .map(|i| core::array::from_fn(|j| (j as u8).wrapping_mul(i + 3) ^ i))
            .collect();
        let pnums: Vec<u64> = (0..MAC_GROUP as u64)
            .map(|i| match i {
                0 => 0,
                1 => u64::MAX,
                _ => i.wrapping_mul(0x0102_0304_0506_0708),
            })
            .collect();
        let want: Vec<[u8; MAC_LEN]> = (0..MAC_GROUP)
            .map(|i| reference(&cts[i], pnums[i]))
            .collect();
        for backend in Backend::available() {
            let mac = MacKey::with_backend(&key, backend);
            let [a] = mac.tags([&cts[0]], [pnums[0]]);
            assert_eq!(a, want[0], "{backend:?} x1");
            let three = mac.tags([&cts[2], &cts[0], &cts[1]], [pnums[2], pnums[0], pnums[1]]);
            assert_eq!(three, [want[2], want[0], want[1]], "{backend:?} x3");
            // Every group size, starting at every offset (the lanes see different packets).
            for count in 1..=MAC_GROUP {
                for from in 0..=MAC_GROUP - count {
                    let refs: Vec<&[u8; CIPHERTEXT_LEN]> = cts[from..from + count].iter().collect();
                    let mut tags = vec![[0u8; MAC_LEN]; count];
                    mac.tags_into::<MAC_GROUP>(&refs, &pnums[from..from + count], &mut tags);
                    assert_eq!(
                        tags,
                        want[from..from + count],
                        "{backend:?} {count} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn grouped_sealing_writes_what_one_by_one_sealing_writes() {
        for n in 1..=2 * MAC_GROUP + 1 {
            for last in [1, 1000, MAX_PAYLOAD] {
                let (plain, want) = sealed_one_by_one(0, n, last);
                let (mut s, o) = c2s();
                let mut got = vec![0u8; want.len()];
                assert_eq!(s.seal_into(&plain, &mut got), Ok(want.len()));
                assert!(got == want, "seal_into, {n} packets, last {last}");
                assert_eq!(s.next_packet_number(), Some(n as u64));
                assert_run_matches_one_by_one(&o, &want, "round trip");
            }
        }
        // A full group that ends on the very last packet number.
        let from = u64::MAX - (MAC_GROUP as u64 - 1);
        let (plain, want) = sealed_one_by_one(from, MAC_GROUP, 9);
        let (mut s, _) = c2s();
        s.set_next_packet_number(Some(from));
        let mut got = Vec::new();
        assert_eq!(s.seal_append(&plain, &mut got), Ok(()));
        assert!(got == want, "group ending at u64::MAX");
        assert_eq!(s.next_packet_number(), None);
    }

    #[test]
    fn a_bad_packet_anywhere_in_a_group_stops_the_run_like_one_by_one() {
        let n = 2 * MAC_GROUP + 2;
        let (_, wire) = sealed_one_by_one(0, n, 77);
        let (_, o) = c2s();
        assert_run_matches_one_by_one(&o, &wire, "intact");
        for bad in 0..n {
            for offset in [3, CIPHERTEXT_LEN + 1, PACKET_LEN - 1] {
                let mut tampered = wire.clone();
                tampered[bad * PACKET_LEN + offset] ^= 0x40;
                assert_run_matches_one_by_one(&o, &tampered, &format!("bad MAC in {bad}"));
                let mut got = Vec::new();
                let mut batch = o.clone();
                assert_eq!(
                    batch.open_append(&tampered, &mut got),
                    Err(PacketError::BadMac)
                );
                assert_eq!(batch.next_packet_number(), Some(bad as u64));
                assert_eq!(got.len(), bad * MAX_PAYLOAD);
            }
            // A packet with a valid MAC but an out-of-range length field.
            let mut bad_len = wire.clone();
            let (s, _) = c2s();
            let packet = &mut bad_len[bad * PACKET_LEN..(bad + 1) * PACKET_LEN];
            let mut zero = [0u8; LENGTH_FIELD_LEN];
            s.0.aes
                .apply_keystream(bad as u64, LENGTH_FIELD_BLOCK, &mut zero);
            packet[MAX_PAYLOAD..CIPHERTEXT_LEN].copy_from_slice(&zero);
            let tag = s.0.tag(ciphertext_of(packet), bad as u64);
            packet[CIPHERTEXT_LEN..].copy_from_slice(&tag);
            assert_run_matches_one_by_one(&o, &bad_len, &format!("bad length in {bad}"));
            let mut batch = o.clone();
            assert_eq!(
                batch.open_append(&bad_len, &mut Vec::new()),
                Err(PacketError::BadLength { len: 0 })
            );
            assert_eq!(batch.next_packet_number(), Some(bad as u64 + 1));
        }
    }

    #[test]
    fn a_run_that_outlasts_the_counter_stops_where_one_by_one_does() {
        for left in 1..=MAC_GROUP as u64 + 1 {
            let from = u64::MAX - (left - 1);
            let (_, mut wire) = sealed_one_by_one(from, left as usize, 5);
            // One packet more than there are numbers left (a replay of the first).
            wire.extend_from_within(..PACKET_LEN);
            let (_, mut o) = c2s();
            o.set_next_packet_number(Some(from));
            assert_run_matches_one_by_one(&o, &wire, &format!("{left} left"));
            let mut batch = o.clone();
            assert_eq!(
                batch.open_append(&wire, &mut Vec::new()),
                Err(PacketError::CounterExhausted)
            );
        }
    }

    #[test]
    fn reference_kernels_seal_and_open_exactly_what_the_fast_ones_do() {
        let key = |b: u8| SecretKey::from_slice(&[b; SESSION_KEY_LEN]);
        let keys = SessionKeys {
            enc_client: key(1),
            mac_client: key(2),
            enc_server: key(3),
            mac_server: key(4),
        };
        let mut fast = Sealer::with_kernels(&keys, Role::Client, Kernels::Fast);
        let mut reference = Sealer::with_kernels(&keys, Role::Client, Kernels::Reference);
        let mut fast_open = Opener::with_kernels(&keys, Role::Client, Kernels::Fast);
        let mut ref_open = Opener::with_kernels(&keys, Role::Client, Kernels::Reference);
        // Reads of every size class: single packets, partial and full groups, several groups.
        for len in [1, 15, 1024, 1025, 5000, 16 * 1024, 17 * 1024 + 3, 40 * 1024] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            fast.seal_append(&plain, &mut a).expect("fast seal");
            reference
                .seal_append(&plain, &mut b)
                .expect("reference seal");
            assert!(a == b, "{len} bytes: the same packets in both modes");
            let (mut x, mut y) = (Vec::new(), Vec::new());
            assert_eq!(ref_open.open_append(&a, &mut x), Ok(len));
            assert_eq!(fast_open.open_append(&b, &mut y), Ok(len));
            assert!(
                x == plain && y == plain,
                "{len} bytes: each mode opens the other's"
            );
        }
        // A tampered packet fails the same way in both modes.
        let mut wire = Vec::new();
        fast.seal_append(&[9; 3000], &mut wire).expect("seal");
        wire[PACKET_LEN + 7] ^= 1;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        assert_eq!(
            fast_open.open_append(&wire, &mut x),
            Err(PacketError::BadMac)
        );
        assert_eq!(
            ref_open.open_append(&wire, &mut y),
            Err(PacketError::BadMac)
        );
        assert_eq!(x, y);
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
