//! Tests for group-14 Diffie-Hellman (§1.5) against `num-bigint` and the vectors of §6.

use super::bignum::{P, R2};
use super::internals::{
    FixedBaseTable, public_from_private_with, public_with_window, shared_secret_with,
    shared_with_window,
};
use super::*;
use num_bigint::BigUint;
use sha2::{Digest, Sha256};

/// Deterministic xorshift64* generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        out
    }
}

fn p() -> BigUint {
    BigUint::from_bytes_be(&GROUP14_P)
}

fn big(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

fn be256(n: &BigUint) -> [u8; DH_PUBLIC_LEN] {
    let raw = n.to_bytes_be();
    assert!(raw.len() <= DH_PUBLIC_LEN);
    let mut out = [0u8; DH_PUBLIC_LEN];
    out[DH_PUBLIC_LEN - raw.len()..].copy_from_slice(&raw);
    out
}

fn limbs_big(l: &Limbs) -> BigUint {
    big(&to_be_bytes(l))
}

fn big_limbs(n: &BigUint) -> Limbs {
    from_be_bytes(&be256(n))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn exponent_big(private: &[u8; DH_PRIVATE_LEN]) -> BigUint {
    (BigUint::from(1u8) << EXP_TOP_BIT) + big(private)
}

/// Interesting values below p: edges plus deterministic pseudo-random ones (reduced mod p).
fn sample_values(rng: &mut Rng, random: usize) -> Vec<BigUint> {
    let p = p();
    let one = BigUint::from(1u8);
    let mut high = [0xFFu8; DH_PUBLIC_LEN];
    high[8] = 0x00; // just below p's top bytes FF..FF C9..
    let mut v = vec![
        BigUint::from(0u8),
        one.clone(),
        BigUint::from(2u8),
        &p - &one,
        &p - 2u8,
        big(&high) % &p,
        (BigUint::from(1u8) << 2047usize) + 12345u32,
        (BigUint::from(1u8) << 2048usize) - &p, // R mod p
    ];
    for _ in 0..random {
        v.push(big(&rng.bytes::<DH_PUBLIC_LEN>()) % &p);
    }
    v
}

fn sample_privates(rng: &mut Rng, random: usize) -> Vec<[u8; DH_PRIVATE_LEN]> {
    let mut v = vec![
        [0u8; DH_PRIVATE_LEN],
        [0xFF; DH_PRIVATE_LEN],
        [0x01; DH_PRIVATE_LEN],
    ];
    let mut one_bit = [0u8; DH_PRIVATE_LEN];
    one_bit[0] = 0x80;
    v.push(one_bit);
    for _ in 0..random {
        v.push(rng.bytes());
    }
    v
}

/// Every Montgomery arithmetic this CPU has (portable, and the BMI2/ADX kernel if detected).
fn arith_all() -> Vec<Arith> {
    let v = Arith::available();
    if v.len() < 2 {
        eprintln!("note: this CPU lacks BMI2 or ADX; only the portable arithmetic is tested");
    }
    v
}

#[test]
fn kernel_and_portable_agree_on_full_exponentiations() {
    // Chained exponentiations: each shared secret is the next peer value, so a difference in
    // any of the ~330 multiplications per step propagates to the compared output.
    let mut rng = Rng(0x5EED_0FAD);
    let mut peer_p = public_from_private_with(Arith::Portable, &rng.bytes());
    let mut peer_k = peer_p;
    for arith in Arith::available().into_iter().skip(1) {
        assert_eq!(
            Arith::detect(),
            arith,
            "detect picks the kernel when available"
        );
        for _ in 0..24 {
            let private: [u8; DH_PRIVATE_LEN] = rng.bytes();
            let y = public_from_private_with(Arith::Portable, &private);
            assert_eq!(public_from_private_with(arith, &private), y, "keygen");
            assert_eq!(
                public_with_window::<32>(arith, &private),
                y,
                "generic keygen"
            );
            peer_p = shared_secret_with(Arith::Portable, &peer_p, &private);
            peer_k = shared_secret_with(arith, &peer_k, &private);
            assert_eq!(peer_k, peer_p, "shared secret");
            assert_eq!(shared_with_window::<64>(arith, &peer_k, &private), {
                shared_with_window::<8>(Arith::Portable, &peer_p, &private)
            });
        }
    }
}

#[test]
fn group14_prime_is_the_rfc3526_safe_prime() {
    let hex_p = hex(&GROUP14_P).to_uppercase();
    assert!(hex_p.starts_with("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B"));
    assert!(hex_p.ends_with("8AACAA68FFFFFFFFFFFFFFFF"));
    let p = p();
    let one = BigUint::from(1u8);
    assert_eq!(p.bits(), 2048);
    // Fermat tests with bases 2 and 3 on p and on q = (p - 1) / 2.
    let q = (&p - &one) >> 1u8;
    for b in [2u8, 3] {
        let b = BigUint::from(b);
        assert_eq!(b.modpow(&(&p - &one), &p), one);
        assert_eq!(b.modpow(&(&q - &one), &q), one);
    }
}

#[test]
fn is_below_p_boundaries() {
    let p = p();
    let one = BigUint::from(1u8);
    assert!(is_below_p(&[0; DH_PUBLIC_LEN]));
    assert!(is_below_p(&be256(&one)));
    assert!(is_below_p(&be256(&(&p - &one))));
    assert!(!is_below_p(&GROUP14_P));
    assert!(!is_below_p(&be256(&(&p + &one))));
    assert!(!is_below_p(&[0xFF; DH_PUBLIC_LEN]));
}

#[test]
fn limb_conversions_and_constants() {
    let p = p();
    let r = BigUint::from(1u8) << 2048usize;
    assert_eq!(limbs_big(&P), p);
    assert_eq!(P[0], u64::MAX, "n0' = 1 relies on this");
    assert_eq!(P[LIMBS - 1], u64::MAX);
    assert_eq!(limbs_big(&ONE), &r % &p);
    assert_eq!(limbs_big(&TWO), (&r * 2u8) % &p);
    assert_eq!(limbs_big(&R2), (&r * &r) % &p);
    let bytes: [u8; DH_PUBLIC_LEN] = Rng(7).bytes();
    assert_eq!(to_be_bytes(&from_be_bytes(&bytes)), bytes);
}

#[test]
fn montgomery_mul_and_sqr_match_num_bigint() {
    let p = p();
    let r_inv = (BigUint::from(1u8) << 2048usize).modpow(&(&p - 2u8), &p);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = sample_values(&mut rng, 12);
    for arith in arith_all() {
        let name = arith.name();
        for a in &values {
            let al = big_limbs(a);
            let want_sqr = (a * a * &r_inv) % &p;
            assert_eq!(limbs_big(&arith.sqr(&al)), want_sqr, "{name} sqr {a:x}");
            assert_eq!(limbs_big(&arith.to_mont(&al)), (a << 2048usize) % &p);
            assert_eq!(limbs_big(&arith.out_of_mont(&al)), (a * &r_inv) % &p);
            for b in &values {
                let want = (a * b * &r_inv) % &p;
                assert_eq!(
                    limbs_big(&arith.mul(&al, &big_limbs(b))),
                    want,
                    "{name} mul {a:x} {b:x}"
                );
            }
        }
    }
}

#[test]
fn ct_lookup_selects_each_entry() {
    let mut rng = Rng(3);
    let table: Vec<Limbs> = (0..16).map(|_| from_be_bytes(&rng.bytes())).collect();
    for (i, e) in table.iter().enumerate() {
        assert_eq!(ct_lookup(&table, i as u64), *e);
    }
    assert_eq!(ct_lookup(&table, 16), [0u64; LIMBS]);
}

#[test]
fn keygen_paths_match_num_bigint() {
    let p = p();
    let two = BigUint::from(2u8);
    let t4 = FixedBaseTable::<4>::new();
    let t5 = FixedBaseTable::<5>::new();
    let t6 = FixedBaseTable::<6>::new();
    let mut rng = Rng(0x1234_5678);
    for private in sample_privates(&mut rng, 6) {
        let want = be256(&two.modpow(&exponent_big(&private), &p));
        assert_eq!(public_from_private(&private), want);
        assert_eq!(t4.public(&private), want);
        assert_eq!(t5.public(&private), want);
        assert_eq!(t6.public(&private), want);
        for arith in arith_all() {
            assert_eq!(public_with_window::<16>(arith, &private), want);
            assert_eq!(public_with_window::<32>(arith, &private), want);
            assert_eq!(public_from_private_with(arith, &private), want);
        }
    }
}

#[test]
fn shared_secret_paths_match_num_bigint() {
    let p = p();
    let mut rng = Rng(0xDEAD_BEEF);
    let privates = sample_privates(&mut rng, 2);
    for peer in sample_values(&mut rng, 2) {
        let peer_bytes = be256(&peer);
        for private in &privates {
            let want = be256(&peer.modpow(&exponent_big(private), &p));
            assert_eq!(shared_secret(&peer_bytes, private), want, "peer {peer:x}");
            for arith in arith_all() {
                let name = arith.name();
                assert_eq!(
                    shared_secret_with(arith, &peer_bytes, private),
                    want,
                    "{name}"
                );
                assert_eq!(shared_with_window::<2>(arith, &peer_bytes, private), want);
                assert_eq!(shared_with_window::<8>(arith, &peer_bytes, private), want);
                assert_eq!(shared_with_window::<16>(arith, &peer_bytes, private), want);
                assert_eq!(shared_with_window::<32>(arith, &peer_bytes, private), want);
                assert_eq!(shared_with_window::<64>(arith, &peer_bytes, private), want);
            }
        }
    }
}

#[test]
fn shared_secret_of_zero_and_one() {
    let mut one = [0u8; DH_PUBLIC_LEN];
    one[DH_PUBLIC_LEN - 1] = 1;
    for private in [
        [0u8; DH_PRIVATE_LEN],
        [0xFF; DH_PRIVATE_LEN],
        [0x5A; DH_PRIVATE_LEN],
    ] {
        assert_eq!(
            shared_secret(&[0; DH_PUBLIC_LEN], &private),
            [0; DH_PUBLIC_LEN]
        );
        assert_eq!(shared_secret(&one, &private), one);
    }
}

/// §6: PFS vector with `priv_C = 01×32`, `priv_S = 02×32`.
#[test]
fn known_answer_vectors() {
    let priv_c = [0x01u8; DH_PRIVATE_LEN];
    let priv_s = [0x02u8; DH_PRIVATE_LEN];
    let y_c = public_from_private(&priv_c);
    let y_s = public_from_private(&priv_s);
    assert_eq!(hex(&y_c[..8]), "1de6312672879dad");
    assert_eq!(
        hex(&Sha256::digest(y_c)),
        "07520c5c5c6c85bc58e73bf05ef3743c6866b38005ff2de772e68d39f49e2b07"
    );
    assert_eq!(
        hex(&Sha256::digest(y_s)),
        "716711482ac34ccdc681e1ffcd8fada655a8e31bfbd215955d21eef748d6c265"
    );
    let sc_client = shared_secret(&y_s, &priv_c);
    let sc_server = shared_secret(&y_c, &priv_s);
    assert_eq!(sc_client, sc_server);
    assert_eq!(
        hex(&Sha256::digest(sc_client)),
        "ec990086a7aabdab65709be9357e4869b68e55702a367e2ae97c88d6137c92f8"
    );
}
