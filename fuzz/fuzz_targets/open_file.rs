//! Arbitrary bytes as a whole file, opened as a jobfile and used: typed errors are fine,
//! panics are not.
//!
//! redb asserts its invariants with panics, which jobfile catches at its boundary and returns
//! as `Error::Corrupt`. libFuzzer's panic hook would abort on those caught panics too, so this
//! target puts back a quiet hook: only a panic that escapes jobfile's API fails the run.
//!
//!     cargo +nightly fuzz run open_file fuzz/corpus/open_file fuzz/seeds/open_file -- -detect_leaks=0
//!
//! Leak detection is off: on some damaged files redb panics while dropping a transaction, and
//! the error value being returned when that happens is leaked by the unwinding.

#![no_main]

use libfuzzer_sys::fuzz_target;

static QUIET: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = jobfile::testing::fuzz_open(data);
});
