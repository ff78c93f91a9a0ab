//! AES-256 in CTR mode with spiped's counter layout (§2 of spiperelay's `docs/protocol.md`): the counter
//! block of byte 16·i of packet `pnum` is BE64(pnum) ‖ BE64(i), counting from block 0.
//!
//! Precisely, [`Aes256CtrKey::apply_keystream_b2b`]`(pnum, block_offset, …)` XORs the keystream
//! of `ctr::Ctr128BE<Aes256>` started at the 128-bit big-endian counter
//! BE64(pnum) ‖ BE64(block_offset): block j of the input uses counter (pnum·2^64 +
//! block_offset + j) mod 2^128. A final partial block uses the first bytes of its keystream
//! block.
//!
//! [`Backend::detect`] picks, once, the fastest kernel the CPU has (checked at run time):
//! VAES/AVX2 (16 blocks in flight, two per `ymm` register), else a portable fallback that uses
//! the `aes` and `ctr` crates (themselves AES-NI-accelerated when the CPU has it). A 128-bit
//! AES-NI kernel (8 blocks in flight) runs the VAES kernel's tails and can be selected
//! explicitly ([`Backend::aes_ni`]). All give bit-identical output
//! (see the tests: every backend against `ctr` + `aes`, and the NIST SP 800-38A vectors).
//!
//! This crate holds the `unsafe` of the kernels (x86_64 intrinsics and `asm!`, loads and
//! stores through pointers derived from checked slices); each block names its invariant in a
//! `// SAFETY:` comment. It is reviewed like a vendored primitive.

// One of the kernel crates where `unsafe` may live (the workspace denies it elsewhere).
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod x86;

use aes::Aes256Enc;
use ctr::cipher::{InnerIvInit, KeyInit, StreamCipher};

/// Bytes in one AES block, and so in one CTR keystream block (FIPS-197 §3.1).
pub const BLOCK_LEN: usize = 16;
/// Bytes in an AES-256 key (FIPS-197 §5, Nk = 8).
pub const KEY_LEN: usize = 32;
/// AES-256 round keys: Nr + 1 = 15 (FIPS-197 §5.2).
const ROUND_KEYS: usize = 15;
/// `ymm` registers of data the VAES kernel keeps in flight (2 blocks each).
#[cfg(target_arch = "x86_64")]
const VAES_REGS: usize = 8;

/// Which implementation runs the cipher. Only [`Backend::detect`], [`Backend::aes_ni`] and
/// [`Backend::vaes`] can return a SIMD kernel, and only after checking the CPU, so holding a
/// `Backend` proves its features were detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The `aes` crate (itself AES-NI-accelerated when available) through `ctr::Ctr128BE`.
    Portable,
    /// The 8-wide AES-NI kernel; constructed only after runtime detection.
    #[cfg(target_arch = "x86_64")]
    AesNi,
    /// The VAES/AVX2 kernel; constructed only after runtime detection.
    #[cfg(target_arch = "x86_64")]
    Vaes,
}

impl Backend {
    /// The fastest backend this CPU supports: [`Backend::vaes`] if available, else
    /// [`Backend::portable`]. The 128-bit [`Backend::aes_ni`] kernel measured no faster than
    /// the `aes` crate's own AES-NI path that the portable backend runs (PERFORMANCE.md), so
    /// it is not chosen here; it serves as the VAES kernel's tail and for comparison.
    /// Detection is cached by the standard library; callers keep the returned value (an
    /// [`Aes256CtrKey`] does).
    pub fn detect() -> Self {
        Self::vaes().unwrap_or_else(Self::portable)
    }

    /// The portable fallback on every CPU (for tests and benchmarks of the fallback path).
    pub const fn portable() -> Self {
        Self(Kind::Portable)
    }

    /// The AES-NI kernel, if `aes`, `sse2` and `ssse3` are detected at run time (x86_64 only).
    pub fn aes_ni() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("aes")
                && std::is_x86_feature_detected!("sse2")
                && std::is_x86_feature_detected!("ssse3")
            {
                return Some(Self(Kind::AesNi));
            }
        }
        None
    }

    /// The VAES kernel, if `vaes`, `avx2` and `aes` are detected at run time (x86_64 only).
    pub fn vaes() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("vaes")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("aes")
            {
                return Some(Self(Kind::Vaes));
            }
        }
        None
    }

    /// Every backend this CPU supports, portable first (for tests and benchmarks).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Self::portable()];
        v.extend(Self::aes_ni());
        v.extend(Self::vaes());
        v
    }

    /// A short name: "portable", "aes-ni" or "vaes".
    pub const fn name(self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kind::AesNi => "aes-ni",
            #[cfg(target_arch = "x86_64")]
            Kind::Vaes => "vaes",
        }
    }
}

/// An expanded AES-256 key for CTR keystreams, with its backend chosen at construction. The
/// key schedule is wiped on drop (the `aes` crate's `zeroize` feature for the portable one).
#[derive(Clone)]
pub struct Aes256CtrKey(Schedule);

#[derive(Clone)]
// One schedule per session direction, used on every packet: kept inline (no indirection on
// the hot path) although the `aes` crate's (soft and AES-NI forms, 960 bytes) is the larger.
#[allow(clippy::large_enum_variant)]
enum Schedule {
    Portable(Aes256Enc),
    #[cfg(target_arch = "x86_64")]
    X86 {
        keys: x86::RoundKeys,
        vaes: bool,
    },
}

impl Aes256CtrKey {
    /// Expands `key` for the fastest backend ([`Backend::detect`]).
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self::with_backend(key, Backend::detect())
    }

    /// Expands `key` for `backend` (AES-NI `aeskeygenassist` for the SIMD kernels).
    pub fn with_backend(key: &[u8; KEY_LEN], backend: Backend) -> Self {
        Self(match backend.0 {
            Kind::Portable => Schedule::Portable(Aes256Enc::new(key.into())),
            #[cfg(target_arch = "x86_64")]
            Kind::AesNi | Kind::Vaes => Schedule::X86 {
                // SAFETY: `Kind::AesNi`/`Kind::Vaes` exist only after `Backend::aes_ni` or
                // `Backend::vaes` detected `aes` (and sse2), the features `expand_key` needs.
                keys: unsafe { x86::expand_key(key) },
                vaes: matches!(backend.0, Kind::Vaes),
            },
        })
    }

    /// The backend this key runs on.
    pub fn backend(&self) -> Backend {
        match &self.0 {
            Schedule::Portable(_) => Backend::portable(),
            #[cfg(target_arch = "x86_64")]
            Schedule::X86 { vaes: true, .. } => Backend(Kind::Vaes),
            #[cfg(target_arch = "x86_64")]
            Schedule::X86 { vaes: false, .. } => Backend(Kind::AesNi),
        }
    }

    /// Writes `src` XOR the keystream of packet `pnum`, starting at keystream block
    /// `block_offset`, to `dst` (layout in the crate docs). Any length, including 0 and a
    /// partial final block.
    ///
    /// # Panics
    /// If `src` and `dst` differ in length (the caller's fixed layout, never outside input).
    pub fn apply_keystream_b2b(&self, pnum: u64, block_offset: u64, src: &[u8], dst: &mut [u8]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "aes-ctr-x86: source and destination lengths differ"
        );
        match &self.0 {
            Schedule::Portable(aes) => {
                let mut c = portable_ctr(aes, pnum, block_offset);
                c.apply_keystream_b2b(src, dst)
                    .unwrap_or_else(|_| unreachable!("lengths checked above"));
            }
            #[cfg(target_arch = "x86_64")]
            Schedule::X86 { keys, vaes } => {
                x86_split(pnum, block_offset, src.len(), |hi, lo, from, n| {
                    let (s, d) = (&src[from..from + n], &mut dst[from..from + n]);
                    // SAFETY: `Schedule::X86` exists only for a detected backend: `vaes` set
                    // only by `Backend::vaes` (vaes, avx2, aes detected), otherwise
                    // `Backend::aes_ni` (aes, sse2, ssse3). `s` and `d` are a live shared
                    // and a live exclusive slice of n bytes, so readable/writable and
                    // disjoint.
                    unsafe { run(keys, *vaes, hi, lo, s.as_ptr(), d.as_mut_ptr(), n) }
                });
            }
        }
    }

    /// Like [`Aes256CtrKey::apply_keystream_b2b`], in place: `buf` XOR the keystream.
    pub fn apply_keystream(&self, pnum: u64, block_offset: u64, buf: &mut [u8]) {
        match &self.0 {
            Schedule::Portable(aes) => portable_ctr(aes, pnum, block_offset).apply_keystream(buf),
            #[cfg(target_arch = "x86_64")]
            Schedule::X86 { keys, vaes } => {
                x86_split(pnum, block_offset, buf.len(), |hi, lo, from, n| {
                    let b = &mut buf[from..from + n];
                    let p = b.as_mut_ptr();
                    // SAFETY: detected features as in `apply_keystream_b2b`. `p` comes from a
                    // live exclusive slice of n bytes, readable and writable; source and
                    // destination are the same pointer, which the kernels allow (each load
                    // precedes the store to the same bytes).
                    unsafe { run(keys, *vaes, hi, lo, p.cast_const(), p, n) }
                });
            }
        }
    }
}

/// `ctr::Ctr128BE` over `aes` at counter BE64(pnum) ‖ BE64(block_offset).
fn portable_ctr(aes: &Aes256Enc, pnum: u64, block_offset: u64) -> ctr::Ctr128BE<&Aes256Enc> {
    let mut iv = [0u8; BLOCK_LEN];
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    iv[8..].copy_from_slice(&block_offset.to_be_bytes());
    ctr::Ctr128BE::from_core(ctr::CtrCore::inner_iv_init(aes, &iv.into()))
}

/// Cuts `len` bytes at every wrap of the low 64 counter bits, so each kernel call sees
/// BE64(hi) ‖ BE64(lo + j) without a carry: calls `f(hi, lo, from, n)` for consecutive
/// ranges `from..from + n`. (Only reachable with block offsets near 2^64; packets use 0..=64.)
#[cfg(target_arch = "x86_64")]
fn x86_split(pnum: u64, block_offset: u64, len: usize, mut f: impl FnMut(u64, u64, usize, usize)) {
    let (mut hi, mut lo, mut from) = (pnum, block_offset, 0usize);
    while from < len {
        // Blocks left before lo wraps: 2^64 - lo (at least 1).
        let room = u128::from(u64::MAX - lo) + 1;
        let n = (len - from).min(usize::try_from(room * BLOCK_LEN as u128).unwrap_or(usize::MAX));
        f(hi, lo, from, n);
        from += n;
        hi = hi.wrapping_add(1);
        lo = 0;
    }
}

/// Dispatches to the x86 kernel.
///
/// # Safety
/// As for the kernels: if `vaes`, the CPU has vaes, avx2 and aes; otherwise aes, sse2 and
/// ssse3. `src`/`dst` valid for `len` bytes, identical or disjoint.
#[cfg(target_arch = "x86_64")]
unsafe fn run(
    keys: &x86::RoundKeys,
    vaes: bool,
    hi: u64,
    lo: u64,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) {
    if vaes {
        // SAFETY: the caller's contract for the vaes case is exactly `xor_vaes`'s.
        unsafe { x86::xor_vaes::<VAES_REGS>(keys, hi, lo, src, dst, len) }
    } else {
        // SAFETY: the caller's contract for the AES-NI case is exactly `xor_aesni`'s.
        unsafe { x86::xor_aesni(keys, hi, lo, src, dst, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctr::cipher::KeyIvInit;

    /// splitmix64: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        fn key(&mut self) -> [u8; KEY_LEN] {
            core::array::from_fn(|_| self.next() as u8)
        }
    }

    fn backends() -> Vec<Backend> {
        let v = Backend::available();
        if v.len() < 3 {
            eprintln!("note: this CPU lacks AES-NI or VAES; tested only {v:?}");
        }
        v
    }

    /// The reference: the `ctr` crate's 128-bit big-endian counter over the `aes` crate, keyed
    /// afresh, at counter BE64(pnum) ‖ BE64(block_offset).
    fn reference(key: &[u8; KEY_LEN], pnum: u64, block_offset: u64, data: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&pnum.to_be_bytes());
        iv[8..].copy_from_slice(&block_offset.to_be_bytes());
        let mut c = ctr::Ctr128BE::<aes::Aes256>::new(key.into(), &iv.into());
        let mut out = data.to_vec();
        c.apply_keystream(&mut out);
        out
    }

    fn check(backend: Backend, key: &[u8; KEY_LEN], pnum: u64, off: u64, data: &[u8]) {
        let want = reference(key, pnum, off, data);
        let k = Aes256CtrKey::with_backend(key, backend);
        assert_eq!(k.backend(), backend);
        let what = format!(
            "{} pnum={pnum:#x} off={off:#x} len={}",
            backend.name(),
            data.len()
        );
        let mut out = vec![0xa5; data.len()];
        k.apply_keystream_b2b(pnum, off, data, &mut out);
        assert!(out == want, "{what}: out of place");
        let mut buf = data.to_vec();
        k.apply_keystream(pnum, off, &mut buf);
        assert!(buf == want, "{what}: in place");
    }

    #[test]
    fn every_backend_matches_ctr_and_aes_for_every_length_up_to_1100() {
        let mut rng = Rng(1);
        let pnums = [0, 1, u64::MAX, 0x0102_0304_0506_0708];
        let offsets = [0, 1, 7, 64, 65, u64::MAX - 20];
        for backend in backends() {
            for len in 0..=1100usize {
                let key = rng.key();
                let data = rng.bytes(len);
                let pnum = pnums[len % pnums.len()];
                let off = offsets[len % offsets.len()];
                check(backend, &key, pnum, off, &data);
                check(backend, &key, rng.next(), rng.next() >> (len % 64), &data);
            }
        }
    }

    #[test]
    fn counter_carries_into_and_wraps_past_the_packet_number() {
        // Block offsets just below 2^64 carry into the packet number as `Ctr128BE` does;
        // pnum = u64::MAX there wraps the whole counter to 0.
        let mut rng = Rng(2);
        for backend in backends() {
            for pnum in [0, 5, u64::MAX] {
                for back in 1..=20u64 {
                    let len = rng.next() as usize % 600;
                    let (key, data) = (rng.key(), rng.bytes(len));
                    check(backend, &key, pnum, u64::MAX - back + 1, &data);
                }
            }
        }
    }

    #[test]
    fn packet_shapes_match_and_backends_agree_with_each_other() {
        // The two calls packet.rs makes: 1028 bytes from block 0, and 4 bytes at block 64.
        let mut rng = Rng(3);
        let key = rng.key();
        let data = rng.bytes(1028);
        let keys: Vec<Aes256CtrKey> = backends()
            .into_iter()
            .map(|b| Aes256CtrKey::with_backend(&key, b))
            .collect();
        for pnum in [0, 1, 2, 1000, u64::MAX - 1, u64::MAX] {
            let want = reference(&key, pnum, 0, &data);
            for k in &keys {
                let mut out = vec![0; data.len()];
                k.apply_keystream_b2b(pnum, 0, &data, &mut out);
                assert_eq!(out, want, "{} whole packet", k.backend().name());
                let mut tail = [0u8; 4];
                k.apply_keystream_b2b(pnum, 64, &data[1024..], &mut tail);
                assert_eq!(
                    tail[..],
                    want[1024..],
                    "{} length field",
                    k.backend().name()
                );
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn nist_sp800_38a_ctr_aes256_vectors() {
        // SP 800-38A F.5.5/F.5.6: initial counter f0f1…ff = BE64(pnum) ‖ BE64(block offset).
        let key: [u8; KEY_LEN] =
            hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
                .try_into()
                .expect("32 bytes");
        let plain = hex(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ));
        let cipher = hex(concat!(
            "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5",
            "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
        ));
        let (pnum, off) = (0xf0f1_f2f3_f4f5_f6f7, 0xf8f9_fafb_fcfd_feff);
        for backend in backends() {
            let k = Aes256CtrKey::with_backend(&key, backend);
            let mut out = vec![0; plain.len()];
            k.apply_keystream_b2b(pnum, off, &plain, &mut out);
            assert_eq!(out, cipher, "{} encrypt", backend.name());
            k.apply_keystream(pnum, off, &mut out);
            assert_eq!(out, plain, "{} decrypt", backend.name());
            // Starting mid-stream: the third block alone, at block offset + 2.
            let mut third = plain[32..48].to_vec();
            k.apply_keystream(pnum, off + 2, &mut third);
            assert_eq!(third[..], cipher[32..48], "{} offset", backend.name());
        }
    }

    #[test]
    fn fips197_aes256_block_is_the_keystream_of_its_counter() {
        // FIPS-197 C.3: AES-256(000102…1f, 00112233…ff) = 8ea2b7ca…; in CTR that is the
        // keystream of counter block 0011…77 ‖ 8899…ff, i.e. the encryption of zeros.
        let key: [u8; KEY_LEN] = core::array::from_fn(|i| i as u8);
        for backend in backends() {
            let k = Aes256CtrKey::with_backend(&key, backend);
            let mut block = [0u8; BLOCK_LEN];
            k.apply_keystream(0x0011_2233_4455_6677, 0x8899_aabb_ccdd_eeff, &mut block);
            assert_eq!(
                block[..],
                hex("8ea2b7ca516745bfeafc49904b496089")[..],
                "{}",
                backend.name()
            );
        }
    }

    #[test]
    fn detect_picks_vaes_when_available_else_portable() {
        let want = Backend::vaes().unwrap_or(Backend::portable());
        assert_eq!(Backend::detect(), want);
        assert_eq!(
            Aes256CtrKey::new(&[0; KEY_LEN]).backend(),
            Backend::detect()
        );
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn unequal_lengths_are_refused() {
        let k = Aes256CtrKey::new(&[1; KEY_LEN]);
        k.apply_keystream_b2b(0, 0, &[0; 16], &mut [0; 15]);
    }
}
