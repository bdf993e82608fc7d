//! A PostgreSQL server restart mid-run: the node reconnects (its pool, its liveness lock, its
//! listener) and every acknowledged job completes. The test runs its own throwaway cluster
//! (`initdb` into a temp folder as the `postgres` user, on a private socket), so restarting it
//! disturbs no one. Skipped unless `JOBFILE_TEST_PG` is set (the PostgreSQL tests' switch).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jobfile::{EngineOptions, JobCtx, JobSpec, Outcome};

/// A cluster of its own, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// Runs `program args` as the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .output()
        .expect("run a PostgreSQL program")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let cluster = Cluster { dir, bin, port };
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn pg_ctl(&self, action: &[&str]) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let options = format!(
            "-k {} -p {} -c listen_addresses='' -c fsync=off",
            self.dir.path().display(),
            self.port
        );
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-m",
            "fast",
        ];
        args.extend_from_slice(action);
        let out = as_postgres(&self.bin.join("pg_ctl"), &args);
        assert!(
            out.status.success(),
            "pg_ctl {action:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_loses_nothing_and_the_node_carries_on() {
    if std::env::var_os("JOBFILE_TEST_PG").is_none() {
        println!("skipped: set JOBFILE_TEST_PG to run the PostgreSQL tests");
        return;
    }
    let cluster = std::sync::Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let engine = EngineOptions::new()
        .connect(&cluster.url())
        .await
        .expect("connect");
    let node = engine.epoch();
    let work = engine
        .register(
            JobSpec::new("work").concurrency(4),
            |_: JobCtx, n: u32| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(n)
            },
        )
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..300u32 {
        ids.push((n, work.submit(n).await.unwrap().id));
    }
    // Restart once a third has run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while engine.jobs().metrics().await.unwrap().completed < 100 {
        assert!(tokio::time::Instant::now() < deadline, "jobs never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarting = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.pg_ctl(&["restart"]))
    };
    restarting.await.unwrap();
    // Every acknowledged job completes, exactly with its input.
    for (n, id) in ids {
        let outcome = work.join(id, Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(outcome, Outcome::Completed(n), "job {id}");
    }
    // The node was not fenced: it takes new work after the restart.
    assert_eq!(engine.epoch(), node);
    let after = work.submit(1_000).await.unwrap().id;
    assert_eq!(
        work.join(after, Some(Duration::from_secs(30)))
            .await
            .unwrap(),
        Outcome::Completed(1_000)
    );
    let m = engine.jobs().metrics().await.unwrap();
    assert_eq!((m.completed, m.queued_now, m.running_now), (301, 0, 0));
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
