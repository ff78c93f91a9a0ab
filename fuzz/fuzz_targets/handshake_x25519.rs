//! cargo-fuzz target `handshake_x25519`: the body is `spiperelay::proto::fuzzing::handshake_x25519`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::handshake_x25519(data);
});
