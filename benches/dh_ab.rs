//! Interleaved A/B timing of group-14 DH on the portable arithmetic and the BMI2/ADX kernel, for
//! machines too busy for criterion's back-to-back runs: 25 rounds, each timing one batch of
//! every variant in turn, reporting per variant the median and minimum batch time and the
//! median over rounds of its time divided by the first variant's in the same round.
//!
//! Run with `cargo bench --bench dh_ab`. Without BMI2/ADX only the portable rows appear.

#![allow(missing_docs)]

use spiperelay::proto::dh::internals::{Arith, FixedBaseTable, MONT_TWO, shared_with_window};
use spiperelay::proto::dh::public_from_private;
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 25;

type Variant<'a> = (String, Box<dyn FnMut() + 'a>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `reps` calls of each variant per round, all variants in turn, `ROUNDS` times.
fn ab(group: &str, reps: u32, variants: &mut [Variant<'_>]) {
    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for _ in 0..ROUNDS {
        for (t, (_, f)) in times.iter_mut().zip(variants.iter_mut()) {
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(reps));
        }
    }
    for (t, (name, _)) in times.iter().zip(variants.iter()) {
        let ratio = median(t.iter().zip(&times[0]).map(|(a, b)| a / b).collect());
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{group}/{name}: median {:.3} µs, min {:.3} µs, ratio to {} {ratio:.3}",
            median(t.clone()),
            min,
            variants[0].0
        );
    }
}

/// A named variant whose closure evaluates `$e` (kept alive with `black_box`).
macro_rules! variant {
    ($name:expr, $e:expr) => {
        (
            String::from($name),
            Box::new(move || {
                black_box($e);
            }) as Box<dyn FnMut() + '_>,
        )
    };
}

fn main() {
    let a = Arith::Portable.mul(&MONT_TWO, &MONT_TWO);
    let b = Arith::Portable.sqr(&a);
    let all = Arith::available();
    let kernels: Vec<Arith> = all.iter().copied().skip(1).collect();

    let mut v: Vec<Variant<'_>> = all
        .iter()
        .map(|&ar| variant!(ar.name(), ar.mul(black_box(&a), black_box(&b))))
        .collect();
    ab("mont_mul", 3000, &mut v);

    let mut v: Vec<Variant<'_>> = all
        .iter()
        .map(|&ar| variant!(ar.name(), ar.sqr(black_box(&a))))
        .collect();
    ab("mont_sqr", 3000, &mut v);

    let peer = public_from_private(&[0x3C; 32]);
    let private = [0xA5u8; 32];
    let (peer, private) = (&peer, &private);
    let mut v: Vec<Variant<'_>> = vec![variant!(
        "portable_w4",
        shared_with_window::<16>(Arith::Portable, black_box(peer), private)
    )];
    for &ar in &kernels {
        let n = ar.name();
        v.push(variant!(
            format!("{n}_w3"),
            shared_with_window::<8>(ar, black_box(peer), private)
        ));
        v.push(variant!(
            format!("{n}_w4"),
            shared_with_window::<16>(ar, black_box(peer), private)
        ));
        v.push(variant!(
            format!("{n}_w5"),
            shared_with_window::<32>(ar, black_box(peer), private)
        ));
        v.push(variant!(
            format!("{n}_w6"),
            shared_with_window::<64>(ar, black_box(peer), private)
        ));
    }
    ab("shared", 20, &mut v);

    let (t5, t6, t7) = (
        FixedBaseTable::<5>::new(),
        FixedBaseTable::<6>::new(),
        FixedBaseTable::<7>::new(),
    );
    let (t5, t6, t7) = (&t5, &t6, &t7);
    let mut v: Vec<Variant<'_>> = vec![variant!(
        "portable_w6",
        t6.public_with(Arith::Portable, black_box(private))
    )];
    for &ar in &kernels {
        let n = ar.name();
        v.push(variant!(
            format!("{n}_w5"),
            t5.public_with(ar, black_box(private))
        ));
        v.push(variant!(
            format!("{n}_w6"),
            t6.public_with(ar, black_box(private))
        ));
        v.push(variant!(
            format!("{n}_w7"),
            t7.public_with(ar, black_box(private))
        ));
    }
    ab("keygen", 60, &mut v);
}
