//! The retry helper on tokio's paused clock: exact waits, jitter bounds, giving up, the
//! retryable predicate, and cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobfile::{RetryError, RetryPolicy, retry, retry_until};
use tokio::time::Instant;

/// Runs a retry whose op fails until attempt `succeed_on` (never, if 0), recording when each
/// attempt started, in ms after the start.
async fn attempt_times(
    policy: RetryPolicy<String>,
    succeed_on: u32,
) -> (Result<u32, RetryError<String>>, Vec<u64>) {
    let start = Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let outcome = retry(&policy, move |attempt| {
        t.lock().unwrap().push(start.elapsed().as_millis() as u64);
        async move {
            if attempt == succeed_on {
                Ok(attempt)
            } else {
                Err(format!("failure {attempt}"))
            }
        }
    })
    .await;
    let times = times.lock().unwrap().clone();
    (outcome, times)
}

#[tokio::test(start_paused = true)]
async fn waits_double_from_100_ms_and_the_third_attempt_succeeds() {
    let (outcome, times) = attempt_times(RetryPolicy::default().jitter(0.0), 3).await;
    assert_eq!(outcome, Ok(3));
    assert_eq!(times, [0, 100, 300]);
}

#[tokio::test(start_paused = true)]
async fn the_defaults_give_up_after_8_attempts_with_the_last_error() {
    let (outcome, times) = attempt_times(RetryPolicy::default().jitter(0.0), 0).await;
    assert_eq!(
        outcome,
        Err(RetryError::GaveUp {
            error: "failure 8".into(),
            attempts: 8
        })
    );
    // Waits 100, 200, 400, 800, 1600, then capped at 2000 twice.
    assert_eq!(times, [0, 100, 300, 700, 1_500, 3_100, 5_100, 7_100]);
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_each_wait_within_its_bounds() {
    for _ in 0..20 {
        let (_, times) = attempt_times(RetryPolicy::default(), 0).await;
        let waits: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let nominal = [100u64, 200, 400, 800, 1_600, 2_000, 2_000];
        for (w, n) in waits.iter().zip(nominal) {
            let (lo, hi) = (n * 8 / 10, n * 12 / 10);
            assert!((lo..=hi).contains(w), "{waits:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_the_predicate_rejects_ends_the_retry_at_once() {
    let policy = RetryPolicy::default().retry_if(|e: &String| !e.contains("fatal"));
    let outcome: Result<(), _> = retry(&policy, |attempt| async move {
        Err(if attempt == 2 {
            "fatal: bad key".to_string()
        } else {
            "busy".to_string()
        })
    })
    .await;
    assert_eq!(
        outcome,
        Err(RetryError::GaveUp {
            error: "fatal: bad key".into(),
            attempts: 2
        })
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_wait_and_returns_the_last_error() {
    let start = Instant::now();
    let policy = RetryPolicy::default()
        .jitter(0.0)
        .min_delay(Duration::from_secs(10))
        .max_delay(Duration::from_secs(60));
    let cancel = tokio::time::sleep(Duration::from_secs(15));
    let outcome: Result<(), _> =
        retry_until(&policy, |a| async move { Err(format!("e{a}")) }, cancel).await;
    assert_eq!(
        outcome,
        Err(RetryError::Cancelled {
            last: Some("e2".into()),
            attempts: 2
        })
    );
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_an_attempt_in_progress() {
    let policy = RetryPolicy::<String>::default();
    let cancel = tokio::time::sleep(Duration::from_millis(50));
    let outcome: Result<(), _> = retry_until(
        &policy,
        |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        },
        cancel,
    )
    .await;
    assert_eq!(
        outcome,
        Err(RetryError::Cancelled {
            last: None,
            attempts: 1
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_already_done_starts_no_attempt_and_counts_none() {
    let policy = RetryPolicy::<String>::default();
    let ran = std::sync::atomic::AtomicU32::new(0);
    let outcome: Result<(), _> = retry_until(
        &policy,
        |_| {
            ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(()) }
        },
        std::future::ready(()),
    )
    .await;
    assert_eq!(
        outcome,
        Err(RetryError::Cancelled {
            last: None,
            attempts: 0
        })
    );
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn the_policy_clamps_nonsense_to_sane_values() {
    let p = RetryPolicy::<()>::default()
        .attempts(0)
        .factor(0.5)
        .jitter(7.0)
        .min_delay(Duration::from_millis(10));
    // One attempt at least, never shrinking waits, jitter at most the whole wait.
    assert!(format!("{p:?}").contains("attempts: 1"));
    assert_eq!(
        p.clone().jitter(0.0).delay_after(5, 1),
        Duration::from_millis(10)
    );
    let d = p.delay_after(1, 99);
    assert!(d <= Duration::from_millis(20));
}
