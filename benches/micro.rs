//! Micro benchmarks (criterion): the cost of single operations, where the throughput binaries
//! give whole-engine figures.
//!
//!     cargo bench --bench micro
//!     cargo bench --bench micro -- job_record     # one group
//!
//! - `job_record`: encoding and decoding a stored job record, which the writer does at every
//!   change of a job (a plain job has 3 events, all in the record; 12 means 6 in the record and
//!   6 as rows).
//! - `engine`: one `submit` answered by the writer (relaxed commits, so the disk is out of it):
//!   channel hop, transaction, commit, reply; the same per job in a `submit_many` of 100; a
//!   `get` of one job (a read transaction and a decode).
//! - `cron`: parsing a cron expression in a time zone and computing its next slot, then eleven
//!   slots: the difference is what ten slots cost without a parse (the scheduler parses each
//!   distinct expression once).

use std::future::IntoFuture;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jobfile::testing::{SampleJobRecord, decode_job_record, schedule_slots};
use jobfile::{Durability, EngineOptions, JobCtx, JobSpec};

fn job_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("job_record");
    for events in [3usize, 12] {
        let sample = SampleJobRecord::new(events);
        let bytes = sample.encode();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", events), &sample, |b, s| {
            b.iter(|| black_box(s.encode()))
        });
        group.bench_with_input(BenchmarkId::new("decode", events), &bytes, |b, bytes| {
            b.iter(|| decode_job_record(black_box(bytes)).expect("decodes"))
        });
    }
    group.finish();
}

fn engine(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let relaxed = Durability::Relaxed {
        flush_every: Duration::from_millis(100),
    };
    let engine = rt
        .block_on(
            EngineOptions::new()
                .durability(relaxed)
                .open(dir.path().join("micro.jobfile")),
        )
        .expect("open");
    // Registering spawns the definition's worker on the runtime.
    let _entered = rt.enter();
    let jobs = engine
        .register(
            JobSpec::new("noop"),
            |_: JobCtx, n: u64| async move { Ok(n) },
        )
        .expect("register");
    // Due in a day: the jobs stay queued, so only the submit is measured, not a run.
    let later = SystemTime::now() + Duration::from_secs(86_400);

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("submit", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(jobs.submit(n).at(later).into_future())
                .expect("submit")
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("submit_many_100", |b| {
        b.iter(|| {
            let batch = (0..100u64).map(|i| jobs.submit(i).at(later));
            rt.block_on(jobs.submit_many(batch)).expect("submit_many")
        })
    });
    let id = rt
        .block_on(jobs.submit(7).at(later).into_future())
        .expect("submit")
        .id;
    group.throughput(Throughput::Elements(1));
    group.bench_function("get", |b| {
        b.iter(|| rt.block_on(jobs.get(black_box(id))).expect("get"))
    });
    group.finish();
    rt.block_on(engine.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}

fn cron(c: &mut Criterion) {
    let mut group = c.benchmark_group("cron");
    // 2026-11-23T00:00:00Z.
    let after = 1_795_392_000_000;
    for (label, expr, zone) in [
        ("every_5_min_utc", "*/5 * * * *", "UTC"),
        ("weekdays_9am_berlin", "0 9 * * MON-FRI", "Europe/Berlin"),
    ] {
        // One slot and eleven: the difference is ten `next` computations without a parse.
        for slots in [1usize, 11] {
            group.bench_with_input(BenchmarkId::new(label, slots), &slots, |b, &n| {
                b.iter(|| {
                    schedule_slots(black_box(expr), black_box(zone), after, n).expect("parses")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, job_record, engine, cron);
criterion_main!(benches);
