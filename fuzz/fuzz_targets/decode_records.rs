//! Arbitrary bytes through every stored-record decoder: errors are fine, panics are not.
//!
//!     cargo +nightly fuzz run decode_records fuzz/corpus/decode_records fuzz/seeds/decode_records

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jobfile::testing::fuzz_decode(data);
    let _ = jobfile::testing::decode_each_record_kind(data);
});
