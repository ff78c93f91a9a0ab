//! Every known-answer vector of spec §6, byte for byte.
//!
//! Inputs: empty key file (`-k /dev/null`), nonce_C = 00×32, nonce_S = 11×32.

mod common;

use common::{hex, sha256_hex, unhex};
use spiperelay::proto::crypt::{
    DhKeyPair, DhMacKeys, DhMode, Role, Y_ONE, dh_mac, session_keys, validate_peer,
};
use spiperelay::proto::handshake::{Handshake, Session, Step};
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::proto::packet::{Opener, Sealer};
use spiperelay::proto::{HandshakeError, PACKET_LEN, YH_LEN};

const NONCE_C: [u8; 32] = [0x00; 32];
const NONCE_S: [u8; 32] = [0x11; 32];

const DHMAC_C: &str = "4fadf640cc2e6ba5ada42fa97c56e0d3b3c34b2dc961e1d0f389446faf971c60";
const DHMAC_S: &str = "735840277eca33fc2b32646b0008dd7d132584b1bf6d5d57fbfa800e8c516858";
const H_C_Y1: &str = "e334d16c9afeddc141cb2495e2757b4e89c56e794e00ea7fd38543c822317ed9";
const H_S_Y1: &str = "e83d26d6280343321b21ae3ecf3681e6b2f84929134949e5e5b45b035983e2c2";
const E_C: &str = "3de5d17e1c645680d138713989732e497f81b6206f0a9f597e205c44346a4e2a";
const H_C: &str = "0bb12c1e32d5009b64d54ebacfa04063af4064e34e9301e067f24418f68e6b33";
const E_S: &str = "986fa21abb16d5c9df2d077a7bea40d0db17620684d1f336ccf8d7814505b2db";
const H_S: &str = "fd7267d7ebc5e3c323581f76e34f051dfdb14c63679f1349d18d3a788cad6429";
const CLIENT_HELLO_SHA: &str = "59019a7213da279cfe5354a9b4fb79e69adee637291536639cabdc000c09ef12";
const CLIENT_WORLD_SHA: &str = "c256b4c32718be3593237c76891ab6c6d45d62da3d42382ef9fbf1cf6f85f4c1";
const SERVER_HELLO_SHA: &str = "c3707e80ece5b952772b30a9c82299b0414ba7541c13a3c14014ffd51b40ab75";

fn empty_key() -> Key {
    Key::from_key_file(b"")
}

fn yh(y: &[u8; 256], h: &[u8]) -> [u8; YH_LEN] {
    let mut out = [0u8; YH_LEN];
    out[..256].copy_from_slice(y);
    out[256..].copy_from_slice(h);
    out
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

#[test]
fn k_of_the_empty_key_file() {
    assert_eq!(
        hex(empty_key().as_bytes()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn dk1_gives_dhmac_c_and_dhmac_s() {
    let dk1 = DhMacKeys::derive(&empty_key(), &NONCE_C, &NONCE_S);
    assert_eq!(hex(dk1.client.as_bytes()), DHMAC_C);
    assert_eq!(hex(dk1.server.as_bytes()), DHMAC_S);
}

#[test]
fn dh_macs_of_y_equal_one() {
    let dk1 = DhMacKeys::derive(&empty_key(), &NONCE_C, &NONCE_S);
    assert_eq!(hex(&dh_mac(&dk1.client, &Y_ONE)), H_C_Y1);
    assert_eq!(hex(&dh_mac(&dk1.server, &Y_ONE)), H_S_Y1);
}

/// The four session keys for y_SC = 1, reached through the validation function (the only way to
/// get a `ValidatedPeer`), which also checks the vector h_S.
#[test]
fn session_keys_for_y_sc_one() {
    let key = empty_key();
    let (peer, _) = validate_peer(
        &yh(&Y_ONE, &unhex(H_S_Y1)),
        Role::Server,
        std::slice::from_ref(&key),
        &NONCE_C,
        &NONCE_S,
        &DhMode::NoPfs,
    )
    .expect("vector h_S verifies");
    let keys = session_keys(&key, &NONCE_C, &NONCE_S, &DhMode::NoPfs, &peer);
    assert_eq!(hex(keys.enc_client.as_bytes()), E_C);
    assert_eq!(hex(keys.mac_client.as_bytes()), H_C);
    assert_eq!(hex(keys.enc_server.as_bytes()), E_S);
    assert_eq!(hex(keys.mac_server.as_bytes()), H_S);
}

#[test]
fn validation_rejects_the_vector_mac_under_the_wrong_role() {
    // h_S is the server's MAC; presented as the client's it must fail.
    let key = empty_key();
    let err = validate_peer(
        &yh(&Y_ONE, &unhex(H_S_Y1)),
        Role::Client,
        std::slice::from_ref(&key),
        &NONCE_C,
        &NONCE_S,
        &DhMode::NoPfs,
    )
    .expect_err("wrong role");
    assert_eq!(err, HandshakeError::BadDhMac);
}

/// A full in-memory handshake with `-f` on both sides and the vector nonces: the state machine's
/// wire bytes are the vector's, and its sessions produce the vector packets.
#[test]
fn no_pfs_handshake_and_packets_match_the_vectors() {
    let mut c = Handshake::new(
        Role::Client,
        KeySet::single(empty_key()),
        NONCE_C,
        DhMode::NoPfs,
    );
    let mut s = Handshake::new(
        Role::Server,
        KeySet::single(empty_key()),
        NONCE_S,
        DhMode::NoPfs,
    );
    // Both nonces go out at once.
    assert_eq!(bytes(c.next_step()), NONCE_C);
    assert_eq!(bytes(s.next_step()), NONCE_S);
    assert!(matches!(c.sent(32), Ok(Step::NeedInput(32))));
    assert!(matches!(s.sent(32), Ok(Step::NeedInput(32))));
    let (used, step) = c.read(&NONCE_S).expect("client reads the nonce");
    assert_eq!(used, 32);
    let c_yh = bytes(Ok(step));
    assert_eq!(c_yh, yh(&Y_ONE, &unhex(H_C_Y1)));
    // The server sends nothing more until it has a valid y_C.
    assert!(matches!(
        s.read(&NONCE_C),
        Ok((32, Step::NeedInput(YH_LEN)))
    ));
    assert!(matches!(c.sent(YH_LEN), Ok(Step::NeedInput(YH_LEN))));
    let (used, step) = s.read(&c_yh).expect("server reads y_C");
    assert_eq!(used, YH_LEN);
    let s_yh = bytes(Ok(step));
    assert_eq!(s_yh, yh(&Y_ONE, &unhex(H_S_Y1)));
    let s_session = session(s.sent(YH_LEN));
    let (used, step) = c.read(&s_yh).expect("client reads y_S");
    assert_eq!(used, YH_LEN);
    let c_session = session(Ok(step));

    let (mut c_seal, mut c_open) = c_session.into_parts();
    let (mut s_seal, mut s_open) = s_session.into_parts();
    let mut p0 = [0u8; PACKET_LEN];
    c_seal.seal(b"hello", &mut p0).expect("seal");
    assert_eq!(hex(&p0[..16]), "c8c82e462068c293de0bd6ffbb6c82b1");
    assert_eq!(hex(&p0[1024..1028]), "65d5d0ea");
    assert_eq!(
        hex(&p0[1028..]),
        "0d3549c76af221d99a0a09c759fd107f0325fa24a6381b8d13e697819b12addb"
    );
    assert_eq!(sha256_hex(&p0), CLIENT_HELLO_SHA);
    let mut p1 = [0u8; PACKET_LEN];
    c_seal.seal(b"world!", &mut p1).expect("seal");
    assert_eq!(sha256_hex(&p1), CLIENT_WORLD_SHA);
    let mut q0 = [0u8; PACKET_LEN];
    s_seal.seal(b"hello", &mut q0).expect("seal");
    assert_eq!(sha256_hex(&q0), SERVER_HELLO_SHA);

    // And the other side opens them.
    let mut out = [0u8; 1024];
    assert_eq!(s_open.open(&p0, &mut out), Ok(5));
    assert_eq!(&out[..5], b"hello");
    assert_eq!(s_open.open(&p1, &mut out), Ok(6));
    assert_eq!(&out[..6], b"world!");
    assert_eq!(c_open.open(&q0, &mut out), Ok(5));
    assert_eq!(&out[..5], b"hello");
}

/// The vector packets built by a sealer keyed directly from the §6 session keys.
#[test]
fn sealer_from_vector_keys_reproduces_packet_hashes() {
    let key = empty_key();
    let (peer, _) = validate_peer(
        &yh(&Y_ONE, &unhex(H_C_Y1)),
        Role::Client,
        std::slice::from_ref(&key),
        &NONCE_C,
        &NONCE_S,
        &DhMode::NoPfs,
    )
    .expect("vector h_C verifies");
    let keys = session_keys(&key, &NONCE_C, &NONCE_S, &DhMode::NoPfs, &peer);
    let mut sealed = Vec::new();
    Sealer::new(&keys, Role::Client)
        .seal_append(b"hello", &mut sealed)
        .expect("seal");
    assert_eq!(sha256_hex(&sealed), CLIENT_HELLO_SHA);
    let mut plain = Vec::new();
    Opener::new(&keys, Role::Client)
        .open_append(&sealed, &mut plain)
        .expect("open");
    assert_eq!(plain, b"hello");
}

/// PFS vectors: priv_C = 01×32, priv_S = 02×32 (exponent 2^258 + priv).
#[test]
fn pfs_values_match_the_vectors() {
    let c_pair = DhKeyPair::from_private([0x01; 32]);
    let s_pair = DhKeyPair::from_private([0x02; 32]);
    assert_eq!(hex(&c_pair.public()[..8]), "1de6312672879dad");
    assert_eq!(
        sha256_hex(c_pair.public()),
        "07520c5c5c6c85bc58e73bf05ef3743c6866b38005ff2de772e68d39f49e2b07"
    );
    assert_eq!(
        sha256_hex(s_pair.public()),
        "716711482ac34ccdc681e1ffcd8fada655a8e31bfbd215955d21eef748d6c265"
    );
    let y_sc = spiperelay::proto::dh::shared_secret(s_pair.public(), &[0x01; 32]);
    assert_eq!(
        sha256_hex(&y_sc),
        "ec990086a7aabdab65709be9357e4869b68e55702a367e2ae97c88d6137c92f8"
    );
    assert_eq!(
        spiperelay::proto::dh::shared_secret(c_pair.public(), &[0x02; 32]),
        y_sc
    );

    // dk_2 of the PFS session with the vector nonces, through the full state machine.
    let key = empty_key();
    let mut c = Handshake::new(
        Role::Client,
        KeySet::single(key.clone()),
        NONCE_C,
        DhMode::Pfs(c_pair),
    );
    let mut s = Handshake::new(
        Role::Server,
        KeySet::single(key),
        NONCE_S,
        DhMode::Pfs(s_pair),
    );
    let (c_nonce, s_nonce) = (bytes(c.next_step()), bytes(s.next_step()));
    c.sent(32).expect("sent");
    s.sent(32).expect("sent");
    let c_yh = bytes(c.read(&s_nonce).map(|(_, step)| step));
    assert!(matches!(
        s.read(&c_nonce),
        Ok((32, Step::NeedInput(YH_LEN)))
    ));
    c.sent(YH_LEN).expect("sent");
    let s_yh = bytes(s.read(&c_yh).map(|(_, step)| step));
    let s_session = session(s.sent(YH_LEN));
    let c_session = session(c.read(&s_yh).map(|(_, step)| step));
    // The y_C the client state machine put on the wire is the vector's.
    assert_eq!(
        sha256_hex(&c_yh[..256]),
        "07520c5c5c6c85bc58e73bf05ef3743c6866b38005ff2de772e68d39f49e2b07"
    );
    // Recompute dk_2 from the public pieces and compare with the vector.
    let (peer, _) = validate_peer(
        &c_yh.clone().try_into().expect("288 bytes"),
        Role::Client,
        std::slice::from_ref(&empty_key()),
        &NONCE_C,
        &NONCE_S,
        &DhMode::NoPfs,
    )
    .expect("y_C verifies");
    let keys = session_keys(
        &empty_key(),
        &NONCE_C,
        &NONCE_S,
        &DhMode::Pfs(DhKeyPair::from_private([0x02; 32])),
        &peer,
    );
    let mut dk2 = Vec::new();
    for k in [
        &keys.enc_client,
        &keys.mac_client,
        &keys.enc_server,
        &keys.mac_server,
    ] {
        dk2.extend_from_slice(k.as_bytes());
    }
    assert_eq!(
        sha256_hex(&dk2),
        "5eafe82736e9880e64bb1d577c8855c74c9a985cdd5372f626813d9963ea995a"
    );
    // The two state machines agree with each other too.
    let (mut cs, _) = c_session.into_parts();
    let (_, mut so) = s_session.into_parts();
    let mut p = [0u8; PACKET_LEN];
    cs.seal(b"pfs", &mut p).expect("seal");
    let mut out = [0u8; 1024];
    assert_eq!(so.open(&p, &mut out), Ok(3));
    let mut direct = Vec::new();
    Sealer::new(&keys, Role::Client)
        .seal_append(b"pfs", &mut direct)
        .expect("seal");
    assert_eq!(direct, p);
}
