//! RFC 3526 group 14 Diffie-Hellman (2048-bit MODP, generator 2), as spiped uses it (§1.5).
//!
//! Private values are 32 random bytes `priv` handed in by the caller; the exponent is
//! `x = 2^258 + priv` (259 bits, 256 of them random), exactly as spiped's `crypto_dh.c` builds
//! it, so the known-answer vectors of §6 reproduce. Every exponentiation here runs in constant
//! time with respect to the exponent.

use crate::proto::DH_PUBLIC_LEN;
use std::sync::OnceLock;
use zeroize::Zeroize;

// pub(crate) for the `dh_arith` fuzz harness (src/proto/fuzzing.rs), which reuses its limb
// conversions and reduction.
pub(crate) mod bignum;

use bignum::{Arith, LIMBS, Limbs, ONE, TWO, ct_lookup, from_be_bytes, to_be_bytes};

/// Length of the random private value handed in by the caller (§1.5: 32 random bytes).
pub const DH_PRIVATE_LEN: usize = 32;

/// The group-14 prime p, 256 bytes big-endian (RFC 3526 §3; spiped `crypto_dh_group14.c`).
pub const GROUP14_P: [u8; DH_PUBLIC_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x37, 0xED, 0x6B, 0x0B, 0xFF, 0x5C, 0xB6, 0xF4, 0x06, 0xB7, 0xED,
    0xEE, 0x38, 0x6B, 0xFB, 0x5A, 0x89, 0x9F, 0xA5, 0xAE, 0x9F, 0x24, 0x11, 0x7C, 0x4B, 0x1F, 0xE6,
    0x49, 0x28, 0x66, 0x51, 0xEC, 0xE4, 0x5B, 0x3D, 0xC2, 0x00, 0x7C, 0xB8, 0xA1, 0x63, 0xBF, 0x05,
    0x98, 0xDA, 0x48, 0x36, 0x1C, 0x55, 0xD3, 0x9A, 0x69, 0x16, 0x3F, 0xA8, 0xFD, 0x24, 0xCF, 0x5F,
    0x83, 0x65, 0x5D, 0x23, 0xDC, 0xA3, 0xAD, 0x96, 0x1C, 0x62, 0xF3, 0x56, 0x20, 0x85, 0x52, 0xBB,
    0x9E, 0xD5, 0x29, 0x07, 0x70, 0x96, 0x96, 0x6D, 0x67, 0x0C, 0x35, 0x4E, 0x4A, 0xBC, 0x98, 0x04,
    0xF1, 0x74, 0x6C, 0x08, 0xCA, 0x18, 0x21, 0x7C, 0x32, 0x90, 0x5E, 0x46, 0x2E, 0x36, 0xCE, 0x3B,
    0xE3, 0x9E, 0x77, 0x2C, 0x18, 0x0E, 0x86, 0x03, 0x9B, 0x27, 0x83, 0xA2, 0xEC, 0x07, 0xA2, 0x8F,
    0xB5, 0xC5, 0x5D, 0xF0, 0x6F, 0x4C, 0x52, 0xC9, 0xDE, 0x2B, 0xCB, 0xF6, 0x95, 0x58, 0x17, 0x18,
    0x39, 0x95, 0x49, 0x7C, 0xEA, 0x95, 0x6A, 0xE5, 0x15, 0xD2, 0x26, 0x18, 0x98, 0xFA, 0x05, 0x10,
    0x15, 0x72, 0x8E, 0x5A, 0x8A, 0xAC, 0xAA, 0x68, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// Returns whether `y < p`, comparing the 256-byte big-endian values (§1.5 receiver check 2).
///
/// Runs in time independent of `y`'s value. Accepts every `y` in `0..p`, including 0 and
/// `p - 1`, as spiped does.
pub fn is_below_p(y: &[u8; DH_PUBLIC_LEN]) -> bool {
    // Big-endian compare from the least significant byte upwards, keeping a borrow: y < p iff
    // y - p borrows out of the most significant byte.
    let mut borrow: u16 = 0;
    for (yb, pb) in y.iter().rev().zip(GROUP14_P.iter().rev()) {
        let diff = u16::from(*yb)
            .wrapping_sub(u16::from(*pb))
            .wrapping_sub(borrow);
        borrow = (diff >> 8) & 1;
    }
    borrow == 1
}

/// Bit position of the fixed top bit of the exponent: `x = 2^258 + priv` (§1.5).
const EXP_TOP_BIT: usize = 258;

/// Number of exponent bits, `259` (§1.5).
const EXP_BITS: usize = EXP_TOP_BIT + 1;

/// Number of 64-bit limbs holding the 256-bit `priv`.
const PRIV_LIMBS: usize = DH_PRIVATE_LEN / 8;

/// Number of 64-bit limbs holding the 259-bit exponent `x`.
const EXP_LIMBS: usize = EXP_BITS.div_ceil(64);

/// Window width of the fixed-base table used by [`public_from_private`]: 43 table
/// multiplications and no squarings. 6 measured fastest among 4..=8 (`benches/dh.rs`), and
/// again among 5..=7 on the BMI2/ADX kernel (`benches/dh_ab.rs`): smaller windows need more
/// multiplications, larger ones spend more time scanning rows.
const KEYGEN_WINDOW: usize = 6;

/// Table size (`2^w`, w = 4) of the fixed window used by [`shared_secret`]: 254 squarings and
/// 64 multiplications. w = 4 and 5 measured equal, 3 and 6 slower (`benches/dh.rs`), on both
/// the portable arithmetic and the BMI2/ADX kernel (`benches/dh_ab.rs`).
const SHARED_TABLE: usize = 16;

/// `priv` as little-endian limbs (the 32 bytes are big-endian, §1.5).
fn priv_limbs(private: &[u8; DH_PRIVATE_LEN]) -> [u64; PRIV_LIMBS] {
    let mut out = [0u64; PRIV_LIMBS];
    for (limb, chunk) in out.iter_mut().zip(private.rchunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(bytes);
        bytes.zeroize();
    }
    out
}

/// The exponent `x = 2^258 + priv` as little-endian limbs (§1.5).
fn exponent(private: &[u8; DH_PRIVATE_LEN]) -> [u64; EXP_LIMBS] {
    let mut p = priv_limbs(private);
    let mut out = [0u64; EXP_LIMBS];
    for (o, l) in out.iter_mut().zip(p.iter()) {
        *o = *l;
    }
    if let Some(top) = out.get_mut(EXP_TOP_BIT / 64) {
        *top |= 1 << (EXP_TOP_BIT % 64);
    }
    p.zeroize();
    out
}

/// Bits `pos .. pos + width` of the little-endian number `limbs` (zero beyond its end), for a
/// public `pos` and `width <= 64`. Does not branch on the bit values.
#[inline(always)]
fn window_digit(limbs: &[u64], pos: usize, width: usize) -> u64 {
    let limb = pos / 64;
    let lo = limbs.get(limb).copied().unwrap_or(0);
    let hi = limbs.get(limb + 1).copied().unwrap_or(0);
    let both = u128::from(lo) | (u128::from(hi) << 64);
    let mask = (1u128 << width) - 1;
    ((both >> (pos % 64)) & mask) as u64
}

/// `base^x` in Montgomery form by a left-to-right fixed window of `log2(N)` bits, with a
/// constant-time table lookup and a multiplication for every window (also for zero digits).
///
/// `base` is in Montgomery form and `< p`; `x` is the 259-bit exponent. Constant time in `x`.
fn pow_window<const N: usize>(arith: Arith, base: &Limbs, x: &[u64; EXP_LIMBS]) -> Limbs {
    const { assert!(N.is_power_of_two() && N >= 2 && N <= 64) };
    let width = N.trailing_zeros() as usize;
    let windows = EXP_BITS.div_ceil(width);

    let mut table = [[0u64; LIMBS]; N];
    for d in 0..N {
        let entry = match d {
            0 => ONE,
            1 => *base,
            _ if d % 2 == 0 => arith.sqr(&table[d / 2]),
            _ => arith.mul(&table[d - 1], base),
        };
        table[d] = entry;
    }

    let mut digit = window_digit(x, (windows - 1) * width, width);
    let mut acc = ct_lookup(&table, digit);
    for w in (0..windows - 1).rev() {
        for _ in 0..width {
            acc = arith.sqr(&acc);
        }
        digit = window_digit(x, w * width, width);
        let mut factor = ct_lookup(&table, digit);
        acc = arith.mul(&acc, &factor);
        factor.zeroize();
    }
    digit.zeroize();
    table.zeroize();
    acc
}

/// A precomputed fixed-base table for `2^x mod p` with `W`-bit windows over the 256 random bits
/// of `x = 2^258 + priv` (§1.5).
///
/// Row `i` holds `2^(d * 2^(W*i))` for every digit `d < 2^W`, in Montgomery form, so
/// `2^priv = prod_i row_i[digit_i]` costs one multiplication per window and no squarings. Row 0
/// additionally absorbs the constant factor `2^(2^258)` and one factor `R^-1`, so the product
/// comes out as a plain (non-Montgomery) number. Entries are picked by scanning the whole row.
/// The table holds only public values.
#[derive(Clone)]
pub struct FixedBaseTable<const W: usize> {
    /// `windows * 2^W` entries, row-major.
    entries: Vec<Limbs>,
}

impl<const W: usize> FixedBaseTable<W> {
    /// Entries per row.
    const ROW: usize = 1 << W;

    /// Number of windows covering the 256 bits of `priv`.
    const WINDOWS: usize = (8 * DH_PRIVATE_LEN).div_ceil(W);

    /// Builds the table: about `2^W * ceil(256 / W)` Montgomery multiplications, and
    /// `256 * 2^W * ceil(256 / W)` bytes of memory. `W` must be in `1..=8` (checked at compile
    /// time).
    pub fn new() -> Self {
        const { assert!(W >= 1 && W <= 8) };
        let arith = Arith::detect();
        let mut entries = Vec::with_capacity(Self::WINDOWS * Self::ROW);
        // g = 2^(2^(W*i)) in Montgomery form, for the current row i.
        let mut g = TWO;
        for _ in 0..Self::WINDOWS {
            let start = entries.len();
            entries.push(ONE);
            for d in 1..Self::ROW {
                let prev = entries.get(start + d - 1).copied().unwrap_or(ONE);
                entries.push(arith.mul(&prev, &g));
            }
            for _ in 0..W {
                g = arith.sqr(&g);
            }
        }
        // c = 2^(2^258) as a plain number: folding it into row 0 with one Montgomery
        // multiplication turns row 0 into plain (R^-1-scaled) values.
        let mut c = TWO;
        for _ in 0..EXP_TOP_BIT {
            c = arith.sqr(&c);
        }
        let c = arith.out_of_mont(&c);
        for e in entries.iter_mut().take(Self::ROW) {
            *e = arith.mul(e, &c);
        }
        FixedBaseTable { entries }
    }

    /// Returns `2^x mod p` with `x = 2^258 + private` (§1.5) as 256 big-endian bytes, in
    /// constant time with respect to `private`.
    pub fn public(&self, private: &[u8; DH_PRIVATE_LEN]) -> [u8; DH_PUBLIC_LEN] {
        self.public_with(Arith::detect(), private)
    }

    /// [`FixedBaseTable::public`] on the given arithmetic (for tests and benchmarks).
    pub fn public_with(&self, arith: Arith, private: &[u8; DH_PRIVATE_LEN]) -> [u8; DH_PUBLIC_LEN] {
        let mut bits = priv_limbs(private);
        let mut acc = [0u64; LIMBS];
        for (i, row) in self.entries.chunks_exact(Self::ROW).enumerate() {
            let mut digit = window_digit(&bits, i * W, W);
            let mut factor = ct_lookup(row, digit);
            acc = if i == 0 {
                factor
            } else {
                arith.mul(&acc, &factor)
            };
            factor.zeroize();
            digit.zeroize();
        }
        bits.zeroize();
        let out = to_be_bytes(&acc);
        acc.zeroize();
        out
    }
}

impl<const W: usize> Default for FixedBaseTable<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// The fixed-base table for [`public_from_private`], built on first use.
/// The name of the Montgomery arithmetic `kernels` runs on this CPU ("adx" or "portable").
pub(crate) fn arith_name(kernels: crate::proto::kernels::Kernels) -> &'static str {
    Arith::for_kernels(kernels).name()
}

fn keygen_table() -> &'static FixedBaseTable<KEYGEN_WINDOW> {
    static TABLE: OnceLock<FixedBaseTable<KEYGEN_WINDOW>> = OnceLock::new();
    TABLE.get_or_init(FixedBaseTable::new)
}

/// `peer^x mod p` with `x = 2^258 + private`, by a fixed window with a table of `N` entries.
fn shared_with_window<const N: usize>(
    arith: Arith,
    peer: &[u8; DH_PUBLIC_LEN],
    private: &[u8; DH_PRIVATE_LEN],
) -> [u8; DH_PUBLIC_LEN] {
    let mut x = exponent(private);
    let base = arith.to_mont(&from_be_bytes(peer));
    let mut acc = pow_window::<N>(arith, &base, &x);
    x.zeroize();
    let mut plain = arith.out_of_mont(&acc);
    acc.zeroize();
    let out = to_be_bytes(&plain);
    plain.zeroize();
    out
}

/// Computes the public value `y = 2^x mod p` with `x = 2^258 + private` (§1.5).
///
/// `private` is 32 bytes from a cryptographically secure RNG, interpreted big-endian. Returns `y`
/// as 256 bytes big-endian, left-padded with zeros. Never fails; constant time in `private`.
/// The first call builds a 688 KiB table of public values (a few milliseconds).
pub fn public_from_private(private: &[u8; DH_PRIVATE_LEN]) -> [u8; DH_PUBLIC_LEN] {
    keygen_table().public(private)
}

/// Computes the shared value `y_SC = peer^x mod p` with `x = 2^258 + private` (§1.5).
///
/// `peer` must already have passed the receiver checks of §1.5 (MAC, then `peer < p`); the
/// handshake module guarantees this by type. Returns 256 bytes big-endian. Never fails; for
/// `peer = 0` the result is 0 and for `peer = 1` it is 1, as in spiped. Constant time in
/// `private`.
pub fn shared_secret(
    peer: &[u8; DH_PUBLIC_LEN],
    private: &[u8; DH_PRIVATE_LEN],
) -> [u8; DH_PUBLIC_LEN] {
    shared_with_window::<SHARED_TABLE>(Arith::detect(), peer, private)
}

/// Alternative exponentiation strategies, exported only so `benches/dh.rs` and tests can compare
/// them with the ones [`public_from_private`] and [`shared_secret`] use. Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use super::FixedBaseTable;
    /// The Montgomery arithmetic (portable or BMI2/ADX kernel): `Arith::mul`/`Arith::sqr` are
    /// `a * b * 2^-2048 mod p` and `a * a * 2^-2048 mod p` on 32 little-endian limbs, inputs
    /// and result below p, constant time.
    pub use super::bignum::Arith;

    /// The Montgomery form of 2 (`2 * 2^2048 mod p`) as 32 little-endian limbs.
    pub const MONT_TWO: [u64; super::LIMBS] = super::TWO;

    use super::{DH_PRIVATE_LEN, DH_PUBLIC_LEN, exponent, pow_window, to_be_bytes};

    /// `2^x mod p` (§1.5) by the generic fixed-window exponentiation with a table of `N`
    /// entries (`N` a power of two in `2..=64`) on `arith`, i.e. without the fixed-base table.
    /// Constant time in `private`.
    pub fn public_with_window<const N: usize>(
        arith: Arith,
        private: &[u8; DH_PRIVATE_LEN],
    ) -> [u8; DH_PUBLIC_LEN] {
        use zeroize::Zeroize;
        let mut x = exponent(private);
        let mut acc = pow_window::<N>(arith, &MONT_TWO, &x);
        x.zeroize();
        let out = to_be_bytes(&arith.out_of_mont(&acc));
        acc.zeroize();
        out
    }

    /// `peer^x mod p` (§1.5) with a fixed window whose table has `N` entries (`N` a power of
    /// two in `2..=64`) on `arith`. Same contract as [`super::shared_secret`].
    pub fn shared_with_window<const N: usize>(
        arith: Arith,
        peer: &[u8; DH_PUBLIC_LEN],
        private: &[u8; DH_PRIVATE_LEN],
    ) -> [u8; DH_PUBLIC_LEN] {
        super::shared_with_window::<N>(arith, peer, private)
    }

    /// [`super::public_from_private`] on `arith` (same fixed-base table).
    pub fn public_from_private_with(
        arith: Arith,
        private: &[u8; DH_PRIVATE_LEN],
    ) -> [u8; DH_PUBLIC_LEN] {
        super::keygen_table().public_with(arith, private)
    }

    /// [`super::shared_secret`] on `arith` (same window).
    pub fn shared_secret_with(
        arith: Arith,
        peer: &[u8; DH_PUBLIC_LEN],
        private: &[u8; DH_PRIVATE_LEN],
    ) -> [u8; DH_PUBLIC_LEN] {
        super::shared_with_window::<{ super::SHARED_TABLE }>(arith, peer, private)
    }
}

#[cfg(test)]
mod tests;
