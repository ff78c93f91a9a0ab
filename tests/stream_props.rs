//! Property tests: random write sizes and random read chunkings give identical plaintext in both
//! directions, packets are cut the way spiped cuts them, and any cut of the stream delivers a
//! prefix and reports a truncated packet.

mod common;

use common::{Flag, TestRng, established, pair};
use proptest::prelude::*;
use spiperelay::proto::packet::{packets_for, sealed_len};
use spiperelay::proto::stream::{Decoder, Encoder};
use spiperelay::proto::{MAX_PAYLOAD, PACKET_LEN, PacketError, StreamError};

/// Client and server streams of one session: ((client enc, client dec), (server enc, server dec)).
fn session(seed: u64) -> ((Encoder, Decoder), (Encoder, Decoder)) {
    let mut rng = TestRng::new(seed);
    let (c, s) = pair(
        b"prop key",
        &[b"prop key"],
        Flag::NoPfs,
        Flag::NoPfs,
        &mut rng,
    );
    let (cs, ss) = established(c, s);
    (cs.into_stream(), ss.into_stream())
}

/// Encodes `writes` one read at a time, checking the spiped cut of each, and returns the wire
/// bytes and the plaintext.
fn encode_all(enc: &mut Encoder, writes: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    for w in writes {
        let before = wire.len();
        enc.encode(w, &mut wire).expect("encode");
        assert_eq!(wire.len() - before, sealed_len(w.len()));
        assert_eq!(sealed_len(w.len()), packets_for(w.len()) * PACKET_LEN);
        plain.extend_from_slice(w);
    }
    (wire, plain)
}

/// Splits `wire` at the given cut sizes (cycled) and decodes chunk by chunk.
fn decode_chunked(dec: &mut Decoder, wire: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut i = 0;
    while off < wire.len() {
        let n = cuts[i % cuts.len()].min(wire.len() - off);
        dec.decode(&wire[off..off + n], &mut out).expect("decode");
        off += n;
        i += 1;
    }
    out
}

fn writes_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=3),
            prop::collection::vec(any::<u8>(), 1020..=1030),
            prop::collection::vec(any::<u8>(), 0..=5000),
        ],
        0..12,
    )
}

fn cuts_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1usize..=4, 1050usize..=1070, 1usize..=9000],
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_writes_and_any_chunking_round_trip_both_ways(
        writes in writes_strategy(),
        cuts in cuts_strategy(),
        seed in any::<u64>(),
    ) {
        let ((mut ce, mut cd), (mut se, mut sd)) = session(seed);
        let (wire, plain) = encode_all(&mut ce, &writes);
        prop_assert_eq!(decode_chunked(&mut sd, &wire, &cuts), plain);
        prop_assert_eq!(sd.finish(), Ok(()));
        let (wire, plain) = encode_all(&mut se, &writes);
        prop_assert_eq!(decode_chunked(&mut cd, &wire, &cuts), plain);
        prop_assert_eq!(cd.finish(), Ok(()));
    }

    /// The slice APIs (`encode_into`, `decode_into`) into one reused, never-cleared buffer
    /// give the same wire bytes and plaintext as the `Vec` APIs, the way the relay uses them.
    #[test]
    fn the_into_apis_with_a_dirty_reused_buffer_match_the_vec_apis(
        writes in writes_strategy(),
        cuts in cuts_strategy(),
        seed in any::<u64>(),
    ) {
        let ((mut ce, _), (_, mut sd)) = session(seed);
        let ((mut ce2, _), (_, mut sd2)) = session(seed);
        let (wire, plain) = encode_all(&mut ce, &writes);
        let mut scratch = vec![0xa5u8; 3];
        let mut wire2 = Vec::new();
        for w in &writes {
            let need = sealed_len(w.len());
            if scratch.len() < need {
                scratch.resize(need, 0x5a);
            }
            let n = ce2.encode_into(w, &mut scratch).expect("encode_into");
            prop_assert_eq!(n, need);
            wire2.extend_from_slice(&scratch[..n]);
        }
        prop_assert_eq!(&wire2, &wire);
        prop_assert_eq!(
            ce2.encode_into(&[1; 1025], &mut [0; 2 * PACKET_LEN - 1]),
            Err(StreamError::Packet(PacketError::BadBufferLength { len: 2 * PACKET_LEN - 1 }))
        );
        let (mut off, mut i, mut plain2) = (0, 0, Vec::new());
        while off < wire.len() {
            let n = cuts[i % cuts.len()].min(wire.len() - off);
            let chunk = &wire[off..off + n];
            let need = sd2.max_output(n);
            if need > 0 {
                // Too small a buffer is refused without consuming anything.
                prop_assert_eq!(
                    sd2.decode_into(chunk, &mut vec![0; need - 1]),
                    Err(StreamError::Packet(PacketError::BadBufferLength { len: need - 1 }))
                );
            }
            if scratch.len() < need {
                scratch.resize(need, 0x5a);
            }
            let got = sd2.decode_into(chunk, &mut scratch).expect("decode_into");
            prop_assert!(got <= need);
            plain2.extend_from_slice(&scratch[..got]);
            off += n;
            i += 1;
        }
        prop_assert_eq!(&plain2, &plain);
        prop_assert_eq!(decode_chunked(&mut sd, &wire, &cuts), plain);
        prop_assert_eq!(sd2.finish(), Ok(()));
    }

    #[test]
    fn a_cut_stream_delivers_a_prefix_and_reports_truncation(
        writes in writes_strategy(),
        cut_at in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let ((mut ce, _), (_, mut sd)) = session(seed);
        let (wire, plain) = encode_all(&mut ce, &writes);
        let cut = if wire.is_empty() { 0 } else { cut_at.index(wire.len() + 1) };
        let mut out = Vec::new();
        sd.decode(&wire[..cut], &mut out).expect("decode");
        prop_assert!(plain.starts_with(&out));
        let whole = cut / PACKET_LEN;
        let rem = cut % PACKET_LEN;
        if rem == 0 {
            prop_assert_eq!(sd.finish(), Ok(()));
        } else {
            prop_assert_eq!(sd.finish(), Err(StreamError::Truncated { have: rem }));
        }
        // Exactly the payloads of the whole packets were delivered.
        let mut expected = 0;
        let mut packets = 0;
        for w in &writes {
            for chunk in w.chunks(MAX_PAYLOAD) {
                if packets < whole {
                    expected += chunk.len();
                    packets += 1;
                }
            }
        }
        prop_assert_eq!(out.len(), expected);
    }
}

#[test]
fn empty_reads_produce_no_packets_and_3000_bytes_become_1024_1024_952() {
    let ((mut ce, _), (_, mut sd)) = session(1);
    let mut wire = Vec::new();
    ce.encode(&[], &mut wire).expect("empty");
    assert!(wire.is_empty(), "an empty read must not produce L = 0");
    ce.encode(&[7u8; 3000], &mut wire).expect("encode");
    assert_eq!(wire.len(), 3 * PACKET_LEN);
    // Decode packet by packet to observe the payload sizes.
    let mut sizes = Vec::new();
    for p in wire.chunks(PACKET_LEN) {
        let mut out = Vec::new();
        sd.decode(p, &mut out).expect("decode");
        sizes.push(out.len());
    }
    assert_eq!(sizes, [1024, 1024, 952]);
}
