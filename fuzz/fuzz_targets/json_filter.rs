//! See `fraiseql_wire::fuzzing::json_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fraiseql_wire::fuzzing::json_filter(data));
