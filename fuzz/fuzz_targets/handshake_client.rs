//! cargo-fuzz target `handshake_client`: the body is `spiperelay::proto::fuzzing::handshake_client`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::handshake_client(data);
});
