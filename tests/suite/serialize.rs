//! The public value types serialize with stable, documented field names: what an application
//! returns over HTTP. These tests pin the JSON shape.

use std::time::Duration;

use jobfile::{EngineOptions, JobSpec, ManualClock, Outcome, StartAt};
use serde_json::json;

#[tokio::test]
async fn job_values_serialize_with_stable_names() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let engine = EngineOptions::new()
        .clock(clock.clone())
        .open(dir.path().join("s.jobfile"))
        .await
        .unwrap();
    let double = engine
        .register(
            JobSpec::new("double"),
            |_ctx, n: u32| async move { Ok(n * 2) },
        )
        .unwrap();
    let submitted = double.submit(21).key("k-1").await.unwrap();
    assert_eq!(
        serde_json::to_value(submitted).unwrap(),
        json!({"id": submitted.id, "deduplicated": false})
    );
    let outcome = double.join(submitted.id, None).await.unwrap();
    assert_eq!(outcome, Outcome::Completed(42));
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        json!({"outcome": "completed", "value": 42})
    );

    let info = serde_json::to_value(double.get(submitted.id).await.unwrap()).unwrap();
    assert_eq!(info["id"], json!(submitted.id));
    assert_eq!(info["name"], json!("double"));
    assert_eq!(info["state"], json!("completed"));
    assert_eq!(info["attempts"], json!(1));
    assert_eq!(info["key"], json!("k-1"));
    assert_eq!(info["output_json"], json!(b"42".to_vec()));
    assert_eq!(info["created_at_ms"], json!(1_000));
    let mut fields: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "attempts",
            "cancel_reason",
            "crashes",
            "created_at_ms",
            "events",
            "finished_at_ms",
            "id",
            "input_json",
            "key",
            "last_error",
            "lease_deadline_ms",
            "max_attempts",
            "meta",
            "name",
            "output_json",
            "priority",
            "progress",
            "run_at_ms",
            "state",
            "updated_at_ms",
        ]
    );

    let events = engine
        .jobs()
        .events(submitted.id)
        .read(0, 10)
        .await
        .unwrap();
    let kinds: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("submitted"), json!("started"), json!("completed")]
    );
    // And back: a value read from JSON is the value written.
    let back: jobfile::JobInfo = serde_json::from_value(
        serde_json::to_value(double.get(submitted.id).await.unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(back, double.get(submitted.id).await.unwrap().unwrap());
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn queue_topic_and_set_values_serialize_with_stable_names() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(5_000);
    let engine = EngineOptions::new()
        .clock(clock.clone())
        .open(dir.path().join("q.jobfile"))
        .await
        .unwrap();
    // Dead-letter reasons in JSON, as the README names them.
    let reasons = [
        jobfile::DeadReason::MaxDeliveries,
        jobfile::DeadReason::Expired,
        jobfile::DeadReason::Nacked,
    ]
    .map(|r| serde_json::to_value(r).unwrap());
    assert_eq!(
        reasons,
        [json!("max_deliveries"), json!("expired"), json!("nacked")]
    );
    let q = engine.queue("mail").unwrap();
    let sent = q
        .send(b"hi".to_vec())
        .delay(Duration::from_secs(1))
        .await
        .unwrap();
    let info = serde_json::to_value(q.get(sent.id).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        info["state"],
        json!({"status": "delayed", "until_ms": 6_000})
    );
    assert_eq!(info["payload"], json!([104, 105]));
    assert_eq!(
        serde_json::to_value(q.stats().await.unwrap()).unwrap(),
        json!({"ready": 0, "delayed": 1, "leased": 0, "dead": 0, "paused": false})
    );

    let topic = engine.topic("orders").unwrap();
    let published = topic.publish(b"1".to_vec()).await.unwrap();
    assert_eq!(
        serde_json::to_value(published).unwrap(),
        json!({"seq": 1, "deduplicated": false})
    );
    let event = serde_json::to_value(&topic.read(1, 1).await.unwrap()[0]).unwrap();
    assert_eq!(
        event,
        json!({"seq": 1, "at_ms": 5_000, "key": null, "payload": [49]})
    );
    assert_eq!(
        serde_json::to_value(StartAt::Seq(3)).unwrap(),
        json!({"at": "seq", "seq": 3})
    );

    let set = engine.ephemeral("devices").unwrap();
    set.upsert("d1", b"on".to_vec())
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    let snapshot = serde_json::to_value(set.snapshot().await.unwrap()).unwrap();
    assert_eq!(
        snapshot["entries"],
        json!([{"key": "d1", "value": [111, 110], "expires_at_ms": 15_000, "updated_at_ms": 5_000}])
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
