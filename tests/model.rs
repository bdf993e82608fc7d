//! Model-based tests: random sequences of queue and job operations, reopens among them, run
//! against the engine and against a plain in-memory model; after every step the two must
//! agree on every message and job.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use jobfile::{
    CancelOutcome, Engine, EngineOptions, JobHandle, JobSpec, JobState, ManualClock, MessageStatus,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Send payload with an optional idempotency key.
    Send(u8, Option<u8>),
    /// Receive the next message and ack it.
    ReceiveAck,
    /// Submit a job (no handler runs, so it stays queued) with an optional key.
    Submit(u8, Option<u8>),
    /// Cancel the n-th job submitted so far (modulo their number).
    Cancel(usize),
    /// Close the engine and open the file again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), proptest::option::of(0u8..4)).prop_map(|(p, k)| Op::Send(p, k)),
        3 => Just(Op::ReceiveAck),
        4 => (any::<u8>(), proptest::option::of(0u8..4)).prop_map(|(i, k)| Op::Submit(i, k)),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Ready messages in delivery order: (id, payload, key).
    ready: VecDeque<(u64, u8, Option<u8>)>,
    /// Jobs by id: (input, key, state).
    jobs: BTreeMap<u64, (u8, Option<u8>, JobState)>,
}

impl Model {
    fn live_key(&self, key: u8) -> Option<u64> {
        self.ready
            .iter()
            .find(|(_, _, k)| *k == Some(key))
            .map(|(id, _, _)| *id)
    }

    fn job_key(&self, key: u8) -> Option<u64> {
        self.jobs
            .iter()
            .find(|(_, (_, k, _))| *k == Some(key))
            .map(|(id, _)| *id)
    }
}

const T0: u64 = 1_767_225_600_000;

async fn open(path: &Path, clock: &ManualClock) -> (Engine, JobHandle<u8, ()>) {
    let engine = EngineOptions::new()
        .clock(clock.clone())
        .open(path)
        .await
        .unwrap();
    let job = engine.job::<u8, ()>(JobSpec::new("modelled")).unwrap();
    (engine, job)
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.jobfile");
    let clock = ManualClock::new(T0);
    let (mut engine, mut job) = open(&path, &clock).await;
    let mut model = Model::default();
    let mut submitted: Vec<u64> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let q = engine.queue("q").unwrap();
        match op {
            Op::Send(p, key) => {
                let mut send = q.send(vec![*p]);
                if let Some(k) = key {
                    send = send.key(format!("k{k}"));
                }
                let receipt = send.await.unwrap();
                match key.and_then(|k| model.live_key(k)) {
                    Some(id) => {
                        prop_assert!(receipt.deduplicated, "step {step}: {op:?}");
                        prop_assert_eq!(receipt.id, id);
                    }
                    None => {
                        prop_assert!(!receipt.deduplicated, "step {step}: {op:?}");
                        model.ready.push_back((receipt.id, *p, *key));
                    }
                }
            }
            Op::ReceiveAck => {
                let got = q.try_receive(1, Duration::from_secs(60)).await.unwrap();
                match model.ready.pop_front() {
                    Some((id, p, _)) => {
                        prop_assert_eq!(got.len(), 1, "step {}: {:?}", step, op);
                        prop_assert_eq!(got[0].id(), id);
                        prop_assert_eq!(got[0].payload(), &[p][..]);
                        prop_assert!(got[0].ack().await.unwrap());
                    }
                    None => prop_assert!(got.is_empty(), "step {step}: got {got:?}"),
                }
            }
            Op::Submit(input, key) => {
                let mut submit = job.submit(*input);
                if let Some(k) = key {
                    submit = submit.key(format!("j{k}"));
                }
                let out = submit.await.unwrap();
                match key.and_then(|k| model.job_key(k)) {
                    Some(id) => {
                        prop_assert!(out.deduplicated, "step {step}: {op:?}");
                        prop_assert_eq!(out.id, id);
                    }
                    None => {
                        prop_assert!(!out.deduplicated, "step {step}: {op:?}");
                        model.jobs.insert(out.id, (*input, *key, JobState::Queued));
                        submitted.push(out.id);
                    }
                }
            }
            Op::Cancel(n) => {
                if submitted.is_empty() {
                    continue;
                }
                let id = submitted[n % submitted.len()];
                let got = job.cancel(id, "model").await.unwrap();
                let entry = model.jobs.get_mut(&id).unwrap();
                let expected = match entry.2 {
                    JobState::Queued => {
                        entry.2 = JobState::Cancelled;
                        CancelOutcome::Cancelled
                    }
                    state => CancelOutcome::AlreadyFinished(state),
                };
                prop_assert_eq!(got, expected, "step {}: {:?}", step, op);
            }
            Op::Reopen => {
                drop(q);
                engine.shutdown(Duration::from_secs(5)).await.unwrap();
                (engine, job) = open(&path, &clock).await;
            }
        }
        compare(&engine, &model, step, op)?;
    }
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    Ok(())
}

/// Engine and model agree on every message and job.
fn compare(engine: &Engine, model: &Model, step: usize, op: &Op) -> Result<(), TestCaseError> {
    let q = engine.queue("q").unwrap();
    let stats = q.stats().unwrap();
    prop_assert_eq!(
        (stats.ready, stats.leased, stats.delayed, stats.dead),
        (model.ready.len() as u64, 0, 0, 0),
        "step {}: {:?}",
        step,
        op
    );
    for (id, p, key) in &model.ready {
        let m = q.get(*id).unwrap();
        prop_assert!(m.is_some(), "step {step}: message {id} missing");
        let m = m.unwrap();
        prop_assert_eq!(&m.payload, &vec![*p]);
        prop_assert_eq!(m.key, key.map(|k| format!("k{k}")));
        prop_assert_eq!(m.state, MessageStatus::Ready);
    }
    let jobs = engine.jobs();
    for state in [JobState::Queued, JobState::Cancelled] {
        let listed: Vec<u64> = jobs
            .list(state, 0, 10_000)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        let expected: Vec<u64> = model
            .jobs
            .iter()
            .filter(|(_, (_, _, s))| *s == state)
            .map(|(id, _)| *id)
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        prop_assert_eq!(
            sorted,
            expected,
            "step {}: {:?} jobs after {:?}",
            step,
            state,
            op
        );
    }
    for (id, (_, key, state)) in &model.jobs {
        let info = jobs.get(*id).unwrap();
        prop_assert_eq!(info.state, *state, "step {}: job {}", step, id);
        prop_assert_eq!(info.key, key.map(|k| format!("j{k}")));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn queue_and_jobs_match_the_model_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
