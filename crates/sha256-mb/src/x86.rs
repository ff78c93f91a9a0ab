//! The SHA-NI kernel: `N` independent SHA-256 streams interleaved in one function.
//!
//! Per stream this is the standard SHA-NI sequence (state kept as ABEF/CDGH, four rounds per
//! pair of `sha256rnds2`, the message schedule by `sha256msg1`/`sha256msg2`); every step is
//! written as a loop over the `N` streams, so the independent dependency chains sit next to each
//! other and the core overlaps their latencies.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_loadu_si128,
    _mm_set_epi32, _mm_set_epi64x, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32,
};

use crate::BLOCK_LEN;

/// The SHA-256 round constants K0..K63 (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// Bytes in one 128-bit message load.
const LANE_BYTES: usize = 16;

/// Compresses `blocks[s]` into `states[s]` for each of the `N` streams.
///
/// # Safety
/// The CPU must support `sha`, `sse2`, `ssse3` and `sse4.1` (the caller checked them with
/// `is_x86_feature_detected!`). Every `blocks[s]` must have the same length, a multiple of 64
/// (checked by the caller; slicing below would panic, not read out of bounds, if it were not).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) unsafe fn compress_interleaved<const N: usize>(
    states: [&mut [u32; 8]; N],
    blocks: [&[u8]; N],
) {
    // Byte order: the message words are big-endian (FIPS 180-4 §3.1).
    let bswap = _mm_set_epi64x(
        0x0C0D_0E0F_0809_0A0Bu64 as i64,
        0x0405_0607_0001_0203u64 as i64,
    );
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    for s in 0..N {
        let st = &*states[s];
        let dcba = _mm_set_epi32(st[3] as i32, st[2] as i32, st[1] as i32, st[0] as i32);
        let hgfe = _mm_set_epi32(st[7] as i32, st[6] as i32, st[5] as i32, st[4] as i32);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        abef[s] = _mm_alignr_epi8(cdab, efgh, 8);
        cdgh[s] = _mm_blend_epi16(efgh, cdab, 0xF0);
    }

    // Four rounds 4i..4i+3 of every stream, with the message words `$w` (W[4i..4i+4]).
    macro_rules! rounds4 {
        ($i:expr, $w:expr) => {{
            let k = _mm_set_epi32(
                K[4 * $i + 3] as i32,
                K[4 * $i + 2] as i32,
                K[4 * $i + 1] as i32,
                K[4 * $i] as i32,
            );
            let mut t = [_mm_setzero_si128(); N];
            for s in 0..N {
                t[s] = _mm_add_epi32($w[s], k);
                cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], t[s]);
            }
            for s in 0..N {
                let hi = _mm_shuffle_epi32(t[s], 0x0E);
                abef[s] = _mm_sha256rnds2_epu32(abef[s], cdgh[s], hi);
            }
        }};
    }
    // W[4i..4i+4] from the previous sixteen words, held in the ring w[a], w[b], w[c], w[d]
    // (oldest first); the result replaces the oldest, w[a]. Then the four rounds.
    macro_rules! schedule_rounds4 {
        ($i:expr, $w:ident, $a:expr, $b:expr, $c:expr, $d:expr) => {{
            for s in 0..N {
                let t1 = _mm_sha256msg1_epu32($w[$a][s], $w[$b][s]);
                let t2 = _mm_alignr_epi8($w[$d][s], $w[$c][s], 4);
                $w[$a][s] = _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), $w[$d][s]);
            }
            rounds4!($i, $w[$a]);
        }};
    }

    let nblocks = blocks[0].len() / BLOCK_LEN;
    for b in 0..nblocks {
        let (abef_save, cdgh_save) = (abef, cdgh);
        let mut w = [[_mm_setzero_si128(); N]; 4];
        for s in 0..N {
            let block = &blocks[s][b * BLOCK_LEN..(b + 1) * BLOCK_LEN];
            for (q, lane) in block.chunks_exact(LANE_BYTES).enumerate() {
                // SAFETY: `lane` is a 16-byte subslice of a live `&[u8]`, so the 16 bytes at
                // its pointer are readable; `_mm_loadu_si128` has no alignment requirement.
                let v = unsafe { _mm_loadu_si128(lane.as_ptr().cast::<__m128i>()) };
                w[q][s] = _mm_shuffle_epi8(v, bswap);
            }
        }
        rounds4!(0, w[0]);
        rounds4!(1, w[1]);
        rounds4!(2, w[2]);
        rounds4!(3, w[3]);
        schedule_rounds4!(4, w, 0, 1, 2, 3);
        schedule_rounds4!(5, w, 1, 2, 3, 0);
        schedule_rounds4!(6, w, 2, 3, 0, 1);
        schedule_rounds4!(7, w, 3, 0, 1, 2);
        schedule_rounds4!(8, w, 0, 1, 2, 3);
        schedule_rounds4!(9, w, 1, 2, 3, 0);
        schedule_rounds4!(10, w, 2, 3, 0, 1);
        schedule_rounds4!(11, w, 3, 0, 1, 2);
        schedule_rounds4!(12, w, 0, 1, 2, 3);
        schedule_rounds4!(13, w, 1, 2, 3, 0);
        schedule_rounds4!(14, w, 2, 3, 0, 1);
        schedule_rounds4!(15, w, 3, 0, 1, 2);
        for s in 0..N {
            abef[s] = _mm_add_epi32(abef[s], abef_save[s]);
            cdgh[s] = _mm_add_epi32(cdgh[s], cdgh_save[s]);
        }
    }

    for (s, st) in states.into_iter().enumerate() {
        let feba = _mm_shuffle_epi32(abef[s], 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh[s], 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        *st = [
            _mm_extract_epi32(dcba, 0) as u32,
            _mm_extract_epi32(dcba, 1) as u32,
            _mm_extract_epi32(dcba, 2) as u32,
            _mm_extract_epi32(dcba, 3) as u32,
            _mm_extract_epi32(hgef, 0) as u32,
            _mm_extract_epi32(hgef, 1) as u32,
            _mm_extract_epi32(hgef, 2) as u32,
            _mm_extract_epi32(hgef, 3) as u32,
        ];
    }
}
