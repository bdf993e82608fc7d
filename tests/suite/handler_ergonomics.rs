//! Handlers write ordinary Rust: `?` on any error, steps without type annotations, the job's
//! key at hand; and a typed handle refuses the ids of other definitions.

use std::time::Duration;

use jobfile::{EngineOptions, Error, JobCtx, JobSpec, JobState, ManualClock, Outcome};

#[tokio::test]
async fn question_mark_on_std_errors_gives_a_retryable_failure() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(0))
        .open(dir.path().join("e.jobfile"))
        .await
        .unwrap();
    let missing = dir.path().join("missing.txt");
    let read = engine
        .register(
            JobSpec::new("read").max_attempts(1),
            move |ctx: JobCtx, _: ()| {
                let missing = missing.clone();
                async move {
                    // A step's closure needs no annotation, and `?` works on io::Error inside.
                    let len = ctx
                        .step("len", || async { Ok(std::fs::read(&missing)?.len()) })
                        .await?;
                    Ok(len)
                }
            },
        )
        .unwrap();
    let id = read.submit(()).await.unwrap().id;
    let Outcome::Failed(failure) = read.join(id, None).await.unwrap() else {
        panic!("expected a failure");
    };
    assert_eq!(failure.code, "ERROR");
    assert!(
        failure.message.contains("No such file"),
        "{}",
        failure.message
    );
    assert_eq!(failure.attempt, 1);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_context_has_the_key_and_a_handle_refuses_other_definitions_ids() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineOptions::new()
        .clock(ManualClock::new(0))
        .open(dir.path().join("k.jobfile"))
        .await
        .unwrap();
    let keyed = engine
        .register(JobSpec::new("keyed"), |ctx: JobCtx, _: ()| async move {
            Ok(ctx.key().map(str::to_string))
        })
        .unwrap();
    let other = engine.job::<u32, u32>(JobSpec::new("other")).unwrap();
    let with_key = keyed.submit(()).key("order-7").await.unwrap().id;
    let without = keyed.submit(()).await.unwrap().id;
    assert_eq!(
        keyed.join(with_key, None).await.unwrap(),
        Outcome::Completed(Some("order-7".to_string()))
    );
    assert_eq!(
        keyed.join(without, None).await.unwrap(),
        Outcome::Completed(None)
    );

    // `other` decodes into u32; the keyed job's output (a string) must not be read as one.
    let queued = other.submit(5).await.unwrap().id;
    for result in [
        other.join(with_key, None).await.map(|_| ()),
        other.get(with_key).await.map(|_| ()),
        other.cancel(with_key, "wrong handle").await.map(|_| ()),
        keyed.cancel(queued, "wrong handle").await.map(|_| ()),
    ] {
        match result {
            Err(Error::WrongDefinition {
                expected, found, ..
            }) => assert_ne!(expected, found),
            other => panic!("expected WrongDefinition, got {other:?}"),
        }
    }
    // Nothing was changed by the refused cancel.
    assert_eq!(
        other.get(queued).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        engine.jobs().get(with_key).await.unwrap().unwrap().state,
        JobState::Completed
    );
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
