#![no_main]
//! See `ac_webhook_sync::fuzzing::ac_response` for the input format and the invariants checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ac_webhook_sync::fuzzing::ac_response(data));
