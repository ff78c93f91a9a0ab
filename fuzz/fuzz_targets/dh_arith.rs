//! cargo-fuzz target `dh_arith`: the body is `spiperelay::proto::fuzzing::dh_arith`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::proto::fuzzing::dh_arith(data);
});
