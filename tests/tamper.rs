//! An in-memory client/server pair with a tampering filter between them (reference notes B.2):
//! each fault must produce the exact error variant, and no plaintext after the fault may be
//! delivered.

mod common;

use aes::cipher::{KeyIvInit, StreamCipher};
use common::{Flag, Outcome, TestRng, drive, established, pair, pump, unhex};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spiperelay::proto::crypt::{DhMacKeys, DhMode, Role, dh_mac};
use spiperelay::proto::dh::GROUP14_P;
use spiperelay::proto::handshake::{Handshake, Session, Step};
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::proto::stream::{Decoder, Encoder};
use spiperelay::proto::{HandshakeError, PACKET_LEN, PacketError, StreamError, YH_LEN};

const KEY: &[u8] = b"the shared key file\n";

fn no_filter() -> impl FnMut(&mut Vec<u8>) {
    |_| {}
}

// ---------------------------------------------------------------- handshake faults

#[test]
fn wrong_key_fails_at_the_server_and_it_never_sends_y_s() {
    let mut rng = TestRng::new(1);
    let (mut c, mut s) = pair(
        b"key A",
        &[b"key B"],
        Flag::Default,
        Flag::Default,
        &mut rng,
    );
    let (outcome, _) = drive(&mut c, &mut s, &mut no_filter(), &mut no_filter());
    assert_eq!(outcome, Outcome::ServerFailed(HandshakeError::BadDhMac));
    // A dead handshake hands out nothing more (no y_S), and the failure is sticky.
    assert_eq!(s.next_step().err(), Some(HandshakeError::BadDhMac));
    assert_eq!(s.read(&[0u8; 1]).err(), Some(HandshakeError::BadDhMac));
    // The client still waits for y_S.
    assert!(matches!(c.next_step(), Ok(Step::NeedInput(YH_LEN))));
}

/// Sets up a server with a fixed nonce that has already read the client's nonce, and returns it
/// with a valid client `y_C ‖ h_C` for it.
fn server_awaiting_yh(server_mode: fn() -> DhMode, client_pfs: Flag) -> (Handshake, Vec<u8>) {
    let mut rng = TestRng::new(7);
    let key = KeySet::single(Key::from_key_file(KEY));
    let mut c = Handshake::new(
        Role::Client,
        key.clone(),
        [3; 32],
        common::dh_mode(client_pfs, &mut rng),
    );
    let mut s = Handshake::new(Role::Server, key, [4; 32], server_mode());
    assert_eq!(pump(&mut c, &[]).expect("nonce").sent.len(), 32);
    let yh = pump(&mut c, &[4; 32]).expect("nonce").sent;
    assert_eq!(pump(&mut s, &[3; 32]).expect("nonce").sent, [4; 32]);
    assert_eq!(yh.len(), YH_LEN);
    (s, yh)
}

#[test]
fn every_single_bit_flip_of_y_c_and_h_c_is_rejected_by_the_server() {
    let (server, yh) = server_awaiting_yh(|| DhMode::NoPfs, Flag::Default);
    // Sanity: the untampered message passes.
    let mut fresh = server_awaiting_yh(|| DhMode::NoPfs, Flag::Default).0;
    let done = pump(&mut fresh, &yh).expect("accepted");
    assert_eq!(done.consumed, YH_LEN);
    assert_eq!(done.sent.len(), YH_LEN);
    assert!(done.session.is_some());
    drop(server);
    for bit in 0..YH_LEN * 8 {
        let (mut s, _) = server_awaiting_yh(|| DhMode::NoPfs, Flag::NoPfs);
        let mut bad = yh.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            s.read(&bad).err(),
            Some(HandshakeError::BadDhMac),
            "bit {bit}"
        );
        // Dead: y_S is never handed out.
        assert_eq!(
            s.next_step().err(),
            Some(HandshakeError::BadDhMac),
            "bit {bit}"
        );
    }
}

#[test]
fn every_single_bit_flip_of_y_s_and_h_s_is_rejected_by_the_client() {
    let key = KeySet::single(Key::from_key_file(KEY));
    let mut rng = TestRng::new(9);
    let mut s = Handshake::new(
        Role::Server,
        key.clone(),
        [6; 32],
        common::dh_mode(Flag::Default, &mut rng),
    );
    let client = || {
        let mut c = Handshake::new(Role::Client, key.clone(), [5; 32], DhMode::NoPfs);
        pump(&mut c, &[]).expect("nonce");
        let c_yh = pump(&mut c, &[6; 32]).expect("nonce").sent;
        (c, c_yh)
    };
    let (mut c0, c_yh) = client();
    pump(&mut s, &[5; 32]).expect("nonce");
    let s_yh = pump(&mut s, &c_yh).expect("server accepts").sent;
    let done = pump(&mut c0, &s_yh).expect("client accepts");
    assert_eq!(done.consumed, YH_LEN);
    assert!(done.session.is_some());
    for bit in 0..YH_LEN * 8 {
        let (mut c, _) = client();
        let mut bad = s_yh.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            c.read(&bad).err(),
            Some(HandshakeError::BadDhMac),
            "bit {bit}"
        );
        assert_eq!(
            c.next_step().err(),
            Some(HandshakeError::BadDhMac),
            "no session"
        );
    }
}

/// A `y ‖ h` for an arbitrary `y` with a valid client MAC (what a peer holding K can send).
fn forged_client_yh(y: &[u8; 256]) -> Vec<u8> {
    let dk1 = DhMacKeys::derive(&Key::from_key_file(KEY), &[3; 32], &[4; 32]);
    let mut yh = y.to_vec();
    yh.extend_from_slice(&dh_mac(&dk1.client, y));
    yh
}

#[test]
fn y_at_or_above_p_with_a_valid_mac_is_out_of_range() {
    let mut all_ones = [0xff; 256];
    let mut p_plus_1 = GROUP14_P;
    for byte in p_plus_1.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    for y in [GROUP14_P, all_ones, p_plus_1] {
        let (mut s, _) = server_awaiting_yh(|| DhMode::NoPfs, Flag::NoPfs);
        assert_eq!(
            s.read(&forged_client_yh(&y)).err(),
            Some(HandshakeError::DhOutOfRange)
        );
        assert_eq!(s.next_step().err(), Some(HandshakeError::DhOutOfRange));
    }
    all_ones[0] = 0; // below p: accepted by the range check
    let (mut s, _) = server_awaiting_yh(|| DhMode::NoPfs, Flag::NoPfs);
    assert!(matches!(
        s.read(&forged_client_yh(&all_ones)),
        Ok((YH_LEN, Step::Send(_)))
    ));
}

#[test]
fn y_zero_and_p_minus_one_are_accepted_like_spiped() {
    // §1.5: spiped accepts 0 and p−1; so do we, for compatibility.
    let mut p_minus_1 = GROUP14_P;
    p_minus_1[255] -= 1;
    for y in [[0u8; 256], p_minus_1] {
        let (mut s, _) = server_awaiting_yh(|| DhMode::NoPfs, Flag::NoPfs);
        let done = pump(&mut s, &forged_client_yh(&y)).expect("accepted");
        assert_eq!(done.consumed, YH_LEN);
        assert!(done.session.is_some());
    }
}

/// The §1.6 compatibility matrix, in memory.
#[test]
fn pfs_flag_matrix() {
    use Flag::*;
    let cases = [
        (Default, Default, Outcome::Done),
        (Default, Require, Outcome::Done),
        (Default, NoPfs, Outcome::Done),
        (NoPfs, Default, Outcome::Done),
        (
            NoPfs,
            Require,
            Outcome::ServerFailed(HandshakeError::PfsRequired),
        ),
        (NoPfs, NoPfs, Outcome::Done),
        (Require, Default, Outcome::Done),
        (Require, Require, Outcome::Done),
        (
            Require,
            NoPfs,
            Outcome::ClientFailed(HandshakeError::PfsRequired),
        ),
    ];
    for (i, (cp, sp, want)) in cases.into_iter().enumerate() {
        let mut rng = TestRng::new(100 + i as u64);
        let (mut c, mut s) = pair(KEY, &[KEY], cp, sp, &mut rng);
        let (got, sessions) = drive(&mut c, &mut s, &mut no_filter(), &mut no_filter());
        assert_eq!(got, want, "client {cp:?} server {sp:?}");
        if let Outcome::ServerFailed(e) = got {
            assert_eq!(s.next_step().err(), Some(e), "server must not send y_S");
        }
        if let Some((cs, ss)) = sessions {
            // The sessions interoperate in both directions.
            let ((mut ce, mut cd), (mut se, mut sd)) = (cs.into_stream(), ss.into_stream());
            let (mut wire, mut out) = (Vec::new(), Vec::new());
            ce.encode(b"ping", &mut wire).expect("encode");
            sd.decode(&wire, &mut out).expect("decode");
            assert_eq!(out, b"ping");
            wire.clear();
            out.clear();
            se.encode(b"pong", &mut wire).expect("encode");
            cd.decode(&wire, &mut out).expect("decode");
            assert_eq!(out, b"pong");
        }
    }
}

#[test]
fn a_server_with_several_keys_accepts_each_and_reports_which() {
    let mut rng = TestRng::new(3);
    for (i, ck) in [b"old key".as_slice(), b"new key"].into_iter().enumerate() {
        let (c, s) = pair(
            ck,
            &[b"old key", b"new key"],
            Flag::Default,
            Flag::Default,
            &mut rng,
        );
        let (cs, ss) = established(c, s);
        assert_eq!(ss.key_index(), i);
        assert_eq!(cs.key_index(), 0);
        let ((mut ce, _), (_, mut sd)) = (cs.into_stream(), ss.into_stream());
        let (mut wire, mut out) = (Vec::new(), Vec::new());
        ce.encode(b"x", &mut wire).expect("encode");
        sd.decode(&wire, &mut out).expect("decode");
        assert_eq!(out, b"x");
    }
    let (mut c, mut s) = pair(
        b"other",
        &[b"old key", b"new key"],
        Flag::NoPfs,
        Flag::NoPfs,
        &mut rng,
    );
    assert_eq!(
        drive(&mut c, &mut s, &mut no_filter(), &mut no_filter()).0,
        Outcome::ServerFailed(HandshakeError::BadDhMac)
    );
}

#[test]
fn handshake_never_consumes_bytes_past_its_end() {
    let mut rng = TestRng::new(11);
    let (mut c, mut s) = pair(KEY, &[KEY], Flag::NoPfs, Flag::NoPfs, &mut rng);
    // Server nonce, then (after y_C) y_S followed directly by the first data packet.
    let c_nonce = pump(&mut c, &[]).expect("nonce").sent;
    let s_nonce = pump(&mut s, &c_nonce).expect("nonce").sent;
    let c_yh = pump(&mut c, &s_nonce).expect("nonce").sent;
    let done = pump(&mut s, &c_yh).expect("y_C");
    let mut s_bytes = done.sent;
    let (mut se, _) = done.session.expect("server").into_stream();
    se.encode(b"banner right behind y_S", &mut s_bytes)
        .expect("encode");
    let (consumed, step) = c.read(&s_bytes).expect("client");
    assert_eq!(consumed, YH_LEN);
    let Step::Done(session) = step else {
        panic!("client not done: {step:?}");
    };
    let (_, mut cd) = session.into_stream();
    let mut out = Vec::new();
    cd.decode(&s_bytes[consumed..], &mut out).expect("leftover");
    assert_eq!(out, b"banner right behind y_S");
}

#[test]
fn handshake_accepts_input_one_byte_at_a_time() {
    let mut rng = TestRng::new(12);
    let (mut c, mut s) = pair(KEY, &[KEY], Flag::Default, Flag::Default, &mut rng);
    /// Hands `bytes` to `to` one at a time; returns what it sends back and its session.
    fn dribble(to: &mut Handshake, bytes: &[u8]) -> (Vec<u8>, Option<Session>) {
        let mut sent = Vec::new();
        for &b in bytes {
            let done = pump(to, &[b]).expect("one byte");
            assert_eq!(done.consumed, 1);
            sent.extend_from_slice(&done.sent);
            if done.session.is_some() {
                return (sent, done.session);
            }
        }
        (sent, None)
    }
    let mut to_s = pump(&mut c, &[]).expect("nonce").sent;
    let (mut to_c, mut ss) = (Vec::new(), None);
    let mut cs = None;
    for _ in 0..4 {
        if ss.is_none() {
            let (out, done) = dribble(&mut s, &std::mem::take(&mut to_s));
            to_c.extend_from_slice(&out);
            ss = done;
        }
        if cs.is_none() {
            let (out, done) = dribble(&mut c, &std::mem::take(&mut to_c));
            to_s.extend_from_slice(&out);
            cs = done;
        }
    }
    established_check(cs.expect("c"), ss.expect("s"));
}

fn established_check(c: Session, s: Session) {
    let ((mut ce, _), (_, mut sd)) = (c.into_stream(), s.into_stream());
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    ce.encode(b"ok", &mut wire).expect("encode");
    sd.decode(&wire, &mut out).expect("decode");
    assert_eq!(out, b"ok");
}

// ---------------------------------------------------------------- packet faults

/// Established client→server streams (encoder at the client, decoder at the server) and the
/// reverse ones.
fn streams() -> ((Encoder, Decoder), (Encoder, Decoder)) {
    let mut rng = TestRng::new(21);
    let (c, s) = pair(KEY, &[KEY], Flag::NoPfs, Flag::NoPfs, &mut rng);
    let (cs, ss) = established(c, s);
    (cs.into_stream(), ss.into_stream())
}

/// Three client packets: "one", "two", "three".
fn three_packets(enc: &mut Encoder) -> Vec<Vec<u8>> {
    [b"one".as_slice(), b"two", b"three"]
        .iter()
        .map(|m| {
            let mut p = Vec::new();
            enc.encode(m, &mut p).expect("encode");
            assert_eq!(p.len(), PACKET_LEN);
            p
        })
        .collect()
}

/// Feeds `packets` in order and returns the plaintext delivered and the result.
fn feed(dec: &mut Decoder, packets: &[&[u8]]) -> (Vec<u8>, Result<(), StreamError>) {
    let wire: Vec<u8> = packets.concat();
    let mut out = Vec::new();
    let r = dec.decode(&wire, &mut out);
    (out, r)
}

const BAD_MAC: Result<(), StreamError> = Err(StreamError::Packet(PacketError::BadMac));

#[test]
fn replayed_packet_is_rejected_and_nothing_after_it_is_delivered() {
    let ((mut ce, _), (_, mut sd)) = streams();
    let p = three_packets(&mut ce);
    let (out, r) = feed(&mut sd, &[&p[0], &p[0], &p[1]]);
    assert_eq!(out, b"one");
    assert_eq!(r, BAD_MAC);
    // Poisoned: even the right next packet is refused now.
    let (out, r) = feed(&mut sd, &[&p[1]]);
    assert!(out.is_empty());
    assert_eq!(r, BAD_MAC);
    assert_eq!(sd.finish(), BAD_MAC);
}

#[test]
fn reordered_packets_are_rejected() {
    let ((mut ce, _), (_, mut sd)) = streams();
    let p = three_packets(&mut ce);
    let (out, r) = feed(&mut sd, &[&p[0], &p[2], &p[1]]);
    assert_eq!(out, b"one");
    assert_eq!(r, BAD_MAC);
}

#[test]
fn dropped_packet_is_detected_at_the_next_one() {
    let ((mut ce, _), (_, mut sd)) = streams();
    let p = three_packets(&mut ce);
    let (out, r) = feed(&mut sd, &[&p[1], &p[2]]);
    assert!(out.is_empty());
    assert_eq!(r, BAD_MAC);
}

#[test]
fn reflected_packet_is_rejected() {
    // A packet the client sent, played back to the client as if from the server.
    let ((mut ce, mut cd), _) = streams();
    let p = three_packets(&mut ce);
    let (out, r) = feed(&mut cd, &[&p[0]]);
    assert!(out.is_empty());
    assert_eq!(r, BAD_MAC);
}

#[test]
fn every_bit_flip_in_a_packet_is_rejected() {
    let ((mut ce, _), _) = streams();
    let p = three_packets(&mut ce);
    for bit in (0..PACKET_LEN * 8).step_by(7) {
        let (_, (_, mut sd)) = streams();
        let mut bad = p[0].clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let (out, r) = feed(&mut sd, &[&bad, &p[1]]);
        assert!(out.is_empty(), "bit {bit}");
        assert_eq!(r, BAD_MAC, "bit {bit}");
    }
}

/// Builds client packet number `pnum` with length field `len` and a valid MAC, using the
/// session keys of the §6 vectors (empty key, nonces 00/11, `-f`).
fn raw_vector_packet(pnum: u64, payload: &[u8], len_field: u32) -> Vec<u8> {
    let e_c = unhex("3de5d17e1c645680d138713989732e497f81b6206f0a9f597e205c44346a4e2a");
    let h_c = unhex("0bb12c1e32d5009b64d54ebacfa04063af4064e34e9301e067f24418f68e6b33");
    let mut plain = vec![0u8; 1028];
    plain[..payload.len()].copy_from_slice(payload);
    plain[1024..].copy_from_slice(&len_field.to_be_bytes());
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(e_c.as_slice().into(), &iv.into());
    cipher.apply_keystream(&mut plain);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&h_c).expect("key");
    mac.update(&plain);
    mac.update(&pnum.to_be_bytes());
    plain.extend_from_slice(&mac.finalize().into_bytes());
    plain
}

/// A server-side decoder for the §6 vector session.
fn vector_server_decoder() -> Decoder {
    let key = || KeySet::single(Key::from_key_file(b""));
    let mut c = Handshake::new(Role::Client, key(), [0x00; 32], DhMode::NoPfs);
    let mut s = Handshake::new(Role::Server, key(), [0x11; 32], DhMode::NoPfs);
    let (outcome, sessions) = drive(&mut c, &mut s, &mut no_filter(), &mut no_filter());
    assert_eq!(outcome, Outcome::Done);
    sessions.expect("sessions").1.into_stream().1
}

#[test]
fn raw_packet_builder_agrees_with_the_sealer() {
    let mut dec = vector_server_decoder();
    let mut out = Vec::new();
    dec.decode(&raw_vector_packet(0, b"hello", 5), &mut out)
        .expect("valid");
    assert_eq!(out, b"hello");
}

#[test]
fn length_zero_and_1025_under_a_valid_mac_are_rejected() {
    for len in [0u32, 1025, u32::MAX] {
        let mut dec = vector_server_decoder();
        let mut out = Vec::new();
        let mut wire = raw_vector_packet(0, b"ok", 2);
        wire.extend(raw_vector_packet(1, b"bad", len));
        wire.extend(raw_vector_packet(2, b"after", 5));
        assert_eq!(
            dec.decode(&wire, &mut out),
            Err(StreamError::Packet(PacketError::BadLength { len }))
        );
        assert_eq!(out, b"ok", "len {len}");
    }
}

#[test]
fn truncated_final_packet_is_an_error_distinct_from_clean_eof() {
    let ((mut ce, _), (_, mut sd)) = streams();
    let p = three_packets(&mut ce);
    let mut out = Vec::new();
    sd.decode(&p[0], &mut out).expect("first");
    assert_eq!(sd.finish(), Ok(()), "clean EOF at a packet boundary");
    for cut in [1, 500, PACKET_LEN - 1] {
        let ((mut ce, _), (_, mut sd)) = streams();
        let p = three_packets(&mut ce);
        let mut out = Vec::new();
        sd.decode(&p[0], &mut out).expect("first");
        sd.decode(&p[1][..cut], &mut out).expect("partial is fine");
        assert_eq!(out, b"one");
        assert_eq!(sd.finish(), Err(StreamError::Truncated { have: cut }));
    }
}
