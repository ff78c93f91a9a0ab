//! The x86_64 kernels: the AES-256 key schedule with `aeskeygenassist`, an AES-NI CTR kernel
//! with 8 blocks in flight, and a VAES/AVX2 kernel with `2 × W` blocks in flight (two blocks
//! per `ymm` register).
//!
//! Every kernel XORs the keystream straight into the output: the counter blocks are built in
//! registers (BE64(hi) ‖ BE64(lo + j), byte-swapped from two 64-bit lanes), encrypted, and
//! XORed with the loaded input before one store. The VAES instructions are written with
//! `asm!` because their intrinsics need Rust 1.89 and the workspace's floor is 1.87; the
//! registers and the instruction are the same.

use core::arch::asm;
use core::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi64, _mm_aesenc_si128, _mm_aesenclast_si128,
    _mm_aeskeygenassist_si128, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi64x, _mm_setzero_si128,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128,
    _mm256_add_epi64, _mm256_broadcastsi128_si256, _mm256_loadu_si256, _mm256_set_epi64x,
    _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_storeu_si256, _mm256_xor_si256,
};

use zeroize::Zeroize;

use crate::{BLOCK_LEN, KEY_LEN, ROUND_KEYS};

/// Blocks the AES-NI kernel keeps in flight (8 data registers + a round key fit the 16 xmm
/// registers).
const AESNI_WIDE: usize = 8;

/// The 15 AES-256 round keys (FIPS-197 §5.2), in the byte order `aesenc` takes. Key material:
/// wiped on drop.
#[derive(Clone)]
pub(crate) struct RoundKeys(pub(crate) [[u8; BLOCK_LEN]; ROUND_KEYS]);

impl Drop for RoundKeys {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Loads 16 bytes into a register (SSE2, part of the x86_64 baseline).
#[inline(always)]
fn load(bytes: &[u8; BLOCK_LEN]) -> __m128i {
    // SAFETY: `bytes` is a live 16-byte array, so its 16 bytes are readable;
    // `_mm_loadu_si128` has no alignment requirement and SSE2 is baseline on x86_64.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) }
}

/// Stores a register as 16 bytes (SSE2, part of the x86_64 baseline).
#[inline(always)]
fn store(v: __m128i) -> [u8; BLOCK_LEN] {
    let mut out = [0u8; BLOCK_LEN];
    // SAFETY: `out` is a live, writable 16-byte array; `_mm_storeu_si128` has no alignment
    // requirement and SSE2 is baseline on x86_64.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast::<__m128i>(), v) };
    out
}

/// The byte shuffle that turns two little-endian 64-bit lanes [hi, lo] into the counter block
/// BE64(hi) ‖ BE64(lo).
#[inline]
#[target_feature(enable = "sse2")]
fn bswap_mask() -> __m128i {
    _mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)
}

/// One step of the AES-256 key expansion for the even round keys: `prev` ‖ the word the
/// `aeskeygenassist` result `assist` broadcasts (lane 3: RotWord/SubWord/Rcon).
#[inline]
#[target_feature(enable = "aes,sse2")]
fn expand_even(prev: __m128i, assist: __m128i) -> __m128i {
    let t = _mm_shuffle_epi32(assist, 0xff);
    let mut k = prev;
    let mut s = _mm_slli_si128(prev, 4);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128(s, 4);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128(s, 4);
    k = _mm_xor_si128(k, s);
    _mm_xor_si128(k, t)
}

/// The odd round keys: like [`expand_even`] with SubWord of the last word of `even` (no
/// rotation, no Rcon: `aeskeygenassist(even, 0)` lane 2).
#[inline]
#[target_feature(enable = "aes,sse2")]
fn expand_odd(prev: __m128i, even: __m128i) -> __m128i {
    let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(even, 0), 0xaa);
    let mut k = prev;
    let mut s = _mm_slli_si128(prev, 4);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128(s, 4);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128(s, 4);
    k = _mm_xor_si128(k, s);
    _mm_xor_si128(k, t)
}

/// Expands a 256-bit key into the 15 round keys with `aeskeygenassist` (FIPS-197 §5.2,
/// Nk = 8; Intel's AES-NI white paper, figure 26).
///
/// The caller must have detected `aes` (target-feature function: calling it is `unsafe`
/// from code without those features).
#[target_feature(enable = "aes,sse2")]
pub(crate) fn expand_key(key: &[u8; KEY_LEN]) -> RoundKeys {
    let (lo, hi) = key.split_at(BLOCK_LEN);
    let mut k0 = [0u8; BLOCK_LEN];
    let mut k1 = [0u8; BLOCK_LEN];
    k0.copy_from_slice(lo);
    k1.copy_from_slice(hi);
    let mut a = load(&k0);
    let mut b = load(&k1);
    k0.zeroize();
    k1.zeroize();
    let mut rk = [[0u8; BLOCK_LEN]; ROUND_KEYS];
    rk[0] = store(a);
    rk[1] = store(b);
    macro_rules! pair {
        ($i:expr, $rcon:expr) => {{
            a = expand_even(a, _mm_aeskeygenassist_si128(b, $rcon));
            rk[$i] = store(a);
            b = expand_odd(b, a);
            rk[$i + 1] = store(b);
        }};
    }
    pair!(2, 0x01);
    pair!(4, 0x02);
    pair!(6, 0x04);
    pair!(8, 0x08);
    pair!(10, 0x10);
    pair!(12, 0x20);
    a = expand_even(a, _mm_aeskeygenassist_si128(b, 0x40));
    rk[14] = store(a);
    let keys = RoundKeys(rk);
    rk.zeroize();
    // The registers a and b die here; the compiler may leave copies in dead xmm registers,
    // as every AES-NI implementation does.
    let _ = (a, b);
    keys
}

/// The AES-256 rounds of one block (whitening already applied).
#[inline]
#[target_feature(enable = "aes")]
fn rounds_128(k: &[__m128i; ROUND_KEYS], mut x: __m128i) -> __m128i {
    for rk in &k[1..ROUND_KEYS - 1] {
        x = _mm_aesenc_si128(x, *rk);
    }
    _mm_aesenclast_si128(x, k[ROUND_KEYS - 1])
}

/// XORs `len` bytes of AES-256-CTR keystream into `dst`, reading `src`: counter block j
/// (j = 0, 1, …) is BE64(`hi`) ‖ BE64(`lo` + j). A final partial block uses the first bytes
/// of its keystream block.
///
/// # Safety
/// - The CPU supports `aes`, `sse2` and `ssse3` (detected with `is_x86_feature_detected!`).
/// - `src` is readable and `dst` writable for `len` bytes, and they are either the same
///   pointer (in place) or do not overlap.
///
/// Correctness (not safety) also needs `lo + ceil(len / 16) - 1` not to overflow; the caller
/// splits a call at the 64-bit carry.
#[target_feature(enable = "aes,sse2,ssse3")]
pub(crate) unsafe fn xor_aesni(
    rk: &RoundKeys,
    hi: u64,
    lo: u64,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) {
    let k: [__m128i; ROUND_KEYS] = core::array::from_fn(|i| load(&rk.0[i]));
    let bswap = bswap_mask();
    let one = _mm_set_epi64x(1, 0);
    let mut ctr = _mm_set_epi64x(lo as i64, hi as i64);
    let mut off = 0usize;
    while len - off >= AESNI_WIDE * BLOCK_LEN {
        let mut b = [_mm_setzero_si128(); AESNI_WIDE];
        for x in &mut b {
            *x = _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap), k[0]);
            ctr = _mm_add_epi64(ctr, one);
        }
        for rk in &k[1..ROUND_KEYS - 1] {
            for x in &mut b {
                *x = _mm_aesenc_si128(*x, *rk);
            }
        }
        for (j, x) in b.iter().enumerate() {
            let p = off + j * BLOCK_LEN;
            let ks = _mm_aesenclast_si128(*x, k[ROUND_KEYS - 1]);
            // SAFETY: p + 16 <= off + 128 <= len, so the 16 bytes at src + p are readable and
            // at dst + p writable (caller contract); the unaligned load happens before the
            // store, so in-place use (src == dst) reads the input first.
            unsafe {
                let s = _mm_loadu_si128(src.add(p).cast::<__m128i>());
                _mm_storeu_si128(dst.add(p).cast::<__m128i>(), _mm_xor_si128(s, ks));
            }
        }
        off += AESNI_WIDE * BLOCK_LEN;
    }
    while off < len {
        let ks = rounds_128(&k, _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap), k[0]));
        ctr = _mm_add_epi64(ctr, one);
        let n = (len - off).min(BLOCK_LEN);
        if n == BLOCK_LEN {
            // SAFETY: off + 16 <= len: readable/writable per the caller contract; load first.
            unsafe {
                let s = _mm_loadu_si128(src.add(off).cast::<__m128i>());
                _mm_storeu_si128(dst.add(off).cast::<__m128i>(), _mm_xor_si128(s, ks));
            }
        } else {
            let mut bytes = store(ks);
            for (i, kb) in bytes.iter().take(n).enumerate() {
                // SAFETY: off + i < off + n = len: readable/writable per the caller contract;
                // each byte is read before it is written.
                unsafe { *dst.add(off + i) = *src.add(off + i) ^ kb };
            }
            bytes.zeroize();
        }
        off += n;
    }
}

/// `vaesenc` on two blocks at once.
///
/// # Safety
/// The CPU supports `vaes` and `avx` (detected by the caller).
#[inline]
#[target_feature(enable = "avx")]
unsafe fn vaesenc(x: __m256i, k: __m256i) -> __m256i {
    let out: __m256i;
    // SAFETY: the instruction exists on this CPU (caller contract: vaes and avx detected); it
    // reads two ymm registers and writes one, touching no memory, stack or flags.
    unsafe {
        asm!("vaesenc {o}, {x}, {k}", o = lateout(ymm_reg) out, x = in(ymm_reg) x,
             k = in(ymm_reg) k, options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `vaesenclast` on two blocks at once.
///
/// # Safety
/// As for [`vaesenc`].
#[inline]
#[target_feature(enable = "avx")]
unsafe fn vaesenclast(x: __m256i, k: __m256i) -> __m256i {
    let out: __m256i;
    // SAFETY: as in `vaesenc`: the instruction exists (vaes, avx detected), registers only.
    unsafe {
        asm!("vaesenclast {o}, {x}, {k}", o = lateout(ymm_reg) out, x = in(ymm_reg) x,
             k = in(ymm_reg) k, options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// Like [`xor_aesni`] with `2 × W` blocks in flight in `W` ymm registers; the last fewer than
/// `2 × W` blocks go through [`xor_aesni`].
///
/// # Safety
/// - The CPU supports `vaes`, `avx2` and `aes` (detected with `is_x86_feature_detected!`;
///   `avx2` implies the `sse2`/`ssse3` that `xor_aesni` needs).
/// - Pointers and `len` as for [`xor_aesni`] (same or non-overlapping).
#[target_feature(enable = "avx2,aes")]
pub(crate) unsafe fn xor_vaes<const W: usize>(
    rk: &RoundKeys,
    hi: u64,
    lo: u64,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) {
    let group = 2 * W * BLOCK_LEN;
    let k: [__m256i; ROUND_KEYS] =
        core::array::from_fn(|i| _mm256_broadcastsi128_si256(load(&rk.0[i])));
    let bswap = _mm256_broadcastsi128_si256(bswap_mask());
    let step = _mm256_set_epi64x(2, 0, 2, 0);
    // Lanes: [hi, lo] for the even block, [hi, lo + 1] for the odd one.
    let mut ctr = _mm256_add_epi64(
        _mm256_broadcastsi128_si256(_mm_set_epi64x(lo as i64, hi as i64)),
        _mm256_set_epi64x(1, 0, 0, 0),
    );
    let mut off = 0usize;
    while len - off >= group {
        let mut b = [_mm256_setzero_si256(); W];
        for x in &mut b {
            *x = _mm256_xor_si256(_mm256_shuffle_epi8(ctr, bswap), k[0]);
            ctr = _mm256_add_epi64(ctr, step);
        }
        for rk in &k[1..ROUND_KEYS - 1] {
            for x in &mut b {
                // SAFETY: vaes and avx (implied by avx2) were detected (function contract).
                *x = unsafe { vaesenc(*x, *rk) };
            }
        }
        for (j, x) in b.iter().enumerate() {
            let p = off + j * 2 * BLOCK_LEN;
            // SAFETY: vaes and avx were detected (function contract).
            let ks = unsafe { vaesenclast(*x, k[ROUND_KEYS - 1]) };
            // SAFETY: p + 32 <= off + group <= len, so the 32 bytes at src + p are readable and
            // at dst + p writable (caller contract); the load precedes the store (in place).
            unsafe {
                let s = _mm256_loadu_si256(src.add(p).cast::<__m256i>());
                _mm256_storeu_si256(dst.add(p).cast::<__m256i>(), _mm256_xor_si256(s, ks));
            }
        }
        off += group;
    }
    if off < len {
        // off is a whole number of blocks below len; the counter has not wrapped (caller).
        let done = (off / BLOCK_LEN) as u64;
        // SAFETY: aes, sse2, ssse3 are implied by the detected avx2 + aes; src + off and
        // dst + off are valid for the remaining len - off bytes and keep the same/disjoint
        // relation.
        unsafe { xor_aesni(rk, hi, lo + done, src.add(off), dst.add(off), len - off) };
    }
}
