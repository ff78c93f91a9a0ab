//! What one `/metrics` scrape costs the scrape thread, for a large process: 4 event loops
//! (`--threads 4`) each serving 100 pipes with every counter moved, each pipe with 2 keys.
//!
//! - `scrape/collect`: [`Board::collect`] (lock and clone each loop's snapshot, sum them by
//!   pipe name, read each pipe's key table).
//! - `scrape/collect_and_encode`: that plus the Prometheus text encoding: the whole answer
//!   to `GET /metrics` but the socket write.
//! - `publish/loop_snapshot`: what an event loop pays at most every 100 ms to hand over its
//!   100 pipes' counters (clone and store).
//!
//! The bound is "a scrape under load returns in well under 100 ms".

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use spiperelay::cli::Mode;
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::relay::keys::{KeyRing, RingMode};
use spiperelay::relay::metrics::encode::prometheus_text;
use spiperelay::relay::metrics::{
    Board, LoopSnapshot, PipeCounters, PipeSample, PoolSample, ProcessInfo,
};

const LOOPS: usize = 4;
const PIPES: usize = 100;

fn loop_snapshot(rings: &[KeyRing]) -> LoopSnapshot {
    let mut c = PipeCounters::default();
    for i in 0..1000u64 {
        c.on_accepted();
        c.on_received((i % 2) as usize, 1000);
        c.on_sent((i % 2) as usize, 1032);
        c.on_handshake_done(Duration::from_micros(200 + i * 10));
        c.on_target_connected(Duration::from_micros(50 + i));
        c.on_closed(if i % 7 == 0 { Some("bad_mac") } else { None }, i % 7 == 0);
    }
    LoopSnapshot {
        pipes: rings
            .iter()
            .enumerate()
            .map(|(i, ring)| PipeSample {
                name: Arc::from(format!("pipe-{i:03}")),
                mode: Mode::Decrypt,
                active: 10,
                counters: Some(c.clone()),
                keys: Some(ring.clone()),
            })
            .collect(),
        pools: vec![PoolSample {
            kind: "x25519",
            ready: 100,
            pooled: 1000,
            inline: 3,
        }],
    }
}

fn scrape(c: &mut Criterion) {
    let rings: Vec<KeyRing> = (0..PIPES)
        .map(|i| {
            let keys = vec![
                Key::from_key_file(format!("key {i} a").as_bytes()),
                Key::from_key_file(format!("key {i} b").as_bytes()),
            ];
            KeyRing::new(KeySet::new(keys).expect("keys"), 2, RingMode::Decrypt).expect("ring")
        })
        .collect();
    let board = Board::new(ProcessInfo::new("io_uring"));
    let snap = loop_snapshot(&rings);
    for _ in 0..LOOPS {
        board.publisher().publish(Instant::now(), snap.clone());
    }
    let text = prometheus_text(&board.collect());
    eprintln!(
        "exposition: {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    c.bench_function("scrape/collect", |b| b.iter(|| black_box(board.collect())));
    c.bench_function("scrape/collect_and_encode", |b| {
        b.iter(|| black_box(prometheus_text(&board.collect())))
    });
    let mut publisher = board.publisher();
    c.bench_function("publish/loop_snapshot", |b| {
        b.iter(|| publisher.publish(Instant::now(), black_box(&snap).clone()))
    });
}

/// The suite; `criterion_group!` generates an undocumented `pub fn`, hence the allow.
mod suite {
    #![allow(missing_docs, unreachable_pub)]
    use super::scrape;
    criterion::criterion_group! {
        name = benches;
        config = super::common::config();
        targets = scrape
    }
}
criterion_main!(suite::benches);
