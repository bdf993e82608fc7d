//! Ephemeral TTL entries on a manual clock: exact expiries, the change stream (replayed and
//! live, including expiry while a reader follows), limits, restarts and lagging readers.

use crate::common;

use std::time::Duration;

use common::pg::Place;
use common::{T0, secs};
use jobfile::{ChangeKind, EngineOptions, EphemeralOptions, Error, ManualClock};

fn kinds(changes: &[jobfile::Change]) -> Vec<(String, &'static str)> {
    changes
        .iter()
        .map(|c| (c.key.clone(), c.kind.name()))
        .collect()
}

async fn upsert_touch_remove_snapshot_and_the_change_stream(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let devices = engine.ephemeral("devices").unwrap();
    let p1 = devices
        .upsert("b-sensor", b"on".to_vec())
        .ttl(secs(30))
        .await
        .unwrap();
    let p2 = devices
        .upsert("a-sensor", b"on".to_vec())
        .ttl(secs(10))
        .await
        .unwrap();
    assert!(p2 > p1);
    clock.advance(secs(5));
    let p3 = devices.touch("a-sensor", secs(10)).await.unwrap().unwrap();
    assert_eq!(devices.touch("ghost", secs(10)).await.unwrap(), None);
    let a = devices.get("a-sensor").await.unwrap().unwrap();
    assert_eq!(
        (a.expires_at_ms, a.updated_at_ms),
        (T0 + 15_000, T0 + 5_000)
    );
    let snap = devices.snapshot().await.unwrap();
    let keys: Vec<&str> = snap.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a-sensor", "b-sensor"], "sorted by key");
    assert_eq!(snap.position, p3);
    let p4 = devices.remove("b-sensor").await.unwrap().unwrap();
    assert_eq!(devices.remove("b-sensor").await.unwrap(), None);
    let changes = devices.read_changes(0, 100).await.unwrap();
    assert_eq!(
        kinds(&changes),
        [
            ("b-sensor".into(), "upsert"),
            ("a-sensor".into(), "upsert"),
            ("a-sensor".into(), "touch"),
            ("b-sensor".into(), "delete")
        ]
    );
    assert_eq!(
        changes.iter().map(|c| c.position).collect::<Vec<_>>(),
        [p1, p2, p3, p4]
    );
    assert_eq!(
        changes[0].kind,
        ChangeKind::Upsert {
            value: b"on".to_vec(),
            expires_at_ms: T0 + 30_000
        }
    );
    assert_eq!(
        changes[2].kind,
        ChangeKind::Touch {
            expires_at_ms: T0 + 15_000
        }
    );
    assert_eq!(changes[3].at_ms, T0 + 5_000);
    // Sets are separate.
    assert!(
        engine
            .ephemeral("other")
            .unwrap()
            .snapshot()
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

async fn entries_expire_on_time_while_a_reader_follows_the_stream(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let presence = engine.ephemeral("presence").unwrap();
    presence
        .upsert("ann", b"here".to_vec())
        .ttl(secs(10))
        .await
        .unwrap();
    let snap = presence.snapshot().await.unwrap();
    let mut follower = presence.follow(snap.position + 1);
    clock.advance(Duration::from_millis(9_999));
    engine.tick().await.unwrap();
    assert!(presence.get("ann").await.unwrap().is_some());
    clock.advance(Duration::from_millis(1));
    // The timer expires it; nobody has to write for that to happen.
    let change = follower.next().await.unwrap().unwrap();
    assert_eq!(
        (change.key.as_str(), &change.kind, change.at_ms),
        ("ann", &ChangeKind::Expire, T0 + 10_000)
    );
    assert_eq!(presence.get("ann").await.unwrap(), None);
    assert!(presence.snapshot().await.unwrap().entries.is_empty());
    // The follower keeps going with later changes.
    presence
        .upsert("bob", b"here".to_vec())
        .ttl(secs(10))
        .await
        .unwrap();
    assert_eq!(
        follower.next().await.unwrap().unwrap().kind.name(),
        "upsert"
    );
}

async fn capacity_and_payload_limits_are_typed_errors_that_write_nothing(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let small = engine
        .ephemeral_with(
            "small",
            EphemeralOptions::default().capacity(2).payload_limit(8),
        )
        .unwrap();
    small.upsert("a", vec![0; 8]).ttl(secs(10)).await.unwrap();
    small.upsert("b", vec![0; 8]).ttl(secs(20)).await.unwrap();
    let before = small.read_changes(0, 100).await.unwrap().len();
    assert!(matches!(
        small.upsert("c", vec![0; 1]).ttl(secs(10)).await,
        Err(Error::CapacityExceeded { capacity: 2, .. })
    ));
    assert!(matches!(
        small.upsert("a", vec![0; 9]).ttl(secs(10)).await,
        Err(Error::PayloadTooLarge { size: 9, limit: 8 })
    ));
    assert_eq!(
        small.read_changes(0, 100).await.unwrap().len(),
        before,
        "nothing written"
    );
    small.upsert("a", vec![1; 8]).ttl(secs(10)).await.unwrap(); // replacing is fine
    clock.advance(secs(10));
    engine.tick().await.unwrap();
    small.upsert("c", vec![0; 1]).ttl(secs(10)).await.unwrap(); // "a" expired: room again
    let defaults = engine.ephemeral("d").unwrap();
    assert!(matches!(
        defaults.upsert("k", vec![0; 4_097]).ttl(secs(1)).await,
        Err(Error::PayloadTooLarge {
            size: 4_097,
            limit: 4_096
        })
    ));
    defaults
        .upsert("k", vec![0; 4_096])
        .ttl(secs(1))
        .await
        .unwrap();
    assert!(matches!(
        defaults.upsert("", vec![]).ttl(secs(1)).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        defaults.upsert("k", vec![]).ttl(Duration::ZERO).await,
        Err(Error::InvalidArgument { what: "ttl", .. })
    ));
}

async fn default_capacity_is_ten_thousand_entries(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let set = engine.ephemeral("many").unwrap();
    let mut tasks = Vec::new();
    for i in 0..10_000 {
        let set = set.clone();
        tasks.push(tokio::spawn(async move {
            set.upsert(format!("k{i:05}"), vec![]).ttl(secs(60)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(matches!(
        set.upsert("one-more", vec![]).ttl(secs(60)).await,
        Err(Error::CapacityExceeded {
            capacity: 10_000,
            ..
        })
    ));
    assert_eq!(set.snapshot().await.unwrap().entries.len(), 10_000);
}

async fn entries_survive_a_restart_until_their_ttl_ends(place: Place) {
    {
        let (engine, _clock) = place.open_at(T0).await;
        let s = engine.ephemeral("s").unwrap();
        s.upsert("k", b"v".to_vec()).ttl(secs(60)).await.unwrap();
        engine.shutdown(secs(1)).await.unwrap();
    }
    let reopen = |at: u64| place.open(EngineOptions::new().clock(ManualClock::new(at)));
    let engine = reopen(T0 + 30_000).await;
    let s = engine.ephemeral("s").unwrap();
    assert_eq!(
        s.get("k").await.unwrap().unwrap().expires_at_ms,
        T0 + 60_000
    );
    engine.shutdown(secs(1)).await.unwrap();
    drop(s);
    let engine = reopen(T0 + 60_000).await;
    let s = engine.ephemeral("s").unwrap();
    assert_eq!(s.get("k").await.unwrap(), None);
    if place.is_postgres() {
        // No open recovers a shared schema: the first pass of any node expires it.
        engine.tick().await.unwrap();
    }
    let last = s.read_changes(0, 10).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind, last.at_ms),
        (ChangeKind::Expire, T0 + 60_000),
        "expired at open"
    );
}

async fn a_reader_behind_pruned_changes_is_told_it_lagged(place: Place) {
    let clock = ManualClock::new(T0);
    let engine = place
        .open(
            EngineOptions::new()
                .clock(clock.clone())
                .ephemeral_change_retention(secs(10)),
        )
        .await;
    let s = engine.ephemeral("s").unwrap();
    let first = s.upsert("a", vec![]).ttl(secs(3600)).await.unwrap();
    clock.advance(secs(5));
    let second = s.upsert("b", vec![]).ttl(secs(3600)).await.unwrap();
    clock.advance(Duration::from_millis(5_001));
    engine.tick().await.unwrap();
    match s.read_changes(first, 10).await {
        Err(Error::Lagged {
            set,
            requested,
            next_available,
        }) => {
            assert_eq!(
                (set.as_str(), requested, next_available),
                ("s", first, first + 1)
            );
        }
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert_eq!(s.read_changes(second, 10).await.unwrap().len(), 1);
    let mut follower = s.follow(first);
    assert!(matches!(
        follower.next().await,
        Some(Err(Error::Lagged { .. }))
    ));
    // The snapshot still has both entries: only the change history was pruned.
    assert_eq!(s.snapshot().await.unwrap().entries.len(), 2);
}

async fn an_upsert_without_a_ttl_lives_the_sets_default_ttl(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let plain = engine.ephemeral("plain").unwrap();
    let short = engine
        .ephemeral_with("short", EphemeralOptions::default().ttl(secs(5)))
        .unwrap();
    plain.upsert("a", b"1".to_vec()).await.unwrap();
    short.upsert("a", b"1".to_vec()).await.unwrap();
    short
        .upsert("b", b"1".to_vec())
        .ttl(secs(90))
        .await
        .unwrap();
    let expiry = |e: Option<jobfile::Entry>| e.map(|e| e.expires_at_ms);
    assert_eq!(expiry(plain.get("a").await.unwrap()), Some(T0 + 60_000));
    assert_eq!(expiry(short.get("a").await.unwrap()), Some(T0 + 5_000));
    assert_eq!(expiry(short.get("b").await.unwrap()), Some(T0 + 90_000));
    clock.advance(secs(5));
    engine.tick().await.unwrap();
    assert_eq!(short.get("a").await.unwrap(), None);
    assert!(plain.get("a").await.unwrap().is_some());
    // A zero default is refused when the handle is made.
    assert!(matches!(
        engine.ephemeral_with("zero", EphemeralOptions::default().ttl(Duration::ZERO)),
        Err(Error::InvalidArgument { what: "ttl", .. })
    ));
}

in_both_places!(
    upsert_touch_remove_snapshot_and_the_change_stream,
    entries_expire_on_time_while_a_reader_follows_the_stream,
    capacity_and_payload_limits_are_typed_errors_that_write_nothing,
    default_capacity_is_ten_thousand_entries,
    entries_survive_a_restart_until_their_ttl_ends,
    a_reader_behind_pruned_changes_is_told_it_lagged,
    an_upsert_without_a_ttl_lives_the_sets_default_ttl,
);
