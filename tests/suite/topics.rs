//! Topics on a manual clock: sequence numbers, idempotent publish, subscriptions from the
//! beginning, a sequence or now; consumer groups that split work, see everything per group,
//! redeliver what was not committed; retention with explicit lag notices.

use crate::common;

use std::time::Duration;

use common::pg::Place;
use common::{T0, secs};
use jobfile::{Error, StartAt, TopicOptions};

fn payloads(events: &[jobfile::TopicEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect()
}

async fn sequence_numbers_rise_by_one_and_keys_deduplicate(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine.topic("orders").unwrap();
    let other = engine.topic("other").unwrap();
    assert_eq!(t.publish(b"a".to_vec()).await.unwrap().seq, 1);
    assert_eq!(
        other.publish(b"x".to_vec()).await.unwrap().seq,
        1,
        "per topic"
    );
    let b = t.publish(b"b".to_vec()).key("order-2").await.unwrap();
    assert_eq!((b.seq, b.deduplicated), (2, false));
    let again = t.publish(b"b!".to_vec()).key("order-2").await.unwrap();
    assert_eq!((again.seq, again.deduplicated), (2, true));
    assert_eq!(t.publish(b"c".to_vec()).await.unwrap().seq, 3);
    assert_eq!(payloads(&t.read(1, 10).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(
        t.read(2, 10).await.unwrap()[0].key.as_deref(),
        Some("order-2")
    );
    assert_eq!(t.last_seq().await.unwrap(), 3);
}

async fn next(s: &mut jobfile::TopicStream) -> u64 {
    s.next().await.unwrap().unwrap().seq
}

async fn subscriptions_from_the_beginning_a_sequence_or_now(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine.topic("t").unwrap();
    for p in ["1", "2", "3"] {
        t.publish(p.as_bytes().to_vec()).await.unwrap();
    }
    let mut all = t.subscribe(StartAt::Beginning).await;
    let mut from2 = t.subscribe(StartAt::Seq(2)).await;
    let mut now = t.subscribe(StartAt::Now).await;
    for want in [1, 2, 3] {
        assert_eq!(next(&mut all).await, want);
    }
    assert_eq!(next(&mut from2).await, 2);
    assert_eq!(next(&mut from2).await, 3);
    // Live: woken by the publish.
    t.publish(b"4".to_vec()).await.unwrap();
    assert_eq!(next(&mut now).await, 4);
    assert_eq!(next(&mut all).await, 4);
    assert_eq!(next(&mut from2).await, 4);
}

async fn members_of_a_group_split_the_events_and_every_group_sees_all(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine.topic("t").unwrap();
    for i in 1..=6 {
        t.publish(format!("e{i}").into_bytes()).await.unwrap();
    }
    let billing_a = t.group("billing");
    let billing_b = t.group("billing");
    let got_a = billing_a.receive(3).await.unwrap();
    let got_b = billing_b.receive(10).await.unwrap();
    let seqs = |d: &[jobfile::GroupDelivery]| d.iter().map(|d| d.event.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&got_a), [1, 2, 3]);
    assert_eq!(seqs(&got_b), [4, 5, 6], "members share: nothing twice");
    let audit = t.group("audit").receive(10).await.unwrap();
    assert_eq!(
        seqs(&audit),
        [1, 2, 3, 4, 5, 6],
        "another group sees everything"
    );
    // Commits out of order: the cursor moves over committed events in a row only.
    for seq in [2, 1, 4] {
        assert!(billing_a.commit(seq).await.unwrap());
    }
    assert_eq!(billing_a.committed_through().await.unwrap(), 2);
    assert!(!billing_a.commit(2).await.unwrap(), "already committed");
    assert!(billing_b.commit(3).await.unwrap());
    assert_eq!(billing_b.committed_through().await.unwrap(), 4);
    assert!(matches!(
        billing_a.commit(99).await,
        Err(Error::InvalidArgument { .. })
    ));
}

async fn an_uncommitted_delivery_is_delivered_again_after_the_reclaim_time(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let t = engine
        .topic_with("t", TopicOptions::default().reclaim(secs(30)))
        .unwrap();
    t.publish(b"only".to_vec()).await.unwrap();
    let g = t.group("workers");
    let first = g.receive(1).await.unwrap();
    assert_eq!((first[0].event.seq, first[0].deliveries), (1, 1));
    // A second member waits: nothing is free until the reclaim time passes.
    let other = g.clone();
    let waiting = tokio::spawn(async move { other.receive(1).await });
    clock.advance(Duration::from_millis(29_999));
    tokio::task::yield_now().await;
    assert!(g.try_receive(1).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(1));
    let again = waiting.await.unwrap().unwrap();
    assert_eq!((again[0].event.seq, again[0].deliveries), (1, 2));
    assert!(g.commit(1).await.unwrap());
    clock.advance(secs(60));
    assert!(
        g.try_receive(1).await.unwrap().is_empty(),
        "committed: never again"
    );
}

async fn retention_prunes_and_a_reader_behind_it_is_told_it_lagged(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let t = engine
        .topic_with("t", TopicOptions::default().retention(secs(60)))
        .unwrap();
    let g = t.group("slow");
    assert!(
        g.try_receive(10).await.unwrap().is_empty(),
        "the group exists, at the start"
    );
    t.publish(b"old".to_vec()).await.unwrap();
    clock.advance(secs(30));
    t.publish(b"new".to_vec()).await.unwrap();
    clock.advance(Duration::from_millis(29_999));
    engine.tick().await.unwrap();
    assert_eq!(t.read(1, 10).await.unwrap().len(), 2);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    match t.read(1, 10).await {
        Err(Error::Lagged {
            requested,
            next_available,
            ..
        }) => assert_eq!((requested, next_available), (1, 2)),
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert_eq!(payloads(&t.read(2, 10).await.unwrap()), ["new"]);
    let mut sub = t.subscribe(StartAt::Seq(1)).await;
    assert!(matches!(
        sub.next().await,
        Some(Err(Error::Lagged {
            next_available: 2,
            ..
        }))
    ));
    // The group fell behind retention before reading: it is told, and can seek on.
    assert!(matches!(
        g.receive(10).await,
        Err(Error::Lagged {
            requested: 1,
            next_available: 2,
            ..
        })
    ));
    g.seek(2).await.unwrap();
    assert_eq!(g.receive(10).await.unwrap()[0].event.seq, 2);
    // A group created now starts at the oldest retained event.
    assert_eq!(t.group("new").receive(10).await.unwrap()[0].event.seq, 2);
}

async fn a_count_limit_keeps_only_the_newest_events(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine
        .topic_with("t", TopicOptions::default().max_events(2))
        .unwrap();
    for i in 1..=5 {
        t.publish(format!("e{i}").into_bytes()).await.unwrap();
    }
    assert_eq!(payloads(&t.read(4, 10).await.unwrap()), ["e4", "e5"]);
    assert!(matches!(
        t.read(3, 10).await,
        Err(Error::Lagged {
            next_available: 4,
            ..
        })
    ));
}

async fn an_uncommitted_delivery_pruned_by_retention_is_reported_as_lagged(place: Place) {
    let (engine, clock) = place.open_at(T0).await;
    let t = engine
        .topic_with("t", TopicOptions::default().max_events(2).reclaim(secs(30)))
        .unwrap();
    t.publish(b"e1".to_vec()).await.unwrap();
    let g = t.group("billing");
    let first = g.receive(10).await.unwrap();
    assert_eq!(first[0].event.seq, 1);
    t.publish(b"e2".to_vec()).await.unwrap();
    t.publish(b"e3".to_vec()).await.unwrap();
    engine.tick().await.unwrap();
    // The member holding seq 1 may still commit it before the reclaim time.
    assert_eq!(
        g.try_receive(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.event.seq)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    clock.advance(secs(30));
    // Seq 1 is due again but gone: the group is told, twice (nothing changed in between).
    for _ in 0..2 {
        assert!(matches!(
            g.receive(10).await,
            Err(Error::Lagged {
                requested: 1,
                next_available: 2,
                ..
            })
        ));
    }
    assert_eq!(g.committed_through().await.unwrap(), 0);
    // Seeking on is the group's choice; then it goes on from there.
    g.seek(2).await.unwrap();
    let again = g.receive(10).await.unwrap();
    assert_eq!(
        again.iter().map(|d| d.event.seq).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(g.commit_many(&[2, 3]).await.is_ok());
    assert_eq!(g.committed_through().await.unwrap(), 3);
}

async fn bad_input_is_a_typed_error_that_writes_nothing(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine
        .topic_with("t", TopicOptions::default().payload_limit(4))
        .unwrap();
    assert!(matches!(
        t.publish(vec![0; 5]).await,
        Err(Error::PayloadTooLarge { size: 5, limit: 4 })
    ));
    assert_eq!(t.last_seq().await.unwrap(), 0);
    assert!(matches!(
        engine.topic(""),
        Err(Error::InvalidArgument {
            what: "topic name",
            ..
        })
    ));
    assert!(matches!(
        t.group("").try_receive(1).await,
        Err(Error::InvalidArgument {
            what: "group name",
            ..
        })
    ));
}

async fn concurrent_publishes_with_the_same_key_store_one_event(place: Place) {
    let (engine, _clock) = place.open_at(T0).await;
    let t = engine.topic("t").unwrap();
    // 20 publishes at once, four per key: they may share a write.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                let key = format!("k{}", i % 5);
                let got = t.publish(vec![i as u8]).key(&key).await.unwrap();
                (key, got)
            })
        })
        .collect();
    let mut by_key: std::collections::BTreeMap<String, Vec<jobfile::Published>> =
        Default::default();
    for task in tasks {
        let (key, got) = task.await.unwrap();
        by_key.entry(key).or_default().push(got);
    }
    let mut seqs = Vec::new();
    for (key, answers) in &by_key {
        assert_eq!(answers.len(), 4, "{key}");
        assert_eq!(
            answers.iter().filter(|a| !a.deduplicated).count(),
            1,
            "{key}: {answers:?}"
        );
        assert!(
            answers.iter().all(|a| a.seq == answers[0].seq),
            "{key}: {answers:?}"
        );
        seqs.push(answers[0].seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(t.last_seq().await.unwrap(), 5);
    let stored: Vec<Option<String>> = t
        .read(1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(stored.len(), 5);
}

in_both_places!(
    sequence_numbers_rise_by_one_and_keys_deduplicate,
    subscriptions_from_the_beginning_a_sequence_or_now,
    members_of_a_group_split_the_events_and_every_group_sees_all,
    an_uncommitted_delivery_is_delivered_again_after_the_reclaim_time,
    retention_prunes_and_a_reader_behind_it_is_told_it_lagged,
    a_count_limit_keeps_only_the_newest_events,
    an_uncommitted_delivery_pruned_by_retention_is_reported_as_lagged,
    bad_input_is_a_typed_error_that_writes_nothing,
    concurrent_publishes_with_the_same_key_store_one_event,
);
