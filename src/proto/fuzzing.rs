//! Fuzz harness bodies for the protocol core, in the library as rustls does it.
//!
//! Each `pub fn NAME(data: &[u8])` is one cargo-fuzz target (`fuzz/fuzz_targets/NAME.rs` only
//! calls it). A harness must never panic on any input: every `assert!` in here is an oracle, and
//! a failing one is a finding. Keeping the bodies in the library means `cargo test` replays the
//! committed seed corpus (`fuzz/corpus/NAME/`) through them on every run, without cargo-fuzz or a
//! nightly toolchain; see `FUZZING.md`.
//!
//! Compiled only for tests and with the crate's `fuzzing` feature (which `fuzz/Cargo.toml`
//! turns on), so release builds carry none of it. The seed generators of the committed corpus
//! are in `fuzzing/seeds.rs`, the tests that replay and check it in `fuzzing/tests.rs`.
//!
//! Everything is deterministic: a fixed key file, fixed nonces and fixed DH private values, so a
//! crash reproduces from its input alone.
//!
//! Not part of the stable API.

use std::sync::OnceLock;

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::proto::crypt::{
    DhKeyPair, DhMacKeys, DhMode, Role, SessionKeys, Y_ONE, dh_mac, session_keys, validate_peer,
};
use crate::proto::dh::bignum::{Arith, Limbs, from_be_bytes, reduce_once, to_be_bytes};
use crate::proto::dh::is_below_p;
use crate::proto::handshake::{Exchange, Handshake, KeyPair, Session, Step};
use crate::proto::key::{Key, KeySet};
use crate::proto::packet::{Opener, Sealer, packets_for, sealed_len};
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::x25519::X25519KeyPair;
use crate::proto::{
    CIPHERTEXT_LEN, HANDSHAKE_LEN, HandshakeError, LENGTH_FIELD_LEN, MAX_PAYLOAD, NONCE_LEN,
    PACKET_LEN, PacketError, StreamError, YH_LEN,
};

/// The key file every harness uses (`K` = its SHA-256, §1.1).
pub const KEY_FILE: &[u8] = b"spiperelay fuzzing key file\n";

/// A second key file: the server harness accepts it before [`KEY_FILE`] when the selector byte
/// asks for two keys, so the key-rotation path (`key_index` 1) is fuzzed too.
pub const OTHER_KEY_FILE: &[u8] = b"spiperelay fuzzing key file, older\n";

/// The client's nonce: the client harness sends it, and the fixed session keys use it.
pub const CLIENT_NONCE: [u8; NONCE_LEN] = [0xc1; NONCE_LEN];

/// The server's nonce: the server harness sends it, and the fixed session keys use it.
pub const SERVER_NONCE: [u8; NONCE_LEN] = [0x5e; NONCE_LEN];

/// The DH private value of the handshake under test (the harness's "fixed RNG").
pub const DH_PRIVATE: [u8; 32] = [0x42; 32];

/// The X25519 private scalar of the `handshake_x25519` handshake under test.
pub const X25519_PRIVATE: [u8; 32] = [0x43; 32];

/// The session keys of a `-f` (no forward secrecy) handshake between [`CLIENT_NONCE`] and
/// [`SERVER_NONCE`] under [`KEY_FILE`], the client's sealer and the server's opener of the
/// client→server direction. Built once per process.
struct Fixture {
    keys: SessionKeys,
    sealer: Sealer,
    opener: Opener,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = Key::from_key_file(KEY_FILE);
        let dk1 = DhMacKeys::derive(&key, &CLIENT_NONCE, &SERVER_NONCE);
        let mut yh = [0u8; YH_LEN];
        yh[..Y_ONE.len()].copy_from_slice(&Y_ONE);
        yh[Y_ONE.len()..].copy_from_slice(&dh_mac(&dk1.client, &Y_ONE));
        let (peer, _) = validate_peer(
            &yh,
            Role::Client,
            std::slice::from_ref(&key),
            &CLIENT_NONCE,
            &SERVER_NONCE,
            &DhMode::NoPfs,
        )
        .unwrap_or_else(|e| panic!("the fixture's own y = 1 must validate: {e}"));
        let keys = session_keys(&key, &CLIENT_NONCE, &SERVER_NONCE, &DhMode::NoPfs, &peer);
        Fixture {
            sealer: Sealer::new(&keys, Role::Client),
            opener: Opener::new(&keys, Role::Client),
            keys,
        }
    })
}

/// A cursor over the fuzzer's bytes; reads past the end give zeros / empty slices.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

/// An independent reference of the §2 sender for one packet whose plaintext (padded payload and
/// length field, 1028 bytes) is given whole, so a length field outside 1..=1024 can carry a valid
/// MAC. Built from the RustCrypto primitives directly, not from [`Sealer`].
fn reference_packet(
    keys: &SessionKeys,
    pnum: u64,
    plain: &[u8; CIPHERTEXT_LEN],
) -> [u8; PACKET_LEN] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&pnum.to_be_bytes());
    let mut packet = [0u8; PACKET_LEN];
    let (body, tag) = packet.split_at_mut(CIPHERTEXT_LEN);
    body.copy_from_slice(plain);
    ctr::Ctr128BE::<Aes256>::new(keys.enc_client.as_bytes().into(), &iv.into())
        .apply_keystream(body);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.mac_client.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    mac.update(&pnum.to_be_bytes());
    tag.copy_from_slice(&mac.finalize().into_bytes());
    packet
}

/// Target `packet_open`: the §2 receiver on arbitrary packets, under fixed session keys.
///
/// Three readings of the same bytes:
/// 1. `data` cut into 1060-byte packets goes to [`Opener::open`] one by one and, on a fresh
///    opener, to [`Opener::open_append`] at once; both must agree on payloads, error and packet
///    counter, lengths must be in 1..=1024, and a run that is not whole packets must be refused
///    with nothing opened.
/// 2. `data` cut into chunks of `BE32(L) ‖ payload` becomes packets with a valid MAC (from an
///    independent reference sealer), so the length check is reached: `L` in 1..=1024 must open to
///    the payload, anything else must give exactly [`PacketError::BadLength`].
/// 3. The first 1024 bytes sealed by [`Sealer::seal`] must equal the reference packet and open
///    back to themselves with zero padding; all of `data` through `seal_append` and
///    `open_append` must round-trip.
pub fn packet_open(data: &[u8]) {
    let f = fixture();

    // 1. Arbitrary bytes as packets.
    let whole = data.len() - data.len() % PACKET_LEN;
    let (packets, _) = data.split_at(whole);
    let mut single = f.opener.clone();
    let mut expected = Vec::new();
    let mut first_err = None;
    for chunk in packets.chunks_exact(PACKET_LEN) {
        let Ok(packet) = <&[u8; PACKET_LEN]>::try_from(chunk) else {
            unreachable!("chunks_exact yields whole packets")
        };
        let mut out = [0u8; MAX_PAYLOAD];
        let before = single.next_packet_number();
        match single.open(packet, &mut out) {
            Ok(len) => {
                assert!((1..=MAX_PAYLOAD).contains(&len), "opened length {len}");
                expected.extend_from_slice(&out[..len]);
            }
            Err(e) => {
                assert!(
                    matches!(e, PacketError::BadMac | PacketError::BadLength { .. }),
                    "{e:?}"
                );
                if e == PacketError::BadMac {
                    assert_eq!(
                        single.next_packet_number(),
                        before,
                        "BadMac moved the counter"
                    );
                }
                first_err = Some(e);
                break;
            }
        }
    }
    let mut batch = f.opener.clone();
    let mut out = vec![0xee];
    let got = batch.open_append(packets, &mut out);
    match first_err {
        None => assert_eq!(got, Ok(expected.len())),
        Some(e) => assert_eq!(got, Err(e)),
    }
    assert_eq!(out.first(), Some(&0xee));
    assert_eq!(out.get(1..), Some(&expected[..]));
    assert_eq!(batch.next_packet_number(), single.next_packet_number());
    if whole != data.len() {
        let mut o = f.opener.clone();
        let mut v = Vec::new();
        assert_eq!(
            o.open_append(data, &mut v),
            Err(PacketError::BadBufferLength { len: data.len() })
        );
        assert!(v.is_empty());
        assert_eq!(o.next_packet_number(), Some(0));
    }

    // 2. Packets with a valid MAC and a fuzzer-chosen length field.
    let mut opener = f.opener.clone();
    for (pnum, chunk) in (0u64..).zip(data.chunks(CIPHERTEXT_LEN)) {
        let (len_field, payload) = chunk.split_at(LENGTH_FIELD_LEN.min(chunk.len()));
        let mut plain = [0u8; CIPHERTEXT_LEN];
        plain[..payload.len()].copy_from_slice(payload);
        plain[MAX_PAYLOAD..][..len_field.len()].copy_from_slice(len_field);
        let len = u32::from_be_bytes(
            <[u8; LENGTH_FIELD_LEN]>::try_from(&plain[MAX_PAYLOAD..])
                .unwrap_or_else(|_| unreachable!("4 bytes")),
        );
        let packet = reference_packet(&f.keys, pnum, &plain);
        let mut out = [0xa5u8; MAX_PAYLOAD];
        match opener.open(&packet, &mut out) {
            Ok(n) => {
                assert_eq!(n as u64, u64::from(len));
                assert!((1..=MAX_PAYLOAD).contains(&n));
                // `open` decrypts the whole padded payload.
                assert_eq!(out[..], plain[..MAX_PAYLOAD]);
            }
            Err(e) => {
                assert!(len == 0 || len as usize > MAX_PAYLOAD, "L = {len}: {e:?}");
                assert_eq!(e, PacketError::BadLength { len });
                assert!(out.iter().all(|&b| b == 0xa5), "output written on error");
                break;
            }
        }
    }

    // 3. Round trips of fuzzer-chosen payloads.
    let payload = &data[..data.len().min(MAX_PAYLOAD)];
    let mut sealer = f.sealer.clone();
    let mut packet = [0u8; PACKET_LEN];
    if payload.is_empty() {
        assert_eq!(
            sealer.seal(payload, &mut packet),
            Err(PacketError::EmptyPayload)
        );
    } else {
        assert_eq!(sealer.seal(payload, &mut packet), Ok(()));
        let mut plain = [0u8; CIPHERTEXT_LEN];
        plain[..payload.len()].copy_from_slice(payload);
        plain[MAX_PAYLOAD..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        assert!(
            packet == reference_packet(&f.keys, 0, &plain),
            "Sealer disagrees with the reference packet"
        );
        let mut out = [0xa5u8; MAX_PAYLOAD];
        assert_eq!(f.opener.clone().open(&packet, &mut out), Ok(payload.len()));
        assert_eq!(&out[..payload.len()], payload);
        assert!(out[payload.len()..].iter().all(|&b| b == 0), "padding");
    }
    let mut wire = Vec::new();
    assert_eq!(f.sealer.clone().seal_append(data, &mut wire), Ok(()));
    assert_eq!(wire.len(), sealed_len(data.len()));
    let mut back = Vec::new();
    assert_eq!(
        f.opener.clone().open_append(&wire, &mut back),
        Ok(data.len())
    );
    assert_eq!(back, data);
}

/// Target `stream_decode`: the stream encoder and decoder under fuzzer-chosen plaintext writes,
/// ciphertext mutations and ciphertext chunking.
///
/// Input layout (missing bytes read as zero):
/// - 1 byte: number of writes (mod 9); per write, BE16 length (mod 3073) and a pattern byte the
///   write's content is generated from;
/// - 1 byte: number of mutations (mod 4); per mutation, a kind byte (flip, truncate, insert,
///   delete), a BE16 position and a value byte;
/// - the rest: one byte per chunk size fed to [`Decoder::decode`]; whatever ciphertext remains
///   after these goes in one last call.
///
/// Oracle: the delivered plaintext is always a prefix of what was written. Without an effective
/// mutation it is all of it, no call fails and [`Decoder::finish`] is clean. With one, let packet
/// `k` hold the first changed byte: exactly the plaintext of packets `0..k` is delivered, then a
/// [`PacketError::BadMac`] if at least one whole packet follows, otherwise a clean end or
/// [`StreamError::Truncated`] with the exact byte count. A failed decoder stays failed with the
/// same error and delivers nothing more.
pub fn stream_decode(data: &[u8]) {
    let f = fixture();
    let mut input = Input(data);

    // Plaintext writes, encoded as spiped cuts them.
    let mut encoder = Encoder::new(f.sealer.clone());
    let mut plaintext = Vec::new();
    let mut ciphertext = Vec::new();
    // Plaintext length delivered once packet i is opened, for every packet.
    let mut packet_ends = Vec::new();
    for w in 0..input.byte() % 9 {
        let len = usize::from(input.u16()) % (3 * MAX_PAYLOAD + 1);
        let pattern = input.byte();
        let write: Vec<u8> = (0..len)
            .map(|i| pattern.wrapping_add((i as u8).wrapping_mul(31)) ^ w)
            .collect();
        let before = ciphertext.len();
        assert_eq!(encoder.encode(&write, &mut ciphertext), Ok(()));
        assert_eq!(ciphertext.len() - before, sealed_len(len));
        for piece in write.chunks(MAX_PAYLOAD) {
            packet_ends.push(plaintext.len() + piece.len());
            plaintext.extend_from_slice(piece);
        }
        assert_eq!(packet_ends.len(), ciphertext.len() / PACKET_LEN);
        assert_eq!(packets_for(len), write.chunks(MAX_PAYLOAD).count());
    }

    // Mutations of the ciphertext.
    let mut mutated = ciphertext.clone();
    for _ in 0..input.byte() % 4 {
        let kind = input.byte() % 4;
        let pos = usize::from(input.u16());
        let value = input.byte();
        match kind {
            0 if !mutated.is_empty() => {
                let at = pos % mutated.len();
                mutated[at] ^= value | 1;
            }
            1 if !mutated.is_empty() => mutated.truncate(pos % mutated.len()),
            2 => mutated.insert(pos % (mutated.len() + 1), value),
            3 if !mutated.is_empty() => {
                mutated.remove(pos % mutated.len());
            }
            _ => {}
        }
    }

    // Decode in fuzzer-chosen chunks. A twin decoder gets the same chunks through
    // `decode_into` with one reused, never-cleared buffer and must agree with `decode`.
    let mut decoder = Decoder::new(f.opener.clone());
    let mut twin = Decoder::new(f.opener.clone());
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let mut err: Option<StreamError> = None;
    let mut rest = &mutated[..];
    let mut feed = |decoder: &mut Decoder, chunk: &[u8], out: &mut Vec<u8>| {
        let before = out.len();
        let need = twin.max_output(chunk.len());
        if scratch.len() < need {
            scratch.resize(need, 0xee);
        }
        let twin_result = twin.decode_into(chunk, &mut scratch);
        let result = decoder.decode(chunk, out);
        match (&result, twin_result) {
            (Ok(()), Ok(n)) => assert_eq!(&scratch[..n], &out[before..], "decode_into differs"),
            (Err(e), Err(t)) => assert_eq!(*e, t, "decode_into failed differently"),
            (r, t) => panic!("decode gave {r:?}, decode_into {t:?}"),
        }
        match result {
            Ok(()) => assert_eq!(err, None, "decode succeeded after an error"),
            Err(e) => {
                assert!(matches!(e, StreamError::Packet(_)), "{e:?}");
                if let Some(prev) = err {
                    assert_eq!(e, prev, "a failed decoder changed its error");
                    assert_eq!(out.len(), before, "a failed decoder delivered data");
                }
                err = Some(e);
            }
        }
        assert!(decoder.pending() < PACKET_LEN);
        assert!(plaintext.starts_with(out), "delivered data is not a prefix");
    };
    for &spec in input.rest() {
        let size = if spec < 0x80 {
            usize::from(spec)
        } else {
            usize::from(spec - 0x7f) * 97
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        feed(&mut decoder, chunk, &mut out);
        decoder.shrink();
        rest = tail;
    }
    feed(&mut decoder, rest, &mut out);
    let finish = decoder.finish();

    // The exact outcome.
    let diverge = mutated
        .iter()
        .zip(&ciphertext)
        .position(|(a, b)| a != b)
        .or_else(|| {
            (mutated.len() != ciphertext.len()).then(|| mutated.len().min(ciphertext.len()))
        });
    match diverge {
        None => {
            assert_eq!(out, plaintext);
            assert_eq!(err, None);
            assert_eq!(finish, Ok(()));
        }
        Some(d) => {
            let k = d / PACKET_LEN;
            let intact = k.checked_sub(1).map_or(0, |i| packet_ends[i]);
            assert_eq!(out.len(), intact, "first change at byte {d}");
            if mutated.len() >= (k + 1) * PACKET_LEN {
                let bad = StreamError::Packet(PacketError::BadMac);
                assert_eq!(err, Some(bad));
                assert_eq!(finish, Err(bad));
            } else {
                assert_eq!(err, None);
                let have = mutated.len() - k * PACKET_LEN;
                if have == 0 {
                    assert_eq!(finish, Ok(()));
                } else {
                    assert_eq!(finish, Err(StreamError::Truncated { have }));
                }
            }
        }
    }
}

/// The handshake under test: `role`, fixed nonce and DH private value, and the DH mode and key
/// set picked by the selector byte (`sel % 3`: default, `-g`, `-f`; bit 2 for a server: accept
/// [`OTHER_KEY_FILE`] then [`KEY_FILE`]).
fn local_handshake(role: Role, sel: u8) -> Handshake {
    let key = Key::from_key_file(KEY_FILE);
    let keys = if role == Role::Server && sel & 4 != 0 {
        KeySet::new(vec![Key::from_key_file(OTHER_KEY_FILE), key])
            .unwrap_or_else(|| unreachable!("two keys"))
    } else {
        KeySet::single(key)
    };
    let mode = match sel % 3 {
        0 => DhMode::Pfs(DhKeyPair::from_private(DH_PRIVATE)),
        1 => DhMode::RequirePfs(DhKeyPair::from_private(DH_PRIVATE)),
        _ => DhMode::NoPfs,
    };
    let nonce = match role {
        Role::Client => CLIENT_NONCE,
        Role::Server => SERVER_NONCE,
    };
    Handshake::new(role, keys, nonce, mode)
}

/// The common body of the two handshake targets: one selector byte (see [`local_handshake`]),
/// then chunks, each a length byte and up to that many peer bytes.
fn handshake(role: Role, data: &[u8]) {
    let mut input = Input(data);
    let sel = input.byte();
    let requires_pfs = sel % 3 == 1;
    let mut hs = local_handshake(role, sel);
    let nonce = match role {
        Role::Client => CLIENT_NONCE,
        Role::Server => SERVER_NONCE,
    };
    // The first step hands out our nonce; the one after waits for the peer's.
    assert!(matches!(hs.next_step(), Ok(Step::Send(b)) if b == nonce));
    assert!(matches!(hs.sent(NONCE_LEN), Ok(Step::NeedInput(NONCE_LEN))));

    let mut sent = nonce.to_vec();
    let mut fed = 0;
    let mut err: Option<HandshakeError> = None;
    let mut leftover = Vec::new();
    let mut session = None;
    while !input.is_empty() {
        let n = usize::from(input.byte());
        let chunk = input.take(n);
        if session.is_some() {
            // Everything after the handshake is the peer's first data.
            leftover.extend_from_slice(chunk);
            continue;
        }
        match hs.read(chunk) {
            Ok((consumed, mut step)) => {
                assert_eq!(err, None, "read succeeded after an error");
                assert!(consumed <= chunk.len());
                fed += consumed;
                assert!(fed <= HANDSHAKE_LEN, "read past the handshake");
                loop {
                    step = match step {
                        Step::Send(bytes) => {
                            let n = bytes.len();
                            sent.extend_from_slice(bytes);
                            match hs.sent(n) {
                                Ok(next) => next,
                                Err(e) => panic!("marking bytes sent failed: {e}"),
                            }
                        }
                        Step::NeedInput(want) => {
                            assert!(want > 0);
                            assert_eq!(
                                consumed,
                                chunk.len(),
                                "bytes left over before the handshake ended"
                            );
                            break;
                        }
                        Step::Done(done) => {
                            leftover.extend_from_slice(chunk.get(consumed..).unwrap_or_default());
                            session = Some(done);
                            break;
                        }
                        Step::NeedKeyPair(_) | Step::Derive => {
                            panic!("a handshake with its key pair asked for {step:?}")
                        }
                    };
                }
            }
            Err(e) => {
                if let Some(prev) = err {
                    assert_eq!(e, prev, "a failed handshake changed its error");
                }
                assert!(
                    requires_pfs || e != HandshakeError::PfsRequired,
                    "PfsRequired without -g"
                );
                err = Some(e);
                assert_eq!(hs.next_step().err(), Some(e), "a failed handshake went on");
            }
        }

        // What we have sent so far, from the state we are in.
        assert_eq!(sent.get(..NONCE_LEN), Some(&nonce[..]));
        // A client can only fail on y_S ‖ h_S, after it read the nonce and sent y_C ‖ h_C.
        let expect_sent = match role {
            Role::Client if fed >= NONCE_LEN || err.is_some() => HANDSHAKE_LEN,
            Role::Server if session.is_some() => HANDSHAKE_LEN,
            _ => NONCE_LEN,
        };
        assert_eq!(sent.len(), expect_sent, "fed {fed}, error {err:?}");
    }

    finish_and_use(&mut hs, session, fed, &leftover);
}

/// The common end of the handshake harnesses: a handshake that handed over no session must not
/// have one to hand over; a finished one, with all `HANDSHAKE_LEN` bytes fed, has a key index
/// valid for its role (0 for a client, 0 or 1 for a server), and `leftover` (what followed the
/// handshake) goes through the session's decoder and encoder.
fn finish_and_use(hs: &mut Handshake, session: Option<Box<Session>>, fed: usize, leftover: &[u8]) {
    let role = hs.role();
    let Some(session) = session else {
        assert!(
            !matches!(hs.next_step(), Ok(Step::Done(_))),
            "a session was left behind"
        );
        return;
    };
    assert_eq!(fed, HANDSHAKE_LEN);
    assert_eq!(
        hs.next_step().err(),
        Some(HandshakeError::UnexpectedKeyPair),
        "a spent handshake went on"
    );
    match role {
        Role::Client => assert_eq!(session.key_index(), 0),
        Role::Server => assert!(session.key_index() < 2),
    }
    // Whatever followed the handshake is the peer's first data.
    let (mut encoder, mut decoder) = session.into_stream();
    let mut plain = Vec::new();
    let _ = decoder.decode(leftover, &mut plain);
    assert!(plain.len() <= leftover.len());
    let mut wire = Vec::new();
    assert_eq!(encoder.encode(leftover, &mut wire), Ok(()));
}

/// Target `handshake_server`: a server-role [`Handshake`] fed arbitrary client bytes.
///
/// Input: a selector byte (DH mode `sel % 3`: default, `-g`, `-f`; bit 2: accept two keys), then
/// chunks of a length byte and up to that many bytes, each one [`Handshake::read`] call. Checks
/// that errors are sticky, that `PfsRequired` only comes with `-g`, that nothing past the 320
/// handshake bytes is consumed, and that the server sends `y_S ‖ h_S` exactly when, and only
/// after, it accepted `y_C ‖ h_C`. A completed handshake must finish, and the bytes after it go
/// to the session's decoder.
pub fn handshake_server(data: &[u8]) {
    handshake(Role::Server, data);
}

/// Target `handshake_client`: a client-role [`Handshake`] fed arbitrary server bytes.
///
/// Same input layout and checks as [`handshake_server`] (bit 2 of the selector is ignored: a
/// client uses one key); the client must send `y_C ‖ h_C` right after the server's nonce.
pub fn handshake_client(data: &[u8]) {
    handshake(Role::Client, data);
}

/// The `--x25519` handshake under test: role from bit 0 of `sel` (0 server, 1 client), the key
/// pair up front or deferred (bit 1), and for a server [`OTHER_KEY_FILE`] then [`KEY_FILE`]
/// (bit 2) and [`Handshake::answer_before_deriving`] (bit 3).
fn local_x25519(sel: u8) -> Handshake {
    let role = if sel & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let key = Key::from_key_file(KEY_FILE);
    let keys = if role == Role::Server && sel & 4 != 0 {
        KeySet::new(vec![Key::from_key_file(OTHER_KEY_FILE), key])
            .unwrap_or_else(|| unreachable!("two keys"))
    } else {
        KeySet::single(key)
    };
    let exchange = if sel & 2 == 0 {
        Exchange::X25519(X25519KeyPair::from_private(X25519_PRIVATE))
    } else {
        Exchange::X25519Deferred
    };
    let nonce = match role {
        Role::Client => CLIENT_NONCE,
        Role::Server => SERVER_NONCE,
    };
    let hs = Handshake::with_exchange(role, keys, nonce, exchange);
    if role == Role::Server && sel & 8 != 0 {
        hs.answer_before_deriving()
    } else {
        hs
    }
}

/// Target `handshake_x25519`: a `--x25519` [`Handshake`] of either role fed arbitrary peer
/// bytes.
///
/// Input: a selector byte (see `local_x25519`: role, deferred key pair, two keys), then chunks
/// of a length byte and up to that many bytes, each one [`Handshake::read`] call; a deferred
/// handshake that asks for its key pair gets [`X25519_PRIVATE`]'s. Checks that errors are
/// sticky and never group-14 ones, that nothing past the 320 handshake bytes is consumed, that
/// a server asks for its key pair only after all 320 bytes and a valid MAC (so unauthenticated
/// input never costs an X25519 operation) and answers only when done, and that a client asks
/// right after the server's nonce; a server answering before deriving has queued its answer
/// when it asks for the derivation, which then finishes it or fails with
/// [`HandshakeError::ZeroSharedSecret`]. A completed handshake must finish, and the bytes after
/// it go to the session's decoder.
pub fn handshake_x25519(data: &[u8]) {
    let mut input = Input(data);
    let sel = input.byte();
    let mut hs = local_x25519(sel);
    let role = hs.role();
    let nonce = match role {
        Role::Client => CLIENT_NONCE,
        Role::Server => SERVER_NONCE,
    };
    assert!(matches!(hs.next_step(), Ok(Step::Send(b)) if b == nonce));
    let mut sent = Vec::new();
    let mut fed = 0;
    let mut err: Option<HandshakeError> = None;
    let mut leftover = Vec::new();
    let mut answered = false;
    let mut session = None;
    while !input.is_empty() {
        let n = usize::from(input.byte());
        let mut chunk = input.take(n);
        if session.is_some() {
            leftover.extend_from_slice(chunk);
            continue;
        }
        let mut step = hs.read(chunk).map(|(consumed, step)| {
            assert_eq!(err, None, "read succeeded after an error");
            fed += consumed;
            chunk = chunk.get(consumed..).unwrap_or_default();
            step
        });
        loop {
            step = match step {
                Err(e) => {
                    if let Some(prev) = err {
                        assert_eq!(e, prev, "a failed handshake changed its error");
                    }
                    assert!(
                        !matches!(
                            e,
                            HandshakeError::DhOutOfRange
                                | HandshakeError::PfsRequired
                                | HandshakeError::PeerUsesX25519
                                | HandshakeError::UnexpectedKeyPair
                        ),
                        "group-14 error {e:?} in X25519 mode"
                    );
                    err = Some(e);
                    break;
                }
                Ok(Step::Send(bytes)) => {
                    let n = bytes.len();
                    sent.extend_from_slice(bytes);
                    hs.sent(n)
                }
                Ok(Step::Derive) => {
                    assert_eq!(role, Role::Server);
                    assert_eq!(fed, HANDSHAKE_LEN, "answered before the client's y ‖ h");
                    assert_eq!(
                        sent.len(),
                        HANDSHAKE_LEN,
                        "asks to derive before its answer is out"
                    );
                    answered = true;
                    let r = hs.derive();
                    if let Err(e) = &r {
                        assert_eq!(*e, HandshakeError::ZeroSharedSecret);
                    }
                    r
                }
                Ok(Step::NeedKeyPair(kind)) => {
                    assert_eq!(kind, crate::proto::handshake::KeyKind::X25519);
                    let want_fed = match role {
                        Role::Client => NONCE_LEN,
                        Role::Server => HANDSHAKE_LEN,
                    };
                    assert_eq!(fed, want_fed, "key pair asked for too early");
                    let pair = KeyPair::X25519(X25519KeyPair::from_private(X25519_PRIVATE));
                    let r = hs.provide_key_pair(pair);
                    if let Err(e) = &r {
                        assert_eq!(*e, HandshakeError::ZeroSharedSecret);
                    }
                    r
                }
                Ok(Step::NeedInput(want)) if chunk.is_empty() => {
                    assert!(want > 0);
                    break;
                }
                Ok(Step::NeedInput(_)) => hs.read(chunk).map(|(consumed, step)| {
                    assert!(consumed > 0, "input wanted, none taken");
                    fed += consumed;
                    chunk = chunk.get(consumed..).unwrap_or_default();
                    step
                }),
                Ok(Step::Done(done)) => {
                    leftover.extend_from_slice(chunk);
                    session = Some(done);
                    break;
                }
            };
            assert!(fed <= HANDSHAKE_LEN, "read past the handshake");
        }
        // A client sends its y_C ‖ h_C as soon as it has the server's nonce (its pair is
        // handed in at once); a server answers once the client authenticated.
        let expect_sent = match role {
            Role::Client if fed >= NONCE_LEN => HANDSHAKE_LEN,
            Role::Server if session.is_some() || answered => HANDSHAKE_LEN,
            _ => NONCE_LEN,
        };
        assert_eq!(sent.len(), expect_sent, "fed {fed}, error {err:?}");
        assert_eq!(sent.get(..NONCE_LEN), Some(&nonce[..]));
    }
    finish_and_use(&mut hs, session, fed, &leftover);
}

/// Bytes per operand of the [`dh_arith`] harness: one 2048-bit value (§1.5).
const ARITH_OPERAND_LEN: usize = crate::proto::DH_PUBLIC_LEN;

/// `bytes` (big-endian, shorter input zero-extended at the end) as limbs below the group-14
/// prime: reduced once if it was not below p (any 2048-bit value is below 2p).
fn arith_operand(bytes: &[u8]) -> Limbs {
    let mut be = [0u8; ARITH_OPERAND_LEN];
    be[..bytes.len()].copy_from_slice(bytes);
    reduce_once(&from_be_bytes(&be), 0)
}

/// Fuzz target `dh_arith`: the group-14 Montgomery arithmetic (§1.5) on every implementation
/// this CPU has (the portable code and, with BMI2/ADX, the `asm!` kernel of
/// `crates/mont2048-x86`), differentially. The input is up to two 256-byte big-endian operands
/// `a ‖ b` (missing bytes are zero; a value not below p is reduced once).
///
/// Oracles: every implementation gives the same `mul(a, b)`, `mul(b, a)`, `sqr(a)`, `sqr(b)`,
/// Montgomery-form round trip of `a`; `sqr(a) == mul(a, a)`; every result is below p.
pub fn dh_arith(data: &[u8]) {
    let (a, rest) = data.split_at(data.len().min(ARITH_OPERAND_LEN));
    let (a, b) = (
        arith_operand(a),
        arith_operand(&rest[..rest.len().min(ARITH_OPERAND_LEN)]),
    );
    let mut reference: Option<Vec<Limbs>> = None;
    for arith in Arith::available() {
        let results = vec![
            arith.mul(&a, &b),
            arith.mul(&b, &a),
            arith.sqr(&a),
            arith.sqr(&b),
            arith.out_of_mont(&arith.to_mont(&a)),
        ];
        for r in &results {
            assert!(
                is_below_p(&to_be_bytes(r)),
                "{}: a result is not below p",
                arith.name()
            );
        }
        assert_eq!(
            results[2],
            arith.mul(&a, &a),
            "{}: sqr(a) != mul(a, a)",
            arith.name()
        );
        assert_eq!(
            results[0],
            results[1],
            "{}: mul is not commutative",
            arith.name()
        );
        assert_eq!(results[4], a, "{}: Montgomery round trip", arith.name());
        match &reference {
            None => reference = Some(results),
            Some(want) => assert_eq!(&results, want, "{} differs from portable", arith.name()),
        }
    }
}

/// The generators of the seed inputs committed under `fuzz/corpus/` (tests only).
#[cfg(test)]
mod seeds;

#[cfg(test)]
mod tests;
