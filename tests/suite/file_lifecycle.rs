//! The file's life at its edges: a first open killed at any moment, a data or lock file deleted
//! under a running engine, and failed opens that leave nothing behind. Real child processes.

use crate::common;

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use common::{Rng, child_role, spawn_child, temp_file, wait_for_line};
use jobfile::{Engine, EngineOptions, Error};

/// Kills of a first open (`JOBFILE_CREATE_KILLS=n` for more).
fn create_kills() -> u64 {
    std::env::var("JOBFILE_CREATE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

#[test]
#[ignore = "child process entry point"]
fn lifecycle_child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        match role.as_str() {
            "open" => {
                println!("opening");
                // Kept alive: a dropped engine closes the file and lets the lock go.
                let _engine = Engine::open(&path).await.expect("child open");
                println!("opened");
                std::future::pending::<()>().await;
            }
            "writer" => {
                let engine = Engine::open(&path).await.expect("child open");
                let q = engine.queue("q").expect("queue");
                println!("ready");
                for i in 0u64.. {
                    match q.send(i.to_be_bytes().to_vec()).await {
                        Ok(_) => println!("acked {i}"),
                        Err(e) => {
                            println!("refused {e}");
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                std::future::pending::<()>().await;
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_open_killed_at_any_moment_leaves_a_file_that_opens() {
    let mut rng = Rng::new();
    let kills = create_kills();
    let (mut opened_before_kill, mut absent_after_kill) = (0, 0);
    for round in 0..kills {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.jobfile");
        let (mut child, mut out) =
            spawn_child("file_lifecycle::lifecycle_child_entry", "open", &path);
        wait_for_line(&mut out, "opening");
        // Creating the file takes a few milliseconds (three fsyncs and a rename).
        tokio::time::sleep(Duration::from_micros(rng.below(6_000))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let mut rest = String::new();
        while out.read_line(&mut rest).unwrap_or(0) > 0 {}
        if rest.contains("opened") {
            opened_before_kill += 1;
        }
        if !path.exists() {
            absent_after_kill += 1;
        }
        let engine = Engine::open(&path)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the open after the kill failed: {e}"));
        let q = engine.queue("q").unwrap();
        q.send(b"works".to_vec()).await.unwrap();
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "new.jobfile" && n != "new.jobfile.lock")
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
    }
    eprintln!(
        "{kills} kills of a first open: {opened_before_kill} after it returned, {absent_after_kill} before the file existed; every later open succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_deleted_under_a_running_engine_poisons_it_within_a_second() {
    let (_dir, path) = temp_file();
    let (_child, mut out) = spawn_child("file_lifecycle::lifecycle_child_entry", "writer", &path);
    wait_for_line(&mut out, "acked 3");
    std::fs::remove_file(&path).unwrap();
    let deleted_at = std::time::Instant::now();
    let refused = wait_for_line(&mut out, "refused ");
    let took = deleted_at.elapsed();
    eprintln!("refused {took:?} after the delete: {refused}");
    assert!(refused.contains("was deleted"), "{refused}");
    assert!(refused.contains(&path.display().to_string()), "{refused}");
    // Checked at most once per second of writing: refused within the second and a commit.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_replaced_under_a_running_engine_poisons_it() {
    let (dir, path) = temp_file();
    let (_child, mut out) = spawn_child("file_lifecycle::lifecycle_child_entry", "writer", &path);
    wait_for_line(&mut out, "acked 3");
    let other = dir.path().join("other");
    std::fs::write(&other, b"not the open file").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let refused = wait_for_line(&mut out, "refused ");
    assert!(refused.contains("was replaced"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lock_file_is_named_as_the_problem_even_in_standby() {
    let (_dir, path) = temp_file();
    let (_child, mut out) = spawn_child("file_lifecycle::lifecycle_child_entry", "open", &path);
    wait_for_line(&mut out, "opened");
    let lock = lock_path(&path);
    std::fs::remove_file(&lock).unwrap();
    for standby in [false, true] {
        let open = EngineOptions::new().standby(standby).open(&path);
        let err = tokio::time::timeout(Duration::from_secs(20), open)
            .await
            .expect("the open answers at once")
            .unwrap_err();
        let Error::FileReplaced { path: named, .. } = &err else {
            panic!("standby {standby}: expected FileReplaced, got {err:?}")
        };
        assert_eq!(named, &lock);
        assert!(err.to_string().contains("another process holds"), "{err}");
        // The open that failed removed the lock file it created.
        assert!(!lock.exists());
    }
}

fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    name.into()
}

#[tokio::test]
async fn failed_opens_leave_no_lock_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A directory as the path.
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let err = Engine::open(&sub).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { what: "path", detail } if detail.contains("is a directory")),
        "{err:?}"
    );
    // A foreign file, and a path in a missing directory.
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, b"hello, this is not a jobfile").unwrap();
    assert!(matches!(
        Engine::open(&foreign).await,
        Err(Error::NotAJobfile { .. })
    ));
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"hello, this is not a jobfile"
    );
    assert!(matches!(
        Engine::open(dir.path().join("missing/x.jobfile")).await,
        Err(Error::Io { .. })
    ));
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "notes.txt"]);
    // A successful open keeps its lock file while it runs, as the standby needs it.
    let ok = dir.path().join("ok.jobfile");
    let engine = Engine::open(&ok).await.unwrap();
    assert!(lock_path(&ok).exists());
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
