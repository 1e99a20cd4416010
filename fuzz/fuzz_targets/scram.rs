//! See `fraiseql_wire::fuzzing::scram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fraiseql_wire::fuzzing::scram(data));
