//! The application's own transactions (`Engine::transaction`): its tables and the jobs it
//! submits commit together or not at all, across a restart and a SIGKILL, and its tables
//! never reach jobfile's own.

use crate::common;

use common::{T0, secs};
use jobfile::{Engine, EngineOptions, Error, JobCtx, JobError, JobSpec, JobState, ManualClock};

async fn on_file(path: &std::path::Path) -> Engine {
    EngineOptions::new()
        .clock(ManualClock::new(T0))
        .manual_workers(true)
        .open(path)
        .await
        .unwrap()
}

#[derive(Debug)]
enum AppError {
    OutOfStock,
    Engine(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Engine(e)
    }
}

#[tokio::test]
async fn a_write_and_a_submit_commit_together() {
    let (_dir, path) = common::temp_file();
    let engine = on_file(&path).await;
    let email = engine.job::<String, ()>(JobSpec::new("email")).unwrap();
    let mail = email.clone();
    let (id, now) = engine
        .transaction(move |tx| {
            assert_eq!(tx.get("orders", b"1042")?, None);
            tx.insert("orders", b"1042", b"paid")?;
            assert_eq!(tx.get("orders", b"1042")?.as_deref(), Some(&b"paid"[..]));
            let id = tx.submit(mail.submit("order 1042".to_string()))?.id;
            Ok::<_, Error>((id, tx.now_ms()))
        })
        .await
        .unwrap();
    assert_eq!(now, T0);
    assert_eq!(
        engine.app_get("orders", b"1042").unwrap().as_deref(),
        Some(&b"paid"[..])
    );
    let job = engine.jobs().get(id).await.unwrap().unwrap();
    assert_eq!((job.name.as_str(), job.state), ("email", JobState::Queued));
    assert_eq!(email.submitted().await.unwrap()[0].input, "order 1042");

    // Both survive a restart; the job runs then.
    engine.shutdown(secs(1)).await.unwrap();
    let engine = on_file(&path).await;
    engine
        .register(JobSpec::new("email"), |_: JobCtx, _: String| async move {
            Ok::<_, JobError>(())
        })
        .unwrap();
    assert_eq!(
        engine.app_get("orders", b"1042").unwrap().as_deref(),
        Some(&b"paid"[..])
    );
    let ran = engine.drain().await.unwrap();
    assert_eq!(
        ran.iter().map(|d| (d.id, d.state)).collect::<Vec<_>>(),
        [(id, JobState::Completed)]
    );
}

#[tokio::test]
async fn an_error_after_the_submit_rolls_both_back_and_is_returned_as_it_was() {
    let (_dir, path) = common::temp_file();
    let engine = on_file(&path).await;
    let email = engine.job::<String, ()>(JobSpec::new("email")).unwrap();
    let mail = email.clone();
    let result = engine
        .transaction(move |tx| {
            tx.insert("orders", b"7", b"pending")?;
            tx.submit(mail.submit("order 7".to_string()))?;
            // The app's own check fails after both writes.
            Err::<(), _>(AppError::OutOfStock)
        })
        .await;
    assert!(matches!(result, Err(AppError::OutOfStock)), "{result:?}");
    assert_eq!(engine.app_get("orders", b"7").unwrap(), None);
    assert!(email.submitted().await.unwrap().is_empty(), "no job exists");
    assert_eq!(engine.jobs().counts().await.unwrap(), vec![]);

    // A jobfile error inside (a bad table name) rolls back the same way.
    let mail = email.clone();
    let result = engine
        .transaction(move |tx| {
            tx.submit(mail.submit("order 8".to_string()))?;
            tx.insert("", b"k", b"v")?;
            Ok::<_, AppError>(())
        })
        .await;
    match result {
        Err(AppError::Engine(Error::InvalidArgument { what, .. })) => {
            assert_eq!(what, "table name")
        }
        other => panic!("expected a bad table name, got {other:?}"),
    }
    assert!(email.submitted().await.unwrap().is_empty());
}

#[tokio::test]
async fn application_tables_are_their_own_namespace() {
    let (_dir, path) = common::temp_file();
    let engine = on_file(&path).await;
    let email = engine.job::<String, ()>(JobSpec::new("email")).unwrap();
    let id = email.submit("x".to_string()).await.unwrap().id;
    // A table named like one of jobfile's is the application's own.
    engine
        .transaction(move |tx| {
            assert_eq!(tx.get("jobs", &id.to_be_bytes())?, None);
            tx.insert("jobs", &id.to_be_bytes(), b"mine")?;
            tx.insert("jobs", b"\x00", b"first")?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(
        engine.jobs().get(id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        engine.app_range("jobs", b"", 10).unwrap(),
        [
            (b"\x00".to_vec(), b"first".to_vec()),
            (id.to_be_bytes().to_vec(), b"mine".to_vec())
        ]
    );
    assert_eq!(engine.app_range("never-written", b"", 10).unwrap(), vec![]);
    engine
        .transaction(move |tx| {
            assert_eq!(tx.remove("jobs", b"\x00")?.as_deref(), Some(&b"first"[..]));
            assert_eq!(tx.range("jobs", b"", 10)?.len(), 1);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    // The file with application tables opens again (they are not foreign tables).
    engine.shutdown(secs(1)).await.unwrap();
    let engine = on_file(&path).await;
    assert_eq!(engine.app_range("jobs", b"", 10).unwrap().len(), 1);
    match engine.app_get(&"x".repeat(201), b"k") {
        Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, "table name"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handle_of_another_engine_is_refused() {
    let (_dir, path) = common::temp_file();
    let engine = on_file(&path).await;
    let other = Engine::in_memory().await.unwrap();
    let foreign = other.job::<u32, ()>(JobSpec::new("n")).unwrap();
    let result = engine
        .transaction(move |tx| tx.submit(foreign.submit(1)).map(|_| ()))
        .await;
    assert!(
        matches!(result, Err(Error::InvalidArgument { what: "submit", .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn transactions_are_refused_on_postgresql() {
    let Some(place) = common::pg::Place::postgres() else {
        return;
    };
    let (engine, _clock) = place.open_at(T0).await;
    let result = engine
        .transaction(|tx| tx.insert("orders", b"1", b"x").map(|_| ()))
        .await;
    assert!(
        matches!(
            result,
            Err(Error::Unsupported {
                backend: "PostgreSQL",
                ..
            })
        ),
        "{result:?}"
    );
}

/// The child: commits transactions in a loop, each an order row and its email job, and prints
/// `committed N` once each is acknowledged.
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn child_entry() {
    let Some((_role, path)) = common::child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let engine = EngineOptions::new()
            .manual_workers(true)
            .open(&path)
            .await
            .expect("child open");
        let email = engine.job::<u64, ()>(JobSpec::new("email")).unwrap();
        // Numbers go on after the last order an earlier child left.
        let start = engine
            .app_range("orders", b"", usize::MAX)
            .unwrap()
            .last()
            .map_or(0, |(k, _)| {
                u64::from_be_bytes(k.as_slice().try_into().unwrap()) + 1
            });
        // Four writers at once, so transactions share group commits.
        let tasks: Vec<_> = (0..4u64)
            .map(|w| {
                let (engine, email) = (engine.clone(), email.clone());
                tokio::spawn(async move {
                    for n in (start + w..).step_by(4) {
                        let email = email.clone();
                        engine
                            .transaction(move |tx| {
                                tx.insert("orders", &n.to_be_bytes(), b"paid")?;
                                tx.submit(email.submit(n))?;
                                Ok::<_, Error>(())
                            })
                            .await
                            .expect("transaction");
                        println!("committed {n}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// 10 SIGKILLs of a child committing transactions: after each, every acknowledged one is
/// there, and the order rows and the email jobs are the same set, none without the other.
#[test]
fn transactions_are_all_or_nothing_across_sigkills() {
    let mut rng = common::Rng::new();
    let (_dir, path) = common::temp_file();
    for round in 0..10 {
        let (mut child, mut out) = common::spawn_child("transactions::child_entry", "tx", &path);
        let mut acked = Vec::new();
        let wait = 20 + rng.below(200);
        for _ in 0..wait {
            let n: u64 = common::wait_for_line(&mut out, "committed ")
                .parse()
                .unwrap();
            acked.push(n);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let engine = EngineOptions::new()
                .manual_workers(true)
                .open(&path)
                .await
                .unwrap();
            let email = engine.job::<u64, ()>(JobSpec::new("email")).unwrap();
            let mut jobs: Vec<u64> = email
                .submitted()
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.input)
                .collect();
            jobs.sort_unstable();
            let rows: Vec<u64> = engine
                .app_range("orders", b"", usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(k, _)| u64::from_be_bytes(k.try_into().unwrap()))
                .collect();
            assert_eq!(rows, jobs, "round {round}: rows and jobs are the same set");
            for n in &acked {
                assert!(
                    rows.binary_search(n).is_ok(),
                    "round {round}: acknowledged {n} lost"
                );
            }
            engine.shutdown(secs(1)).await.unwrap();
        });
    }
}
