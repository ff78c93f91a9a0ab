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
//! - `keystream/*`: the receiver's AES-256-CTR work for the same 64 packets (length field,
//!   then the 1024-byte payload): `open_seek_twice` (one CTR instance, seek to block 64 for
//!   the length field, seek back to 0: the code before the change), `open_len_block` (the
//!   length field's keystream block encrypted directly, then CTR from 0), and
//!   `open_two_packets_one_pass` (the counter blocks of 2 packets, 130, through one
//!   `encrypt_blocks` call, then XOR).
//! - `keystream/ctr_crate_open`, `keystream/kernel_open_{portable,aes-ni,vaes}`: the same
//!   receiver work through `crates/aes-ctr-x86` (what `src/proto/packet.rs` uses), on each
//!   backend this CPU has (`portable` = the `aes` + `ctr` crates behind the same API).
//!
//! - `packet_mac/many_<backend>_g<N>`: `Backend::compress_many` in groups of N packets on
//!   every backend this CPU has (`avx512_x16…`: the 16-lane AVX-512 kernel, `avx2_x8`: the
//!   8-lane AVX2 one; `g12`: a partly empty 16-lane call each time, `g11`: SHA-NI pairs, the
//!   two sides of `AVX512_MIN_STREAMS`).
//!
//! The pad-state HMAC here mirrors `packet.rs`'s private `MacKey`; a test-style check at start
//! asserts every path gives the `hmac` crate's tags. Throughput counts payload bytes.

mod common;

use std::hint::black_box;

use aes::Aes256Enc;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher, StreamCipherSeek};
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

/// Tags of `cts` through `compress_many`, `group` packets per call (the last call may be
/// smaller), as `src/proto/packet.rs` does for a run.
fn many(backend: Backend, group: usize, p: &Pads, cts: &[Vec<u8>], out: &mut [[u8; 32]]) {
    for (g, (chunk, tags)) in cts.chunks(group).zip(out.chunks_mut(group)).enumerate() {
        let n = chunk.len();
        let mut st = vec![p.inner; n];
        let whole: Vec<&[u8]> = chunk.iter().map(|c| &c[..WHOLE]).collect();
        backend.compress_many(&mut st, &whole);
        let last: Vec<[u8; BLOCK_LEN]> = (0..n)
            .map(|i| last_inner_block(&chunk[i], (g * group + i) as u64))
            .collect();
        let last_refs: Vec<&[u8]> = last.iter().map(|b| &b[..]).collect();
        backend.compress_many(&mut st, &last_refs);
        let ob: Vec<[u8; BLOCK_LEN]> = st.iter().map(outer_block).collect();
        let ob_refs: Vec<&[u8]> = ob.iter().map(|b| &b[..]).collect();
        let mut o = vec![p.outer; n];
        backend.compress_many(&mut o, &ob_refs);
        for (t, s) in tags.iter_mut().zip(&o) {
            *t = tag_of(s);
        }
    }
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
    for backend in Backend::available() {
        for group in [1, 2, 8, 15, 16] {
            got.fill([0; 32]);
            many(backend, group, &p, &cts, &mut got);
            assert_eq!(got, want, "{} in groups of {group}", backend.name());
        }
    }

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
    // `compress_many` on every backend this CPU has, in groups of 16 packets (the relay's
    // MAC_GROUP) and, for the 16-lane kernel, of 12 (AVX512_MIN_STREAMS: the smallest group
    // that still gets a partly empty 16-lane call) and 11 (the largest that goes to SHA-NI).
    for backend in Backend::available() {
        let groups: &[usize] = if backend.lanes() == 16 {
            &[16, 12, 11]
        } else {
            &[16]
        };
        for &group in groups {
            let name = format!("many_{}_g{group}", backend.name().replace(' ', "_"));
            g.bench_function(name, |b| {
                b.iter(|| many(backend, group, &p, black_box(&cts), &mut got));
            });
        }
    }
    g.finish();
}

/// AES blocks per packet's ciphertext (1028 bytes → 65 blocks, the last one for 4 bytes).
const CT_BLOCKS: usize = CT_LEN.div_ceil(16);

fn counter_block(pnum: u64, i: u64) -> aes::Block {
    let mut b = aes::Block::default();
    b[..8].copy_from_slice(&pnum.to_be_bytes());
    b[8..].copy_from_slice(&i.to_be_bytes());
    b
}

/// `open_seek_twice`: the receiver's keystream as before the change.
fn open_seek_twice(aes: &Aes256Enc, cts: &[Vec<u8>], out: &mut [u8]) -> u32 {
    let mut lens = 0;
    for ((pnum, ct), dst) in cts.iter().enumerate().zip(out.chunks_exact_mut(1024)) {
        let iv = counter_block(pnum as u64, 0);
        let mut ks = ctr::Ctr128BE::<&Aes256Enc>::from_core(ctr::CtrCore::inner_iv_init(aes, &iv));
        ks.seek(1024u64);
        let mut len = [0u8; 4];
        ks.apply_keystream_b2b(&ct[1024..], &mut len)
            .expect("4 bytes");
        lens ^= u32::from_be_bytes(len);
        ks.seek(0u64);
        ks.apply_keystream_b2b(&ct[..1024], dst)
            .expect("1024 bytes");
    }
    lens
}

/// `open_len_block`: the length field's block encrypted on its own, then CTR from block 0.
fn open_len_block(aes: &Aes256Enc, cts: &[Vec<u8>], out: &mut [u8]) -> u32 {
    let mut lens = 0;
    for ((pnum, ct), dst) in cts.iter().enumerate().zip(out.chunks_exact_mut(1024)) {
        let mut blk = counter_block(pnum as u64, 64);
        aes.encrypt_block(&mut blk);
        let mut len = [0u8; 4];
        for (l, (c, k)) in len.iter_mut().zip(ct[1024..].iter().zip(&blk[..4])) {
            *l = c ^ k;
        }
        lens ^= u32::from_be_bytes(len);
        let iv = counter_block(pnum as u64, 0);
        let mut ks = ctr::Ctr128BE::<&Aes256Enc>::from_core(ctr::CtrCore::inner_iv_init(aes, &iv));
        ks.apply_keystream_b2b(&ct[..1024], dst)
            .expect("1024 bytes");
    }
    lens
}

/// `open_two_packets_one_pass`: all 130 counter blocks of 2 packets in one `encrypt_blocks`.
fn open_two_packets_one_pass(aes: &Aes256Enc, cts: &[Vec<u8>], out: &mut [u8]) -> u32 {
    let mut lens = 0;
    let mut ks = vec![aes::Block::default(); 2 * CT_BLOCKS];
    for (g, (pair, dst)) in cts
        .chunks_exact(2)
        .zip(out.chunks_exact_mut(2048))
        .enumerate()
    {
        for (j, b) in ks.iter_mut().enumerate() {
            *b = counter_block((2 * g + j / CT_BLOCKS) as u64, (j % CT_BLOCKS) as u64);
        }
        aes.encrypt_blocks(&mut ks);
        for (p, (ct, d)) in pair.iter().zip(dst.chunks_exact_mut(1024)).enumerate() {
            let blocks = &ks[p * CT_BLOCKS..(p + 1) * CT_BLOCKS];
            let mut len = [0u8; 4];
            for (l, (c, k)) in len.iter_mut().zip(ct[1024..].iter().zip(&blocks[64][..4])) {
                *l = c ^ k;
            }
            lens ^= u32::from_be_bytes(len);
            for ((d, c), k) in d
                .chunks_exact_mut(16)
                .zip(ct[..1024].chunks_exact(16))
                .zip(blocks)
            {
                let c = u128::from_ne_bytes(c.try_into().expect("16 bytes"));
                let k = u128::from_ne_bytes((*k).into());
                d.copy_from_slice(&(c ^ k).to_ne_bytes());
            }
        }
    }
    lens
}

/// The receiver's keystream through `aes_ctr_x86` (length field at block 64, then payload).
fn kernel_open(key: &aes_ctr_x86::Aes256CtrKey, cts: &[Vec<u8>], out: &mut [u8]) -> u32 {
    let mut lens = 0;
    for ((pnum, ct), dst) in cts.iter().enumerate().zip(out.chunks_exact_mut(1024)) {
        let mut len = [0u8; 4];
        key.apply_keystream_b2b(pnum as u64, 64, &ct[1024..], &mut len);
        lens ^= u32::from_be_bytes(len);
        key.apply_keystream_b2b(pnum as u64, 0, &ct[..1024], dst);
    }
    lens
}

fn keystream(c: &mut Criterion) {
    let aes = Aes256Enc::new(&[7u8; 32].into());
    let cts: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| (0..CT_LEN).map(|j| (i * 131 + j * 7) as u8).collect())
        .collect();
    let (mut a, mut b, mut d) = (vec![0u8; PAYLOAD], vec![0u8; PAYLOAD], vec![0u8; PAYLOAD]);
    let la = open_seek_twice(&aes, &cts, &mut a);
    assert_eq!(open_len_block(&aes, &cts, &mut b), la);
    assert_eq!(open_two_packets_one_pass(&aes, &cts, &mut d), la);
    assert!(a == b && a == d, "every keystream path decrypts the same");
    let kernels: Vec<aes_ctr_x86::Aes256CtrKey> = aes_ctr_x86::Backend::available()
        .into_iter()
        .map(|be| aes_ctr_x86::Aes256CtrKey::with_backend(&[7u8; 32], be))
        .collect();
    for k in &kernels {
        let mut e = vec![0u8; PAYLOAD];
        assert_eq!(kernel_open(k, &cts, &mut e), la);
        assert!(e == a, "{} decrypts the same", k.backend().name());
    }

    let mut g = c.benchmark_group("keystream");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    g.bench_function("open_seek_twice", |bch| {
        bch.iter(|| open_seek_twice(&aes, black_box(&cts), &mut a));
    });
    g.bench_function("open_len_block", |bch| {
        bch.iter(|| open_len_block(&aes, black_box(&cts), &mut a));
    });
    g.bench_function("open_two_packets_one_pass", |bch| {
        bch.iter(|| open_two_packets_one_pass(&aes, black_box(&cts), &mut a));
    });
    // The ctr crate and the kernels alternate (twice) so drift hits both.
    for round in 0..2 {
        g.bench_function(format!("ctr_crate_open/{round}"), |bch| {
            bch.iter(|| open_len_block(&aes, black_box(&cts), &mut a));
        });
        for k in &kernels {
            g.bench_function(
                format!("kernel_open_{}/{round}", k.backend().name()),
                |bch| {
                    bch.iter(|| kernel_open(k, black_box(&cts), &mut a));
                },
            );
        }
    }
    g.finish();
}

/// The suite; `criterion_group!` generates an undocumented `pub fn`, hence the allow.
mod suite {
    #![allow(missing_docs, unreachable_pub)]
    use super::{keystream, packet_mac};
    criterion::criterion_group! {
        name = benches;
        config = super::common::config();
        targets = packet_mac, keystream
    }
}
criterion_main!(suite::benches);
