//! The seed inputs of the committed fuzz corpus (`fuzz/corpus/<target>/`), generated from the
//! harnesses' fixed keys and nonces so that each seed reaches deep into its target (a genuine
//! peer, a wrong key, forged values under a valid MAC, edge operands). Compiled for tests only:
//! `tests.rs` checks that the committed files equal these and writes them on request.

use super::*;
use crate::proto::dh::GROUP14_P;
use crate::proto::handshake::testing::{pairs_from, pump};
use crate::proto::x25519;

/// The DH private value of the simulated peer in the handshake seeds.
const PEER_DH_PRIVATE: [u8; 32] = [0x24; 32];

fn sealed(payloads: &[&[u8]]) -> Vec<u8> {
    let mut sealer = fixture().sealer.clone();
    let mut wire = Vec::new();
    for payload in payloads {
        let mut packet = [0u8; PACKET_LEN];
        sealer.seal(payload, &mut packet).expect("seal");
        wire.extend_from_slice(&packet);
    }
    wire
}

fn packet_open_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut then_partial = sealed(&[b"hello, spiped"]);
    then_partial.extend_from_slice(&[0x55; 100]);
    let mut forged_len_1025 = vec![0, 0, 4, 1];
    forged_len_1025.extend_from_slice(b"sixteen bytes...");
    vec![
        ("genuine_packet", sealed(&[b"hello, spiped"])),
        (
            "three_genuine_packets",
            sealed(&[&[b'a'; MAX_PAYLOAD], b"b", &[b'c'; 500]]),
        ),
        ("genuine_then_partial", then_partial),
        ("forged_length_5", b"\0\0\0\x05hello".to_vec()),
        ("forged_length_1025", forged_len_1025),
    ]
}

/// A `stream_decode` input: writes (length, pattern), mutations (kind, position, value),
/// chunk-size bytes.
fn stream_input(writes: &[(u16, u8)], mutations: &[(u8, u16, u8)], chunks: &[u8]) -> Vec<u8> {
    let mut v = vec![writes.len() as u8];
    for (len, pattern) in writes {
        v.extend_from_slice(&len.to_be_bytes());
        v.push(*pattern);
    }
    v.push(mutations.len() as u8);
    for (kind, pos, value) in mutations {
        v.push(*kind);
        v.extend_from_slice(&pos.to_be_bytes());
        v.push(*value);
    }
    v.extend_from_slice(chunks);
    v
}

fn stream_decode_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "clean_three_writes",
            stream_input(&[(1500, 1), (1, 2), (1024, 3)], &[], &[1, 0x7f, 0x90, 5]),
        ),
        (
            "bit_flip",
            stream_input(&[(2000, 7)], &[(0, 1500, 0x80)], &[0xff, 0xff]),
        ),
        (
            "truncated",
            stream_input(&[(100, 1), (3072, 2)], &[(1, 2000, 0)], &[]),
        ),
        (
            "inserted_byte",
            stream_input(&[(10, 0), (10, 0)], &[(2, 1060, 0x42)], &[60]),
        ),
        ("no_writes", stream_input(&[], &[], &[3])),
    ]
}

/// The bytes a genuine peer (key file `peer_key`, DH mode `peer_mode`) sends to the local
/// handshake of `role` and `sel`, and, once both are done, its encoding of `data`.
fn peer_stream(role: Role, sel: u8, peer_key: &[u8], peer_mode: DhMode, data: &[u8]) -> Vec<u8> {
    let local = local_handshake(role, sel);
    let peer_nonce = match role {
        Role::Client => SERVER_NONCE,
        Role::Server => CLIENT_NONCE,
    };
    let keys = KeySet::single(Key::from_key_file(peer_key));
    let peer = Handshake::new(role.peer(), keys, peer_nonce, peer_mode);
    run_against(local, peer, data)
}

/// Runs `local` against `peer` (at most 3 rounds; a local handshake that asks for a key
/// pair gets [`X25519_PRIVATE`]'s) and returns what the peer sent, followed, if both
/// finished, by the peer's encoding of `data`.
fn run_against(mut local: Handshake, mut peer: Handshake, data: &[u8]) -> Vec<u8> {
    let mut stream = Vec::new();
    let (mut local_pairs, mut peer_pairs) =
        (pairs_from(X25519_PRIVATE), pairs_from(X25519_PRIVATE));
    let (mut to_local, mut to_peer) = (Vec::new(), Vec::new());
    let (mut local_done, mut peer_done) = (None, None);
    for _ in 0..3 {
        if local_done.is_none() {
            let Ok(p) = pump(&mut local, &std::mem::take(&mut to_local), &mut local_pairs) else {
                break;
            };
            to_peer.extend_from_slice(&p.sent);
            local_done = p.session;
        }
        if peer_done.is_none() {
            let Ok(p) = pump(&mut peer, &std::mem::take(&mut to_peer), &mut peer_pairs) else {
                break;
            };
            stream.extend_from_slice(&p.sent);
            to_local.extend_from_slice(&p.sent);
            peer_done = p.session;
        }
    }
    if let (Some(_), Some(peer_session)) = (local_done, peer_done) {
        let (mut encoder, _) = peer_session.into_stream();
        encoder.encode(data, &mut stream).expect("encode");
    }
    stream
}

/// A handshake-target input: the selector, then `stream` cut into chunks whose sizes cycle
/// through `sizes`.
fn chunked(sel: u8, stream: &[u8], sizes: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(usize::from(size).min(rest.len()));
        v.push(size);
        v.extend_from_slice(chunk);
        rest = tail;
    }
    v
}

/// The peer's nonce and a `y ‖ h` for `y`, MAC'd under `key_file`.
fn forged_yh(role: Role, key_file: &[u8], y: &[u8; 256]) -> Vec<u8> {
    let dk1 = DhMacKeys::derive(&Key::from_key_file(key_file), &CLIENT_NONCE, &SERVER_NONCE);
    let (nonce, peer) = match role {
        Role::Client => (SERVER_NONCE, Role::Server),
        Role::Server => (CLIENT_NONCE, Role::Client),
    };
    let mut v = nonce.to_vec();
    v.extend_from_slice(y);
    v.extend_from_slice(&dh_mac(dk1.for_role(peer), y));
    v
}

/// The handshake seeds of `role`, each with the outcome it must reach: `Ok(key_index)` for
/// a completed handshake, or the error.
pub(super) fn handshake_seeds(
    role: Role,
) -> Vec<(&'static str, Vec<u8>, Result<usize, HandshakeError>)> {
    let pfs = || DhMode::Pfs(DhKeyPair::from_private(PEER_DH_PRIVATE));
    let big = [32, 255];
    let mut seeds = vec![
        (
            "pfs_both",
            chunked(
                0,
                &peer_stream(role, 0, KEY_FILE, pfs(), b"first data"),
                &big,
            ),
            Ok(0),
        ),
        (
            "nopfs_both_with_data",
            chunked(
                2,
                &peer_stream(role, 2, KEY_FILE, DhMode::NoPfs, b"hello"),
                &[255],
            ),
            Ok(0),
        ),
        (
            "require_pfs_vs_nopfs_peer",
            chunked(1, &peer_stream(role, 1, KEY_FILE, DhMode::NoPfs, b""), &big),
            Err(HandshakeError::PfsRequired),
        ),
        (
            "wrong_key",
            chunked(2, &forged_yh(role, OTHER_KEY_FILE, &Y_ONE), &big),
            Err(HandshakeError::BadDhMac),
        ),
        (
            "y_equals_p",
            chunked(2, &forged_yh(role, KEY_FILE, &GROUP14_P), &big),
            Err(HandshakeError::DhOutOfRange),
        ),
        (
            "small_and_empty_reads",
            chunked(
                2,
                &peer_stream(role, 2, KEY_FILE, DhMode::NoPfs, b"x"),
                &[1, 0, 7, 0, 100],
            ),
            Ok(0),
        ),
    ];
    if role == Role::Server {
        seeds.push((
            "two_keys_new_key",
            chunked(6, &peer_stream(role, 6, KEY_FILE, DhMode::NoPfs, b""), &big),
            Ok(1),
        ));
        seeds.push((
            "two_keys_old_key",
            chunked(
                5,
                &peer_stream(role, 5, OTHER_KEY_FILE, DhMode::NoPfs, b""),
                &big,
            ),
            Ok(0),
        ));
    }
    seeds
}

/// The peer of `local_x25519(sel)`: an X25519 handshake of the other role under
/// `peer_key`, or (`compat`) a spiped-compatible one with `y = 1`.
fn x25519_peer_stream(sel: u8, peer_key: &[u8], compat: bool, data: &[u8]) -> Vec<u8> {
    let local = local_x25519(sel);
    let role = local.role();
    let peer_nonce = match role {
        Role::Client => SERVER_NONCE,
        Role::Server => CLIENT_NONCE,
    };
    let keys = KeySet::single(Key::from_key_file(peer_key));
    let peer = if compat {
        Handshake::new(role.peer(), keys, peer_nonce, DhMode::NoPfs)
    } else {
        let pair = X25519KeyPair::from_private(PEER_DH_PRIVATE);
        Handshake::with_exchange(role.peer(), keys, peer_nonce, Exchange::X25519(pair))
    };
    run_against(local, peer, data)
}

/// The peer's nonce and a `v ‖ h` for the value field `v` under a valid X25519-mode MAC,
/// for a local handshake of `sel`.
fn x25519_forged(sel: u8, v: &[u8; 256]) -> Vec<u8> {
    let dk1 = x25519::dh_mac_keys(&Key::from_key_file(KEY_FILE), &CLIENT_NONCE, &SERVER_NONCE);
    let (nonce, peer) = if sel & 1 == 0 {
        (CLIENT_NONCE, Role::Client)
    } else {
        (SERVER_NONCE, Role::Server)
    };
    let mut out = nonce.to_vec();
    out.extend_from_slice(v);
    out.extend_from_slice(&dh_mac(dk1.for_role(peer), v));
    out
}

/// The `handshake_x25519` seeds with their outcomes (as [`handshake_seeds`]).
pub(super) fn x25519_seeds() -> Vec<(&'static str, Vec<u8>, Result<usize, HandshakeError>)> {
    let big = [32, 255];
    let mut bad_padding = x25519::value_field(&[9; 32]);
    bad_padding[255] = 1;
    let mut seeds = vec![];
    for (name, sel) in [
        ("server_ready", 0u8),
        ("client_ready", 1),
        ("server_deferred", 2),
        ("client_deferred", 3),
        ("server_answer_first", 10),
    ] {
        seeds.push((
            name,
            chunked(
                sel,
                &x25519_peer_stream(sel, KEY_FILE, false, b"data"),
                &big,
            ),
            Ok(0),
        ));
    }
    seeds.extend([
        (
            "server_two_keys_small_reads",
            chunked(
                6,
                &x25519_peer_stream(6, KEY_FILE, false, b"x"),
                &[1, 0, 7, 0, 100],
            ),
            Ok(1),
        ),
        (
            "compat_peer",
            chunked(2, &x25519_peer_stream(2, KEY_FILE, true, b""), &big),
            Err(HandshakeError::PeerNotX25519),
        ),
        (
            "wrong_key",
            chunked(2, &x25519_peer_stream(2, OTHER_KEY_FILE, false, b""), &big),
            Err(HandshakeError::BadDhMac),
        ),
        (
            "low_order_point",
            chunked(2, &x25519_forged(2, &[0; 256]), &big),
            Err(HandshakeError::ZeroSharedSecret),
        ),
        (
            "low_order_point_answer_first",
            chunked(10, &x25519_forged(10, &[0; 256]), &big),
            Err(HandshakeError::ZeroSharedSecret),
        ),
        (
            "bad_padding",
            chunked(0, &x25519_forged(0, &bad_padding), &big),
            Err(HandshakeError::BadX25519Padding),
        ),
    ]);
    seeds
}

/// Runs a `handshake_x25519` seed as the harness parses it and reports the outcome.
pub(super) fn x25519_outcome(seed: &[u8]) -> Result<usize, HandshakeError> {
    let mut input = Input(seed);
    let hs = local_x25519(input.byte());
    outcome(hs, input)
}

/// Feeds the rest of a seed to `hs` chunk by chunk as the harnesses do, doing what each step
/// asks (key pairs from [`X25519_PRIVATE`]), and returns the session's key index.
fn outcome(mut hs: Handshake, mut input: Input<'_>) -> Result<usize, HandshakeError> {
    let mut pairs = pairs_from(X25519_PRIVATE);
    let mut session = None;
    while !input.is_empty() && session.is_none() {
        let n = usize::from(input.byte());
        session = pump(&mut hs, input.take(n), &mut pairs)?.session;
    }
    Ok(session.expect("handshake completed").key_index())
}

/// `dh_arith` seeds: edge operands (0, 1, p - 1, p - 2, all-ones limbs, p itself and
/// 2^2048 - 1, which reduce to 0 and 2^2048 - 1 - p) and two pseudo-random ones.
fn dh_arith_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let p = GROUP14_P.to_vec();
    let minus = |k: u8| {
        let mut v = p.clone();
        let last = v.len() - 1;
        v[last] -= k; // p's low byte is 0xff
        v
    };
    let mut one = vec![0u8; ARITH_OPERAND_LEN];
    one[ARITH_OPERAND_LEN - 1] = 1;
    let mut alternating = Vec::with_capacity(ARITH_OPERAND_LEN);
    for i in 0..ARITH_OPERAND_LEN / 8 {
        alternating.extend_from_slice(&[if i % 2 == 0 { 0xff } else { 0 }; 8]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let pseudo: Vec<u8> = (0..2 * ARITH_OPERAND_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    vec![
        ("zero_one", cat(&[0; ARITH_OPERAND_LEN], &one)),
        ("pm1_pm2", cat(&minus(1), &minus(2))),
        ("p_allones", cat(&p, &[0xff; ARITH_OPERAND_LEN])),
        ("alternating_pm1", cat(&alternating, &minus(1))),
        ("pseudo_random", pseudo),
        ("short", vec![0xff; 40]),
    ]
}

/// The seed files that `tests::write_seed_corpus` writes for `target`.
pub(super) fn seeds(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    match target {
        "packet_open" => packet_open_seeds(),
        "stream_decode" => stream_decode_seeds(),
        "handshake_server" => strip(handshake_seeds(Role::Server)),
        "handshake_client" => strip(handshake_seeds(Role::Client)),
        "handshake_x25519" => strip(x25519_seeds()),
        "dh_arith" => dh_arith_seeds(),
        _ => unreachable!("unknown target {target}"),
    }
}

fn strip<A, B, C>(v: Vec<(A, B, C)>) -> Vec<(A, B)> {
    v.into_iter().map(|(a, b, _)| (a, b)).collect()
}

/// Runs a handshake seed as the harness parses it and reports the outcome.
pub(super) fn handshake_outcome(role: Role, seed: &[u8]) -> Result<usize, HandshakeError> {
    let mut input = Input(seed);
    let hs = local_handshake(role, input.byte());
    outcome(hs, input)
}
