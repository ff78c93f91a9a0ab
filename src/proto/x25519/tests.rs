//! Known-answer vectors of the `--x25519` mode (docs/protocol.md §6.2; generated independently by
//! `scripts/x25519-vectors.py` with Python's hashlib and the `cryptography` package), the RFC
//! 7748 vector of the primitive, and the mode's handshake behaviour: mismatches, padding,
//! low-order points, and that an unauthenticated client never gets a key pair computed; and, for
//! both exchanges, a server that answers before deriving (`answer_before_deriving`).

use super::*;
use crate::proto::crypt::{DhKeyPair, DhMode};
use crate::proto::handshake::PeerClosed;
use crate::proto::handshake::testing::{run_pair, run_pair_with};
use crate::proto::handshake::{Exchange, Handshake, KeyKind, KeyPair, Session, Step};
use crate::proto::key::KeySet;
use crate::proto::{HANDSHAKE_LEN, NONCE_LEN};

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    assert_eq!(s.len(), 2 * N, "{s}");
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

// RFC 7748 §6.1 (Alice = client, Bob = server), key file empty, nonces 00..1f and 20..3f.
const A_PRIV: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const A_PUB: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const B_PRIV: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const B_PUB: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
const DHMAC_C: &str = "2da01f48ffd8e28374578437abead7b6ac912e2231227447c758580082e4f519";
const DHMAC_S: &str = "09d17916263fca1bba5824d8fafb13a8c04d3c018573a49cdc7d8fe865673f9e";
const H_C: &str = "dbe552d9441d8e589a372a0afc78225007e642d0fb5cece184779619798712db";
const H_S: &str = "1a6615df5c17dd21ca9e55ecce66460c244d4323643e974b6a9c70ae16bfd24c";
const E_C: &str = "e4b40e82350e8e2f4a87202707cda2fcedd20c48aeb6f489e9f8a26b24d14cee";
const MAC_C: &str = "44f457950a20338ecde4fe1977eba2b1d745fc0dff4ead29b4b2bfb2dfc6f152";
const E_S: &str = "7b97d900e9311c4c8f8641ec5e5365b5fe129b9356656c4f5fc2d030e5dd3a89";
const MAC_S: &str = "b4d3ba324c958d4f4662adad577578f115c12747c79c72f7b229a3cb54f94c1b";

fn nonces() -> ([u8; NONCE_LEN], [u8; NONCE_LEN]) {
    let mut c = [0u8; NONCE_LEN];
    let mut s = [0u8; NONCE_LEN];
    for i in 0..NONCE_LEN {
        c[i] = i as u8;
        s[i] = (i + NONCE_LEN) as u8;
    }
    (c, s)
}

fn keys(file: &[u8]) -> KeySet {
    KeySet::single(Key::from_key_file(file))
}

#[test]
fn rfc7748_primitive() {
    // RFC 7748 §5.2, first test vector of the X25519 function.
    let k = unhex::<32>("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u = unhex::<32>("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    let out = unhex::<32>("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    assert_eq!(x25519_dalek::x25519(k, u), out);
    // RFC 7748 §6.1: both public keys and the shared secret, through our key-pair type.
    let a = X25519KeyPair::from_private(unhex(A_PRIV));
    let b = X25519KeyPair::from_private(unhex(B_PRIV));
    assert_eq!(a.public(), &unhex::<32>(A_PUB));
    assert_eq!(b.public(), &unhex::<32>(B_PUB));
    let s = a.secret.diffie_hellman(&PublicKey::from(*b.public()));
    assert_eq!(s.as_bytes(), &unhex::<32>(SHARED));
}

#[test]
fn known_answer_derivations() {
    let key = Key::from_key_file(b"");
    let (nc, ns) = nonces();
    let dk1 = dh_mac_keys(&key, &nc, &ns);
    assert_eq!(dk1.client.as_bytes(), &unhex::<32>(DHMAC_C));
    assert_eq!(dk1.server.as_bytes(), &unhex::<32>(DHMAC_S));

    let a = X25519KeyPair::from_private(unhex(A_PRIV));
    let b = X25519KeyPair::from_private(unhex(B_PRIV));
    let msg_c = message(&dk1, Role::Client, a.public());
    let msg_s = message(&dk1, Role::Server, b.public());
    assert_eq!(&msg_c[..PUBLIC_LEN], &unhex::<32>(A_PUB));
    assert!(msg_c[PUBLIC_LEN..DH_PUBLIC_LEN].iter().all(|&x| x == 0));
    assert_eq!(&msg_c[DH_PUBLIC_LEN..], &unhex::<32>(H_C));
    assert_eq!(&msg_s[DH_PUBLIC_LEN..], &unhex::<32>(H_S));

    let cands = std::slice::from_ref(&key);
    let (peer_c, _) = validate_peer(&msg_c, Role::Client, cands, &nc, &ns).expect("valid C");
    let (peer_s, _) = validate_peer(&msg_s, Role::Server, cands, &nc, &ns).expect("valid S");
    let at_server = session_keys(&key, &nc, &ns, Role::Server, &b, &peer_c).expect("keys");
    let at_client = session_keys(&key, &nc, &ns, Role::Client, &a, &peer_s).expect("keys");
    for ks in [&at_server, &at_client] {
        assert_eq!(ks.enc_client.as_bytes(), &unhex::<32>(E_C));
        assert_eq!(ks.mac_client.as_bytes(), &unhex::<32>(MAC_C));
        assert_eq!(ks.enc_server.as_bytes(), &unhex::<32>(E_S));
        assert_eq!(ks.mac_server.as_bytes(), &unhex::<32>(MAC_S));
    }
}

/// The bytes a [`Step::Send`] hands out (any other step is a test failure).
fn bytes(step: Result<Step<'_>, HandshakeError>) -> Vec<u8> {
    match step {
        Ok(Step::Send(b)) => b.to_vec(),
        other => panic!("expected bytes to send, got {other:?}"),
    }
}

/// The session a [`Step::Done`] hands over (any other step is a test failure).
fn session(step: Result<Step<'_>, HandshakeError>) -> Session {
    match step {
        Ok(Step::Done(s)) => *s,
        other => panic!("expected the session, got {other:?}"),
    }
}

/// Everything `hs` has to send now, marked sent.
fn flush(hs: &mut Handshake) -> Vec<u8> {
    let out = bytes(hs.next_step());
    hs.sent(out.len()).expect("sent");
    out
}

fn x25519_pair(seed: u8) -> X25519KeyPair {
    X25519KeyPair::from_private([seed; 32])
}

fn group14_pair(seed: u8) -> DhKeyPair {
    DhKeyPair::from_private([seed; 32])
}

fn roundtrip(c: Session, s: Session) {
    let (mut ce, mut cd) = c.into_stream();
    let (mut se, mut sd) = s.into_stream();
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    ce.encode(b"ping from the client", &mut wire).expect("enc");
    sd.decode(&wire, &mut plain).expect("dec");
    assert_eq!(plain, b"ping from the client");
    wire.clear();
    plain.clear();
    se.encode(b"pong", &mut wire).expect("enc");
    cd.decode(&wire, &mut plain).expect("dec");
    assert_eq!(plain, b"pong");
}

#[test]
fn handshake_reproduces_the_vectors_byte_for_byte() {
    let (nc, ns) = nonces();
    let mut c = Handshake::with_exchange(
        Role::Client,
        keys(b""),
        nc,
        Exchange::X25519(X25519KeyPair::from_private(unhex(A_PRIV))),
    );
    let mut s = Handshake::with_exchange(
        Role::Server,
        keys(b""),
        ns,
        Exchange::X25519(X25519KeyPair::from_private(unhex(B_PRIV))),
    );
    let mut c_sent = flush(&mut c);
    let s_sent_nonce = flush(&mut s);
    let (used, step) = c.read(&s_sent_nonce).expect("nonce");
    assert_eq!(used, NONCE_LEN);
    let c_value = bytes(Ok(step));
    c_sent.extend_from_slice(&c_value);
    assert!(matches!(c.sent(YH_LEN), Ok(Step::NeedInput(YH_LEN))));
    let (used, step) = s.read(&c_sent).expect("client message");
    assert_eq!(used, HANDSHAKE_LEN);
    let mut s_sent = s_sent_nonce;
    s_sent.extend_from_slice(&bytes(Ok(step)));
    let ss = session(s.sent(YH_LEN));
    let (used, step) = c.read(&s_sent[NONCE_LEN..]).expect("server message");
    assert_eq!(used, YH_LEN);
    let cs = session(Ok(step));
    assert_eq!(c_sent.len(), HANDSHAKE_LEN);
    assert_eq!(s_sent.len(), HANDSHAKE_LEN);
    let mut expect_c = nc.to_vec();
    expect_c.extend_from_slice(&value_field(&unhex(A_PUB)));
    expect_c.extend_from_slice(&unhex::<32>(H_C));
    let mut expect_s = ns.to_vec();
    expect_s.extend_from_slice(&value_field(&unhex(B_PUB)));
    expect_s.extend_from_slice(&unhex::<32>(H_S));
    assert_eq!(c_sent, expect_c);
    assert_eq!(s_sent, expect_s);
    roundtrip(cs, ss);
}

#[test]
fn deferred_pairs_are_asked_for_at_the_right_time() {
    let mut c =
        Handshake::with_exchange(Role::Client, keys(b"k"), [1; 32], Exchange::X25519Deferred);
    let mut s =
        Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], Exchange::X25519Deferred);
    // Nonces cross; the client asks for nothing before.
    let cn = flush(&mut c);
    let sn = flush(&mut s);
    assert!(
        matches!(s.read(&cn), Ok((32, Step::NeedInput(YH_LEN)))),
        "server must not ask before the MAC"
    );
    assert!(matches!(
        c.read(&sn),
        Ok((32, Step::NeedKeyPair(KeyKind::X25519)))
    ));
    // The wrong kind is refused and kills the handshake.
    let mut c2 =
        Handshake::with_exchange(Role::Client, keys(b"k"), [1; 32], Exchange::X25519Deferred);
    c2.read(&sn).expect("nonce");
    assert_eq!(
        c2.provide_key_pair(KeyPair::Group14(group14_pair(3))).err(),
        Some(HandshakeError::UnexpectedKeyPair)
    );
    assert_eq!(c2.read(&[0]).err(), Some(HandshakeError::UnexpectedKeyPair));

    let cm = bytes(c.provide_key_pair(KeyPair::X25519(x25519_pair(3))));
    assert_eq!(cm.len(), YH_LEN);
    c.sent(cm.len()).expect("sent");
    // The client's message and a packet in one read: the server stops at the message.
    let mut input = cm.clone();
    input.extend_from_slice(b"trailing data");
    assert!(
        matches!(
            s.read(&input),
            Ok((YH_LEN, Step::NeedKeyPair(KeyKind::X25519)))
        ),
        "no answer before the pair"
    );
    let answer = bytes(s.provide_key_pair(KeyPair::X25519(x25519_pair(4))));
    assert_eq!(answer.len(), YH_LEN);
    assert_eq!(
        s.provide_key_pair(KeyPair::X25519(x25519_pair(5))).err(),
        Some(HandshakeError::UnexpectedKeyPair),
        "a pair is used once, and only when asked for"
    );
}

#[test]
fn deferred_group14_server_works_too() {
    let mut c = Handshake::new(
        Role::Client,
        keys(b"k"),
        [1; 32],
        DhMode::Pfs(group14_pair(7)),
    );
    let mut s = Handshake::with_exchange(
        Role::Server,
        keys(b"k"),
        [2; 32],
        Exchange::Group14Deferred { require_pfs: true },
    );
    let mut asked = Vec::new();
    let (cs, ss) = run_pair_with(
        &mut c,
        &mut s,
        &mut |_| panic!("the client has its pair"),
        &mut |kind| {
            asked.push(kind);
            KeyPair::Group14(group14_pair(8))
        },
    )
    .expect("handshake");
    assert_eq!(asked, [KeyKind::Group14]);
    roundtrip(cs, ss);
}

#[test]
fn mode_mismatch_is_named_both_ways() {
    // X25519 client → spiped-compatible server.
    let mut c = Handshake::with_exchange(
        Role::Client,
        keys(b"k"),
        [1; 32],
        Exchange::X25519(x25519_pair(1)),
    );
    let mut s = Handshake::new(
        Role::Server,
        keys(b"k"),
        [2; 32],
        DhMode::Pfs(group14_pair(2)),
    );
    assert_eq!(
        run_pair(&mut c, &mut s).err(),
        Some((Role::Server, HandshakeError::PeerUsesX25519))
    );
    // Dead: nothing more to send.
    assert_eq!(s.next_step().err(), Some(HandshakeError::PeerUsesX25519));
    assert_eq!(
        c.peer_closed(),
        PeerClosed::Rejected,
        "our client sees EOF here: rejected"
    );

    // spiped-compatible client (also -f) → X25519 server.
    for mode in [DhMode::Pfs(group14_pair(3)), DhMode::NoPfs] {
        let mut c = Handshake::new(Role::Client, keys(b"k"), [1; 32], mode);
        let mut s =
            Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], Exchange::X25519Deferred);
        assert_eq!(
            run_pair_with(
                &mut c,
                &mut s,
                &mut |_| panic!("the client has its pair"),
                &mut |_| panic!("a server that rejects the MAC asks for no pair"),
            )
            .err(),
            Some((Role::Server, HandshakeError::PeerNotX25519))
        );
    }

    // X25519 both ends, different keys: a plain bad MAC.
    let mut c = Handshake::with_exchange(
        Role::Client,
        keys(b"k1"),
        [1; 32],
        Exchange::X25519(x25519_pair(1)),
    );
    let mut s = Handshake::with_exchange(
        Role::Server,
        keys(b"k2"),
        [2; 32],
        Exchange::X25519(x25519_pair(2)),
    );
    assert_eq!(
        run_pair(&mut c, &mut s).err(),
        Some((Role::Server, HandshakeError::BadDhMac))
    );
}

/// A server (deferred) that has read `nonce` and a client `v ‖ h` carrying `v` under a valid
/// X25519-mode MAC.
fn server_fed(v: &[u8; DH_PUBLIC_LEN]) -> (Handshake, Result<(), HandshakeError>) {
    let key = Key::from_key_file(b"k");
    let mut s =
        Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], Exchange::X25519Deferred);
    let nc = [1u8; 32];
    flush(&mut s);
    s.read(&nc).expect("nonce");
    let dk1 = dh_mac_keys(&key, &nc, &[2; 32]);
    let mut vh = [0u8; YH_LEN];
    vh[..DH_PUBLIC_LEN].copy_from_slice(v);
    vh[DH_PUBLIC_LEN..].copy_from_slice(&dh_mac(&dk1.client, v));
    let r = match s.read(&vh) {
        Ok((YH_LEN, Step::NeedKeyPair(KeyKind::X25519))) => Ok(()),
        Ok((used, step)) => panic!("read {used}, then {step:?}"),
        Err(e) => Err(e),
    };
    (s, r)
}

#[test]
fn nonzero_padding_is_rejected() {
    let mut v = value_field(x25519_pair(9).public());
    v[DH_PUBLIC_LEN - 1] = 1;
    assert_eq!(server_fed(&v).1, Err(HandshakeError::BadX25519Padding));
}

#[test]
fn low_order_points_give_no_session() {
    // Points of small order on Curve25519 (and their non-canonical forms): X25519 with any
    // scalar gives all zeros (RFC 7748 §6.1 "check for all-zero").
    let low_order: [[u8; 32]; 4] = [
        [0; 32],
        {
            let mut one = [0; 32];
            one[0] = 1;
            one
        },
        unhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        unhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ];
    for p in low_order {
        let (mut s, r) = server_fed(&value_field(&p));
        assert_eq!(r, Ok(()), "the MAC is valid");
        assert_eq!(
            s.provide_key_pair(KeyPair::X25519(x25519_pair(4))).err(),
            Some(HandshakeError::ZeroSharedSecret)
        );
        assert_eq!(
            s.next_step().err(),
            Some(HandshakeError::ZeroSharedSecret),
            "dead: no answer to send"
        );
    }
}

/// A small deterministic generator for garbage (xorshift64*).
struct Garbage(u64);

impl Garbage {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

#[test]
fn unauthenticated_clients_never_get_a_key_pair() {
    // By construction: a deferred server holds no private value until the client's MAC has
    // verified, so neither an exponentiation (group 14: key generation or y^x) nor an X25519
    // operation can run for a client that does not know the key. 2000 random 320-byte
    // handshakes, in both modes and several chunkings: each fails on its MAC and none ever
    // asks for a key pair.
    let mut g = Garbage(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000usize {
        let exchange = if i % 2 == 0 {
            Exchange::X25519Deferred
        } else {
            Exchange::Group14Deferred {
                require_pfs: i % 4 == 1,
            }
        };
        let mut s = Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], exchange);
        let mut junk = [0u8; HANDSHAKE_LEN];
        g.fill(&mut junk);
        let chunk = 1 + i % 97;
        let mut result = Ok(());
        for part in junk.chunks(chunk) {
            match s.read(part) {
                // Our nonce is never marked sent here, so it is all there is to send.
                Ok((_, Step::Send(b))) => {
                    assert_eq!(b.len(), NONCE_LEN, "garbage #{i}: only our nonce is queued")
                }
                Ok((_, step)) => panic!("garbage #{i}: {step:?}"),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        assert_eq!(result, Err(HandshakeError::BadDhMac), "garbage #{i}");
    }
}

/// The private parts of both kinds of key pair are wiped when dropped, by type: x25519-dalek's
/// `StaticSecret` and `SharedSecret` derive `Zeroize` with `zeroize(drop)` (a `Drop` that wipes;
/// its `zeroize` feature), and `DhKeyPair` keeps its private value in a `Zeroizing` array. The
/// handshake drops its pair once the session keys exist (and on failure).
#[test]
fn private_parts_zeroize_on_drop() {
    fn wiped_on_drop<T: Zeroize>() -> bool {
        std::mem::needs_drop::<T>()
    }
    assert!(wiped_on_drop::<StaticSecret>());
    assert!(wiped_on_drop::<x25519_dalek::SharedSecret>());
    fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroize_on_drop::<Zeroizing<[u8; crate::proto::dh::DH_PRIVATE_LEN]>>();
}

/// The messages a client with `exchange` sends to a server with nonce `[2; 32]`: its nonce, then
/// its `y ‖ h`.
fn client_messages(exchange: Exchange) -> (Handshake, Vec<u8>, Vec<u8>) {
    let mut c = Handshake::with_exchange(Role::Client, keys(b"k"), [1; 32], exchange);
    let nonce = flush(&mut c);
    let (_, step) = c.read(&[2; 32]).expect("server nonce");
    let yh = bytes(Ok(step));
    c.sent(yh.len()).expect("sent");
    (c, nonce, yh)
}

#[test]
fn answering_before_deriving_changes_no_byte_and_no_key() {
    type Exchanges = fn() -> (Exchange, Exchange, Exchange);
    let cases: [Exchanges; 2] = [
        || {
            (
                Exchange::Group14(DhMode::Pfs(group14_pair(7))),
                Exchange::Group14(DhMode::Pfs(group14_pair(8))),
                Exchange::Group14(DhMode::Pfs(group14_pair(8))),
            )
        },
        || {
            (
                Exchange::X25519(x25519_pair(7)),
                Exchange::X25519(x25519_pair(8)),
                Exchange::X25519(x25519_pair(8)),
            )
        },
    ];
    for case in cases {
        let (client, plain_ex, early_ex) = case();
        let (mut c, nonce_c, yh_c) = client_messages(client);
        let mut plain = Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], plain_ex);
        let mut early = Handshake::with_exchange(Role::Server, keys(b"k"), [2; 32], early_ex)
            .answer_before_deriving();
        let mut answers = Vec::new();
        for s in [&mut plain, &mut early] {
            let nonce = bytes(s.read(&nonce_c).map(|(_, step)| step));
            let (used, step) = s.read(&yh_c).expect("client value");
            assert_eq!(used, YH_LEN);
            // Our nonce was never marked sent: it comes out with the answer.
            let out = bytes(Ok(step));
            assert_eq!(out[..NONCE_LEN], nonce[..]);
            answers.push(out);
        }
        assert_eq!(answers[0], answers[1], "same nonce and y_S ‖ h_S");
        let answer = answers.remove(0);
        assert_eq!(answer.len(), HANDSHAKE_LEN);
        let plain = session(plain.sent(answer.len()));
        assert!(
            matches!(early.sent(answer.len()), Ok(Step::Derive)),
            "keys wait for derive; nothing read meanwhile"
        );
        let early_session = session(early.derive());
        assert_eq!(
            early.derive().err(),
            Some(HandshakeError::UnexpectedKeyPair)
        );
        let (_, step) = c.read(&answer[NONCE_LEN..]).expect("server answer");
        let c = session(Ok(step));
        // The same keys: both servers seal a packet to the same bytes, and it reaches the client.
        let (mut plain_enc, _) = plain.into_stream();
        let (mut early_enc, early_dec) = early_session.into_stream();
        let (mut wire_plain, mut wire_early) = (Vec::new(), Vec::new());
        plain_enc
            .encode(b"same keys", &mut wire_plain)
            .expect("enc");
        early_enc
            .encode(b"same keys", &mut wire_early)
            .expect("enc");
        assert_eq!(wire_plain, wire_early);
        let (mut c_enc, mut c_dec) = c.into_stream();
        let mut got = Vec::new();
        c_dec.decode(&wire_early, &mut got).expect("client decodes");
        assert_eq!(got, b"same keys");
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        c_enc.encode(b"reply", &mut wire).expect("enc");
        let mut early_dec = early_dec;
        early_dec.decode(&wire, &mut back).expect("server decodes");
        assert_eq!(back, b"reply");
    }
}

#[test]
fn answering_before_deriving_still_rejects_low_order_points() {
    let (s, r) = server_fed(&value_field(&[0; 32]));
    assert_eq!(r, Ok(()), "the MAC is valid");
    let mut s = s.answer_before_deriving();
    let answer = bytes(s.provide_key_pair(KeyPair::X25519(x25519_pair(4))));
    assert_eq!(answer.len(), YH_LEN, "the answer needs no shared secret");
    assert!(matches!(s.sent(answer.len()), Ok(Step::Derive)));
    assert_eq!(s.derive().err(), Some(HandshakeError::ZeroSharedSecret));
    assert_eq!(
        s.read(&[0; 8]).err(),
        Some(HandshakeError::ZeroSharedSecret),
        "dead"
    );
    assert_eq!(s.next_step().err(), Some(HandshakeError::ZeroSharedSecret));
}
