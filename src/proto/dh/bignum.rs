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
//! Two implementations of the Montgomery multiplication and squaring, picked by [`Arith`]:
//! - the BMI2/ADX kernel of `crates/mont2048-x86` (`mulx` with `adcx`/`adox` carry chains in
//!   `asm!`, about 30 % less time here, PERFORMANCE.md), used when the CPU has those features;
//! - the portable code below: product scanning with the reduction interleaved column by column
//!   ("finely integrated product scanning"), fully unrolled, which keeps the column accumulator
//!   in registers instead of re-reading and re-writing a 33-limb intermediate for every row.
//!
//! Both return bit-identical results (tests.rs checks each against `num-bigint`, and full
//! exponentiations against each other).

use super::GROUP14_P;
use crate::proto::DH_PUBLIC_LEN;
use crate::proto::kernels::Kernels;
use mont2048_x86::{Kernel, Modulus, sub_borrow};

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

/// Given `hi * 2^2048 + lo < 2p` (`hi` is 0 or 1), returns it reduced modulo p, in constant time
/// (usable in `const` context): the kernel crate's [`mont2048_x86::reduce_once`] for p.
pub(crate) const fn reduce_once(lo: &Limbs, hi: u64) -> Limbs {
    mont2048_x86::reduce_once(lo, hi, &P)
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

/// p with its Montgomery constant, for the kernel.
const MODULUS: Modulus = match Modulus::new(&P) {
    Some(m) => m,
    None => panic!("the group-14 prime is odd"),
};

/// Which Montgomery arithmetic modulo p runs. Both give identical results; [`Arith::detect`]
/// picks the kernel when the CPU has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// The portable Rust code of this module.
    Portable,
    /// The BMI2/ADX kernel (`crates/mont2048-x86`); a [`Kernel`] exists only after runtime
    /// detection.
    Adx(Kernel),
}

impl Arith {
    /// [`Arith::for_kernels`] of the process-wide [`Kernels::current`] mode.
    pub fn detect() -> Self {
        Self::for_kernels(Kernels::current())
    }

    /// With [`Kernels::Fast`], the kernel if this CPU has BMI2 and ADX (detection cached by
    /// the standard library), else [`Arith::Portable`]; with [`Kernels::Reference`], always
    /// [`Arith::Portable`].
    pub fn for_kernels(kernels: Kernels) -> Self {
        match kernels {
            Kernels::Fast => Kernel::detect().map_or(Arith::Portable, Arith::Adx),
            Kernels::Reference => Arith::Portable,
        }
    }

    /// Every implementation this CPU supports, portable first (for tests and benchmarks).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Arith::Portable];
        v.extend(Kernel::detect().map(Arith::Adx));
        v
    }

    /// A short name: "portable" or "adx".
    pub const fn name(self) -> &'static str {
        match self {
            Arith::Portable => "portable",
            Arith::Adx(_) => "adx",
        }
    }

    /// Montgomery multiplication `a * b * R^-1 mod p`, for `a, b < p`. Constant time.
    #[inline]
    pub fn mul(self, a: &Limbs, b: &Limbs) -> Limbs {
        match self {
            Arith::Portable => mont_mul(a, b),
            Arith::Adx(k) => k.mul(a, b, &MODULUS),
        }
    }

    /// Montgomery squaring `a * a * R^-1 mod p`, for `a < p`. Constant time.
    #[inline]
    pub fn sqr(self, a: &Limbs) -> Limbs {
        match self {
            Arith::Portable => mont_sqr(a),
            Arith::Adx(k) => k.sqr(a, &MODULUS),
        }
    }

    /// Converts `a < p` into Montgomery form `a * R mod p`.
    pub(crate) fn to_mont(self, a: &Limbs) -> Limbs {
        self.mul(a, &R2)
    }

    /// Converts out of Montgomery form: `a * R^-1 mod p`.
    pub(crate) fn out_of_mont(self, a: &Limbs) -> Limbs {
        let mut one = [0u64; LIMBS];
        if let Some(l) = one.first_mut() {
            *l = 1;
        }
        self.mul(a, &one)
    }
}

/// A column accumulator holding `lo + hi * 2^64`. Low and high halves of the products are
/// summed in separate 128-bit words, so each product costs two independent add/adc pairs and no
/// carry has to be propagated between them until the column is finished.
#[derive(Clone, Copy)]
struct Acc {
    lo: u128,
    hi: u128,
}

impl Acc {
    /// An accumulator holding `carry`.
    #[inline(always)]
    fn new(carry: u128) -> Acc {
        Acc { lo: carry, hi: 0 }
    }

    /// `self += a * b`.
    #[inline(always)]
    fn mac(&mut self, a: u64, b: u64) {
        let p = u128::from(a) * u128::from(b);
        self.lo = self.lo.wrapping_add(u128::from(p as u64));
        self.hi = self.hi.wrapping_add(p >> 64);
    }

    /// `self = 2 * self + carry`.
    #[inline(always)]
    fn double_plus(&self, carry: u128) -> Acc {
        Acc {
            lo: (self.lo << 1).wrapping_add(carry),
            hi: self.hi << 1,
        }
    }

    /// The low 64 bits of the column value.
    #[inline(always)]
    fn low(&self) -> u64 {
        self.lo as u64
    }

    /// The column value shifted right by 64 bits: the carry into the next column.
    #[inline(always)]
    fn carry(&self) -> u128 {
        (self.lo >> 64).wrapping_add(self.hi)
    }
}

/// Expands `$m!(k)` for every column `k` in `0..2 * LIMBS - 1` of a 32-limb product. Unrolling
/// the columns makes every inner loop bound a compile-time constant, so LLVM emits straight-line
/// multiply/add-with-carry code with constant offsets and no loop or bounds-check overhead.
macro_rules! for_each_column {
    ($m:ident) => {
        for_each_column!(@ $m; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62)
    };
    (@ $m:ident; $($k:literal)*) => {
        $( $m!($k); )*
    };
}

/// Adds the reduction products `m_i * p_{K-i}` to column `K` of a Montgomery product and
/// finishes the column, returning the carry into column `K + 1`.
///
/// For `K < LIMBS` the column's low word determines the reduction digit `m_K` (n0' = 1), which is
/// stored in `m`; adding `m_K * p_0 = m_K * 2^64 - m_K` clears the low word and carries `m_K`. For
/// `K >= LIMBS` the low word is result limb `K - LIMBS`.
#[inline(always)]
fn reduce_column<const K: usize>(m: &mut Limbs, out: &mut Limbs, mut acc: Acc) -> u128 {
    if K < LIMBS {
        let mut i = 0;
        while i < K {
            acc.mac(m[i], P[K - i]);
            i += 1;
        }
        let mk = acc.low();
        if let Some(slot) = m.get_mut(K) {
            *slot = mk;
        }
        acc.carry().wrapping_add(u128::from(mk))
    } else {
        let mut i = K + 1 - LIMBS;
        while i < LIMBS {
            acc.mac(m[i], P[K - i]);
            i += 1;
        }
        if let Some(slot) = out.get_mut(K - LIMBS) {
            *slot = acc.low();
        }
        acc.carry()
    }
}

/// Column `K` of `a * b` plus `carry`: every `a_i * b_j` with `i + j = K`.
#[inline(always)]
fn mul_column<const K: usize>(a: &Limbs, b: &Limbs, carry: u128) -> Acc {
    let mut acc = Acc::new(carry);
    let mut i = (K + 1).saturating_sub(LIMBS);
    let hi = if K < LIMBS { K } else { LIMBS - 1 };
    while i <= hi {
        acc.mac(a[i], b[K - i]);
        i += 1;
    }
    acc
}

/// Column `K` of `a * a` plus `carry`: off-diagonal products computed once and doubled, plus the
/// diagonal square when `K` is even.
#[inline(always)]
fn sqr_column<const K: usize>(a: &Limbs, carry: u128) -> Acc {
    let mut off = Acc::new(0);
    let mut i = (K + 1).saturating_sub(LIMBS);
    let mid = K.div_ceil(2);
    while i < mid {
        off.mac(a[i], a[K - i]);
        i += 1;
    }
    let mut acc = off.double_plus(carry);
    if K.is_multiple_of(2)
        && let Some(&d) = a.get(K / 2)
    {
        acc.mac(d, d);
    }
    acc
}

/// Montgomery multiplication: `a * b * R^-1 mod p`, for `a, b < p`. Constant time.
///
/// Product scanning with the reduction interleaved column by column; the result of the column
/// sweep is below `2p` and one masked subtraction brings it below p.
pub(crate) fn mont_mul(a: &Limbs, b: &Limbs) -> Limbs {
    let mut m = [0u64; LIMBS];
    let mut out = [0u64; LIMBS];
    let mut carry = 0u128;
    macro_rules! column {
        ($k:literal) => {
            carry = reduce_column::<$k>(&mut m, &mut out, mul_column::<$k>(a, b, carry))
        };
    }
    for_each_column!(column);
    if let Some(slot) = out.last_mut() {
        *slot = carry as u64;
    }
    // The result is below 2p < 2^2049: the final carry word is 0 or 1.
    reduce_once(&out, (carry >> 64) as u64)
}

/// Montgomery squaring: `a * a * R^-1 mod p`, for `a < p`. Constant time. Same structure as
/// [`mont_mul`], with each off-diagonal product computed once.
pub(crate) fn mont_sqr(a: &Limbs) -> Limbs {
    let mut m = [0u64; LIMBS];
    let mut out = [0u64; LIMBS];
    let mut carry = 0u128;
    macro_rules! column {
        ($k:literal) => {
            carry = reduce_column::<$k>(&mut m, &mut out, sqr_column::<$k>(a, carry))
        };
    }
    for_each_column!(column);
    if let Some(slot) = out.last_mut() {
        *slot = carry as u64;
    }
    reduce_once(&out, (carry >> 64) as u64)
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
