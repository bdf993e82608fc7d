//! Arbitrary `expression \n zone` text through cron and time-zone parsing and the next-slot
//! computation: typed errors are fine, panics and hangs are not.
//!
//!     cargo +nightly fuzz run cron fuzz/corpus/cron fuzz/seeds/cron -- -timeout=30

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jobfile::testing::fuzz_cron(data);
});
