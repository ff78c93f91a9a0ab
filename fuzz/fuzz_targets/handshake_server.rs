//! cargo-fuzz target `handshake_server`: the body is `spiperelay::proto::fuzzing::handshake_server`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::handshake_server(data);
});
