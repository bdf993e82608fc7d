//! Rate limiters on a manual clock: the sliding window's edges (the previous window weighed at
//! 0, 50 and 100 % of the current one), a burst at a window boundary, identifiers counted
//! apart, counts that survive a restart and a SIGKILL, counts dropped once they no longer
//! matter, concurrent checks, and typed errors. Each behaviour test runs on a file and on a
//! PostgreSQL schema (`in_both_places!`).

use crate::common;

use std::io::BufRead;
use std::time::Duration;

use common::pg::Place;
use common::{T0, child_role, secs, spawn_child, temp_file, wait_for_line};
use jobfile::{EngineOptions, Error, ManualClock, RateLimitCheck};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// T0 is a multiple of a minute, so a 60 s window starts at T0.
const MINUTE: u64 = 60_000;

async fn the_window_slides_exactly(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let logins = engine.rate_limit("login", 10, secs(60)).unwrap();
    clock.advance(secs(30));
    for left in (0..10).rev() {
        let check = logins.check("user:1").await.unwrap();
        assert_eq!((check.limited, check.remaining), (false, left));
        assert_eq!(check.reset_in, secs(30));
    }
    // The tenth used the window up: a check passes again 1 ms into the next window, when the
    // 10 weigh 10 * 59,999 / 60,000, rounded down to 9.
    let eleventh = logins.check("user:1").await.unwrap();
    assert_eq!(
        eleventh,
        RateLimitCheck {
            limited: true,
            remaining: 0,
            reset_in: secs(30),
            // Refused checks count too: 11 now, so 10 * 60,000 / 11 must slide out.
            retry_in: ms(30_000 + 5_455),
        }
    );
    match logins.check_or_err("user:1").await {
        Err(Error::RateLimited { name, retry_in_ms }) => {
            assert_eq!((name.as_str(), retry_in_ms), ("login", 30_000 + 10_001));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // 12 counted in the first window. At 0 % of the next one they weigh fully.
    clock.set(T0 + MINUTE);
    assert!(logins.check("user:1").await.unwrap().limited);
    // At 50 % they weigh 6; with the 1 counted just now, 7 < 10 passes, leaving 2.
    clock.set(T0 + MINUTE + 30_000);
    let half = logins.check("user:1").await.unwrap();
    assert_eq!((half.limited, half.remaining), (false, 2));
    // At 100 % (the window after) the first window weighs nothing, the second's 2 fully.
    clock.set(T0 + 2 * MINUTE);
    let next = logins.check("user:1").await.unwrap();
    assert_eq!((next.limited, next.remaining), (false, 7));
    assert_eq!(next.reset_in, secs(60));
}

async fn a_burst_at_the_boundary_cannot_double_the_limit(place: Place) {
    let (engine, clock) = place.open_at(T0 + MINUTE - 1).await;
    let api = engine.rate_limit("api", 5, secs(60)).unwrap();
    let mut passed = 0;
    for _ in 0..5 {
        passed += u32::from(!api.check("k").await.unwrap().limited);
    }
    clock.advance(ms(1));
    for _ in 0..5 {
        passed += u32::from(!api.check("k").await.unwrap().limited);
    }
    assert_eq!(passed, 5, "5 per window, not 10 across the boundary");
}

async fn identifiers_are_counted_apart_and_reset_alone(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let limit = engine.rate_limit("l", 2, secs(1)).unwrap();
    let long = "x".repeat(10_000);
    let longer = "x".repeat(10_001);
    for id in ["a", "b", long.as_str(), longer.as_str()] {
        assert_eq!(limit.check(id).await.unwrap().remaining, 1, "{}", id.len());
    }
    assert_eq!(limit.check(&long).await.unwrap().remaining, 0);
    assert!(limit.check(&long).await.unwrap().limited);
    assert_eq!(limit.check(&longer).await.unwrap().remaining, 0);
    // Another limiter of the same identifier counts apart.
    let other = engine.rate_limit("other", 2, secs(1)).unwrap();
    assert_eq!(other.check("a").await.unwrap().remaining, 1);
    assert!(limit.reset(&long).await.unwrap());
    assert!(!limit.reset("never-seen").await.unwrap());
    assert_eq!(limit.check(&long).await.unwrap().remaining, 1);
    assert_eq!(limit.check("a").await.unwrap().remaining, 0);
}

async fn counts_survive_a_restart(place: Place) {
    {
        let (engine, _clock) = place.open_at(T0).await;
        let limit = engine.rate_limit("l", 10, secs(60)).unwrap();
        for _ in 0..4 {
            limit.check("a").await.unwrap();
        }
        engine.shutdown(secs(1)).await.unwrap();
    }
    let (engine, _clock) = place.open_at(T0 + 1_000).await;
    let limit = engine.rate_limit("l", 10, secs(60)).unwrap();
    assert_eq!(limit.check("a").await.unwrap().remaining, 5);
}

/// The rate-limit counts stored now.
async fn stored_counts(place: &Place, engine: jobfile::Engine) -> u64 {
    engine.shutdown(secs(1)).await.unwrap();
    match place {
        Place::File { path, .. } => common::table_rows(path, "rate_limits")
            .iter()
            .map(|(_, n)| n)
            .sum(),
        Place::Postgres(schema) => {
            let row = schema
                .client()
                .await
                .query_one("SELECT count(*) FROM rate_limits", &[])
                .await
                .unwrap();
            row.get::<_, i64>(0) as u64
        }
        Place::Memory => unreachable!("these tests reopen: not in memory"),
    }
}

async fn counts_are_dropped_two_windows_after_the_last_check(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let limit = engine.rate_limit("l", 10, secs(60)).unwrap();
    for id in ["a", "b", "c"] {
        limit.check(id).await.unwrap();
    }
    clock.set(T0 + MINUTE + 10_000);
    limit.check("b").await.unwrap();
    assert_eq!(stored_counts(&place, engine).await, 3);
    // a and c weigh nothing from T0 + 2 min; b (checked in the second window) from T0 + 3.
    let (engine, clock) = place.open_at(T0 + MINUTE + 10_000).await;
    clock.set(T0 + 2 * MINUTE - 1);
    engine.tick().await.unwrap();
    clock.set(T0 + 2 * MINUTE);
    engine.tick().await.unwrap();
    assert_eq!(stored_counts(&place, engine).await, 1);
    let (engine, clock) = place.open_at(T0 + 2 * MINUTE).await;
    clock.set(T0 + 3 * MINUTE);
    engine.tick().await.unwrap();
    assert_eq!(stored_counts(&place, engine).await, 0);
}

async fn concurrent_checks_pass_exactly_the_limit(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let limit = engine.rate_limit("burst", 10, secs(60)).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let limit = limit.clone();
            tokio::spawn(async move { limit.check("k").await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += u32::from(!t.await.unwrap().limited);
    }
    assert_eq!(passed, 10);
    let last = limit.check("k").await.unwrap();
    assert!(last.limited);
}

async fn bad_arguments_are_typed_errors(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    for (result, what) in [
        (engine.rate_limit("", 1, secs(1)), "rate limit name"),
        (engine.rate_limit("l", 0, secs(1)), "rate limit"),
        (
            engine.rate_limit("l", 1, Duration::from_micros(999)),
            "rate limit window",
        ),
    ] {
        match result {
            Err(Error::InvalidArgument { what: got, .. }) => assert_eq!(got, what),
            other => panic!("expected InvalidArgument for {what}, got {other:?}"),
        }
    }
    let limit = engine
        .rate_limit("l", 1, Duration::from_micros(1_500))
        .unwrap();
    assert_eq!(limit.window(), ms(1));
}

async fn checks_racing_resets_never_fail(place: Place) {
    // A reset deletes the identifier's row; a check on another connection at the same moment
    // must still lock a row, never find none. 300 of each.
    let (engine, _clock) = place.open_at(T0).await;
    let limit = engine.rate_limit("race", 1_000, secs(60)).unwrap();
    let checks = {
        let limit = limit.clone();
        tokio::spawn(async move {
            for _ in 0..300 {
                limit.check("k").await.unwrap();
            }
        })
    };
    for _ in 0..300 {
        limit.reset("k").await.unwrap();
    }
    checks.await.unwrap();
    limit.reset("k").await.unwrap();
    assert_eq!(limit.check("k").await.unwrap().remaining, 999);
}

in_both_places!(
    the_window_slides_exactly,
    a_burst_at_the_boundary_cannot_double_the_limit,
    identifiers_are_counted_apart_and_reset_alone,
    counts_survive_a_restart,
    counts_are_dropped_two_windows_after_the_last_check,
    concurrent_checks_pass_exactly_the_limit,
    checks_racing_resets_never_fail,
    bad_arguments_are_typed_errors,
);

/// Checks allowed per window in the crash test: never reached, so `remaining` counts checks.
const HUGE: u64 = 1 << 40;

/// The child: 4 tasks checking one identifier at a fixed instant, each printing a line once
/// its check returned (durable).
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn child_entry() {
    let Some((_role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let engine = EngineOptions::new()
            .clock(ManualClock::new(T0))
            .open(&path)
            .await
            .expect("child open");
        let limit = engine.rate_limit("crash", HUGE, secs(60)).unwrap();
        println!("opened");
        for _ in 0..4 {
            let limit = limit.clone();
            tokio::spawn(async move {
                loop {
                    limit.check("k").await.expect("check");
                    println!("checked");
                }
            });
        }
        // Until killed.
        std::future::pending::<()>().await;
    });
}

/// Every acknowledged check survives a SIGKILL: after each of 5 kills the count is at least
/// what the child was told, and at most that plus the 4 checks it had in flight.
#[test]
fn acknowledged_checks_survive_sigkill() {
    let (_dir, path) = temp_file();
    let mut acknowledged = 0u64;
    let mut in_flight = 0u64;
    for round in 0..5 {
        let (mut child, mut out) = spawn_child("rate_limit::child_entry", "check", &path);
        wait_for_line(&mut out, "opened");
        let mut seen = 0;
        let mut line = String::new();
        while seen < 200 {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child ended");
            seen += u64::from(line.contains("checked"));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines printed before the kill but not yet read.
        for l in out.lines() {
            seen += u64::from(l.unwrap().contains("checked"));
        }
        acknowledged += seen;
        in_flight += 4;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let stored = rt.block_on(async {
            let engine = EngineOptions::new()
                .clock(ManualClock::new(T0))
                .open(&path)
                .await
                .unwrap();
            let limit = engine.rate_limit("crash", HUGE, secs(60)).unwrap();
            let check = limit.check("k").await.unwrap();
            engine.shutdown(secs(1)).await.unwrap();
            // This check counted too.
            HUGE - check.remaining - 1
        });
        assert!(
            stored >= acknowledged && stored <= acknowledged + in_flight,
            "round {round}: {stored} stored, {acknowledged} acknowledged"
        );
        acknowledged = stored + 1;
        in_flight = 0;
    }
}
