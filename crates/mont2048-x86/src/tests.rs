//! The kernels against `num-bigint`: random and edge operands, for the RFC 3526 group-14 prime
//! (the modulus spiperelay uses), for random odd 2048-bit moduli, and for carry-heavy moduli.

use super::*;
use num_bigint::BigUint;
use proptest::prelude::*;

/// The RFC 3526 group-14 prime (big-endian hex); its low limb is 2^64 - 1, so n0' = 1.
const GROUP14_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

fn group14() -> BigUint {
    BigUint::parse_bytes(GROUP14_HEX.as_bytes(), 16).expect("hex")
}

fn to_big(l: &Limbs) -> BigUint {
    BigUint::from_slice(
        &l.iter()
            .flat_map(|w| [*w as u32, (*w >> 32) as u32])
            .collect::<Vec<u32>>(),
    )
}

fn to_limbs(n: &BigUint) -> Limbs {
    let digits = n.to_u64_digits();
    assert!(digits.len() <= LIMBS, "value exceeds 2048 bits");
    let mut out = [0u64; LIMBS];
    out[..digits.len()].copy_from_slice(&digits);
    out
}

fn modulus(p: &BigUint) -> Modulus {
    Modulus::new(&to_limbs(p)).expect("odd modulus")
}

/// The kernel, or `None` (with a note) on a CPU without BMI2/ADX, where there is nothing to test.
fn kernel() -> Option<Kernel> {
    let k = Kernel::detect();
    if k.is_none() {
        eprintln!("note: this CPU lacks BMI2 or ADX; the kernel is not tested here");
    }
    k
}

/// Checks mul(a, b), sqr(a), sqr(b) against the definition: the result r is below p and
/// r * 2^2048 = a * b (mod p).
fn check(k: Kernel, m: &Modulus, a: &BigUint, b: &BigUint) {
    let p = to_big(m.limbs());
    let (al, bl) = (to_limbs(a), to_limbs(b));
    let want = |x: &BigUint, y: &BigUint| (x * y) % &p;
    let mul = to_big(&k.mul(&al, &bl, m));
    assert!(mul < p, "mul not reduced: {a:x} * {b:x} mod {p:x}");
    assert_eq!(
        (&mul << 2048usize) % &p,
        want(a, b),
        "mul {a:x} * {b:x} mod {p:x}"
    );
    for (x, xl) in [(a, &al), (b, &bl)] {
        let sqr = k.sqr(xl, m);
        assert_eq!(
            sqr,
            k.mul(xl, xl, m),
            "sqr != mul(a, a) for {x:x} mod {p:x}"
        );
        assert!(to_big(&sqr) < p);
        assert_eq!(
            (to_big(&sqr) << 2048usize) % &p,
            want(x, x),
            "sqr {x:x} mod {p:x}"
        );
    }
}

/// Edge operands below `p`: 0, 1, 2, p-1, p-2, runs of all-ones limbs and alternating
/// all-ones/zero limbs (reduced mod p), and `2^2048 mod p`.
fn edge_values(p: &BigUint) -> Vec<BigUint> {
    let one = BigUint::from(1u8);
    let mut v = vec![
        BigUint::from(0u8),
        one.clone(),
        BigUint::from(2u8),
        p - &one,
        p - 2u8,
        (&one << 2048usize) % p,
    ];
    for k in [1usize, 2, 16, 31, 32] {
        v.push(((&one << (64 * k)) - &one) % p);
    }
    let alternating: Limbs = core::array::from_fn(|i| if i % 2 == 0 { u64::MAX } else { 0 });
    v.push(to_big(&alternating) % p);
    let inverse: Limbs = core::array::from_fn(|i| if i % 2 == 1 { u64::MAX } else { 0 });
    v.push(to_big(&inverse) % p);
    v
}

fn check_edges(k: Kernel, p: &BigUint) {
    let m = modulus(p);
    let values = edge_values(p);
    for a in &values {
        for b in &values {
            check(k, &m, a, b);
        }
    }
}

#[test]
fn group14_edge_values() {
    let Some(k) = kernel() else { return };
    let p = group14();
    assert_eq!(modulus(&p).n0(), 1, "group-14 low limb is 2^64 - 1");
    check_edges(k, &p);
}

#[test]
fn carry_heavy_moduli_edge_values() {
    // 2^2048 - 1 (all limbs ones, n0' = 1), 2^2047 + 1 (top bit only), and a modulus far
    // below 2^2048 (top limb 1): the kernel is generic over any odd modulus.
    let Some(k) = kernel() else { return };
    let one = BigUint::from(1u8);
    for p in [
        (&one << 2048usize) - &one,
        (&one << 2047usize) + &one,
        (&one << 1984usize) + BigUint::from(0x1234_5677u32),
    ] {
        check_edges(k, &p);
    }
}

#[test]
fn modulus_constant() {
    assert_eq!(Modulus::new(&[0; LIMBS]), None);
    let mut even = [u64::MAX; LIMBS];
    even[0] = 2;
    assert_eq!(Modulus::new(&even), None);
    for p0 in [
        1u64,
        3,
        0xFFFF_FFFF_FFFF_FFFF,
        0x8000_0000_0000_0001,
        0x1234_5678_9ABC_DEF1,
    ] {
        let mut p = [0u64; LIMBS];
        p[0] = p0;
        let m = Modulus::new(&p).expect("odd");
        assert_eq!(
            m.n0().wrapping_mul(p0),
            u64::MAX,
            "n0' * p0 = -1 for {p0:#x}"
        );
        assert_eq!(m.limbs(), &p);
    }
}

fn limbs_strategy() -> impl Strategy<Value = Limbs> {
    proptest::array::uniform32(any::<u64>())
}

proptest! {
    #[test]
    fn group14_random_operands(a in limbs_strategy(), b in limbs_strategy()) {
        let Some(k) = kernel() else { return Ok(()) };
        let p = group14();
        check(k, &modulus(&p), &(to_big(&a) % &p), &(to_big(&b) % &p));
    }

    #[test]
    fn random_odd_modulus(p in limbs_strategy(), a in limbs_strategy(), b in limbs_strategy()) {
        let Some(k) = kernel() else { return Ok(()) };
        // A random odd 2048-bit modulus: bit 0 and bit 2047 set.
        let mut p = p;
        p[0] |= 1;
        p[LIMBS - 1] |= 1 << 63;
        let pb = to_big(&p);
        check(k, &modulus(&pb), &(to_big(&a) % &pb), &(to_big(&b) % &pb));
    }
}

/// The committed `asm/*.s` are exactly what `asm/gen_reduce8.py` writes, so an edit to either
/// cannot silently drift from the other. Needs `python3` (on every machine here; CI installs
/// nothing for it): without it the test says SKIP, except under `CI=true`, where it fails.
#[test]
fn committed_asm_matches_its_generator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("asm");
    for (args, file) in [
        (&[][..], "reduce8.s"),
        (&["mul"][..], "mul8.s"),
        (&["sqr", "0"][..], "sqr8_0.s"),
        (&["sqr", "1"][..], "sqr8_1.s"),
        (&["sqr", "2"][..], "sqr8_2.s"),
        (&["sqr", "3"][..], "sqr8_3.s"),
    ] {
        let out = match std::process::Command::new("python3")
            .arg("gen_reduce8.py")
            .args(args)
            .current_dir(&dir)
            .output()
        {
            Ok(out) => out,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIP committed_asm_matches_its_generator: python3: {e}");
                return;
            }
            Err(e) => panic!("python3 is needed under CI: {e}"),
        };
        assert!(out.status.success(), "gen_reduce8.py {args:?}: {out:?}");
        let committed = std::fs::read(dir.join(file)).expect("committed asm");
        assert!(
            out.stdout == committed,
            "asm/{file} differs from `python3 gen_reduce8.py {}`; regenerate it",
            args.join(" ")
        );
    }
}
