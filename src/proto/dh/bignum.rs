//! Fixed-size 2048-bit Montgomery arithmetic modulo the group-14 prime (§1.5).
//!
//! Numbers are 32 little-endian `u64` limbs. Montgomery form uses `R = 2^2048`. Every value
//! handed to or returned by the arithmetic here is fully reduced (`< p`), so no function
//! branches or indexes memory on a value: the only data-dependent choices are masked selects.
//!
//! Two properties of p are exploited:
//! - its low limb is `2^64 - 1`, so `n0' = -p^-1 mod 2^64 = 1` and each Montgomery reduction
//!   digit `m` is simply the current low accumulator word;
//! - for the same reason `m * p[0] = m * 2^64 - m`, so that product is never computed: adding it
//!   clears the low word and carries `m` into the next one.
//!
//! Multiplication and squaring use product scanning with the reduction interleaved column by
//! column ("finely integrated product scanning"), which keeps the 192-bit column accumulator in
//! registers instead of re-reading and re-writing a 33-limb intermediate for every row.

use super::GROUP14_P;
use crate::proto::DH_PUBLIC_LEN;

/// Number of 64-bit limbs in a 2048-bit number.
pub(crate) const LIMBS: usize = DH_PUBLIC_LEN / 8;

/// A 2048-bit number as little-endian limbs.
pub(crate) type Limbs = [u64; LIMBS];

/// Converts 256 big-endian bytes to little-endian limbs (usable in `const` context).
pub(crate) const fn from_be_bytes(bytes: &[u8; DH_PUBLIC_LEN]) -> Limbs {
    let mut out = [0u64; LIMBS];
    let mut i = 0;
    while i < LIMBS {
        let mut w = 0u64;
        let mut j = 0;
        while j < 8 {
            // Limb i holds bytes 255-8i-7 ..= 255-8i (big-endian order within the limb).
            w = (w << 8) | bytes[DH_PUBLIC_LEN - 8 * i - 8 + j] as u64;
            j += 1;
        }
        out[i] = w;
        i += 1;
    }
    out
}

/// Converts little-endian limbs to 256 big-endian bytes.
pub(crate) fn to_be_bytes(limbs: &Limbs) -> [u8; DH_PUBLIC_LEN] {
    let mut out = [0u8; DH_PUBLIC_LEN];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(limbs.iter().rev()) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}

/// The group-14 prime p as limbs.
pub(crate) const P: Limbs = from_be_bytes(&GROUP14_P);

/// `a - b` over 32 limbs, returning the difference and the borrow out (0 or 1).
const fn sub_borrow(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
    let mut out = [0u64; LIMBS];
    let mut borrow = 0u64;
    let mut i = 0;
    while i < LIMBS {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = (b1 | b2) as u64;
        i += 1;
    }
    (out, borrow)
}

/// Given `hi * 2^2048 + lo < 2p` (`hi` is 0 or 1), returns it reduced modulo p, in constant time.
#[inline(always)]
const fn reduce_once(lo: &Limbs, hi: u64) -> Limbs {
    let (diff, borrow) = sub_borrow(lo, &P);
    // Keep `lo` only when the full value is below p: no carry word and the subtraction borrowed.
    // If hi = 1 the subtraction necessarily borrows (lo < p < 2^2048), and hi - borrow = 0.
    let keep_lo = hi.wrapping_sub(borrow);
    let mut out = [0u64; LIMBS];
    let mut i = 0;
    while i < LIMBS {
        out[i] = (lo[i] & keep_lo) | (diff[i] & !keep_lo);
        i += 1;
    }
    out
}

/// `2a mod p` for `a < p` (usable in `const` context).
const fn double_mod(a: &Limbs) -> Limbs {
    let mut out = [0u64; LIMBS];
    let mut carry = 0u64;
    let mut i = 0;
    while i < LIMBS {
        out[i] = (a[i] << 1) | carry;
        carry = a[i] >> 63;
        i += 1;
    }
    reduce_once(&out, carry)
}

/// `R mod p = 2^2048 - p` (as p > 2^2047): the Montgomery form of 1.
pub(crate) const ONE: Limbs = sub_borrow(&[0; LIMBS], &P).0;

/// `2R mod p`: the Montgomery form of 2, the group-14 generator.
pub(crate) const TWO: Limbs = double_mod(&ONE);

/// `R^2 mod p`, used to convert into Montgomery form.
pub(crate) const R2: Limbs = {
    let mut r = ONE;
    let mut i = 0;
    while i < 64 * LIMBS {
        r = double_mod(&r);
        i += 1;
    }
    r
};

/// A 192-bit column accumulator: `lh + top * 2^128`.
#[derive(Clone, Copy)]
struct Acc {
    lh: u128,
    top: u64,
}

impl Acc {
    const ZERO: Acc = Acc { lh: 0, top: 0 };

    /// `self += a * b`.
    #[inline(always)]
    fn mac(&mut self, a: u64, b: u64) {
        let (s, c) = self.lh.overflowing_add(u128::from(a) * u128::from(b));
        self.lh = s;
        self.top = self.top.wrapping_add(u64::from(c));
    }

    /// `self += v`.
    #[inline(always)]
    fn add(&mut self, v: Acc) {
        let (s, c) = self.lh.overflowing_add(v.lh);
        self.lh = s;
        self.top = self.top.wrapping_add(v.top).wrapping_add(u64::from(c));
    }

    /// `self *= 2`.
    #[inline(always)]
    fn double(&mut self) {
        self.top = (self.top << 1) | (self.lh >> 127) as u64;
        self.lh <<= 1;
    }

    /// The low 64 bits.
    #[inline(always)]
    fn low(&self) -> u64 {
        self.lh as u64
    }

    /// `self >>= 64`.
    #[inline(always)]
    fn shift(&mut self) {
        self.lh = (self.lh >> 64) | (u128::from(self.top) << 64);
        self.top = 0;
    }

    /// Adds `m * p[0] = m * 2^64 - m` where `m` is the low word, then shifts right by 64: the
    /// low word becomes zero and `m` carries into the next column.
    #[inline(always)]
    fn reduce_step(&mut self) {
        let m = self.low();
        self.shift();
        let (s, c) = self.lh.overflowing_add(u128::from(m));
        self.lh = s;
        self.top = self.top.wrapping_add(u64::from(c));
    }
}

/// Finishes a Montgomery product: `acc` holds column sums of `t` (the plain product, or the
/// off-diagonal plus diagonal terms for squaring) supplied by `column(k, &mut acc)`, which must
/// add exactly the products of limbs `i + j = k` of t. Interleaves reduction and returns
/// `t * R^-1 mod p`.
#[inline(always)]
fn mont_reduce_columns(mut column: impl FnMut(usize, &mut Acc)) -> Limbs {
    let mut m = [0u64; LIMBS];
    let mut acc = Acc::ZERO;
    for k in 0..LIMBS {
        column(k, &mut acc);
        // Reduction products m_i * p_{k-i} for i < k (p_0 is handled by reduce_step).
        if let (Some(ms), Some(ps)) = (m.get(..k), P.get(1..=k)) {
            for (&mi, &pj) in ms.iter().zip(ps.iter().rev()) {
                acc.mac(mi, pj);
            }
        }
        if let Some(slot) = m.get_mut(k) {
            *slot = acc.low();
        }
        acc.reduce_step();
    }
    let mut out = [0u64; LIMBS];
    for k in LIMBS..2 * LIMBS - 1 {
        column(k, &mut acc);
        let lo = k + 1 - LIMBS;
        if let (Some(ms), Some(ps)) = (m.get(lo..), P.get(lo..)) {
            for (&mi, &pj) in ms.iter().zip(ps.iter().rev()) {
                acc.mac(mi, pj);
            }
        }
        if let Some(slot) = out.get_mut(k - LIMBS) {
            *slot = acc.low();
        }
        acc.shift();
    }
    if let Some(slot) = out.last_mut() {
        *slot = acc.low();
    }
    acc.shift();
    reduce_once(&out, acc.low())
}

/// Montgomery multiplication: `a * b * R^-1 mod p`, for `a, b < p`. Constant time.
pub(crate) fn mont_mul(a: &Limbs, b: &Limbs) -> Limbs {
    mont_reduce_columns(|k, acc| {
        let lo = (k + 1).saturating_sub(LIMBS);
        let hi = k.min(LIMBS - 1);
        if let (Some(aa), Some(bb)) = (a.get(lo..=hi), b.get(k - hi..=k - lo)) {
            for (&ai, &bj) in aa.iter().zip(bb.iter().rev()) {
                acc.mac(ai, bj);
            }
        }
    })
}

/// Montgomery squaring: `a * a * R^-1 mod p`, for `a < p`. Constant time. Computes each
/// off-diagonal product once and doubles it.
pub(crate) fn mont_sqr(a: &Limbs) -> Limbs {
    mont_reduce_columns(|k, acc| {
        // Off-diagonal pairs (i, k - i) with i < k - i, i.e. i in lo..(k+1)/2.
        let lo = (k + 1).saturating_sub(LIMBS);
        let mid = k.div_ceil(2);
        let mut off = Acc::ZERO;
        if let (Some(aa), Some(bb)) = (a.get(lo..mid), a.get(k + 1 - mid..=k - lo)) {
            for (&ai, &bj) in aa.iter().zip(bb.iter().rev()) {
                off.mac(ai, bj);
            }
        }
        off.double();
        if k % 2 == 0 {
            if let Some(&d) = a.get(k / 2) {
                off.mac(d, d);
            }
        }
        acc.add(off);
    })
}

/// Converts `a < p` into Montgomery form `a * R mod p`.
pub(crate) fn to_mont(a: &Limbs) -> Limbs {
    mont_mul(a, &R2)
}

/// Converts out of Montgomery form: `a * R^-1 mod p`.
pub(crate) fn from_mont(a: &Limbs) -> Limbs {
    let mut one = [0u64; LIMBS];
    if let Some(l) = one.first_mut() {
        *l = 1;
    }
    mont_mul(a, &one)
}

/// All-ones if `a == b`, else zero, without branching on the values.
#[inline(always)]
pub(crate) fn ct_eq_mask(a: u64, b: u64) -> u64 {
    let x = a ^ b;
    // (x | -x) has its top bit set iff x != 0.
    let nonzero = (x | x.wrapping_neg()) >> 63;
    core::hint::black_box(nonzero).wrapping_sub(1)
}

/// Returns `table[index]` by reading every entry and combining with masks, so the memory access
/// pattern does not depend on `index`. Returns zero if `index` is out of range.
#[inline(always)]
pub(crate) fn ct_lookup(table: &[Limbs], index: u64) -> Limbs {
    let mut out = [0u64; LIMBS];
    for (i, entry) in (0u64..).zip(table.iter()) {
        let mask = ct_eq_mask(i, index);
        for (o, e) in out.iter_mut().zip(entry.iter()) {
            *o |= e & mask;
        }
    }
    out
}
