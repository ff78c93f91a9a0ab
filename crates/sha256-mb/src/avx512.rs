//! The AVX-512 kernel: 16 independent SHA-256 streams, one per 32-bit lane of a `zmm` register.
//!
//! This is the multi-buffer technique: word `j` of the working state (a..h) and word `t` of the
//! message schedule are each one register holding that word of all 16 streams, so every step of
//! FIPS 180-4 §6.2.2 is one vector instruction for the 16 streams. The rotations are `vprord`,
//! the three-input functions (Ch, Maj and the XORs of Σ0, Σ1, σ0, σ1) are each one `vpternlogd`.
//! The 16 message blocks of a step are loaded one stream per register and transposed (four
//! stages of `vpermt2d`), then byte-swapped to big-endian words (`vpshufb`).

use core::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_permutex2var_epi32, _mm512_ror_epi32,
    _mm512_set1_epi32, _mm512_set4_epi32, _mm512_setr_epi32, _mm512_shuffle_epi8,
    _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32,
};

use crate::BLOCK_LEN;
use crate::x86::K;

/// Streams one call compresses: the 32-bit lanes of a 512-bit register.
pub(crate) const LANES: usize = 16;

/// `vpternlogd` truth tables (inputs a, b, c as bits 2, 1, 0 of the table index).
const XOR3: i32 = 0x96;
/// Ch(a, b, c) = (a ∧ b) ⊕ (¬a ∧ c): "a ? b : c".
const CH: i32 = 0xCA;
/// Maj(a, b, c): the majority of the three bits.
const MAJ: i32 = 0xE8;

/// Σ0 (FIPS 180-4 §4.1.2, 4.4).
#[inline]
#[target_feature(enable = "avx512f")]
fn big_sigma0(x: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<XOR3>(
        _mm512_ror_epi32::<2>(x),
        _mm512_ror_epi32::<13>(x),
        _mm512_ror_epi32::<22>(x),
    )
}

/// Σ1 (FIPS 180-4 §4.1.2, 4.5).
#[inline]
#[target_feature(enable = "avx512f")]
fn big_sigma1(x: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<XOR3>(
        _mm512_ror_epi32::<6>(x),
        _mm512_ror_epi32::<11>(x),
        _mm512_ror_epi32::<25>(x),
    )
}

/// σ0 (FIPS 180-4 §4.1.2, 4.6).
#[inline]
#[target_feature(enable = "avx512f")]
fn small_sigma0(x: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<XOR3>(
        _mm512_ror_epi32::<7>(x),
        _mm512_ror_epi32::<18>(x),
        _mm512_srli_epi32::<3>(x),
    )
}

/// σ1 (FIPS 180-4 §4.1.2, 4.7).
#[inline]
#[target_feature(enable = "avx512f")]
fn small_sigma1(x: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<XOR3>(
        _mm512_ror_epi32::<17>(x),
        _mm512_ror_epi32::<19>(x),
        _mm512_srli_epi32::<10>(x),
    )
}

/// The two `vpermt2d` index vectors of one transpose stage that swaps bit `bit` of the row
/// index with bit `bit` of the column index, for a row pair (r, r + bit): the low row takes
/// its own columns with that bit clear and the high row's columns with it set (shifted down),
/// the high row the rest. Indices 16..31 select from the second source (the high row).
#[inline]
#[target_feature(enable = "avx512f")]
fn stage_indices(bit: usize) -> (__m512i, __m512i) {
    let lo: [i32; LANES] = core::array::from_fn(|c| {
        if c & bit == 0 {
            c as i32
        } else {
            (LANES + c - bit) as i32
        }
    });
    let hi: [i32; LANES] = core::array::from_fn(|c| {
        if c & bit == 0 {
            (c + bit) as i32
        } else {
            (LANES + c) as i32
        }
    });
    let v = |a: [i32; LANES]| {
        _mm512_setr_epi32(
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13],
            a[14], a[15],
        )
    };
    (v(lo), v(hi))
}

/// Transposes the 16×16 matrix of 32-bit words held one row per register: afterwards
/// `rows[t]` holds word `t` of every former row. Four stages, each swapping one bit of the
/// row index with the same bit of the column index.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(rows: &mut [__m512i; LANES]) {
    for bit in [8, 4, 2, 1] {
        let (lo_idx, hi_idx) = stage_indices(bit);
        for r in 0..LANES {
            if r & bit == 0 {
                let (lo, hi) = (rows[r], rows[r + bit]);
                rows[r] = _mm512_permutex2var_epi32(lo, lo_idx, hi);
                rows[r + bit] = _mm512_permutex2var_epi32(lo, hi_idx, hi);
            }
        }
    }
}

/// Compresses `nblocks` blocks of each stream: `blocks[s]` (at least `nblocks * 64` bytes)
/// into `states[s]`.
///
/// # Safety
/// The CPU must support `avx512f` and `avx512bw` (the caller checked them with
/// `is_x86_feature_detected!`). Every `blocks[s]` holds at least `nblocks * 64` bytes (the
/// slicing below would panic, not read out of bounds, if one did not).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn compress_x16(
    states: &mut [[u32; 8]; LANES],
    blocks: [&[u8]; LANES],
    nblocks: usize,
) {
    // Byte order: the message words are big-endian (FIPS 180-4 §3.1); reverse each 4 bytes.
    let bswap = _mm512_set4_epi32(0x0C0D_0E0F, 0x0809_0A0B, 0x0405_0607, 0x0001_0203);

    // The state transposed: word j of every stream in one register.
    let mut st: [__m512i; 8] = core::array::from_fn(|j| {
        let col: [i32; LANES] = core::array::from_fn(|s| states[s][j] as i32);
        // SAFETY: `col` is 16 live, initialised i32s (64 bytes); unaligned loads are allowed.
        unsafe { _mm512_loadu_si512(col.as_ptr().cast::<__m512i>()) }
    });

    for b in 0..nblocks {
        let mut w: [__m512i; LANES] = core::array::from_fn(|s| {
            let block = &blocks[s][b * BLOCK_LEN..(b + 1) * BLOCK_LEN];
            // SAFETY: `block` is a 64-byte subslice of a live `&[u8]`, so the 64 bytes at its
            // pointer are readable; `_mm512_loadu_si512` has no alignment requirement.
            unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) }
        });
        transpose(&mut w);
        for x in &mut w {
            *x = _mm512_shuffle_epi8(*x, bswap);
        }

        let [mut a, mut bb, mut c, mut d, mut e, mut f, mut g, mut h] = st;
        // One round (FIPS 180-4 §6.2.2 step 3) with the message word `$wt` and constant K[$t];
        // the caller renames the working variables instead of moving them.
        macro_rules! round {
            ($t:expr, $wt:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident,
             $g:ident, $h:ident) => {{
                let kw = _mm512_add_epi32($wt, _mm512_set1_epi32(K[$t] as i32));
                let t1 = _mm512_add_epi32(
                    _mm512_add_epi32($h, big_sigma1($e)),
                    _mm512_add_epi32(_mm512_ternarylogic_epi32::<CH>($e, $f, $g), kw),
                );
                let t2 =
                    _mm512_add_epi32(big_sigma0($a), _mm512_ternarylogic_epi32::<MAJ>($a, $b, $c));
                $d = _mm512_add_epi32($d, t1);
                $h = _mm512_add_epi32(t1, t2);
            }};
        }
        // W[t] for t ≥ 16 (FIPS 180-4 §6.2.2 step 1), in place of W[t − 16] in the ring.
        macro_rules! schedule {
            ($i:expr) => {{
                w[$i] = _mm512_add_epi32(
                    _mm512_add_epi32(w[$i], small_sigma0(w[($i + 1) % 16])),
                    _mm512_add_epi32(w[($i + 9) % 16], small_sigma1(w[($i + 14) % 16])),
                );
            }};
        }
        // Sixteen rounds from `$base` (a multiple of 16) on the ring w[0..16]; with `$sched`
        // each W is first replaced by its successor sixteen rounds on.
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
            *s = _mm512_add_epi32(*s, v);
        }
    }

    for (j, v) in st.into_iter().enumerate() {
        let mut col = [0u32; LANES];
        // SAFETY: `col` is 16 writable u32s (64 bytes); unaligned stores are allowed.
        unsafe { _mm512_storeu_si512(col.as_mut_ptr().cast::<__m512i>(), v) };
        for (state, word) in states.iter_mut().zip(col) {
            state[j] = word;
        }
    }
}
