//! Criterion benchmarks of the packet MAC paths (§2: HMAC-SHA256 over ciphertext ‖ BE64(pnum),
//! 1036 bytes per packet) for 64 KiB of payload = 64 packets per iteration:
//! - `packet_mac/hmac_crate`: the `hmac` crate, cloning the keyed state per packet (the code
//!   before the change).
//! - `packet_mac/pads_single`: precomputed ipad/opad SHA-256 states, one packet at a time
//!   (`sha2::compress256`, single-stream SHA-NI).
//! - `packet_mac/pads_batched_portable_x4`: the same grouped 4 at a time through
//!   `sha256-mb`'s portable backend (streams one after another: the batching alone).
//! - `packet_mac/pads_interleaved_x2`, `packet_mac/pads_interleaved_x4`: 2 or 4 packets in
//!   lockstep through the interleaved SHA-NI kernel (what `src/proto/packet.rs` uses).
//!
//! The pad-state HMAC here mirrors `packet.rs`'s private `MacKey`; a test-style check at start
//! asserts every path gives the `hmac` crate's tags. Throughput counts payload bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sha256_mb::{BLOCK_LEN, Backend, IV};

/// Ciphertext bytes per packet (§2).
const CT_LEN: usize = 1028;
/// Packets per iteration: 64 KiB of 1024-byte payloads.
const PACKETS: usize = 64;
/// Payload bytes per iteration.
const PAYLOAD: usize = PACKETS * 1024;
/// Whole inner blocks of ciphertext.
const WHOLE: usize = CT_LEN / BLOCK_LEN * BLOCK_LEN;

/// The keyed inner and outer states.
struct Pads {
    inner: [u32; 8],
    outer: [u32; 8],
}

fn pads(key: &[u8; 32]) -> Pads {
    let keyed = |pad: u8| {
        let mut block = [pad; BLOCK_LEN];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut s = IV;
        sha256_mb::compress(&mut s, &block);
        s
    };
    Pads {
        inner: keyed(0x36),
        outer: keyed(0x5c),
    }
}

fn last_inner_block(ct: &[u8], pnum: u64) -> [u8; BLOCK_LEN] {
    let mut b = [0u8; BLOCK_LEN];
    b[..CT_LEN - WHOLE].copy_from_slice(&ct[WHOLE..]);
    b[CT_LEN - WHOLE..][..8].copy_from_slice(&pnum.to_be_bytes());
    b[CT_LEN - WHOLE + 8] = 0x80;
    b[56..].copy_from_slice(&(((64 + CT_LEN + 8) as u64) * 8).to_be_bytes());
    b
}

fn outer_block(inner: &[u32; 8]) -> [u8; BLOCK_LEN] {
    let mut b = [0u8; BLOCK_LEN];
    for (d, w) in b.chunks_exact_mut(4).zip(inner) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    b[32] = 0x80;
    b[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    b
}

fn tag_of(state: &[u32; 8]) -> [u8; 32] {
    let mut t = [0u8; 32];
    for (d, w) in t.chunks_exact_mut(4).zip(state) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    t
}

/// Tags of `cts` (consecutive packet numbers from 0), `N` at a time with `compress_n`.
fn tags_grouped<const N: usize>(
    p: &Pads,
    cts: &[Vec<u8>],
    out: &mut [[u8; 32]],
    compress_n: impl Fn(&mut [[u32; 8]; N], [&[u8]; N]),
) {
    for (g, (group, tags)) in cts.chunks_exact(N).zip(out.chunks_exact_mut(N)).enumerate() {
        let mut st = [p.inner; N];
        compress_n(&mut st, core::array::from_fn(|i| &group[i][..WHOLE]));
        let last: [[u8; BLOCK_LEN]; N] =
            core::array::from_fn(|i| last_inner_block(&group[i], (g * N + i) as u64));
        compress_n(&mut st, core::array::from_fn(|i| &last[i][..]));
        let ob: [[u8; BLOCK_LEN]; N] = core::array::from_fn(|i| outer_block(&st[i]));
        let mut o = [p.outer; N];
        compress_n(&mut o, core::array::from_fn(|i| &ob[i][..]));
        for (t, s) in tags.iter_mut().zip(&o) {
            *t = tag_of(s);
        }
    }
}

fn single(p: &Pads, cts: &[Vec<u8>], out: &mut [[u8; 32]]) {
    tags_grouped::<1>(p, cts, out, |s, [b]| sha256_mb::compress(&mut s[0], b));
}

fn x2(backend: Backend, p: &Pads, cts: &[Vec<u8>], out: &mut [[u8; 32]]) {
    tags_grouped::<2>(p, cts, out, |s, b| {
        let [a, c] = s;
        backend.compress_x2([a, c], b);
    });
}

fn x4(backend: Backend, p: &Pads, cts: &[Vec<u8>], out: &mut [[u8; 32]]) {
    tags_grouped::<4>(p, cts, out, |s, b| {
        let [a, c, d, e] = s;
        backend.compress_x4([a, c, d, e], b);
    });
}

fn hmac_crate(key: &Hmac<Sha256>, cts: &[Vec<u8>], out: &mut [[u8; 32]]) {
    for (pnum, (ct, t)) in cts.iter().zip(out).enumerate() {
        let mut m = key.clone();
        m.update(ct);
        m.update(&(pnum as u64).to_be_bytes());
        *t = m.finalize().into_bytes().into();
    }
}

fn packet_mac(c: &mut Criterion) {
    let key = [0x42u8; 32];
    let p = pads(&key);
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    let cts: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| (0..CT_LEN).map(|j| (i * 131 + j * 7) as u8).collect())
        .collect();
    let fast = Backend::detect();
    if !fast.is_interleaved() {
        eprintln!("note: no SHA-NI here; the interleaved rows run the portable fallback");
    }

    let mut want = vec![[0u8; 32]; PACKETS];
    hmac_crate(&keyed, &cts, &mut want);
    let mut got = vec![[0u8; 32]; PACKETS];
    single(&p, &cts, &mut got);
    assert_eq!(got, want, "pads_single");
    x2(fast, &p, &cts, &mut got);
    assert_eq!(got, want, "x2");
    x4(fast, &p, &cts, &mut got);
    assert_eq!(got, want, "x4");
    x4(Backend::portable(), &p, &cts, &mut got);
    assert_eq!(got, want, "portable x4");

    let mut g = c.benchmark_group("packet_mac");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    g.bench_function("hmac_crate", |b| {
        b.iter(|| hmac_crate(&keyed, black_box(&cts), &mut got));
    });
    g.bench_function("pads_single", |b| {
        b.iter(|| single(&p, black_box(&cts), &mut got));
    });
    g.bench_function("pads_batched_portable_x4", |b| {
        b.iter(|| x4(Backend::portable(), &p, black_box(&cts), &mut got));
    });
    g.bench_function("pads_interleaved_x2", |b| {
        b.iter(|| x2(fast, &p, black_box(&cts), &mut got));
    });
    g.bench_function("pads_interleaved_x4", |b| {
        b.iter(|| x4(fast, &p, black_box(&cts), &mut got));
    });
    g.finish();
}

/// Short runs, as in benches/proto.rs.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

/// The suite; `criterion_group!` generates an undocumented `pub fn`, hence the allow.
mod suite {
    #![allow(missing_docs, unreachable_pub)]
    use super::{config, packet_mac};
    criterion::criterion_group! {
        name = benches;
        config = config();
        targets = packet_mac
    }
}
criterion_main!(suite::benches);
