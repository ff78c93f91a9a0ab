//! The AVX2 kernel: 8 independent SHA-256 streams, one per 32-bit lane of a `ymm` register.
//!
//! The same multi-buffer layout as the AVX-512 kernel (`avx512.rs`) for CPUs with AVX2 but
//! neither SHA-NI nor AVX-512: AVX2 has no rotate and no three-input logic, so each rotation is
//! two shifts and an OR, and Ch, Maj and the three-way XORs are two or three logic operations.
//! The message words are gathered lane by lane with scalar big-endian loads.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_andnot_si256, _mm256_loadu_si256,
    _mm256_or_si256, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_slli_epi32, _mm256_srli_epi32,
    _mm256_storeu_si256, _mm256_xor_si256,
};

use crate::BLOCK_LEN;
use crate::x86::K;

/// Streams one call compresses: the 32-bit lanes of a 256-bit register.
pub(crate) const LANES: usize = 8;

/// Rotates every lane of `$x` right by `$n` bits (`$m` = 32 − `$n`).
macro_rules! ror {
    ($x:expr, $n:literal, $m:literal) => {
        _mm256_or_si256(_mm256_srli_epi32::<$n>($x), _mm256_slli_epi32::<$m>($x))
    };
}

/// `a ⊕ b ⊕ c`.
#[inline]
#[target_feature(enable = "avx2")]
fn xor3(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_xor_si256(a, b), c)
}

/// Σ0 (FIPS 180-4 §4.1.2, 4.4).
#[inline]
#[target_feature(enable = "avx2")]
fn big_sigma0(x: __m256i) -> __m256i {
    xor3(ror!(x, 2, 30), ror!(x, 13, 19), ror!(x, 22, 10))
}

/// Σ1 (FIPS 180-4 §4.1.2, 4.5).
#[inline]
#[target_feature(enable = "avx2")]
fn big_sigma1(x: __m256i) -> __m256i {
    xor3(ror!(x, 6, 26), ror!(x, 11, 21), ror!(x, 25, 7))
}

/// σ0 (FIPS 180-4 §4.1.2, 4.6).
#[inline]
#[target_feature(enable = "avx2")]
fn small_sigma0(x: __m256i) -> __m256i {
    xor3(ror!(x, 7, 25), ror!(x, 18, 14), _mm256_srli_epi32::<3>(x))
}

/// σ1 (FIPS 180-4 §4.1.2, 4.7).
#[inline]
#[target_feature(enable = "avx2")]
fn small_sigma1(x: __m256i) -> __m256i {
    xor3(ror!(x, 17, 15), ror!(x, 19, 13), _mm256_srli_epi32::<10>(x))
}

/// Ch(e, f, g) = (e ∧ f) ⊕ (¬e ∧ g) (FIPS 180-4 §4.1.2, 4.2).
#[inline]
#[target_feature(enable = "avx2")]
fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g))
}

/// Maj(a, b, c) = (a ∧ b) ∨ (c ∧ (a ∨ b)), equal to FIPS 180-4's 4.3.
#[inline]
#[target_feature(enable = "avx2")]
fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
    _mm256_or_si256(
        _mm256_and_si256(a, b),
        _mm256_and_si256(c, _mm256_or_si256(a, b)),
    )
}

/// Compresses `nblocks` blocks of each stream: `blocks[s]` (at least `nblocks * 64` bytes)
/// into `states[s]`.
///
/// # Safety
/// The CPU must support `avx2` (the caller checked it with `is_x86_feature_detected!`). Every
/// `blocks[s]` holds at least `nblocks * 64` bytes (the slicing below would panic, not read
/// out of bounds, if one did not).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn compress_x8(
    states: &mut [[u32; 8]; LANES],
    blocks: [&[u8]; LANES],
    nblocks: usize,
) {
    let mut st: [__m256i; 8] = core::array::from_fn(|j| {
        let col: [u32; LANES] = core::array::from_fn(|s| states[s][j]);
        // SAFETY: `col` is 8 live, initialised u32s (32 bytes); unaligned loads are allowed.
        unsafe { _mm256_loadu_si256(col.as_ptr().cast::<__m256i>()) }
    });

    for b in 0..nblocks {
        let data: [&[u8]; LANES] =
            core::array::from_fn(|s| &blocks[s][b * BLOCK_LEN..(b + 1) * BLOCK_LEN]);
        // W[t] of every stream: the big-endian word t of each block (FIPS 180-4 §3.1).
        let word = |s: usize, t: usize| -> i32 {
            let mut w = [0u8; 4];
            w.copy_from_slice(&data[s][4 * t..4 * t + 4]);
            i32::from_be_bytes(w)
        };
        let mut w: [__m256i; 16] = core::array::from_fn(|t| {
            _mm256_setr_epi32(
                word(0, t),
                word(1, t),
                word(2, t),
                word(3, t),
                word(4, t),
                word(5, t),
                word(6, t),
                word(7, t),
            )
        });

        let [mut a, mut bb, mut c, mut d, mut e, mut f, mut g, mut h] = st;
        // One round (FIPS 180-4 §6.2.2 step 3), as in the AVX-512 kernel.
        macro_rules! round {
            ($t:expr, $wt:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident,
             $g:ident, $h:ident) => {{
                let kw = _mm256_add_epi32($wt, _mm256_set1_epi32(K[$t] as i32));
                let t1 = _mm256_add_epi32(
                    _mm256_add_epi32($h, big_sigma1($e)),
                    _mm256_add_epi32(ch($e, $f, $g), kw),
                );
                let t2 = _mm256_add_epi32(big_sigma0($a), maj($a, $b, $c));
                $d = _mm256_add_epi32($d, t1);
                $h = _mm256_add_epi32(t1, t2);
            }};
        }
        // W[t] for t ≥ 16 (FIPS 180-4 §6.2.2 step 1), in place of W[t − 16] in the ring.
        macro_rules! schedule {
            ($i:expr) => {{
                w[$i] = _mm256_add_epi32(
                    _mm256_add_epi32(w[$i], small_sigma0(w[($i + 1) % 16])),
                    _mm256_add_epi32(w[($i + 9) % 16], small_sigma1(w[($i + 14) % 16])),
                );
            }};
        }
        macro_rules! rounds16 {
            ($base:expr, $sched:expr) => {{
                macro_rules! r8 {
                    ($o:expr) => {{
                        if $sched {
                            schedule!($o);
                        }
                        round!($base + $o, w[$o], a, bb, c, d, e, f, g, h);
                        if $sched {
                            schedule!($o + 1);
                        }
                        round!($base + $o + 1, w[$o + 1], h, a, bb, c, d, e, f, g);
                        if $sched {
                            schedule!($o + 2);
                        }
                        round!($base + $o + 2, w[$o + 2], g, h, a, bb, c, d, e, f);
                        if $sched {
                            schedule!($o + 3);
                        }
                        round!($base + $o + 3, w[$o + 3], f, g, h, a, bb, c, d, e);
                        if $sched {
                            schedule!($o + 4);
                        }
                        round!($base + $o + 4, w[$o + 4], e, f, g, h, a, bb, c, d);
                        if $sched {
                            schedule!($o + 5);
                        }
                        round!($base + $o + 5, w[$o + 5], d, e, f, g, h, a, bb, c);
                        if $sched {
                            schedule!($o + 6);
                        }
                        round!($base + $o + 6, w[$o + 6], c, d, e, f, g, h, a, bb);
                        if $sched {
                            schedule!($o + 7);
                        }
                        round!($base + $o + 7, w[$o + 7], bb, c, d, e, f, g, h, a);
                    }};
                }
                r8!(0);
                r8!(8);
            }};
        }
        rounds16!(0, false);
        rounds16!(16, true);
        rounds16!(32, true);
        rounds16!(48, true);

        for (s, v) in st.iter_mut().zip([a, bb, c, d, e, f, g, h]) {
            *s = _mm256_add_epi32(*s, v);
        }
    }

    for (j, v) in st.into_iter().enumerate() {
        let mut col = [0u32; LANES];
        // SAFETY: `col` is 8 writable u32s (32 bytes); unaligned stores are allowed.
        unsafe { _mm256_storeu_si256(col.as_mut_ptr().cast::<__m256i>(), v) };
        for (state, word) in states.iter_mut().zip(col) {
            state[j] = word;
        }
    }
}
