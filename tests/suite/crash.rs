//! Real processes, real SIGKILLs: the leader lock, standby takeover, and durability of every
//! acknowledged send.

use crate::common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::time::Duration;

use common::{Rng, child_role, secs, spawn_child, temp_file, wait_for_line};
use jobfile::{Engine, EngineOptions, Error};

/// The body of every child process (ignored in a normal run; the tests below start it).
#[test]
#[ignore = "child process entry point, started by the tests in this file"]
fn child_entry() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let engine = Engine::open(&path).await.expect("child open");
        let q = engine.queue("work").expect("queue");
        match role.as_str() {
            "hold" => {
                let id = q.send(b"held".to_vec()).await.expect("send").id;
                let d = q.receive_for(secs(3600)).await.expect("receive");
                assert_eq!(d.id(), id);
                println!("ready {} {}", engine.epoch(), id);
                std::future::pending::<()>().await;
            }
            "send" => {
                println!("ready");
                let mut tasks = Vec::new();
                for t in 0..8u8 {
                    let q = q.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0u32.. {
                            let payload = [&[t][..], &i.to_be_bytes()[..]].concat();
                            let id = q.send(payload).await.expect("send").id;
                            // Printed only after send returned, i.e. once durable.
                            println!("sent {id} {t} {i}");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("sender task");
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_fails_with_locked_and_standby_takes_over_after_sigkill() {
    let (_dir, path) = temp_file();
    let (mut child, mut out) = spawn_child("crash::child_entry", "hold", &path);
    let ready = wait_for_line(&mut out, "ready ");
    let mut parts = ready.split(' ').map(|p| p.parse::<u64>().unwrap());
    let (child_epoch, held_id) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(child_epoch, 1);

    match Engine::open(&path).await {
        Err(Error::Locked { path: p, holder }) => {
            assert_eq!(p, path);
            let holder = holder.expect("the holder recorded itself in the lock file");
            assert_eq!(holder.pid, child.id());
            assert_eq!(holder.admin_url, None);
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    let standby = {
        let path = path.clone();
        tokio::spawn(async move { EngineOptions::new().standby(true).open(&path).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !standby.is_finished(),
        "standby must wait while the leader lives"
    );

    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let engine = standby.await.unwrap().expect("standby open");
    assert_eq!(engine.epoch(), child_epoch + 1);

    // The dead leader's hour-long lease ended at takeover: redelivered at once.
    let q = engine.queue("work").unwrap();
    let got = q.try_receive(1, secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id(), got[0].deliveries()), (held_id, 2));
    assert_eq!(
        q.get(held_id).await.unwrap().unwrap().last_error.as_deref(),
        Some("the process holding the lease ended")
    );
}

#[tokio::test]
async fn second_open_in_the_same_process_says_so() {
    let (_dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    let err = Engine::open(&path).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyOpen { path: p } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("already open in this process"),
        "{err}"
    );
    // Through another spelling of the same path, too.
    let other = path
        .parent()
        .unwrap()
        .join(".")
        .join(path.file_name().unwrap());
    assert!(matches!(
        Engine::open(&other).await,
        Err(Error::AlreadyOpen { .. })
    ));
    engine.shutdown(secs(1)).await.unwrap();
    let again = Engine::open(&path).await.unwrap();
    assert_eq!(again.epoch(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_send_survives_sigkill() {
    let (_dir, path) = temp_file();
    let mut rng = Rng::new();
    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    let rounds = 6;
    for round in 0..rounds {
        let (mut child, mut out) = spawn_child("crash::child_entry", "send", &path);
        wait_for_line(&mut out, "ready");
        let kill_after = 20 + rng.below(600);
        let mut line = String::new();
        let mut seen = 0;
        while seen < kill_after {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child died early");
            if let Some(rest) = line.strip_prefix("sent ") {
                acknowledged.insert(rest.split(' ').next().unwrap().parse().unwrap());
                seen += 1;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Lines already written before the kill were acknowledged too.
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("sent ") {
                acknowledged.insert(rest.split(' ').next().unwrap().parse().unwrap());
            }
        }

        let engine = Engine::open(&path).await.expect("reopen after SIGKILL");
        assert_eq!(
            engine.epoch(),
            2 * (round + 1),
            "child and parent each lead once per round"
        );
        let q = engine.queue("work").unwrap();
        let mut missing: Vec<u64> = Vec::new();
        for &id in &acknowledged {
            if q.get(id).await.unwrap().is_none() {
                missing.push(id);
            }
        }
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged sends lost: {missing:?}",
            missing.len()
        );
        engine.shutdown(secs(5)).await.unwrap();
    }
    assert!(acknowledged.len() >= 20 * rounds as usize);
}
