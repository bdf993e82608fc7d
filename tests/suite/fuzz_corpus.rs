//! The fuzz targets' entry points (`fuzz/fuzz_targets/*`) run as plain tests over the stored
//! corpus in `fuzz/seeds/<target>/`, and over deterministic mutations of every seed (bit
//! flips, byte changes, truncations, insertions, splices), so CI exercises them on stable Rust.
//! None may panic. Each test prints how many inputs it ran.
//!
//! `JOBFILE_FUZZ_MUTATIONS=n` sets the mutations per seed (default: a quick CI run).
//! `cargo test --release --test suite -- --ignored fuzz_corpus::write_seeds` regenerates the
//! record and file seeds from a freshly written jobfile.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Rng;
use jobfile::testing::{fuzz_cron, fuzz_decode, fuzz_open, schedule_slots};
use jobfile::{Error, JobCtx, JobSpec, Misfire, ScheduleSpec};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(seeds_dir(target))
        .unwrap_or_else(|e| panic!("seeds of {target}: {e}"))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn mutations_per_seed(default: usize) -> usize {
    std::env::var("JOBFILE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One deterministic mutation of `seed`, with `other` for splices.
fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let len = m.len() as u64;
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                m[i] = [0x00, 0x01, 0x7F, 0x80, 0xFF][rng.below(5) as usize];
            }
            2 if len > 0 => m.truncate(rng.below(len) as usize),
            3 => {
                let i = rng.below(len + 1) as usize;
                m.insert(i, rng.below(256) as u8);
            }
            4 if !other.is_empty() => {
                let cut = rng.below(len + 1) as usize;
                let from = rng.below(other.len() as u64) as usize;
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(len + 1) as usize;
                let n = rng.below(8) as usize;
                m.splice(i..i, std::iter::repeat_n(0xFF, n));
            }
        }
    }
    m
}

/// Runs `target` over every seed and `per_seed` mutations of each; returns the inputs run.
fn run_corpus(name: &str, per_seed: usize, target: impl FnMut(&[u8])) -> usize {
    run_corpus_with(name, per_seed, mutate, target)
}

/// A file mutation that mostly keeps the length, so the storage layer parses damaged pages
/// rather than refusing the length: 1 to 16 bytes changed in place, or else [`mutate`].
fn mutate_file(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    if seed.is_empty() || rng.below(5) == 0 {
        return mutate(seed, other, rng);
    }
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(16) {
        let i = rng.below(m.len() as u64) as usize;
        m[i] = rng.below(256) as u8;
    }
    m
}

fn run_corpus_with(
    name: &str,
    per_seed: usize,
    mutate: fn(&[u8], &[u8], &mut Rng) -> Vec<u8>,
    mut target: impl FnMut(&[u8]),
) -> usize {
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "no seeds for {name}");
    let mut rng = Rng::seeded(0x5EED_0000 + name.len() as u64);
    let mut execs = 0;
    for (i, (_, seed)) in seeds.iter().enumerate() {
        target(seed);
        execs += 1;
        let other = &seeds[(i + 1) % seeds.len()].1;
        for _ in 0..per_seed {
            target(&mutate(seed, other, &mut rng));
            execs += 1;
        }
    }
    eprintln!("{name}: {execs} inputs over {} seeds", seeds.len());
    execs
}

#[test]
fn decode_records_over_the_corpus() {
    let per_seed = mutations_per_seed(2_000);
    let execs = run_corpus("decode_records", per_seed, fuzz_decode);
    // Every stored seed is a real record that some decoder accepts.
    for (name, bytes) in seeds("decode_records") {
        let accepted: Vec<&str> = jobfile::testing::decode_each_record_kind(&bytes)
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(k, _)| k)
            .collect();
        let kind = name.split('-').next().unwrap();
        assert!(
            accepted.contains(&kind),
            "seed {name} is a {kind} record, accepted only by {accepted:?}"
        );
    }
    assert!(execs > per_seed);
}

#[test]
fn cron_over_the_corpus() {
    let execs = run_corpus("cron", mutations_per_seed(2_000), fuzz_cron);
    assert!(execs > 0);
    // The seeds mean what they say.
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    assert_eq!(
        schedule_slots("0 * * * *", "UTC", t0, 2).unwrap(),
        [t0 + 3_600_000, t0 + 7_200_000]
    );
    assert!(matches!(
        schedule_slots("61 * * * *", "UTC", t0, 1),
        Err(Error::InvalidArgument { what: "cron", .. })
    ));
    assert!(matches!(
        schedule_slots("* * * * *", "Nowhere/Atlantis", t0, 1),
        Err(Error::InvalidArgument {
            what: "time zone",
            ..
        })
    ));
}

#[test]
fn open_file_over_the_corpus() {
    let mut opened = 0;
    let mut refused = 0;
    let execs =
        run_corpus_with(
            "open_file",
            mutations_per_seed(24),
            mutate_file,
            |bytes| match fuzz_open(bytes) {
                Ok(()) => opened += 1,
                Err(
                    Error::NotAJobfile { .. }
                    | Error::Corrupt { .. }
                    | Error::Storage(_)
                    | Error::NewerFormat { .. }
                    | Error::Io { .. }
                    | Error::Poisoned { .. },
                ) => {
                    if std::env::var("JOBFILE_FUZZ_VERBOSE").is_ok() {
                        eprintln!("refused: {}", fuzz_open(bytes).unwrap_err());
                    }
                    refused += 1
                }
                Err(other) => panic!("an untyped failure: {other:?}"),
            },
        );
    eprintln!("open_file: {opened} opened and used, {refused} refused with a typed error");
    assert_eq!(opened + refused, execs);
    assert!(opened >= 1, "the real jobfile seed opens");
    assert!(refused >= 1, "the garbage seeds are refused");
}

/// Regenerates `fuzz/seeds/decode_records` and `fuzz/seeds/open_file/real.jobfile` from a
/// jobfile holding every kind of record. Seeds of older formats are kept beside the new ones
/// (rename the new ones before committing, as `jobs-f2-005.bin`: the table name stays first).
#[test]
#[ignore = "writes the seed corpus; run by hand after a record format changes"]
fn write_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.jobfile");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&path));
    let out = seeds_dir("decode_records");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let db = redb::Database::open(&path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let mut n = 0;
    let mut save = |table: &str, value: &[u8]| {
        n += 1;
        std::fs::write(out.join(format!("{table}-{n:03}.bin")), value).unwrap();
    };
    macro_rules! dump {
        ($name:literal, $k:ty) => {{
            let def: redb::TableDefinition<$k, &[u8]> = redb::TableDefinition::new($name);
            for item in redb::ReadableTable::iter(&rtx.open_table(def).unwrap()).unwrap() {
                save($name, item.unwrap().1.value());
            }
        }};
    }
    dump!("queue_messages", u64);
    dump!("jobs", u64);
    dump!("job_events", (u64, u32));
    dump!("mutexes", &str);
    dump!("ephemeral_entries", (&str, &str));
    dump!("ephemeral_changes", (&str, u64));
    dump!("ephemeral_sets", &str);
    dump!("topic_events", (&str, u64));
    dump!("topics", &str);
    dump!("topic_groups", (&str, &str));
    dump!("topic_pending", (&str, &str, u64));
    dump!("schedules", &str);
    drop(rtx);
    drop(db);
    std::fs::copy(&path, seeds_dir("open_file").join("real-jobfile.bin")).unwrap();
}

async fn fill(path: &Path) {
    let engine = jobfile::Engine::open(path).await.unwrap();
    let h = engine
        .register(JobSpec::new("k"), |ctx: JobCtx, n: u32| async move {
            ctx.progress(50, "half").await?;
            ctx.step(
                "double",
                || async move { Ok::<_, jobfile::JobError>(n * 2) },
            )
            .await?;
            Ok(n + 1)
        })
        .unwrap();
    let id = h.submit(1).key("key").await.unwrap().id;
    h.join(id, None).await.unwrap();
    h.submit(2).delay(Duration::from_secs(3_600)).await.unwrap();
    // An input over the inline limit, stored apart from its record.
    let big = engine.job::<String, ()>(JobSpec::new("big")).unwrap();
    big.submit("x".repeat(4_096)).await.unwrap();
    let q = engine.queue("q").unwrap();
    q.send(b"one".to_vec()).await.unwrap();
    q.send(b"two".to_vec()).await.unwrap();
    q.try_receive(1, Duration::from_secs(60)).await.unwrap();
    // A payload over the inline limit, stored apart from its record.
    q.send(vec![b'p'; 4_096]).await.unwrap();
    let m = engine.mutex("m").unwrap();
    m.try_acquire("owner", Duration::from_secs(60))
        .await
        .unwrap();
    let e = engine.ephemeral("set").unwrap();
    e.upsert("key", b"value".to_vec())
        .ttl(Duration::from_secs(60))
        .await
        .unwrap();
    e.touch("key", Duration::from_secs(60)).await.unwrap();
    let t = engine.topic("t").unwrap();
    t.publish(b"event".to_vec()).await.unwrap();
    t.publish(b"again".to_vec()).await.unwrap();
    t.group("g").try_receive(1).await.unwrap();
    engine
        .scheduler()
        .register(
            ScheduleSpec::new("nightly", "30 2 * * *")
                .zone("Europe/Berlin")
                .misfire(Misfire::CatchUpAll),
            &h,
            7,
        )
        .await
        .unwrap();
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
}
