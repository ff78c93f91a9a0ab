//! cargo-fuzz target `stream_decode`: the body is `spiperelay::proto::fuzzing::stream_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::stream_decode(data);
});
