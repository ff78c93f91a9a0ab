//! The CPU floor of spiped's packet format on this machine: CPU seconds per GiB of payload to
//! seal it into packets (sender) and to open them again (receiver), through the same
//! `Encoder`/`Decoder` the relay uses, in 64 KiB reads, with no I/O at all. What the two relay
//! ends of a bulk transfer can never go below.
//!
//! ```text
//! cargo run --release --example packet_floor [GIB] [fast|reference|both]
//! ```
//! CPU time is this thread's own run time (`/proc/thread-self/schedstat`), so other processes
//! on a busy machine inflate it far less than wall-clock time.

use std::time::Instant;

use spiperelay::proto::crypt::{DhMode, Role};
use spiperelay::proto::handshake::{Handshake, Session, Step};
use spiperelay::proto::kernels::Kernels;
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::proto::stream::{Decoder, Encoder};

/// Payload bytes per read, as the relay's large reads.
const READ: usize = 64 * 1024;
const GIB: f64 = (1u64 << 30) as f64;

/// This thread's CPU time so far, in seconds.
fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("run time field");
    ns as f64 / 1e9
}

/// Feeds `input` to `hs` and does what its steps ask (a `-f` handshake only sends and reads)
/// until it needs more input or is done; returns what it sent and its session.
fn pump(hs: &mut Handshake, input: &[u8]) -> (Vec<u8>, Option<Box<Session>>) {
    let (_, mut step) = hs.read(input).expect("handshake reads");
    let mut out = Vec::new();
    loop {
        step = match step {
            Step::Send(bytes) => {
                let n = bytes.len();
                out.extend_from_slice(bytes);
                hs.sent(n).expect("sent")
            }
            Step::Done(session) => return (out, Some(session)),
            _ => return (out, None),
        };
    }
}

/// An encoder/decoder pair of one `-f` session (client → server), on `kernels`.
fn session(kernels: Kernels) -> (Encoder, Decoder) {
    kernels.select();
    let keys = KeySet::single(Key::from_key_file(b"packet floor"));
    let mut c = Handshake::new(Role::Client, keys.clone(), [1; 32], DhMode::NoPfs);
    let mut s = Handshake::new(Role::Server, keys, [2; 32], DhMode::NoPfs);
    let (mut to_c, mut to_s) = (Vec::new(), Vec::new());
    let (mut cs, mut ss) = (None, None);
    for _ in 0..3 {
        if cs.is_none() {
            (to_s, cs) = pump(&mut c, &to_c);
        }
        if ss.is_none() {
            (to_c, ss) = pump(&mut s, &to_s);
        }
    }
    let (enc, _) = cs.expect("client").into_stream();
    let (_, dec) = ss.expect("server").into_stream();
    (enc, dec)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let modes = match args.next().as_deref() {
        Some("reference") => vec![Kernels::Reference],
        Some("both") => vec![Kernels::Fast, Kernels::Reference],
        _ => vec![Kernels::Fast],
    };
    let reads = ((gib * GIB) as usize / READ).max(1);
    let plain: Vec<u8> = (0..READ).map(|i| (i * 7) as u8).collect();
    for kernels in modes {
        let (mut enc, mut dec) = session(kernels);
        println!("{}", kernels.describe());
        let (mut wire, mut out) = (Vec::with_capacity(2 * READ), Vec::with_capacity(READ));
        let (mut seal_cpu, mut open_cpu) = (0.0, 0.0);
        let wall = Instant::now();
        for _ in 0..reads {
            wire.clear();
            out.clear();
            let t0 = cpu_seconds();
            enc.encode(&plain, &mut wire).expect("encode");
            let t1 = cpu_seconds();
            dec.decode(&wire, &mut out).expect("decode");
            open_cpu += cpu_seconds() - t1;
            seal_cpu += t1 - t0;
            assert_eq!(out.len(), READ);
        }
        let bytes = (reads * READ) as f64;
        println!(
            "  {:.2} GiB: seal {:.3} CPU-s/GiB, open {:.3} CPU-s/GiB, both ends {:.3} CPU-s/GiB \
             ({:.1} s wall)",
            bytes / GIB,
            seal_cpu * GIB / bytes,
            open_cpu * GIB / bytes,
            (seal_cpu + open_cpu) * GIB / bytes,
            wall.elapsed().as_secs_f64()
        );
    }
}
