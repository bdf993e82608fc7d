//! Queue behaviour with exact values, on a manual clock.

use crate::common;

use std::time::Duration;

use common::pg::Place;
use common::{T0, secs, temp_file};
use jobfile::{DeadReason, Error, MessageStatus, QueueOptions, QueueStats};

async fn receive_payloads(q: &jobfile::Queue, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let d = q.receive().await.expect("receive");
        out.push(d.payload().to_vec());
        d.ack().await.expect("ack");
    }
    out
}

async fn fifo_within_a_priority_and_higher_priority_first(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    for (p, prio) in [("a", 0), ("b", 0), ("c", 5), ("d", -1), ("e", 5), ("f", 0)] {
        q.send(p.as_bytes().to_vec()).priority(prio).await.unwrap();
    }
    let got = receive_payloads(&q, 6).await;
    let want: Vec<Vec<u8>> = ["c", "e", "a", "b", "f", "d"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(got, want);
    assert_eq!(q.stats().await.unwrap(), QueueStats::default());
}

async fn ids_are_sequential_and_queues_are_separate(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let a = engine.queue("a").unwrap();
    let b = engine.queue("b").unwrap();
    assert_eq!(a.send(b"1".to_vec()).await.unwrap().id, 1);
    assert_eq!(b.send(b"2".to_vec()).await.unwrap().id, 2);
    assert_eq!(a.send(b"3".to_vec()).await.unwrap().id, 3);
    let from_b = b.try_receive(10, secs(30)).await.unwrap();
    assert_eq!(from_b.len(), 1);
    assert_eq!(from_b[0].payload(), b"2");
    assert!(
        b.get(1).await.unwrap().is_none(),
        "a's message is not visible through b"
    );
    assert_eq!(a.stats().await.unwrap().ready, 2);
}

async fn delayed_message_becomes_ready_exactly_at_its_time(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let id = q.send(b"later".to_vec()).delay(secs(10)).await.unwrap().id;
    assert_eq!(
        q.get(id).await.unwrap().unwrap().state,
        MessageStatus::Delayed {
            until_ms: T0 + 10_000
        }
    );
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());

    clock.advance(Duration::from_millis(9_999));
    engine.tick().await.unwrap();
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());
    assert_eq!(q.stats().await.unwrap().delayed, 1);

    clock.advance(Duration::from_millis(1));
    // No tick here: the background timer promotes it and wakes the receiver.
    let d = q.receive().await.unwrap();
    assert_eq!((d.id(), d.deliveries()), (id, 1));
}

async fn at_wins_over_delay(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let id = q
        .send(b"x".to_vec())
        .delay(secs(100))
        .at_ms(T0 + 5_000)
        .await
        .unwrap()
        .id;
    assert_eq!(
        q.get(id).await.unwrap().unwrap().state,
        MessageStatus::Delayed {
            until_ms: T0 + 5_000
        }
    );
    clock.advance(secs(5));
    engine.tick().await.unwrap();
    assert_eq!(q.try_receive(1, secs(30)).await.unwrap()[0].id(), id);
}

async fn nacked_message_goes_behind_those_already_ready(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    for p in ["a", "b", "c"] {
        q.send(p.as_bytes().to_vec()).await.unwrap();
    }
    let a = q.receive().await.unwrap();
    a.nack(Duration::ZERO).await.unwrap();
    let order: Vec<_> = receive_payloads(&q, 3).await;
    assert_eq!(order, vec![b"b".to_vec(), b"c".to_vec(), b"a".to_vec()]);
}

async fn nack_with_delay_waits_and_counts_deliveries(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let id = q.send(b"x".to_vec()).await.unwrap().id;
    let d = q.receive().await.unwrap();
    d.nack_with_error(secs(60), "busy").await.unwrap();
    let info = q.get(id).await.unwrap().unwrap();
    assert_eq!(
        info.state,
        MessageStatus::Delayed {
            until_ms: T0 + 60_000
        }
    );
    assert_eq!(info.last_error.as_deref(), Some("busy"));
    clock.advance(secs(59));
    engine.tick().await.unwrap();
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());
    clock.advance(secs(1));
    let again = q.receive().await.unwrap();
    assert_eq!((again.id(), again.deliveries()), (id, 2));
    // The first delivery no longer owns the message.
    assert_lost(d.ack().await, "lease lost");
    again.ack().await.unwrap();
}

async fn expired_lease_is_redelivered_with_its_count_and_old_owner_loses(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let id = q.send(b"x".to_vec()).await.unwrap().id;
    let first = q.receive_for(secs(30)).await.unwrap();
    assert_eq!(first.lease_deadline_ms(), T0 + 30_000);

    clock.advance(Duration::from_millis(29_999));
    engine.tick().await.unwrap();
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());

    clock.advance(Duration::from_millis(1));
    // Past the deadline the ack fails even before the expiry has been processed.
    assert_lost(first.ack().await, "lease lost");
    let second = q.receive_for(secs(30)).await.unwrap();
    assert_eq!((second.id(), second.deliveries()), (id, 2));
    assert_eq!(second.lease_deadline_ms(), T0 + 60_000);
    let info = q.get(id).await.unwrap().unwrap();
    assert_eq!(info.last_error.as_deref(), Some("lease expired"));
    assert_lost(first.nack(Duration::ZERO).await, "lease lost");
    let mut first = first;
    assert_lost(
        first.extend(secs(30)).await,
        "a lost lease cannot be extended",
    );
    assert_lost(first.dead_letter("late").await, "lease lost");
    second.ack().await.unwrap();
    assert!(q.get(id).await.unwrap().is_none());
}

async fn extend_keeps_the_lease(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    q.send(b"x".to_vec()).await.unwrap();
    let mut d = q.receive_for(secs(30)).await.unwrap();
    clock.advance(secs(20));
    d.extend(secs(30)).await.unwrap();
    assert_eq!(d.lease_deadline_ms(), T0 + 50_000);
    clock.advance(secs(20)); // 40 s: past the first deadline, inside the extended one
    engine.tick().await.unwrap();
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());
    d.ack().await.unwrap();
}

async fn max_deliveries_moves_to_dead_letters_with_last_error(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("work", QueueOptions::default().max_deliveries(3))
        .unwrap();
    let id = q.send(b"x".to_vec()).await.unwrap().id;
    let d1 = q.receive().await.unwrap();
    d1.nack_with_error(Duration::ZERO, "boom 1").await.unwrap();
    let d2 = q.receive().await.unwrap();
    d2.nack_with_error(Duration::ZERO, "boom 2").await.unwrap();
    let d3 = q.receive_for(secs(10)).await.unwrap();
    assert_eq!(d3.deliveries(), 3);
    clock.advance(secs(10));
    engine.tick().await.unwrap(); // the third lease runs out: no deliveries left

    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].reason, DeadReason::MaxDeliveries);
    assert_eq!(dead[0].deliveries, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("lease expired"));
    assert_eq!(dead[0].dead_at_ms, T0 + 10_000);
    assert_eq!(stats_of(q.stats().await.unwrap()), (0, 0, 0, 1));
    assert!(q.try_receive(1, secs(30)).await.unwrap().is_empty());
}

async fn nack_of_the_last_delivery_dead_letters_at_once(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("work", QueueOptions::default().max_deliveries(1))
        .unwrap();
    let id = q.send(b"x".to_vec()).await.unwrap().id;
    let d = q.receive().await.unwrap();
    d.nack_with_error(Duration::ZERO, "bad").await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id, dead[0].reason, dead[0].last_error.as_deref()),
        (id, DeadReason::MaxDeliveries, Some("bad"))
    );
}

async fn max_age_dead_letters_as_expired(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("work", QueueOptions::default().max_age(secs(3600)))
        .unwrap();
    let id = q.send(b"old".to_vec()).await.unwrap().id;
    let young = q
        .send(b"young".to_vec())
        .delay(secs(3600))
        .await
        .unwrap()
        .id;
    clock.advance(secs(3600));
    engine.tick().await.unwrap();
    let got = q.try_receive(10, secs(30)).await.unwrap();
    // "young" was sent at T0 too, so it is just as old: both expire.
    assert!(got.is_empty());
    let dead = q.dead_letters(10).await.unwrap();
    let reasons: Vec<_> = dead.iter().map(|d| (d.id, d.reason)).collect();
    assert_eq!(
        reasons,
        vec![(id, DeadReason::Expired), (young, DeadReason::Expired)]
    );
}

async fn a_message_past_its_max_age_is_dead_lettered_on_time_without_a_receive(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("idle", QueueOptions::default().max_age(secs(60)))
        .unwrap();
    let ready = q.send(b"ready".to_vec()).await.unwrap().id;
    clock.advance(secs(30));
    // Delayed past its own max age: it expires before it would come due.
    let delayed = q
        .send(b"delayed".to_vec())
        .delay(secs(3_600))
        .await
        .unwrap()
        .id;
    // No receive: the first expiry is exactly at T0 + 60 s.
    clock.set(T0 + 59_999);
    engine.tick().await.unwrap();
    assert_eq!(q.stats().await.unwrap().dead, 0);
    clock.set(T0 + 60_000);
    engine.tick().await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.id, d.reason, d.dead_at_ms))
            .collect::<Vec<_>>(),
        vec![(ready, DeadReason::Expired, T0 + 60_000)]
    );
    clock.set(T0 + 121_000);
    engine.tick().await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.id, d.reason, d.dead_at_ms))
            .collect::<Vec<_>>(),
        vec![
            (ready, DeadReason::Expired, T0 + 60_000),
            (delayed, DeadReason::Expired, T0 + 121_000)
        ]
    );
    assert_eq!(stats_of(q.stats().await.unwrap()), (0, 0, 0, 2));
    // A requeued dead letter gets a fresh age, and expires again on time.
    assert!(q.requeue_dead(ready).await.unwrap());
    clock.set(T0 + 181_000);
    engine.tick().await.unwrap();
    let again = q.dead_letters(10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(
        again.iter().find(|d| d.id == ready).map(|d| d.dead_at_ms),
        Some(T0 + 181_000)
    );
}

async fn a_leased_message_past_its_max_age_is_dead_lettered_when_its_delivery_ends(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("busy", QueueOptions::default().max_age(secs(60)))
        .unwrap();
    let id = q.send(b"slow".to_vec()).await.unwrap().id;
    let d = q.receive_for(secs(120)).await.unwrap();
    clock.advance(secs(90));
    engine.tick().await.unwrap();
    // Still owned by its consumer until the delivery ends.
    assert_eq!(q.stats().await.unwrap().leased, 1);
    d.nack(Duration::ZERO).await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| (d.id, d.reason)).collect::<Vec<_>>(),
        vec![(id, DeadReason::Expired)]
    );
}

async fn explicit_dead_letter_requeue_delete_and_purge(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let mut ids = Vec::new();
    for p in ["a", "b", "c"] {
        ids.push(q.send(p.as_bytes().to_vec()).await.unwrap().id);
    }
    for _ in 0..3 {
        let d = q.receive().await.unwrap();
        d.dead_letter("poison").await.unwrap();
        assert_lost(d.ack().await, "a dead-lettered delivery is no longer owned");
    }
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    assert!(dead.iter().all(|d| d.reason == DeadReason::Nacked
        && d.last_error.as_deref() == Some("poison")
        && d.deliveries == 1));

    assert!(q.requeue_dead(ids[0]).await.unwrap());
    assert!(!q.requeue_dead(ids[0]).await.unwrap(), "no longer dead");
    let d = q.receive().await.unwrap();
    assert_eq!(
        (d.id(), d.deliveries(), d.payload()),
        (ids[0], 1, &b"a"[..])
    );
    d.ack().await.unwrap();

    assert!(q.delete_dead(ids[1]).await.unwrap());
    assert!(!q.delete_dead(ids[1]).await.unwrap(), "already deleted");
    assert_eq!(q.purge_dead().await.unwrap(), 1);
    assert_eq!(q.stats().await.unwrap(), QueueStats::default());
    assert!(q.get(ids[2]).await.unwrap().is_none());
}

async fn dead_letters_are_purged_after_retention(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let q = engine
        .queue_with("work", QueueOptions::default().dead_retention(secs(86_400)))
        .unwrap();
    let id = q.send(b"x".to_vec()).await.unwrap().id;
    q.receive().await.unwrap().dead_letter("no").await.unwrap();
    clock.advance(secs(86_399));
    engine.tick().await.unwrap();
    assert_eq!(q.dead_letters(10).await.unwrap().len(), 1);
    clock.advance(secs(1));
    engine.tick().await.unwrap();
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    assert!(q.get(id).await.unwrap().is_none());
}

async fn payload_limit_is_enforced_and_nothing_is_written(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let before = engine.store_stats();
    let err = q.send(vec![0u8; 128 * 1024 + 1]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PayloadTooLarge {
                size: 131_073,
                limit: 131_072
            }
        ),
        "{err}"
    );
    assert_eq!(engine.store_stats(), before);
    assert_eq!(q.stats().await.unwrap(), QueueStats::default());
    // Exactly at the limit is fine.
    assert_eq!(q.send(vec![1u8; 128 * 1024]).await.unwrap().id, 1);

    let small = engine
        .queue_with("small", QueueOptions::default().payload_limit(4))
        .unwrap();
    assert!(matches!(
        small.send(b"12345".to_vec()).await,
        Err(Error::PayloadTooLarge { size: 5, limit: 4 })
    ));
}

async fn idempotent_send_returns_the_same_id_while_stored(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let first = q.send(b"x".to_vec()).key("k1").await.unwrap();
    assert!(!first.deduplicated);
    let again = q.send(b"different".to_vec()).key("k1").await.unwrap();
    assert_eq!((again.id, again.deduplicated), (first.id, true));
    assert_eq!(q.stats().await.unwrap().ready, 1);
    // Same key in another queue is another message.
    let other = engine.queue("other").unwrap();
    assert!(
        !other
            .send(b"x".to_vec())
            .key("k1")
            .await
            .unwrap()
            .deduplicated
    );
    // Leased: still deduplicated.
    let d = q.receive().await.unwrap();
    assert_eq!(d.payload(), b"x");
    assert!(q.send(b"x".to_vec()).key("k1").await.unwrap().deduplicated);
    // Acknowledged: the key is free again.
    d.ack().await.unwrap();
    let fresh = q.send(b"x".to_vec()).key("k1").await.unwrap();
    assert!(!fresh.deduplicated);
    assert_ne!(fresh.id, first.id);
}

async fn bad_names_and_keys_are_rejected(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    assert!(matches!(
        engine.queue(""),
        Err(Error::InvalidArgument {
            what: "queue name",
            ..
        })
    ));
    assert!(engine.queue(&"q".repeat(257)).is_err());
    assert!(matches!(
        engine
            .queue_with("q", QueueOptions::default().max_deliveries(0))
            .unwrap_err(),
        Error::InvalidArgument {
            what: "max_deliveries",
            ..
        }
    ));
    let q = engine.queue("q").unwrap();
    assert!(matches!(
        q.send(b"x".to_vec()).key("").await,
        Err(Error::InvalidArgument {
            what: "idempotency key",
            ..
        })
    ));
}

/// On a file, whose ops are counted. (On PostgreSQL, `tests/suite/pg_nodes.rs` shows receivers on
/// other nodes woken by the notice of a send.)
#[tokio::test]
async fn receive_is_woken_by_send_without_polling() {
    let place = Place::file();
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    engine.tick().await.unwrap();
    let before = engine.store_stats().ops;
    let receiver = {
        let q = q.clone();
        tokio::spawn(async move { q.receive().await })
    };
    // The receiver makes exactly one (empty) take, then waits.
    while engine.store_stats().ops < before + 1 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        engine.store_stats().ops,
        before + 1,
        "a waiting receive must not poll"
    );
    assert!(!receiver.is_finished());

    let id = q.send(b"wake".to_vec()).await.unwrap().id;
    let d = receiver.await.unwrap().unwrap();
    assert_eq!(d.id(), id);
    // Send, then the woken take: two more ops, nothing else.
    assert_eq!(engine.store_stats().ops, before + 3);
}

async fn many_receivers_each_get_one_message(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    let receivers: Vec<_> = (0..8)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let d = q.receive().await.unwrap();
                d.ack().await.unwrap();
                d.id()
            })
        })
        .collect();
    let mut sent = Vec::new();
    for i in 0..8u8 {
        sent.push(q.send(vec![i]).await.unwrap().id);
    }
    let mut got = Vec::new();
    for r in receivers {
        got.push(r.await.unwrap());
    }
    got.sort();
    assert_eq!(got, sent);
}

async fn receive_batch_takes_in_order_up_to_max(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let q = engine.queue("work").unwrap();
    for i in 0..5u8 {
        q.send(vec![i]).await.unwrap();
    }
    let batch = q.receive_batch(3, secs(30)).await.unwrap();
    let payloads: Vec<u8> = batch.iter().map(|d| d.payload()[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2]);
    assert_eq!(stats_of(q.stats().await.unwrap()), (2, 0, 3, 0));
}

async fn state_survives_reopen_and_leases_of_the_old_leader_are_redelivered(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let first = engine.epoch();
    if !place.is_postgres() {
        assert_eq!(first, 1);
    }
    let q = engine.queue("work").unwrap();
    let a = q.send(b"a".to_vec()).await.unwrap().id;
    let b = q.send(b"b".to_vec()).delay(secs(60)).await.unwrap().id;
    let held = q.receive_for(secs(3600)).await.unwrap();
    assert_eq!(held.id(), a);
    engine.shutdown(secs(5)).await.unwrap();
    assert!(matches!(q.send(b"late".to_vec()).await, Err(Error::Closed)));

    let engine = place
        .open(jobfile::EngineOptions::new().clock(clock.clone()))
        .await;
    // A new leadership (on PostgreSQL, a new node).
    assert!(engine.epoch() > first);
    let q = engine.queue("work").unwrap();
    // The lease of the previous leadership ends at open (on PostgreSQL, when its node left),
    // not an hour later.
    let again = q.try_receive(1, secs(30)).await.unwrap();
    assert_eq!((again[0].id(), again[0].deliveries()), (a, 2));
    assert_eq!(
        q.get(b).await.unwrap().unwrap().state,
        MessageStatus::Delayed {
            until_ms: T0 + 60_000
        }
    );
    // Ids keep counting across leaderships.
    assert_eq!(q.send(b"c".to_vec()).await.unwrap().id, 3);
}

/// Bytes written to the file by 100 `extend`s of one delivery whose payload is `len` bytes.
async fn bytes_per_100_extends(len: usize) -> u64 {
    let (_dir, path) = temp_file();
    let (engine, faults) = common::open_faulty(&path).await;
    let q = engine.queue("big").unwrap();
    q.send(vec![7u8; len]).await.unwrap();
    let mut d = q.receive().await.unwrap();
    assert_eq!(d.payload().len(), len);
    let before = faults.bytes_written();
    for _ in 0..100 {
        d.extend(secs(30)).await.unwrap();
    }
    let written = faults.bytes_written() - before;
    // The payload is whole wherever it is read.
    assert_eq!(
        q.get(d.id()).await.unwrap().unwrap().payload,
        vec![7u8; len]
    );
    d.nack(Duration::ZERO).await.unwrap();
    assert_eq!(
        q.receive().await.unwrap().payload(),
        vec![7u8; len].as_slice()
    );
    written
}

#[tokio::test]
async fn extending_a_delivery_costs_the_same_whatever_the_payload_size() {
    let small = bytes_per_100_extends(1).await;
    let big = bytes_per_100_extends(128 * 1024).await;
    eprintln!("100 extends: {small} bytes with a 1-byte payload, {big} with 128 KiB");
    assert!(
        big <= small + small / 2,
        "{big} bytes with a 128 KiB payload against {small} with 1 byte"
    );
}

/// A queue's stats as (ready, delayed, leased, dead).
fn stats_of(s: jobfile::QueueStats) -> (u64, u64, u64, u64) {
    (s.ready, s.delayed, s.leased, s.dead)
}

/// Asserts that a settle of a delivery was refused because its lease was lost.
fn assert_lost(r: jobfile::Result<()>, why: &str) {
    match r {
        Err(jobfile::Error::NotHolder {
            held: jobfile::Held::Delivery { .. },
        }) => {}
        other => panic!("{why}: expected NotHolder, got {other:?}"),
    }
}

in_both_places!(
    state_survives_reopen_and_leases_of_the_old_leader_are_redelivered,
    fifo_within_a_priority_and_higher_priority_first,
    ids_are_sequential_and_queues_are_separate,
    delayed_message_becomes_ready_exactly_at_its_time,
    at_wins_over_delay,
    nacked_message_goes_behind_those_already_ready,
    nack_with_delay_waits_and_counts_deliveries,
    expired_lease_is_redelivered_with_its_count_and_old_owner_loses,
    extend_keeps_the_lease,
    max_deliveries_moves_to_dead_letters_with_last_error,
    nack_of_the_last_delivery_dead_letters_at_once,
    max_age_dead_letters_as_expired,
    a_message_past_its_max_age_is_dead_lettered_on_time_without_a_receive,
    a_leased_message_past_its_max_age_is_dead_lettered_when_its_delivery_ends,
    explicit_dead_letter_requeue_delete_and_purge,
    dead_letters_are_purged_after_retention,
    payload_limit_is_enforced_and_nothing_is_written,
    idempotent_send_returns_the_same_id_while_stored,
    bad_names_and_keys_are_rejected,
    many_receivers_each_get_one_message,
    receive_batch_takes_in_order_up_to_max,
);
