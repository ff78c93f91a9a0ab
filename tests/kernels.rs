//! The two kernel sets (`spiperelay::proto::kernels`) put the same bytes on the wire: a whole
//! session (PFS handshake with group-14 DH, then data both ways in reads of many sizes) is
//! recorded with our kernels and again with only the reference RustCrypto paths, and the two
//! transcripts must be byte-identical; each mode must also open the other's packets.
//!
//! The kernel set is process-wide, so this binary has one test that switches it in sequence.

mod common;

use common::{Flag, Outcome, TestRng, drive, kernels_from_env, pair};
use spiperelay::proto::kernels::Kernels;
use spiperelay::proto::stream::Decoder;

const KEY: &[u8] = b"kernels test key\n";

/// Read sizes that cover one packet, partial and full MAC groups, and several groups.
const READS: [usize; 9] = [
    1,
    1023,
    1024,
    1025,
    5000,
    11 * 1024,
    16 * 1024,
    40 * 1024 + 7,
    3,
];

/// The plaintext of read `i` of READS.
fn plain(i: usize) -> Vec<u8> {
    (0..READS[i]).map(|j| (i * 13 + j * 7) as u8).collect()
}

/// One session on `kernels`: everything both sides sent (handshake bytes each way, then the
/// packets of READS client→server and server→client interleaved), the client's packets alone,
/// and the server's decoder (unused so far). The keys, nonces and DH private values come from
/// a fixed seed, so only the kernels differ between calls.
fn transcript(kernels: Kernels) -> (Vec<u8>, Vec<u8>, Decoder) {
    kernels.select();
    assert_eq!(Kernels::current(), kernels);
    let mut rng = TestRng::new(20);
    let (mut c, mut s) = pair(KEY, &[KEY], Flag::Require, Flag::Default, &mut rng);
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    let (outcome, sessions) = drive(
        &mut c,
        &mut s,
        &mut |b: &mut Vec<u8>| c2s.extend_from_slice(b),
        &mut |b: &mut Vec<u8>| s2c.extend_from_slice(b),
    );
    assert_eq!(outcome, Outcome::Done);
    let mut wire = [c2s, s2c].concat();
    let (c, s) = sessions.expect("sessions");
    let (mut c_enc, _) = c.into_stream();
    let (mut s_enc, s_dec) = s.into_stream();
    let mut client_packets = Vec::new();
    for i in 0..READS.len() {
        c_enc
            .encode(&plain(i), &mut client_packets)
            .expect("client encode");
        s_enc.encode(&plain(i), &mut wire).expect("server encode");
    }
    wire.extend_from_slice(&client_packets);
    (wire, client_packets, s_dec)
}

#[test]
fn fast_and_reference_kernels_give_byte_identical_sessions() {
    // Consume any SPIPERELAY_KERNELS first, so the explicit selections below stand.
    kernels_from_env();
    let (fast, fast_packets, mut fast_dec) = transcript(Kernels::Fast);
    let (reference, ref_packets, mut ref_dec) = transcript(Kernels::Reference);
    Kernels::Fast.select();
    assert!(fast.len() > 150_000, "a transcript of {} bytes", fast.len());
    assert!(
        fast == reference,
        "the same handshake and packets in both modes"
    );
    // Each mode opens the other's packets.
    let want: Vec<u8> = (0..READS.len()).flat_map(plain).collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    fast_dec
        .decode(&ref_packets, &mut a)
        .expect("fast opens reference packets");
    ref_dec
        .decode(&fast_packets, &mut b)
        .expect("reference opens fast packets");
    assert!(a == want && b == want);
}

#[test]
fn the_binary_reports_and_obeys_spiperelay_kernels() {
    let run = |value: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiperelay"));
        cmd.arg("kernels").env_remove("SPIPERELAY_KERNELS");
        if let Some(v) = value {
            cmd.env("SPIPERELAY_KERNELS", v);
        }
        cmd.output().expect("run spiperelay kernels")
    };
    let fast = run(None);
    assert!(fast.status.success());
    let text = String::from_utf8_lossy(&fast.stdout);
    assert!(text.starts_with("kernels fast: hmac-sha256 "), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&run(Some("fast")).stdout),
        text,
        "fast is the default"
    );
    let reference = run(Some("reference"));
    assert!(reference.status.success());
    assert!(
        String::from_utf8_lossy(&reference.stdout).starts_with("kernels reference: "),
        "{reference:?}"
    );
    let bad = run(Some("turbo"));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("SPIPERELAY_KERNELS") && err.contains("\"turbo\""),
        "{err}"
    );
}
