//! # jobfile
//!
//! An embedded durable job engine: link the crate, open one file, and get background work that
//! survives a crash, with no server to run. All state lives in one [redb] file; an OS file lock
//! decides which process leads.
//!
//! Typed durable jobs: a handler is registered under a name; jobs submitted under that name are
//! stored (fsync'd) before `submit` returns, run by the handler's workers, retried with backoff,
//! timed out when they miss their lease, and recovered at once when the process running them
//! dies. Steps inside a handler are memoized in the file, so a retry or a restart never repeats
//! a step that committed.
//!
//! ```
//! use std::time::Duration;
//! use jobfile::{Engine, JobCtx, JobError, JobSpec, Outcome};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.jobfile");
//! let engine = Engine::open(&path).await?;           // lock, recover, start
//! let resize = engine.register(
//!     JobSpec::new("resize").max_attempts(3),
//!     |ctx: JobCtx, width: u32| async move {
//!         let bytes = ctx.step("render", || async move {
//!             Ok::<_, JobError>(width as u64 * 3)        // runs once, result kept in the file
//!         }).await?;
//!         ctx.progress(100, "rendered").await?;
//!         Ok(bytes)
//!     },
//! )?;
//! let job = resize.submit(640).key("photo-42").await?;  // durable when it returns
//! assert_eq!(resize.join(job.id, None).await?, Outcome::Completed(1920));
//! let again = resize.submit(640).key("photo-42").await?;
//! assert!(again.deduplicated && again.id == job.id);   // same key, same job: not redone
//! engine.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! The raw [`Queue`] hands out byte payloads under leases, with a dead-letter list:
//!
//! ```
//! use std::time::Duration;
//! use jobfile::Engine;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.jobfile");
//! let engine = Engine::open(&path).await?;
//! let thumbs = engine.queue("thumbnails")?;
//! thumbs.send(b"photo-1.jpg".to_vec()).await?;       // durable (fsync'd) when it returns
//! thumbs.send(b"photo-2.jpg".to_vec()).priority(5).await?;
//!
//! let first = thumbs.receive().await?;                // highest priority first
//! assert_eq!(first.payload(), b"photo-2.jpg");
//! first.ack().await?;
//!
//! let second = thumbs.receive().await?;
//! second.nack(Duration::from_secs(10)).await?; // try again in 10 s
//! engine.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! [redb]: https://docs.rs/redb

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod clock;
mod engine;
mod ephemeral;
mod error;
mod feed;
mod file_identity;
mod index;
mod jitter;
mod job;
mod lock;
mod mutex;
#[cfg(feature = "postgres")]
mod postgres;
mod primitive;
mod queue;
mod ratelimit;
mod retry;
mod scheduler;
mod store;
mod timer;
mod topic;
mod transaction;
mod wakeups;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use engine::{Engine, EngineOptions};
pub use ephemeral::{
    Change, ChangeKind, ChangeStream, Entry, Ephemeral, EphemeralOptions, SetSummary, Snapshot,
    UpsertEntry,
};
pub use error::{Error, Held, Result};
pub use feed::Feed;
pub use job::{
    AttemptDurations, Backoff, Batch, BatchBuilder, BatchInfo, BatchOutcome, CancelOutcome,
    Dependency, Drained, Items, JobCounts, JobCtx, JobError, JobEvent, JobEventKind,
    JobEventStream, JobEvents, JobFailure, JobHandle, JobInfo, JobMetric, JobMetrics, JobPage,
    JobSpec, JobState, Jobs, ListJobs, MetricCallback, Outcome, Progress, StopReason, Submit,
    Submitted, SubmittedJob,
};
pub use lock::LockHolder;
pub use mutex::{FencedMutex, MutexLease};
pub use queue::{
    DeadLetter, DeadReason, Delivery, MessageInfo, MessageStatus, Queue, QueueOptions, QueueStats,
    QueueSummary, SendMessage, SendReceipt,
};
pub use ratelimit::{RateLimit, RateLimitCheck};
pub use retry::{RetryError, RetryPolicy, retry, retry_until};
#[cfg(feature = "cron")]
pub use scheduler::{
    DispatchReport, MAX_DISPATCH_FAILURES, Misfire, Registered, ScheduleDeadLetter, ScheduleInfo,
    ScheduleSpec, Scheduler, SchedulerMetric, SchedulerMetricCallback, SchedulerMetrics,
};
pub use store::{Durability, StoreStats};
pub use topic::{
    ConsumerGroup, GroupDelivery, GroupSummary, PublishEvent, Published, StartAt, Topic,
    TopicEvent, TopicOptions, TopicStream, TopicSummary,
};
pub use transaction::Transaction;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "admin")]
pub mod admin;

/// The README's API tour, compiled as doctests so that it keeps up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
