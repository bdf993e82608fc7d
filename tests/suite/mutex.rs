//! Fencing mutexes on a manual clock: exclusion, expiry and takeover, refused extends and
//! releases of a lost lease, waiting, and fencing tokens that keep growing across a reopen.
//! Each test runs on a file and on a PostgreSQL schema (`in_both_places!`).

use crate::common;

use std::time::Duration;

use common::pg::Place;
use common::{T0, secs};
use jobfile::{Error, Held};

async fn one_holder_at_a_time_and_tokens_grow_with_every_acquisition(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let m = engine.mutex("report").unwrap();
    let a = m.try_acquire("a", secs(30)).await.unwrap().unwrap();
    assert_eq!(
        (a.name.as_str(), a.owner.as_str(), a.token, a.expires_at_ms),
        ("report", "a", 1, T0 + 30_000)
    );
    assert_eq!(m.try_acquire("b", secs(30)).await.unwrap(), None);
    assert_eq!(
        m.try_acquire("a", secs(30)).await.unwrap(),
        None,
        "not reentrant"
    );
    assert_eq!(m.holder().await.unwrap(), Some(a.clone()));
    m.release(&a).await.unwrap();
    assert_eq!(m.holder().await.unwrap(), None);
    let b = m.try_acquire("b", secs(30)).await.unwrap().unwrap();
    assert_eq!(b.token, 2);
    // Another mutex of the file draws from the same growing sequence.
    let other = engine.mutex("other").unwrap();
    assert_eq!(
        other
            .try_acquire("c", secs(1))
            .await
            .unwrap()
            .unwrap()
            .token,
        3
    );
}

async fn an_expired_lease_can_be_taken_and_the_old_owner_is_told(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let m = engine.mutex("m").unwrap();
    let a = m.try_acquire("a", secs(10)).await.unwrap().unwrap();
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(m.try_acquire("b", secs(10)).await.unwrap(), None);
    let a = m.extend(&a, secs(10)).await.unwrap();
    assert_eq!((a.token, a.expires_at_ms), (1, T0 + 19_999));
    clock.advance(secs(10));
    // Expired, not yet taken: the old owner can no longer extend it.
    match m.extend(&a, secs(10)).await {
        Err(Error::NotHolder {
            held: Held::MutexLease { name, owner, token },
        }) => {
            assert_eq!((name.as_str(), owner.as_str(), token), ("m", "a", 1));
        }
        other => panic!("expected NotHolder, got {other:?}"),
    }
    let b = m.try_acquire("b", secs(10)).await.unwrap().unwrap();
    assert_eq!(b.token, 2);
    assert!(matches!(
        m.release(&a).await,
        Err(Error::NotHolder {
            held: Held::MutexLease { token: 1, .. }
        })
    ));
    assert!(matches!(
        m.extend(&a, secs(5)).await,
        Err(Error::NotHolder { .. })
    ));
    assert_eq!(
        m.holder().await.unwrap(),
        Some(b),
        "the new holder is untouched"
    );
}

async fn a_waiter_is_woken_by_the_release_or_by_the_expiry_or_times_out(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let m = engine.mutex("m").unwrap();
    let a = m.try_acquire("a", secs(10)).await.unwrap().unwrap();

    // Woken by the release.
    let waiter = {
        let m = m.clone();
        tokio::spawn(async move { m.acquire("b", secs(10), secs(60)).await })
    };
    tokio::task::yield_now().await;
    m.release(&a).await.unwrap();
    let b = waiter.await.unwrap().unwrap();
    assert_eq!((b.owner.as_str(), b.token), ("b", 2));

    // Woken by the holder's expiry, on the clock.
    let waiter = {
        let m = m.clone();
        tokio::spawn(async move { m.acquire("c", secs(10), secs(60)).await })
    };
    tokio::task::yield_now().await;
    clock.advance(secs(10));
    let c = waiter.await.unwrap().unwrap();
    assert_eq!(
        (c.owner.as_str(), c.token, c.expires_at_ms),
        ("c", 3, T0 + 20_000)
    );

    // Held for the whole wait.
    let waiter = {
        let m = m.clone();
        tokio::spawn(async move { m.acquire("d", secs(10), secs(5)).await })
    };
    tokio::task::yield_now().await;
    clock.advance(secs(5));
    match waiter.await.unwrap() {
        Err(Error::LockTimeout { name, waited_ms }) => {
            assert_eq!((name.as_str(), waited_ms), ("m", 5_000))
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
}

async fn with_lock_runs_the_work_holding_the_lease_then_releases_it(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let m = engine.mutex("m").unwrap();
    let m2 = m.clone();
    let out = m
        .with_lock("a", secs(30), secs(1), |lease| async move {
            assert_eq!(m2.holder().await.unwrap(), Some(lease.clone()));
            lease.token * 10
        })
        .await
        .unwrap();
    assert_eq!(out, 10);
    assert_eq!(m.holder().await.unwrap(), None);
}

async fn fencing_tokens_keep_growing_across_a_reopen(place: Place) {
    {
        let (engine, _clock) = place.open_at(T0).await;
        let m = engine.mutex("m").unwrap();
        let a = m.try_acquire("a", secs(30)).await.unwrap().unwrap();
        m.release(&a).await.unwrap();
        let b = m.try_acquire("b", secs(30)).await.unwrap().unwrap();
        assert_eq!(b.token, 2);
        engine.shutdown(secs(1)).await.unwrap();
    }
    let (engine, clock) = place.open_at(T0).await;
    let m = engine.mutex("m").unwrap();
    // The lease survived the restart and is still live.
    assert_eq!(
        m.holder().await.unwrap().map(|l| (l.owner, l.token)),
        Some(("b".into(), 2))
    );
    clock.advance(secs(30));
    assert_eq!(
        m.try_acquire("c", secs(30)).await.unwrap().unwrap().token,
        3
    );
}

async fn bad_names_owners_and_ttls_are_typed_errors(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    assert!(matches!(
        engine.mutex(""),
        Err(Error::InvalidArgument {
            what: "mutex name",
            ..
        })
    ));
    let m = engine.mutex("m").unwrap();
    assert!(matches!(
        m.try_acquire("", secs(1)).await,
        Err(Error::InvalidArgument {
            what: "mutex owner",
            ..
        })
    ));
    assert!(matches!(
        m.try_acquire("a", Duration::ZERO).await,
        Err(Error::InvalidArgument { what: "ttl", .. })
    ));
    assert_eq!(m.holder().await.unwrap(), None);
}

async fn acquisitions_racing_releases_never_fail_and_never_overlap(place: Place) {
    // A release deletes the mutex's row; an acquisition on another connection that runs at
    // the same moment must still lock a row, never find none. 300 rounds of two owners.
    let (engine, _clock) = place.open_at(T0).await;
    let m = engine.mutex("race").unwrap();
    let held = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let owners: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let (m, held) = (m.clone(), held.clone());
            tokio::spawn(async move {
                let mut got = 0u64;
                for _ in 0..300 {
                    if let Some(lease) = m.try_acquire(owner, secs(30)).await.unwrap() {
                        let others = held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(others, 0, "two owners held the mutex at once");
                        tokio::task::yield_now().await;
                        held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        m.release(&lease).await.unwrap();
                        got += 1;
                    }
                }
                got
            })
        })
        .collect();
    let mut total = 0;
    for o in owners {
        total += o.await.unwrap();
    }
    assert_eq!(m.holder().await.unwrap(), None);
    let next = m.try_acquire("c", secs(30)).await.unwrap().unwrap();
    assert_eq!(
        next.token,
        total + 1,
        "one token per acquisition, none lost"
    );
}

in_both_places!(
    one_holder_at_a_time_and_tokens_grow_with_every_acquisition,
    an_expired_lease_can_be_taken_and_the_old_owner_is_told,
    a_waiter_is_woken_by_the_release_or_by_the_expiry_or_times_out,
    with_lock_runs_the_work_holding_the_lease_then_releases_it,
    fencing_tokens_keep_growing_across_a_reopen,
    bad_names_owners_and_ttls_are_typed_errors,
    acquisitions_racing_releases_never_fail_and_never_overlap,
);
