//! cargo-fuzz target `packet_open`: the body is `spiperelay::proto::fuzzing::packet_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::packet_open(data);
});
