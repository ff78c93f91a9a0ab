//! 2048-bit Montgomery multiplication and squaring on x86_64 BMI2 + ADX (`mulx`, `adcx`,
//! `adox`), for any odd 2048-bit (32-limb) modulus.
//!
//! Numbers are 32 little-endian `u64` limbs; Montgomery form uses `R = 2^2048`.
//! [`Kernel::mul`] returns `a * b * R^-1 mod p` and [`Kernel::sqr`] `a * a * R^-1 mod p`, both
//! fully reduced (`< p`) for inputs `< p`, in constant time: no branch and no memory address
//! depends on the operands (the final subtraction of p is kept or dropped with masks).
//!
//! [`Kernel::detect`] returns a kernel only when the CPU has BMI2 and ADX (checked at run time;
//! the standard library caches the result), so holding a [`Kernel`] proves the check was made.
//! There is no portable path here: callers keep their own (spiperelay's is the group-14
//! specialised code in `src/proto/dh/bignum.rs`) and use it when `detect` returns `None`,
//! which is always the case off x86_64.
//!
//! This crate holds the `unsafe` of the kernel (`asm!` reading and writing through pointers
//! into fixed-size arrays); each block names its invariant in a `// SAFETY:` comment. It is
//! reviewed like a vendored primitive.

// One of the kernel crates where `unsafe` may live (the workspace denies it elsewhere).
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Number of 64-bit limbs in a 2048-bit number.
pub const LIMBS: usize = 32;

/// A 2048-bit number as 32 little-endian limbs.
pub type Limbs = [u64; LIMBS];

/// An odd modulus `p < 2^2048` with its Montgomery constant `n0' = -p^-1 mod 2^64`.
// repr(C): the kernel reads n0' right after the 32 limbs of p.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Modulus {
    p: Limbs,
    n0: u64,
}

impl Modulus {
    /// The modulus `p` (little-endian limbs) with `n0'` computed from it, or `None` if `p` is
    /// even (Montgomery reduction needs an odd modulus). Usable in `const` context.
    pub const fn new(p: &Limbs) -> Option<Self> {
        let p0 = p[0];
        if p0 & 1 == 0 {
            return None;
        }
        // Newton's iteration for p0^-1 mod 2^64: p0 * p0 = 1 mod 8 (3 correct bits), and each
        // step doubles the correct bits: 3, 6, 12, 24, 48, 96.
        let mut inv = p0;
        let mut i = 0;
        while i < 5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p0.wrapping_mul(inv)));
            i += 1;
        }
        Some(Self {
            p: *p,
            n0: inv.wrapping_neg(),
        })
    }

    /// The modulus limbs.
    pub const fn limbs(&self) -> &Limbs {
        &self.p
    }

    /// `n0' = -p^-1 mod 2^64`.
    pub const fn n0(&self) -> u64 {
        self.n0
    }
}

/// `a - b` modulo 2^2048 over 32 limbs, and the borrow out (0 or 1), in constant time; usable
/// in `const` context.
pub const fn sub_borrow(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
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

/// Given `c * 2^2048 + lo < 2p` (`c` is 0 or 1), returns it modulo `p`: `lo - p` or `lo`,
/// chosen with masks, in constant time. The final step of every Montgomery reduction, the
/// kernels' and the portable code's (spiperelay's `src/proto/dh/bignum.rs`); usable in `const`
/// context.
pub const fn reduce_once(lo: &Limbs, c: u64, p: &Limbs) -> Limbs {
    let (diff, borrow) = sub_borrow(lo, p);
    // Keep `lo` only if the value is below p: c = 0 and the subtraction borrowed. If c = 1,
    // lo < p, so it borrowed and c - borrow = 0.
    let keep = core::hint::black_box(c.wrapping_sub(borrow));
    let mut out = [0u64; LIMBS];
    let mut i = 0;
    while i < LIMBS {
        out[i] = (lo[i] & keep) | (diff[i] & !keep);
        i += 1;
    }
    out
}

/// Proof that the CPU has BMI2 and ADX; the handle through which the kernels are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Token);

/// On x86_64 a unit token, created only by [`Kernel::detect`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token;

/// Elsewhere uninhabited: no [`Kernel`] can exist.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {}

impl Kernel {
    /// The kernel, if the CPU has `bmi2` and `adx` (x86_64 only; detected at run time and
    /// cached by the standard library). `None` on other CPUs and architectures.
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("bmi2") && std::is_x86_feature_detected!("adx") {
                return Some(Self(Token));
            }
        }
        None
    }

    /// Montgomery multiplication `a * b * 2^-2048 mod p`. For `a, b < p` the result is fully
    /// reduced (`< p`); for larger inputs it is unspecified (but never unsafe). Constant time.
    #[inline]
    pub fn mul(self, a: &Limbs, b: &Limbs, m: &Modulus) -> Limbs {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernel` exists only after `detect` found BMI2 and ADX.
            Token => unsafe { x86::mul(a, b, m) },
        }
    }

    /// Montgomery squaring `a * a * 2^-2048 mod p`; equal to `self.mul(a, a, m)`, with each
    /// off-diagonal limb product computed once. For `a < p` the result is `< p`. Constant time.
    #[inline]
    pub fn sqr(self, a: &Limbs, m: &Modulus) -> Limbs {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernel` exists only after `detect` found BMI2 and ADX.
            Token => unsafe { x86::sqr(a, m) },
        }
    }
}

#[cfg(test)]
mod tests;
