//! Queue behaviour on both backends with the same exact assertions: each test runs on a file
//! and on a PostgreSQL schema (see `on_both_backends!`), on a manual clock.

use crate::common;

use std::time::Duration;

use common::{T0, secs};
use jobfile::{DeadReason, Error, QueueOptions};

fn stats(s: jobfile::QueueStats) -> (u64, u64, u64, u64) {
    (s.ready, s.delayed, s.leased, s.dead)
}

on_both_backends! {
    async fn messages_are_delivered_by_priority_then_age_and_acked(engine, clock) {
        let q = engine.queue("work").unwrap();
        let a = q.send(b"a".to_vec()).await.unwrap();
        let b = q.send(b"b".to_vec()).priority(5).await.unwrap();
        let c = q.send(b"c".to_vec()).await.unwrap();
        assert_eq!((a.id, b.id, c.id), (1, 2, 3));
        assert_eq!(stats(q.stats().await.unwrap()), (3, 0, 0, 0));
        let got = q.receive_batch(2, secs(30)).await.unwrap();
        assert_eq!(got.iter().map(|d| d.payload().to_vec()).collect::<Vec<_>>(), [b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(got[0].lease_deadline_ms(), T0 + 30_000);
        assert_eq!(got[0].deliveries(), 1);
        assert_eq!(stats(q.stats().await.unwrap()), (1, 0, 2, 0));
        for d in &got {
            d.ack().await.unwrap();
        }
        // Acked twice: the second is refused.
        assert!(matches!(got[0].ack().await, Err(Error::NotHolder { .. })));
        assert_eq!(q.get(1).await.unwrap(), None);
        let info = q.get(3).await.unwrap().unwrap();
        assert_eq!((info.payload.as_slice(), info.deliveries), (&b"c"[..], 0));
        let summary = engine.queues().await.unwrap();
        assert_eq!(summary.len(), 1);
        assert_eq!((summary[0].name.as_str(), stats(summary[0].stats)), ("work", (1, 0, 0, 0)));
    }

    async fn a_key_gives_the_live_message(engine, clock) {
        let q = engine.queue("keyed").unwrap();
        let first = q.send(b"1".to_vec()).key("k").await.unwrap();
        let again = q.send(b"2".to_vec()).key("k").await.unwrap();
        assert_eq!((first.id, first.deduplicated, again.id, again.deduplicated), (1, false, 1, true));
        let d = q.receive_for(secs(30)).await.unwrap();
        d.ack().await.unwrap();
        // Acked: the key is free again.
        let after = q.send(b"3".to_vec()).key("k").await.unwrap();
        assert_eq!((after.id, after.deduplicated), (2, false));
    }

    async fn an_expired_lease_redelivers_and_the_old_delivery_is_refused(engine, clock) {
        let q = engine.queue("leases").unwrap();
        q.send(b"x".to_vec()).await.unwrap();
        let first = q.receive_for(secs(30)).await.unwrap();
        clock.advance(Duration::from_millis(29_999));
        engine.tick().await.unwrap();
        assert_eq!(stats(q.stats().await.unwrap()), (0, 0, 1, 0));
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(stats(q.stats().await.unwrap()), (1, 0, 0, 0));
        let second = q.receive_for(secs(30)).await.unwrap();
        assert_eq!((second.id(), second.deliveries()), (first.id(), 2));
        assert!(matches!(first.ack().await, Err(Error::NotHolder { .. })));
        assert_eq!(q.get(first.id()).await.unwrap().unwrap().last_error.as_deref(), Some("lease expired"));
        second.ack().await.unwrap();
    }

    async fn nacks_run_out_of_deliveries_into_the_dead_letter_list(engine, clock) {
        let q = engine
            .queue_with("dlq", QueueOptions::default().max_deliveries(2))
            .unwrap();
        q.send(b"poison".to_vec()).await.unwrap();
        let d = q.receive_for(secs(30)).await.unwrap();
        d.nack_with_error(Duration::from_secs(5), "boom 1").await.unwrap();
        let info = q.get(d.id()).await.unwrap().unwrap();
        assert_eq!(info.state, jobfile::MessageStatus::Delayed { until_ms: T0 + 5_000 });
        clock.advance(secs(5));
        engine.tick().await.unwrap();
        let d = q.receive_for(secs(30)).await.unwrap();
        assert_eq!(d.deliveries(), 2);
        d.nack_with_error(Duration::ZERO, "boom 2").await.unwrap();
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].reason, dead[0].last_error.as_deref(), dead[0].deliveries, dead[0].dead_at_ms), (DeadReason::MaxDeliveries, Some("boom 2"), 2, T0 + 5_000));
        assert_eq!(stats(q.stats().await.unwrap()), (0, 0, 0, 1));
        assert!(q.requeue_dead(dead[0].id).await.unwrap());
        assert!(!q.requeue_dead(dead[0].id).await.unwrap());
        let d = q.receive_for(secs(30)).await.unwrap();
        assert_eq!(d.deliveries(), 1);
        d.dead_letter("by hand").await.unwrap();
        assert_eq!(q.dead_letters(10).await.unwrap()[0].reason, DeadReason::Nacked);
        assert_eq!(q.requeue_all_dead().await.unwrap(), 1);
        let d = q.receive_for(secs(30)).await.unwrap();
        d.dead_letter("again").await.unwrap();
        assert_eq!(q.purge_dead().await.unwrap(), 1);
        assert_eq!(stats(q.stats().await.unwrap()), (0, 0, 0, 0));
    }

    async fn a_delayed_message_waits_and_an_old_one_expires(engine, clock) {
        let q = engine
            .queue_with("timed", QueueOptions::default().max_age(secs(60)))
            .unwrap();
        let later = q.send(b"later".to_vec()).delay(secs(10)).await.unwrap().id;
        let stale = q.send(b"stale".to_vec()).await.unwrap().id;
        assert_eq!(stats(q.stats().await.unwrap()), (1, 1, 0, 0));
        clock.advance(Duration::from_millis(9_999));
        engine.tick().await.unwrap();
        assert_eq!(stats(q.stats().await.unwrap()), (1, 1, 0, 0));
        clock.advance(Duration::from_millis(1));
        engine.tick().await.unwrap();
        assert_eq!(stats(q.stats().await.unwrap()), (2, 0, 0, 0));
        // Nobody receives: at 60 s both pass their maximum age and are buried on time.
        clock.advance(secs(50));
        engine.tick().await.unwrap();
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.iter().map(|d| (d.id, d.reason)).collect::<Vec<_>>(), [(later, DeadReason::Expired), (stale, DeadReason::Expired)]);
        assert_eq!(dead[0].dead_at_ms, T0 + 60_000);
    }
}
