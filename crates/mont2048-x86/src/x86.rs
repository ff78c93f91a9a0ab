//! The BMI2/ADX kernels: 2048-bit Montgomery multiplication and squaring with `mulx` and two
//! independent carry chains (`adcx` on CF, `adox` on OF), written in `asm!` because LLVM does
//! not emit `adox` chains from intrinsics.
//!
//! Both operations first form the full 4096-bit product in a 64-limb buffer `t`, then reduce it
//! (separated operand scanning). Every limb product is a `mulx` whose low half goes on the CF
//! chain and whose high half goes on the OF chain, one limb further up; the two chains run
//! side by side at one limb per cycle.
//! - [`mul`] forms the product in four blocks of eight rows, the accumulator a window of eight
//!   limbs in registers (`asm/mul8.s`);
//! - [`sqr`] runs the 31 off-diagonal rows `a[j] * a[j+1..32]` (496 limb products instead of
//!   1024) with the accumulator in memory (`product_row!`: each finished limb stored back),
//!   then one pass doubling `t` on the CF chain while adding the diagonal squares `a[i]^2` on
//!   the OF chain;
//! - [`reduce`] adds `m_i * p * 2^(64 i)` for `m_i = t[i] * n0'`, 32 rows in four blocks of
//!   eight with the same register window (`asm/reduce8.s`); a row step on registers measured
//!   15 % cheaper than one through memory, and the reduction is two thirds of a square;
//! - the result `t[32..64] + carry * 2^2048 < 2p` is reduced by one subtraction of p, kept or
//!   discarded with masks.
//!
//! No branch and no memory address depends on the operands.

use core::arch::asm;

use crate::{LIMBS, Limbs, Modulus};

/// Every limb of a row as `(limb byte-offset lo hi prev)`: `mulx hi:lo = rdx * b[limb]`, then
/// `lo` gets `t[limb]` on CF and the previous limb's high half `prev` on OF. Even and odd limbs
/// alternate between two register pairs so a limb's high half is live until the next limb.
/// Calls `$cb!(args; tuples)`.
macro_rules! with_row_limbs {
    ($cb:ident!($($args:tt)*)) => {
        $cb!($($args)*;
            (0 0 "r8" "r9" "r11") (1 8 "r10" "r11" "r9") (2 16 "r8" "r9" "r11")
            (3 24 "r10" "r11" "r9") (4 32 "r8" "r9" "r11") (5 40 "r10" "r11" "r9")
            (6 48 "r8" "r9" "r11") (7 56 "r10" "r11" "r9") (8 64 "r8" "r9" "r11")
            (9 72 "r10" "r11" "r9") (10 80 "r8" "r9" "r11") (11 88 "r10" "r11" "r9")
            (12 96 "r8" "r9" "r11") (13 104 "r10" "r11" "r9") (14 112 "r8" "r9" "r11")
            (15 120 "r10" "r11" "r9") (16 128 "r8" "r9" "r11") (17 136 "r10" "r11" "r9")
            (18 144 "r8" "r9" "r11") (19 152 "r10" "r11" "r9") (20 160 "r8" "r9" "r11")
            (21 168 "r10" "r11" "r9") (22 176 "r8" "r9" "r11") (23 184 "r10" "r11" "r9")
            (24 192 "r8" "r9" "r11") (25 200 "r10" "r11" "r9") (26 208 "r8" "r9" "r11")
            (27 216 "r10" "r11" "r9") (28 224 "r8" "r9" "r11") (29 232 "r10" "r11" "r9")
            (30 240 "r8" "r9" "r11") (31 248 "r10" "r11" "r9")
        )
    };
}

/// The limb steps of a row as one template string: for each listed limb, `hi:lo = rdx *
/// b[limb]`, `lo += t[limb]` on CF, `lo += prev` on OF, `t[limb] = lo`.
macro_rules! row_steps {
    ($( ($kl:literal $k:literal $lo:literal $hi:literal $prev:literal) )+) => {
        concat!($(
            "mulx ", $hi, ", ", $lo, ", qword ptr [{b} + ", $k, "]\n",
            "adcx ", $lo, ", qword ptr [{t} + ", $k, "]\n",
            "adox ", $lo, ", ", $prev, "\n",
            "mov qword ptr [{t} + ", $k, "], ", $lo, "\n",
        )+)
    };
}

/// `t[k] += x * b[k]` for the limbs `k` listed (a suffix of `0..32`, ending at 31), plus the
/// row's top limb (high half of the last product and both chains' carries; the row sum fits,
/// so this cannot overflow) written to `t[32]`, which must be 0 before. `t` and `b` are
/// pointers, `x` a `u64`. Expands to one `asm!` statement (must be in an `unsafe` block).
macro_rules! product_row {
    ($t:expr, $b:expr, $x:expr; $( ($kl:literal $k:literal $lo:literal $hi:literal $prev:literal) )+) => {
        asm!(
            // Zero both possible `prev` registers of the first limb; xor also clears CF and OF.
            "xor r9d, r9d",
            "xor r11d, r11d",
            row_steps!($( ($kl $k $lo $hi $prev) )+),
            "adcx r11, {zero}",
            "adox r11, {zero}",
            "mov qword ptr [{t} + 256], r11",
            t = in(reg) $t,
            b = in(reg) $b,
            zero = in(reg) 0u64,
            inout("rdx") $x => _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        )
    };
}

/// The 31 off-diagonal rows of a square: row `j` is `t[2j+1..j+33] += a[j] * a[j+1..32]`,
/// i.e. [`product_row!`] at `t + j` over the limbs `j+1..32` (offsets stay those of the full
/// row). Peels one limb per row off the front of the list.
macro_rules! off_diagonal_rows {
    ($t:ident, $a:ident; ($kl:literal $($first:tt)*) $($rest:tt)+) => {
        product_row!($t.add($kl), $a, *$a.add($kl); $($rest)+);
        off_diagonal_rows!($t, $a; $($rest)+);
    };
    ($t:ident, $a:ident; $last:tt) => {};
}

/// `t = 2 t + sum_i a[i]^2 2^(128 i)` over 64 limbs: the doubling on CF, the diagonal squares on
/// OF. Tuples are `(byte offset of a[i], of t[2i], of t[2i+1])`. The result (a square below
/// 2^4096) leaves both chains without carry.
macro_rules! double_add_diagonal {
    ($t:expr, $a:expr) => {
        double_add_diagonal!(@ $t, $a;
            (0 0 8) (8 16 24) (16 32 40) (24 48 56) (32 64 72) (40 80 88)
            (48 96 104) (56 112 120) (64 128 136) (72 144 152) (80 160 168) (88 176 184)
            (96 192 200) (104 208 216) (112 224 232) (120 240 248) (128 256 264) (136 272 280)
            (144 288 296) (152 304 312) (160 320 328) (168 336 344) (176 352 360) (184 368 376)
            (192 384 392) (200 400 408) (208 416 424) (216 432 440) (224 448 456) (232 464 472)
            (240 480 488) (248 496 504)
        )
    };
    (@ $t:expr, $a:expr; $( ($ka:literal $k0:literal $k1:literal) )+) => {
        asm!(
            "xor r8d, r8d",
            $(
                concat!("mov rdx, qword ptr [{a} + ", $ka, "]"),
                "mulx r9, r8, rdx",
                concat!("mov r10, qword ptr [{t} + ", $k0, "]"),
                concat!("mov r11, qword ptr [{t} + ", $k1, "]"),
                "adcx r10, r10",
                "adcx r11, r11",
                "adox r10, r8",
                "adox r11, r9",
                concat!("mov qword ptr [{t} + ", $k0, "], r10"),
                concat!("mov qword ptr [{t} + ", $k1, "], r11"),
            )+
            t = in(reg) $t,
            a = in(reg) $a,
            out("rdx") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        )
    };
}

/// Limbs of the product buffer: two words of carry scratch in front of the 64-limb product
/// `t` (see [`reduce`]).
pub(crate) const BUF: usize = 2 + 2 * LIMBS;

/// Montgomery-reduces the 64-limb product `t = buf[2..]` (below `p * 2^2048`; `buf[0..2]` are 0)
/// and returns `t * 2^-2048 mod p`, fully reduced.
///
/// Four blocks of eight reduction rows (`asm/reduce8.s`, generated by `asm/gen_reduce8.py`).
/// Block `i0 = 0, 8, 16, 24` chooses the digits `m_r = t[i0 + r] * n0'` one row at a time
/// and adds `M * p` (M = the eight digits, 40 limbs) to `t[i0..i0 + 40]`. The accumulator is
/// a window of eight limbs in registers sliding one limb per row: the first 8 rows against
/// `p[0..8]` (which zero the window's low limbs and store the digits into the dead limbs
/// `t[i0..i0 + 8]`), then 8 rows against each of `p[8..16]`, `p[16..24]`, `p[24..32]`, each
/// chunk beginning by adding the next eight memory limbs into the window (carry kept in
/// `t[i0 - 2]`) and storing each finished limb. The window's last eight limbs are added to
/// `t[i0 + 32..i0 + 40]` with the chunk carry and the previous block's carry word (in
/// `t[i0 - 1]`); the carry out goes to `t[i0 + 7]`, which is `t[i0' - 1]` for the next block,
/// and after the last block is the result's top word `c` (`t[32..64] + c * 2^2048 < 2p`).
///
/// # Safety
/// The CPU supports BMI2 and ADX.
#[target_feature(enable = "bmi2,adx")]
unsafe fn reduce(buf: &mut [u64; BUF], m: &Modulus) -> Limbs {
    let base = buf.as_mut_ptr();
    let mp = (m as *const Modulus).cast::<u64>();
    for block in 0..LIMBS / 8 {
        // SAFETY: with T = buf + 2 + 8 * block, the block reads and writes buf at T - 2 ..
        // T + 40 (at most 2 + 24 + 40 = 66 = BUF limbs, all inside `buf`, held exclusively)
        // and reads 33 words at `mp`: `Modulus` is `repr(C)` with the 32 limbs of p followed
        // by n0'. The registers it changes are all declared. BMI2/ADX as the caller
        // guarantees.
        unsafe {
            asm!(
                include_str!("../asm/reduce8.s"),
                in("r14") base.add(2 + 8 * block),
                in("r15") mp,
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("r13") _,
                options(nostack),
            )
        };
    }
    let mut hi = [0u64; LIMBS];
    hi.copy_from_slice(&buf[2 + LIMBS..]);
    subtract_once(&hi, buf[2 + LIMBS - 1], &m.p)
}

/// Given `c * 2^2048 + lo < 2p` (`c` is 0 or 1), returns it modulo p, in constant time.
fn subtract_once(lo: &Limbs, c: u64, p: &Limbs) -> Limbs {
    let mut diff = [0u64; LIMBS];
    let mut borrow = 0u64;
    for ((d, &l), &q) in diff.iter_mut().zip(lo).zip(p) {
        let (d1, b1) = l.overflowing_sub(q);
        let (d2, b2) = d1.overflowing_sub(borrow);
        *d = d2;
        borrow = u64::from(b1 | b2);
    }
    // Keep `lo` only if the value is below p: c = 0 and the subtraction borrowed. If c = 1,
    // lo < p, so it borrowed and c - borrow = 0.
    let keep = core::hint::black_box(c.wrapping_sub(borrow));
    let mut out = [0u64; LIMBS];
    for ((o, &l), &d) in out.iter_mut().zip(lo).zip(&diff) {
        *o = (l & keep) | (d & !keep);
    }
    out
}

/// Limbs of [`mul`]'s buffer: [`BUF`] (carry scratch and the product `t`), then a copy of `a`
/// (the digits of the product blocks, at `t + 64`), then the product blocks' merge-carry
/// scratch (block `j0` uses `t[j0 + 96]`).
const MUL_BUF: usize = BUF + LIMBS + LIMBS;

/// `a * b * 2^-2048 mod p` for `a, b < p`, `p` odd, `n0 = -p^-1 mod 2^64`.
///
/// The product is four blocks of eight rows (`asm/mul8.s`, the reduction block's generator
/// in its `mul` form): block `j0` adds `a[j0..j0 + 8] * b` to `t[j0..j0 + 40]` with the same
/// eight-limb register window sliding over four 8-limb chunks of `b`, storing each finished
/// limb. No carry leaves a block: `a[0..j0 + 8] * b` fits in `j0 + 40` limbs.
///
/// # Safety
/// The CPU supports BMI2 and ADX.
#[target_feature(enable = "bmi2,adx")]
pub(crate) unsafe fn mul(a: &Limbs, b: &Limbs, m: &Modulus) -> Limbs {
    let mut buf = [0u64; MUL_BUF];
    buf[BUF..BUF + LIMBS].copy_from_slice(a);
    let base = buf.as_mut_ptr();
    for block in 0..LIMBS / 8 {
        // SAFETY: with T = buf + 2 + 8 * block, the block reads and writes buf at T .. T + 40
        // (the product), reads T + 64 .. T + 72 (the copy of a) and writes T + 96 (scratch):
        // at most 2 + 24 + 96 = 122 < MUL_BUF, all inside `buf`, held exclusively. It reads
        // the 32 limbs of `b`. The registers it changes are all declared. BMI2/ADX as the
        // caller guarantees.
        unsafe {
            asm!(
                include_str!("../asm/mul8.s"),
                in("r14") base.add(2 + 8 * block),
                in("r15") b.as_ptr(),
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("r13") _,
                options(nostack),
            )
        };
    }
    let product: &mut [u64; BUF] = (&mut buf[..BUF])
        .try_into()
        .unwrap_or_else(|_| unreachable!("BUF <= MUL_BUF"));
    // SAFETY: the caller guarantees BMI2 and ADX.
    unsafe { reduce(product, m) }
}

/// `a * a * 2^-2048 mod p` for `a < p`, `p` odd, `n0 = -p^-1 mod 2^64`.
///
/// # Safety
/// The CPU supports BMI2 and ADX.
#[target_feature(enable = "bmi2,adx")]
pub(crate) unsafe fn sqr(a: &Limbs, m: &Modulus) -> Limbs {
    let mut buf = [0u64; BUF];
    // SAFETY: 2 < BUF: the product `t` starts 2 limbs into `buf` and has 64 limbs.
    let tp = unsafe { buf.as_mut_ptr().add(2) };
    let ap = a.as_ptr();
    // SAFETY: row j (0..31) reads a[j..32] and reads and writes t[2j+1..=j+32] (at most 63,
    // inside `t`, held exclusively); t[j + 32] is still 0 (row j - 1 ended at t[j + 31]). The
    // diagonal pass reads a[0..32] and rewrites t[0..64]. BMI2/ADX as the caller guarantees.
    unsafe {
        with_row_limbs!(off_diagonal_rows!(tp, ap));
        double_add_diagonal!(tp, ap);
    }
    // SAFETY: the caller guarantees BMI2 and ADX.
    unsafe { reduce(&mut buf, m) }
}
