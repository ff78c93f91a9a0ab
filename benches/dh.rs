//! Group-14 Diffie-Hellman (§1.5) timings: the Montgomery multiplication on each arithmetic
//! (portable Rust, BMI2/ADX kernel), keygen strategies, shared-secret window sizes, and a full
//! handshake side (keygen + shared secret).
//!
//! Run with `cargo bench --bench dh -- --warm-up-time 1 --measurement-time 3`. Names carry the
//! arithmetic: `portable` or `adx` (the latter only on CPUs with BMI2 and ADX).

#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use spiperelay::proto::dh::internals::{
    Arith, FixedBaseTable, MONT_TWO, public_from_private_with, public_with_window,
    shared_secret_with, shared_with_window,
};
use spiperelay::proto::dh::{public_from_private, shared_secret};

const PRIV_A: [u8; 32] = [0xA5; 32];
const PRIV_B: [u8; 32] = [0x3C; 32];

fn montgomery(c: &mut Criterion) {
    let a = Arith::Portable.mul(&MONT_TWO, &MONT_TWO);
    let b = Arith::Portable.sqr(&a);
    let mut g = c.benchmark_group("montgomery");
    for arith in Arith::available() {
        g.bench_function(format!("{}_mul", arith.name()), |bch| {
            bch.iter(|| arith.mul(black_box(&a), black_box(&b)))
        });
        g.bench_function(format!("{}_sqr", arith.name()), |bch| {
            bch.iter(|| arith.sqr(black_box(&a)))
        });
    }
    g.finish();
}

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("keygen");
    let t4 = FixedBaseTable::<4>::new();
    let t5 = FixedBaseTable::<5>::new();
    let t6 = FixedBaseTable::<6>::new();
    let t7 = FixedBaseTable::<7>::new();
    for arith in Arith::available() {
        let n = arith.name();
        g.bench_function(format!("{n}_fixed_base_table_w4"), |b| {
            b.iter(|| t4.public_with(arith, black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_fixed_base_table_w5"), |b| {
            b.iter(|| t5.public_with(arith, black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_fixed_base_table_w6"), |b| {
            b.iter(|| t6.public_with(arith, black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_fixed_base_table_w7"), |b| {
            b.iter(|| t7.public_with(arith, black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_generic_window_w5"), |b| {
            b.iter(|| public_with_window::<32>(arith, black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_public_from_private"), |b| {
            b.iter(|| public_from_private_with(arith, black_box(&PRIV_A)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("keygen_table_build");
    g.sample_size(10);
    g.bench_function("w6", |b| b.iter(FixedBaseTable::<6>::new));
    g.finish();
}

fn shared(c: &mut Criterion) {
    let peer = public_from_private(&PRIV_B);
    let mut g = c.benchmark_group("shared");
    for arith in Arith::available() {
        let n = arith.name();
        g.bench_function(format!("{n}_window_w3"), |b| {
            b.iter(|| shared_with_window::<8>(arith, black_box(&peer), black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_window_w4"), |b| {
            b.iter(|| shared_with_window::<16>(arith, black_box(&peer), black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_window_w5"), |b| {
            b.iter(|| shared_with_window::<32>(arith, black_box(&peer), black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_window_w6"), |b| {
            b.iter(|| shared_with_window::<64>(arith, black_box(&peer), black_box(&PRIV_A)))
        });
        g.bench_function(format!("{n}_shared_secret"), |b| {
            b.iter(|| shared_secret_with(arith, black_box(&peer), black_box(&PRIV_A)))
        });
    }
    g.finish();
}

fn side(c: &mut Criterion) {
    let peer = public_from_private(&PRIV_B);
    let mut g = c.benchmark_group("side");
    g.bench_function("keygen_plus_shared", |b| {
        b.iter(|| {
            let y = public_from_private(black_box(&PRIV_A));
            let s = shared_secret(black_box(&peer), black_box(&PRIV_A));
            (y, s)
        })
    });
    g.finish();
}

criterion_group!(benches, montgomery, keygen, shared, side);
criterion_main!(benches);
