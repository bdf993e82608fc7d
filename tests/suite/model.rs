//! Model-based tests: random sequences of queue and job operations (sends with keys, receives,
//! leases held, acked, nacked or left to expire as a manual clock moves, dead letters after the
//! last allowed delivery, job submits with keys and cancels), reopens among them, run against
//! the engine and against a plain in-memory model; after every step the two must agree on
//! every message and job. The same model runs on a file and on a PostgreSQL schema (where a
//! reopen is a node that leaves and a new one that joins).

use crate::common;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use common::pg::Place;
use jobfile::{
    CancelOutcome, Clock, Delivery, Engine, EngineOptions, JobHandle, JobSpec, JobState,
    ManualClock, MessageStatus, Queue, QueueOptions,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Send payload with an optional idempotency key.
    Send(u8, Option<u8>),
    /// Receive the next message and ack it.
    ReceiveAck,
    /// Receive the next message with a lease of this many seconds and keep the delivery.
    Hold(u8),
    /// Ack the n-th delivery handed out since the last open (it may have lost its lease).
    AckHeld(usize),
    /// Nack the n-th delivery handed out since the last open.
    NackHeld(usize),
    /// Move the clock on by this many seconds and run the timers.
    Advance(u8),
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
        3 => (1u8..20).prop_map(Op::Hold),
        2 => any::<usize>().prop_map(Op::AckHeld),
        2 => any::<usize>().prop_map(Op::NackHeld),
        2 => (0u8..30).prop_map(Op::Advance),
        4 => (any::<u8>(), proptest::option::of(0u8..4)).prop_map(|(i, k)| Op::Submit(i, k)),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Ready messages in delivery order: (id, payload, key, deliveries so far).
    ready: VecDeque<(u64, u8, Option<u8>, u32)>,
    /// Leased messages: id -> (payload, key, deliveries, lease deadline).
    leased: BTreeMap<u64, (u8, Option<u8>, u32, u64)>,
    /// Dead-lettered messages: id -> key.
    dead: BTreeMap<u64, Option<u8>>,
    /// Jobs by id: (input, key, state).
    jobs: BTreeMap<u64, (u8, Option<u8>, JobState)>,
}

const MAX_DELIVERIES: u32 = 3;

impl Model {
    /// The message holding `key`: a key stays taken until its message is acked.
    fn live_key(&self, key: u8) -> Option<u64> {
        let ready = self.ready.iter().find(|m| m.2 == Some(key)).map(|m| m.0);
        let leased = self.leased.iter().find(|(_, m)| m.1 == Some(key));
        let dead = self.dead.iter().find(|(_, k)| **k == Some(key));
        ready
            .or(leased.map(|(id, _)| *id))
            .or(dead.map(|(id, _)| *id))
    }

    fn job_key(&self, key: u8) -> Option<u64> {
        self.jobs
            .iter()
            .find(|(_, (_, k, _))| *k == Some(key))
            .map(|(id, _)| *id)
    }

    /// A lease ended (expired, nacked, or its process closed): back in line, or dead after
    /// its last allowed delivery.
    fn end_lease(&mut self, id: u64) {
        let (p, key, deliveries, _) = self.leased.remove(&id).unwrap();
        if deliveries >= MAX_DELIVERIES {
            self.dead.insert(id, key);
        } else {
            self.ready.push_back((id, p, key, deliveries));
        }
    }

    /// Ends every lease due by `until`, in the order of (deadline, id).
    fn end_leases(&mut self, until: u64) {
        let mut due: Vec<(u64, u64)> = self
            .leased
            .iter()
            .filter(|(_, m)| m.3 <= until)
            .map(|(id, m)| (m.3, *id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            self.end_lease(id);
        }
    }
}

const T0: u64 = 1_767_225_600_000;

fn queue(engine: &Engine) -> Queue {
    engine
        .queue_with("q", QueueOptions::default().max_deliveries(MAX_DELIVERIES))
        .unwrap()
}

async fn open(place: &Place, clock: &ManualClock) -> (Engine, JobHandle<u8, ()>) {
    let engine = place.open(EngineOptions::new().clock(clock.clone())).await;
    let job = engine.job::<u8, ()>(JobSpec::new("modelled")).unwrap();
    (engine, job)
}

async fn run(place: Place, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(T0);
    let (mut engine, mut job) = open(&place, &clock).await;
    let mut model = Model::default();
    let mut submitted: Vec<u64> = Vec::new();
    let mut held: Vec<Delivery> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let q = queue(&engine);
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
                        model.ready.push_back((receipt.id, *p, *key, 0));
                    }
                }
            }
            Op::ReceiveAck => {
                let got = q.try_receive(1, Duration::from_secs(60)).await.unwrap();
                match model.ready.pop_front() {
                    Some((id, p, _, deliveries)) => {
                        prop_assert_eq!(got.len(), 1, "step {}: {:?}", step, op);
                        prop_assert_eq!(got[0].id(), id);
                        prop_assert_eq!(got[0].payload(), &[p][..]);
                        prop_assert_eq!(got[0].deliveries(), deliveries + 1);
                        got[0].ack().await.unwrap();
                    }
                    None => prop_assert!(got.is_empty(), "step {step}: got {got:?}"),
                }
            }
            Op::Hold(secs) => {
                let lease = Duration::from_secs(u64::from(*secs));
                let got = q.try_receive(1, lease).await.unwrap();
                match model.ready.pop_front() {
                    Some((id, p, key, deliveries)) => {
                        prop_assert_eq!(got.len(), 1, "step {}: {:?}", step, op);
                        let d = got.into_iter().next().unwrap();
                        prop_assert_eq!(d.id(), id);
                        prop_assert_eq!(d.deliveries(), deliveries + 1);
                        let deadline = clock.now_ms() + u64::from(*secs) * 1_000;
                        prop_assert_eq!(d.lease_deadline_ms(), deadline);
                        model.leased.insert(id, (p, key, deliveries + 1, deadline));
                        held.push(d);
                    }
                    None => prop_assert!(got.is_empty(), "step {step}: got {got:?}"),
                }
            }
            Op::AckHeld(n) | Op::NackHeld(n) => {
                if held.is_empty() {
                    continue;
                }
                let d = &held[n % held.len()];
                let owned = model
                    .leased
                    .get(&d.id())
                    .is_some_and(|m| m.2 == d.deliveries());
                let settled = match op {
                    Op::AckHeld(_) => d.ack().await,
                    _ => d.nack(Duration::ZERO).await,
                };
                let got = match settled {
                    Ok(()) => true,
                    Err(jobfile::Error::NotHolder { .. }) => false,
                    Err(e) => panic!("step {step}: {e}"),
                };
                prop_assert_eq!(got, owned, "step {}: {:?} of {}", step, op, d.id());
                if owned {
                    match op {
                        Op::AckHeld(_) => {
                            model.leased.remove(&d.id());
                        }
                        _ => model.end_lease(d.id()),
                    }
                }
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(u64::from(*secs)));
                engine.tick().await.unwrap();
                model.end_leases(clock.now_ms());
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
                (engine, job) = open(&place, &clock).await;
                // The closed process's leases ended (at the open; on PostgreSQL, when the
                // node left).
                model.end_leases(u64::MAX);
                held.clear();
            }
        }
        compare(&engine, &model, step, op).await?;
    }
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    Ok(())
}

/// Engine and model agree on every message and job.
async fn compare(
    engine: &Engine,
    model: &Model,
    step: usize,
    op: &Op,
) -> Result<(), TestCaseError> {
    let q = queue(engine);
    let stats = q.stats().await.unwrap();
    prop_assert_eq!(
        (stats.ready, stats.leased, stats.delayed, stats.dead),
        (
            model.ready.len() as u64,
            model.leased.len() as u64,
            0,
            model.dead.len() as u64
        ),
        "step {}: {:?}",
        step,
        op
    );
    // The listing of all queues says the same, from the same tallies.
    let listed = engine.queues().await.unwrap();
    let nonzero = stats.ready + stats.leased + stats.delayed + stats.dead > 0;
    prop_assert_eq!(
        listed.len(),
        usize::from(nonzero),
        "step {}: {:?}",
        step,
        listed
    );
    if let Some(summary) = listed.first() {
        prop_assert_eq!(summary.stats, stats);
    }
    for (id, p, key, deliveries) in &model.ready {
        let m = q.get(*id).await.unwrap();
        prop_assert!(m.is_some(), "step {step}: message {id} missing");
        let m = m.unwrap();
        prop_assert_eq!(&m.payload, &vec![*p]);
        prop_assert_eq!(m.key, key.map(|k| format!("k{k}")));
        prop_assert_eq!(m.state, MessageStatus::Ready);
        prop_assert_eq!(m.deliveries, *deliveries);
    }
    for (id, (_, _, deliveries, deadline)) in &model.leased {
        let m = q.get(*id).await.unwrap().unwrap();
        prop_assert_eq!(
            m.state,
            MessageStatus::Leased {
                deadline_ms: *deadline
            },
            "step {}: message {}",
            step,
            id
        );
        prop_assert_eq!(m.deliveries, *deliveries);
    }
    for id in model.dead.keys() {
        let m = q.get(*id).await.unwrap().unwrap();
        prop_assert!(
            matches!(m.state, MessageStatus::Dead { .. }),
            "step {step}: message {id} is {:?}",
            m.state
        );
    }
    let jobs = engine.jobs();
    for state in [JobState::Queued, JobState::Cancelled] {
        let listed: Vec<u64> = jobs
            .list()
            .state(state)
            .oldest_first()
            .limit(10_000)
            .await
            .unwrap()
            .jobs
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
    // The per-definition counts match the model's jobs, state by state.
    let counted: u64 = jobs
        .counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.queued + c.running + c.completed + c.failed + c.cancelled + c.timed_out)
        .sum();
    prop_assert_eq!(
        counted,
        model.jobs.len() as u64,
        "step {}: counts after {:?}",
        step,
        op
    );
    let all = jobs.counts().await.unwrap();
    for (state, counted) in [
        (JobState::Queued, all.iter().map(|c| c.queued).sum::<u64>()),
        (
            JobState::Cancelled,
            all.iter().map(|c| c.cancelled).sum::<u64>(),
        ),
    ] {
        let expected = model.jobs.values().filter(|(_, _, s)| *s == state).count() as u64;
        prop_assert_eq!(
            counted,
            expected,
            "step {}: {:?} count after {:?}",
            step,
            state,
            op
        );
    }
    for (id, (_, key, state)) in &model.jobs {
        let info = jobs.get(*id).await.unwrap().unwrap();
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
        rt.block_on(run(Place::file(), ops))?;
    }
}

proptest! {
    // Each case has a schema of its own: fewer cases, for time.
    #![proptest_config(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    })]

    #[test]
    fn queue_and_jobs_match_the_model_across_reopens_on_postgres(ops in proptest::collection::vec(op(), 1..40)) {
        let Some(place) = Place::postgres() else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(place, ops))?;
    }
}
