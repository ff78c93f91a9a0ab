//! cargo-fuzz target `config`: the body is `spiperelay::config::fuzzing::config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spiperelay::config::fuzzing::config(data);
});
