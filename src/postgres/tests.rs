//! The foundation against a real server: migrations, the node registry with real processes
//! SIGKILLed and SIGSTOPped, and the listener across a dropped connection. Each test uses a
//! fresh schema. Skipped (with one printed line) unless `JOBFILE_TEST_PG` names a server;
//! `.ci/run` sets it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// A server to test against, or `None` (and a printed line) to skip.
fn server() -> Option<String> {
    let url = std::env::var("JOBFILE_TEST_PG").ok();
    if url.is_none() {
        println!("skipped: set JOBFILE_TEST_PG to a PostgreSQL URL to run the PostgreSQL tests");
    }
    url
}

/// Options on a schema no other test uses.
fn fresh(url: &str) -> PgOptions {
    static N: AtomicU32 = AtomicU32::new(0);
    let mut options = PgOptions::new(url);
    options.schema = format!(
        "jobfile_t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    options
}

/// A migrated schema, dropped again when the test ends.
struct Schema {
    pg: Postgres,
}

impl Schema {
    async fn new(options: &PgOptions) -> Schema {
        let pg = Postgres::new(options).unwrap();
        migrate(&mut pg.client().await.unwrap(), pg.schema())
            .await
            .unwrap();
        Schema { pg }
    }

    async fn now(&self) -> i64 {
        self.pg
            .client()
            .await
            .unwrap()
            .query_one(&format!("SELECT {DB_NOW_MS}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// [`find_dead`] at `at`, committed.
    async fn dead_at(&self, me: i64, at: i64, liveness: Liveness) -> Vec<i64> {
        let mut client = self.pg.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let dead = find_dead(&tx, me, Some(at), liveness).await.unwrap();
        tx.commit().await.unwrap();
        dead
    }

    async fn state(&self, id: i64) -> String {
        self.pg
            .client()
            .await
            .unwrap()
            .query_one("SELECT state FROM nodes WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let pg = self.pg.clone();
        // Best effort, on a runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    if let Ok(c) = pg.client().await {
                        let _ = c
                            .batch_execute(&format!(
                                "DROP SCHEMA IF EXISTS {} CASCADE",
                                pg.schema()
                            ))
                            .await;
                    }
                })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_even_when_nodes_start_together_and_a_newer_schema_is_refused() {
    let Some(url) = server() else { return };
    let options = fresh(&url);
    let pg = Postgres::new(&options).unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pg = pg.clone();
            tokio::spawn(async move {
                let mut client = pg.client().await?;
                migrate(&mut client, pg.schema()).await
            })
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.unwrap().unwrap(), SCHEMA_VERSION);
    }
    let client = pg.client().await.unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    assert_eq!(
        schema_version(&client, pg.schema()).await.unwrap(),
        SCHEMA_VERSION
    );
    // What a newer jobfile would leave: refused, nothing changed.
    client
        .execute("INSERT INTO schema_version (version) VALUES (99)", &[])
        .await
        .unwrap();
    drop(client);
    match migrate(&mut pg.client().await.unwrap(), pg.schema()).await {
        Err(Error::NewerSchema {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, SCHEMA_VERSION)),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let _drop = Schema { pg };
    assert!(matches!(
        Postgres::new(&PgOptions {
            schema: "Bad-Name".into(),
            ..options
        }),
        Err(Error::InvalidArgument { what: "schema", .. })
    ));
}

/// Waits up to 5 s for `done` (a node's heartbeat, in the background, changes what it tells).
async fn until(done: impl Fn() -> bool) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_does_not_notify_and_learns_of_another_at_its_next_heartbeat() {
    let Some(url) = server() else { return };
    let options = fresh(&url);
    let schema = Schema::new(&options).await;
    let liveness = Liveness {
        heartbeat: Duration::from_millis(50),
        ..Liveness::default()
    };
    // Until its first heartbeat says otherwise, a node assumes others listen.
    assert!(schema.pg.others_live());
    let a = Node::join(&schema.pg, liveness).await.unwrap();
    assert!(until(|| !schema.pg.others_live()).await, "alone");
    let other = Postgres::new(&options).unwrap();
    let b = Node::join(&other, liveness).await.unwrap();
    assert!(until(|| schema.pg.others_live()).await, "b joined");
    assert!(until(|| other.others_live()).await, "b sees a");
    b.leave().await;
    assert!(until(|| !schema.pg.others_live()).await, "b left");
    a.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_heartbeats_while_it_lives_and_leaves_cleanly() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&fresh(&url)).await;
    let liveness = Liveness {
        heartbeat: Duration::from_millis(50),
        ..Liveness::default()
    };
    let a = Node::join(&schema.pg, liveness).await.unwrap();
    let b = Node::join(&schema.pg, liveness).await.unwrap();
    assert!(b.id() > a.id());
    let beat_of = |id: i64| {
        let pg = schema.pg.clone();
        async move {
            let row = pg
                .client()
                .await
                .unwrap()
                .query_one("SELECT heartbeat_at FROM nodes WHERE id = $1", &[&id])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    let first = beat_of(a.id()).await;
    let moved = tokio::time::timeout(Duration::from_secs(5), async {
        while beat_of(a.id()).await == first {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(moved.is_ok(), "the heartbeat never moved");
    // Alive and holding its lock: not dead at any instant before its lease runs out.
    let now = schema.now().await;
    assert_eq!(
        schema.dead_at(b.id(), now + 29_000, liveness).await,
        Vec::<i64>::new()
    );
    assert_eq!(*a.fenced().borrow(), None);
    let id = a.id();
    a.leave().await;
    assert_eq!(schema.state(id).await, "left");
    // A node that left is never found dead.
    assert_eq!(
        schema.dead_at(b.id(), now + 60_000, liveness).await,
        Vec::<i64>::new()
    );
    b.leave().await;
}

/// Starts this test binary again as a node on `schema` (see [`child_node`]); returns the child
/// and its node id.
fn spawn_node(url: &str, schema: &str) -> (Child, i64, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "postgres::tests::child_node",
            "--ignored",
            "--nocapture",
        ])
        .env("JOBFILE_TEST_PG", url)
        .env("JOBFILE_TEST_PG_SCHEMA", schema)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let id = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before joining"
        );
        if let Some(id) = line.trim().strip_prefix("node ") {
            break id.parse().unwrap();
        }
    };
    (child, id, out)
}

/// The child's side: joins as a node (heartbeat every 100 ms), prints `node <id>`, then
/// `fenced <why>` if it fences itself; lives until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the node tests as a child process"]
async fn child_node() {
    let (Ok(url), Ok(schema)) = (
        std::env::var("JOBFILE_TEST_PG"),
        std::env::var("JOBFILE_TEST_PG_SCHEMA"),
    ) else {
        return;
    };
    let mut options = PgOptions::new(url);
    options.schema = schema;
    let pg = Postgres::new(&options).unwrap();
    let liveness = Liveness {
        heartbeat: Duration::from_millis(100),
        ..Liveness::default()
    };
    let node = Node::join(&pg, liveness).await.unwrap();
    println!("node {}", node.id());
    let mut fenced = node.fenced();
    let why = fenced.wait_for(Option::is_some).await.unwrap().clone();
    println!("fenced {}", why.unwrap());
    std::future::pending::<()>().await;
}

/// Calls `find_dead` at `at` until it names someone or 10 s pass (the server notices a killed
/// client's closed socket, and frees its lock, within milliseconds).
async fn dead_within(schema: &Schema, at: i64, liveness: Liveness) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dead = schema.dead_at(0, at, liveness).await;
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            return dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_dead_once_its_grace_period_passes_and_not_before() {
    let Some(url) = server() else { return };
    let options = fresh(&url);
    let schema = Schema::new(&options).await;
    let liveness = Liveness::default();
    let (mut child, id, _out) = spawn_node(&url, &options.schema);
    let now = schema.now().await;
    // Alive: its lock is held, so it is not dead after the grace period either.
    assert!(schema.dead_at(0, now + 6_000, liveness).await.is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed: still not dead within the grace period of its last heartbeat...
    assert!(schema.dead_at(0, now, liveness).await.is_empty());
    // ...and dead once past it: its lock was freed with its connection.
    assert_eq!(dead_within(&schema, now + 6_000, liveness).await, [id]);
    assert_eq!(schema.state(id).await, "dead");
    // Found once: the next look finds no one.
    assert!(schema.dead_at(0, now + 6_000, liveness).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_dead_after_its_lease_and_fences_itself_when_it_wakes() {
    let Some(url) = server() else { return };
    let options = fresh(&url);
    let schema = Schema::new(&options).await;
    let liveness = Liveness::default();
    let (mut child, id, mut out) = spawn_node(&url, &options.schema);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let now = schema.now().await;
    // Stopped, its connection (and lock) alive: not dead within its lease...
    assert!(schema.dead_at(0, now + 29_000, liveness).await.is_empty());
    // ...dead after it.
    assert_eq!(schema.dead_at(0, now + 31_000, liveness).await, [id]);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Its next heartbeat finds it dead: it fences itself.
    let mut line = String::new();
    let read = tokio::task::spawn_blocking(move || {
        out.read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the woken node fenced itself")
        .unwrap();
    assert_eq!(
        line.trim(),
        "fenced another node found it dead and took over its work"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The next wake-up, within 10 s.
async fn next(wakes: &mut tokio::sync::broadcast::Receiver<Wake>) -> Wake {
    tokio::time::timeout(Duration::from_secs(10), wakes.recv())
        .await
        .expect("a wake-up within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_delivers_notifications_and_asks_for_a_rescan_after_reconnecting() {
    let Some(url) = server() else { return };
    let options = fresh(&url);
    let schema = Schema::new(&options).await;
    let channel = format!("{}_jobs", options.schema);
    let listener = Listener::start(schema.pg.clone(), vec![channel.clone()]);
    let mut wakes = listener.subscribe();
    assert_eq!(next(&mut wakes).await, Wake::Rescan);
    let client = schema.pg.client().await.unwrap();
    client
        .execute("SELECT pg_notify($1, 'job 7')", &[&channel])
        .await
        .unwrap();
    assert_eq!(
        next(&mut wakes).await,
        Wake::Notified {
            channel: channel.clone(),
            payload: "job 7".into()
        }
    );
    // The server drops the listener's connection: it reconnects and asks for a rescan.
    let ended: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'jobfile listener' AND query LIKE '%' || $1 || '%'",
            &[&channel],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    assert_eq!(next(&mut wakes).await, Wake::Rescan);
    client
        .execute("SELECT pg_notify($1, 'job 8')", &[&channel])
        .await
        .unwrap();
    assert_eq!(
        next(&mut wakes).await,
        Wake::Notified {
            channel,
            payload: "job 8".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_by_the_server_is_a_failure_and_one_cut_off_is_unknown() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&fresh(&url)).await;
    let setup = schema.pg.client().await.unwrap();
    setup
        .batch_execute(
            "CREATE TABLE once (k int, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO once VALUES (1);",
        )
        .await
        .unwrap();
    // The server refuses at COMMIT (a deferred check): known to be rolled back.
    let mut client = schema.pg.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO once VALUES (1)", &[])
        .await
        .unwrap();
    match commit(tx, "a test write").await {
        Err(Error::Postgres { context, source }) => {
            assert_eq!(context, "committing a test write");
            assert_eq!(
                source.code(),
                Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            );
        }
        other => panic!("expected a refused commit, got {other:?}"),
    }
    drop(client);
    // The connection ends under the transaction before its COMMIT is answered: no one here
    // can know whether it took effect, and the error says so, whether the client sees the
    // connection closed or first reads the server's FATAL notice of the termination.
    let mut client = schema.pg.client().await.unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO once VALUES (2)", &[])
        .await
        .unwrap();
    setup
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let err = commit(tx, "a test write").await.unwrap_err();
    assert!(
        matches!(&err, Error::CommitUnknown { context, .. } if context == "committing a test write"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("whether it took effect is unknown"),
        "{err}"
    );
    assert!(err.is_transient());
    // (Here it did not: the server ended the session before the COMMIT.)
    let n: i64 = setup
        .query_one("SELECT count(*) FROM once", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_given_in_the_url_are_kept_beside_the_schema() {
    let Some(url) = server() else { return };
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut options = fresh(&format!(
        "{url}{sep}options=-c%20synchronous_commit%3Doff%20-c%20statement_timeout%3D1234"
    ));
    options.pool_size = 2;
    let schema = Schema::new(&options).await;
    let client = schema.pg.client().await.unwrap();
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(show("synchronous_commit").await, "off");
    assert_eq!(show("statement_timeout").await, "1234ms");
    assert_eq!(show("search_path").await, options.schema);
}
