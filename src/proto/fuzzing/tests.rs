//! The fuzz harnesses under `cargo test`: the committed corpus replayed through every harness,
//! the committed seeds checked against their generators (`seeds.rs`), and edge inputs.

use std::fs;
use std::path::{Path, PathBuf};

use super::seeds::{handshake_outcome, handshake_seeds, seeds, x25519_outcome, x25519_seeds};
use super::*;

/// A harness body.
type Harness = fn(&[u8]);

/// Every target with its harness.
const TARGETS: [(&str, Harness); 6] = [
    ("packet_open", packet_open),
    ("stream_decode", stream_decode),
    ("handshake_server", handshake_server),
    ("handshake_client", handshake_client),
    ("handshake_x25519", handshake_x25519),
    ("dh_arith", dh_arith),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The files of `fuzz/corpus/<target>/`, sorted by name.
fn corpus_files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

/// The committed corpus (seeds and any files kept from campaigns) through every harness.
#[test]
fn corpus_replays_through_every_harness() {
    for (target, harness) in TARGETS {
        let files = corpus_files(target);
        assert!(
            files.len() >= 3,
            "{target}: only {} corpus files",
            files.len()
        );
        for (path, bytes) in files {
            eprintln!("replaying {}", path.display());
            harness(&bytes);
        }
    }
}

/// The generated seeds are committed unchanged (regenerate with
/// `cargo test --lib fuzzing -- --ignored write_seed_corpus`).
#[test]
fn committed_seeds_match_the_generator() {
    for (target, _) in TARGETS {
        for (name, bytes) in seeds(target) {
            let path = corpus_dir(target).join(name);
            let committed = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                committed == bytes,
                "{} differs from its generator",
                path.display()
            );
        }
    }
}

/// The handshake seeds reach past the MAC check to the outcomes they were made for.
#[test]
fn handshake_seeds_reach_their_outcomes() {
    for role in [Role::Server, Role::Client] {
        for (name, bytes, want) in handshake_seeds(role) {
            assert_eq!(handshake_outcome(role, &bytes), want, "{role:?} {name}");
        }
    }
    for (name, bytes, want) in x25519_seeds() {
        assert_eq!(x25519_outcome(&bytes), want, "x25519 {name}");
    }
}

/// The harnesses on edge inputs: empty, all zeros, all ones.
#[test]
fn harnesses_take_edge_inputs() {
    for (_, harness) in TARGETS {
        for input in [&[][..], &[0; 2000][..], &[0xff; 2000][..], &[1][..]] {
            harness(input);
        }
    }
}

/// Writes the generated seeds into `fuzz/corpus/`.
#[test]
#[ignore = "writes fuzz/corpus/; run by hand after changing a seed generator"]
fn write_seed_corpus() {
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        for (name, bytes) in seeds(target) {
            fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}
