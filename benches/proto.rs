//! Criterion benchmarks of the sans-IO protocol core (`src/proto`).
//!
//! Groups (every one reports `Throughput::Bytes`):
//! - `packet_seal/{1,64,1024}`, `packet_open/{1,64,1024}`: one packet, by payload size.
//! - `batch/seal_into`, `batch/seal_append`, `batch/open_append`, `batch/open_into`: 64 KiB of
//!   payload at once (`*_into` write into a reused buffer, `*_append` zero-fill a `Vec` first).
//! - `stream/encode_64k_reads`, `stream/decode_64k_chunks`: 1 MiB through [`Encoder`] in 64 KiB
//!   reads and through [`Decoder`] in 65536-byte chunks (not packet-aligned), appending to a
//!   `Vec`; `stream/encode_into_64k_reads`, `stream/decode_into_64k_chunks`: the same into one
//!   reused buffer per call, as the relay's pumps do.
//! - `primitives/*`: the two halves of a 1024-byte-payload packet alone (AES-256-CTR over 1028
//!   bytes with a fresh counter block, HMAC-SHA256 over 1036 bytes from the keyed state), to
//!   see where the time of a seal goes.
//! - `handshake_nopfs/f_both_sides`: a whole in-memory handshake with `-f` on both sides (no
//!   Diffie-Hellman), up to both sessions' encoder and decoder.
//! - `handshake_pfs/pfs_both_sides`: the same with an ephemeral group-14 key pair on each side,
//!   key generation included. It panics until `proto::dh` is implemented, so run the others with
//!   `cargo bench --bench proto -- '^(packet|batch|stream|primitives|handshake_nopfs)'`.
//! - `handshake_x25519/x25519_both_sides`: the `--x25519` mode (docs/protocol.md §5), a fresh X25519
//!   key pair on each side, key generation included.
//! - `handshake_pooled/{pfs,x25519}_both_sides`: the relay's pooled path: both key pairs come
//!   ready (as from `relay::pool::KeyPool`, generated in the untimed setup) and are handed to
//!   deferred handshakes when asked for, so only the shared secrets and derivations are timed.
//!
//! Throughput counts payload (plaintext) bytes, not wire bytes; the handshake counts the
//! 2 × 320 bytes both sides send.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_main};
use spiperelay::proto::crypt::{DhKeyPair, DhMode, Role};
use spiperelay::proto::handshake::{Exchange, Handshake, KeyKind, KeyPair, Session, Step};
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::proto::packet::{Opener, Sealer, sealed_len};
use spiperelay::proto::stream::{Decoder, Encoder};
use spiperelay::proto::x25519::X25519KeyPair;
use spiperelay::proto::{HANDSHAKE_LEN, MAX_PAYLOAD, PACKET_LEN};

/// Payload sizes of the single-packet benches.
const PACKET_SIZES: [usize; 3] = [1, 64, 1024];
/// Payload of the batch benches.
const BATCH_LEN: usize = 64 * 1024;
/// Payload of the stream benches.
const STREAM_LEN: usize = 1024 * 1024;
/// The relay's read size, which the encoder sees as one call.
const READ_LEN: usize = 64 * 1024;
/// The decoder's chunk size; 65536 is not a multiple of the 1060-byte packet.
const DECODE_CHUNK: usize = 65536;
/// Packets pre-sealed for the single-packet open bench (about 1 MiB of packets, in L2/L3).
const OPEN_RUN: usize = 1024;
/// 64 KiB batches pre-sealed for the batch open bench (1 MiB of payload).
const OPEN_BATCHES: usize = 16;

/// Deterministic filler bytes.
fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// Feeds `input` to `hs` and does what each returned step asks until it needs more input or
/// hands over its session; a key pair, when asked for, is taken from `pair` (once). Returns
/// what it handed out to send, and its session if it finished.
fn pump(
    hs: &mut Handshake,
    input: &[u8],
    pair: &mut Option<KeyPair>,
) -> (Vec<u8>, Option<Box<Session>>) {
    let (used, mut step) = hs.read(input).expect("handshake step");
    assert_eq!(used, input.len(), "the handshake consumes all it is sent");
    let mut out = Vec::new();
    loop {
        step = match step {
            Step::Send(bytes) => {
                let n = bytes.len();
                out.extend_from_slice(bytes);
                hs.sent(n).expect("sent")
            }
            Step::NeedKeyPair(_) => hs
                .provide_key_pair(pair.take().expect("one pair"))
                .expect("pair"),
            Step::Derive => hs.derive().expect("derive"),
            Step::NeedInput(_) => return (out, None),
            Step::Done(session) => return (out, Some(session)),
        };
    }
}

/// Runs both handshakes to completion in memory, handing each side its pair (if any) when it
/// asks, and returns the sessions (client, server). Panics if they do not finish.
fn drive_with(
    c: &mut Handshake,
    s: &mut Handshake,
    pairs: (Option<KeyPair>, Option<KeyPair>),
) -> (Session, Session) {
    let (mut cp, mut sp) = pairs;
    let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
    let (mut cs, mut ss) = (None, None);
    for _ in 0..4 {
        if cs.is_none() {
            (to_s, cs) = pump(c, &to_c, &mut cp);
        }
        if ss.is_none() {
            (to_c, ss) = pump(s, &to_s, &mut sp);
        }
        if let (Some(_), Some(_)) = (&cs, &ss) {
            break;
        }
    }
    match (cs, ss) {
        (Some(cs), Some(ss)) => (*cs, *ss),
        _ => panic!("handshake did not finish: {c:?} {s:?}"),
    }
}

/// Runs both handshakes (key pairs up front) to completion; see [`drive_with`].
fn drive(c: &mut Handshake, s: &mut Handshake) -> (Session, Session) {
    drive_with(c, s, (None, None))
}

/// A `-f` handshake between a client and a server sharing `keys`; returns (client, server).
fn nopfs_sessions(keys: &KeySet) -> (Session, Session) {
    let mut c = Handshake::new(Role::Client, keys.clone(), [1; 32], DhMode::NoPfs);
    let mut s = Handshake::new(Role::Server, keys.clone(), [2; 32], DhMode::NoPfs);
    drive(&mut c, &mut s)
}

/// The client's sealer and the server's opener for the client-to-server direction.
fn c2s() -> (Sealer, Opener) {
    let keys = KeySet::single(Key::from_key_file(b"bench key file"));
    let (c, s) = nopfs_sessions(&keys);
    (c.into_parts().0, s.into_parts().1)
}

/// Times `iters` calls of `op` over `items` in order, restarting from the first item with a
/// fresh copy of `start` after each full pass (outside the timed region). `op` returns whether
/// it succeeded; the total of failures is checked after timing, so a bench that silently
/// measured the failure path panics instead of reporting a number.
fn cyclic<T, S: Clone>(
    iters: u64,
    items: &[T],
    start: &S,
    mut op: impl FnMut(&mut S, &T) -> bool,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut remaining = iters;
    let mut failures = 0u64;
    while remaining > 0 {
        let n = remaining.min(items.len() as u64) as usize;
        let mut state = start.clone();
        let t = Instant::now();
        for item in &items[..n] {
            failures += u64::from(!op(&mut state, black_box(item)));
        }
        total += t.elapsed();
        remaining -= n as u64;
    }
    assert_eq!(failures, 0, "every operation must take the success path");
    total
}

/// `packet_seal/N` and `packet_open/N`: one packet per iteration.
fn packet(c: &mut Criterion) {
    let (sealer0, opener0) = c2s();

    let mut g = c.benchmark_group("packet_seal");
    for size in PACKET_SIZES {
        let payload = filler(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, payload| {
            let mut sealer = sealer0.clone();
            let mut out = [0u8; PACKET_LEN];
            b.iter(|| {
                sealer
                    .seal(black_box(payload), &mut out)
                    .expect("seal succeeds");
                black_box(&out);
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("packet_open");
    for size in PACKET_SIZES {
        let payload = filler(size);
        // A run of packets with consecutive packet numbers 0..OPEN_RUN.
        let mut sealer = sealer0.clone();
        let packets: Vec<[u8; PACKET_LEN]> = (0..OPEN_RUN)
            .map(|_| {
                let mut p = [0u8; PACKET_LEN];
                sealer.seal(&payload, &mut p).expect("seal succeeds");
                p
            })
            .collect();
        // Outside the timing: the whole run opens, with the right payload.
        let mut check = opener0.clone();
        let mut out = [0u8; MAX_PAYLOAD];
        for p in &packets {
            assert_eq!(check.open(p, &mut out), Ok(size));
            assert_eq!(&out[..size], &payload[..]);
        }
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut out = [0u8; MAX_PAYLOAD];
            b.iter_custom(|iters| {
                cyclic(iters, &packets, &opener0, |o, p| {
                    let r = o.open(p, &mut out);
                    black_box(&out);
                    r == Ok(size)
                })
            });
        });
    }
    g.finish();
}

/// `batch/*`: 64 KiB of payload (64 packets) per iteration.
fn batch(c: &mut Criterion) {
    let (sealer0, opener0) = c2s();
    let plain = filler(BATCH_LEN);
    let wire_len = sealed_len(BATCH_LEN);

    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(BATCH_LEN as u64));
    g.bench_function("seal_into", |b| {
        let mut sealer = sealer0.clone();
        let mut out = vec![0u8; wire_len];
        b.iter(|| {
            let n = sealer
                .seal_into(black_box(&plain), &mut out)
                .expect("seal succeeds");
            black_box((n, &out));
        });
    });
    g.bench_function("seal_append", |b| {
        let mut sealer = sealer0.clone();
        let mut out = Vec::with_capacity(wire_len);
        b.iter(|| {
            out.clear();
            sealer
                .seal_append(black_box(&plain), &mut out)
                .expect("seal succeeds");
            black_box(&out);
        });
    });

    // OPEN_BATCHES consecutive 64 KiB batches, opened in order from a fresh opener.
    let mut sealer = sealer0.clone();
    let batches: Vec<Vec<u8>> = (0..OPEN_BATCHES)
        .map(|_| {
            let mut v = Vec::new();
            sealer.seal_append(&plain, &mut v).expect("seal succeeds");
            v
        })
        .collect();
    let mut check = opener0.clone();
    for wire in &batches {
        let mut out = Vec::new();
        assert_eq!(check.open_append(wire, &mut out), Ok(BATCH_LEN));
        assert_eq!(out, plain);
    }
    g.bench_function("open_append", |b| {
        let mut out = Vec::with_capacity(BATCH_LEN + PACKET_LEN);
        b.iter_custom(|iters| {
            cyclic(iters, &batches, &opener0, |o, wire| {
                out.clear();
                let r = o.open_append(wire, &mut out);
                black_box(&out);
                r == Ok(BATCH_LEN)
            })
        });
    });
    g.bench_function("open_into", |b| {
        let mut out = vec![0u8; BATCH_LEN + PACKET_LEN];
        b.iter_custom(|iters| {
            cyclic(iters, &batches, &opener0, |o, wire| {
                let r = o.open_into(wire, &mut out);
                black_box(&out);
                r == Ok(BATCH_LEN)
            })
        });
    });
    g.finish();
}

/// `stream/*`: 1 MiB per iteration through the stream codec.
fn stream(c: &mut Criterion) {
    let (sealer0, opener0) = c2s();
    let plain = filler(STREAM_LEN);

    // The wire bytes of those 1 MiB as the relay would produce them (64 KiB reads).
    let mut wire = Vec::new();
    let mut enc = Encoder::new(sealer0.clone());
    for read in plain.chunks(READ_LEN) {
        enc.encode(read, &mut wire).expect("encode succeeds");
    }
    let mut dec = Decoder::new(opener0.clone());
    let mut check = Vec::new();
    for chunk in wire.chunks(DECODE_CHUNK) {
        dec.decode(chunk, &mut check).expect("decode succeeds");
    }
    assert_eq!(dec.finish(), Ok(()));
    assert_eq!(check, plain);

    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Bytes(STREAM_LEN as u64));
    g.bench_function("encode_64k_reads", |b| {
        let mut enc = Encoder::new(sealer0.clone());
        let mut out = Vec::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            for read in black_box(&plain).chunks(READ_LEN) {
                enc.encode(read, &mut out).expect("encode succeeds");
            }
            black_box(&out);
        });
    });
    g.bench_function("encode_into_64k_reads", |b| {
        let mut enc = Encoder::new(sealer0.clone());
        let mut out = vec![0u8; sealed_len(READ_LEN)];
        b.iter(|| {
            for read in black_box(&plain).chunks(READ_LEN) {
                let n = enc.encode_into(read, &mut out).expect("encode succeeds");
                black_box(&out[..n]);
            }
        });
    });
    g.bench_function("decode_into_64k_chunks", |b| {
        let mut out = vec![0u8; DECODE_CHUNK + MAX_PAYLOAD];
        b.iter_batched_ref(
            || Decoder::new(opener0.clone()),
            |dec| {
                let mut total = 0;
                for chunk in black_box(&wire).chunks(DECODE_CHUNK) {
                    total += dec.decode_into(chunk, &mut out).expect("decode succeeds");
                    black_box(&out);
                }
                assert_eq!(total, STREAM_LEN);
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("decode_64k_chunks", |b| {
        b.iter_batched_ref(
            || {
                (
                    Decoder::new(opener0.clone()),
                    Vec::with_capacity(STREAM_LEN),
                )
            },
            |(dec, out)| {
                for chunk in black_box(&wire).chunks(DECODE_CHUNK) {
                    dec.decode(chunk, out).expect("decode succeeds");
                }
                assert_eq!(out.len(), STREAM_LEN);
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// `primitives/*`: AES-256-CTR alone and HMAC-SHA256 alone, over one full packet's bytes,
/// built the way `proto::packet` builds them (keyed state cloned per packet).
fn primitives(c: &mut Criterion) {
    use aes::Aes256;
    use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
    use hmac::{Hmac, Mac};
    type Aes256Ctr = ctr::Ctr128BE<Aes256>;

    let aes = Aes256::new(&[7u8; 32].into());
    let mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&[9u8; 32]).expect("any key length");
    let mut buf = filler(MAX_PAYLOAD + 4);
    let mut g = c.benchmark_group("primitives");
    g.throughput(Throughput::Bytes(MAX_PAYLOAD as u64));
    g.bench_function("aes256ctr_1028", |b| {
        let mut pnum = 0u64;
        b.iter(|| {
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&pnum.to_be_bytes());
            pnum += 1;
            let mut ks = Aes256Ctr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &iv.into()));
            ks.apply_keystream(black_box(&mut buf));
        });
    });
    g.bench_function("hmacsha256_1036", |b| {
        let mut pnum = 0u64;
        b.iter(|| {
            let mut m = mac.clone();
            m.update(black_box(&buf));
            m.update(&pnum.to_be_bytes());
            pnum += 1;
            black_box(m.finalize().into_bytes());
        });
    });
    g.finish();
}

/// `handshake_nopfs/f_both_sides`: a whole `-f` handshake, both sides, in memory.
fn handshake_nopfs(c: &mut Criterion) {
    let keys = KeySet::single(Key::from_key_file(b"bench key file"));
    let mut g = c.benchmark_group("handshake_nopfs");
    g.throughput(Throughput::Bytes(2 * HANDSHAKE_LEN as u64));
    g.bench_function("f_both_sides", |b| {
        b.iter(|| {
            let (cs, ss) = nopfs_sessions(black_box(&keys));
            black_box((cs.into_stream(), ss.into_stream()));
        });
    });
    g.finish();
}

/// `handshake_pfs/pfs_both_sides`: a whole default-mode handshake with a fresh group-14 key pair
/// on each side (key generation, both shared secrets and key derivation are measured).
///
/// Panics at `proto::dh`'s `todo!()` until Diffie-Hellman is implemented.
fn handshake_pfs(c: &mut Criterion) {
    let keys = KeySet::single(Key::from_key_file(b"bench key file"));
    let mut g = c.benchmark_group("handshake_pfs");
    g.throughput(Throughput::Bytes(2 * HANDSHAKE_LEN as u64));
    g.bench_function("pfs_both_sides", |b| {
        let mut seed = 0u8;
        b.iter(|| {
            seed = seed.wrapping_add(1);
            let mut c_priv = [0x5a; 32];
            let mut s_priv = [0xa5; 32];
            c_priv[0] = seed;
            s_priv[0] = seed;
            let client = DhMode::Pfs(DhKeyPair::from_private(c_priv));
            let server = DhMode::Pfs(DhKeyPair::from_private(s_priv));
            let mut ch = Handshake::new(Role::Client, keys.clone(), [1; 32], client);
            let mut sh = Handshake::new(Role::Server, keys.clone(), [2; 32], server);
            let (cs, ss) = drive(&mut ch, &mut sh);
            black_box((cs.into_stream(), ss.into_stream()));
        });
    });
    g.finish();
}

/// `handshake_x25519/x25519_both_sides`: a whole `--x25519` handshake with a fresh key pair on
/// each side (two base-point multiplications, two shared secrets, derivations).
fn handshake_x25519(c: &mut Criterion) {
    let keys = KeySet::single(Key::from_key_file(b"bench key file"));
    let mut g = c.benchmark_group("handshake_x25519");
    g.throughput(Throughput::Bytes(2 * HANDSHAKE_LEN as u64));
    g.bench_function("x25519_both_sides", |b| {
        let mut seed = 0u8;
        b.iter(|| {
            seed = seed.wrapping_add(1);
            let client = Exchange::X25519(X25519KeyPair::from_private([seed; 32]));
            let server = Exchange::X25519(X25519KeyPair::from_private([!seed; 32]));
            let mut ch = Handshake::with_exchange(Role::Client, keys.clone(), [1; 32], client);
            let mut sh = Handshake::with_exchange(Role::Server, keys.clone(), [2; 32], server);
            let (cs, ss) = drive(&mut ch, &mut sh);
            black_box((cs.into_stream(), ss.into_stream()));
        });
    });
    g.finish();
}

/// `handshake_pooled/*`: the relay's path with a non-empty key pool: key generation happens in
/// the (untimed) setup, the timed part is everything a connection still pays.
fn handshake_pooled(c: &mut Criterion) {
    let keys = KeySet::single(Key::from_key_file(b"bench key file"));
    let mut g = c.benchmark_group("handshake_pooled");
    g.throughput(Throughput::Bytes(2 * HANDSHAKE_LEN as u64));
    for (name, kind) in [
        ("pfs_both_sides", KeyKind::Group14),
        ("x25519_both_sides", KeyKind::X25519),
    ] {
        let deferred = || match kind {
            KeyKind::Group14 => Exchange::Group14Deferred { require_pfs: false },
            KeyKind::X25519 => Exchange::X25519Deferred,
        };
        let mut seed = 0u8;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    seed = seed.wrapping_add(1);
                    (
                        KeyPair::from_private(kind, [seed; 32]),
                        KeyPair::from_private(kind, [!seed; 32]),
                    )
                },
                |pairs| {
                    let mut ch =
                        Handshake::with_exchange(Role::Client, keys.clone(), [1; 32], deferred());
                    let mut sh =
                        Handshake::with_exchange(Role::Server, keys.clone(), [2; 32], deferred());
                    let (cs, ss) = drive_with(&mut ch, &mut sh, (Some(pairs.0), Some(pairs.1)));
                    black_box((cs.into_stream(), ss.into_stream()));
                },
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

/// The suite; `criterion_group!` generates an undocumented `pub fn`, hence the allow.
mod suite {
    #![allow(missing_docs, unreachable_pub)]
    use super::{
        batch, handshake_nopfs, handshake_pfs, handshake_pooled, handshake_x25519, packet,
        primitives, stream,
    };
    criterion::criterion_group! {
        name = benches;
        config = super::common::config();
        targets = packet, batch, stream, primitives, handshake_nopfs, handshake_pfs,
            handshake_x25519, handshake_pooled
    }
}
criterion_main!(suite::benches);
