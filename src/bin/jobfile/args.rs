//! The command line: global options and one subcommand per operator task.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// See inside a jobfile and operate it: on the file itself when no process holds it, or
/// through a running process's admin API.
#[derive(Debug, Parser)]
#[command(name = "jobfile", version, max_term_width = 100)]
#[command(after_help = "\
Examples:
  jobfile --file app.jobfile stats
  jobfile --file app.jobfile jobs --state failed
  jobfile --connect http://127.0.0.1:9090 --token $TOKEN watch

Exit codes: 0 done; 1 the operation failed or found nothing; 2 bad usage;
3 the file is held by a running process (connect to it instead).")]
pub struct Args {
    /// The jobfile to open. It must exist, and no process may hold it.
    #[arg(short = 'f', long, env = "JOBFILE_FILE", global = true)]
    pub file: Option<PathBuf>,
    /// A running process's admin API, such as http://127.0.0.1:9090.
    #[arg(short = 'c', long, env = "JOBFILE_CONNECT", global = true)]
    pub connect: Option<String>,
    /// The admin API's bearer token (with --connect).
    #[arg(
        short = 't',
        long,
        env = "JOBFILE_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the admin API's JSON, with its field names, instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Jobs by definition and state, queues, topics, schedules, mutexes and the file.
    Stats,
    /// Jobs, newest first, one page at a time.
    Jobs(JobsArgs),
    /// One job: its record, attempts, errors, progress, steps and event history.
    Job {
        /// The job id.
        id: String,
    },
    /// One batch: its members by state, its progress and its callbacks.
    Batch {
        /// The batch id.
        id: String,
    },
    /// A job's event history; with --follow, then each new event until the job ends.
    Events {
        /// The job id.
        id: String,
        /// Keep printing events as they happen, until the job ends.
        #[arg(long)]
        follow: bool,
    },
    /// Running jobs with live progress bars, until they end.
    Watch,
    /// Every queue with its ready, delayed, leased and dead messages.
    Queues,
    /// A queue's dead letters (oldest first), or an operation on them.
    Dlq {
        /// The queue.
        queue: String,
        /// How many dead letters to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(subcommand)]
        action: Option<DlqAction>,
    },
    /// Every topic with its consumer groups' positions.
    Topics,
    /// Every ephemeral set with its entry count.
    Sets,
    /// Every schedule with its next run in its own time zone.
    Schedules,
    /// The mutex leases held now.
    Mutexes,
    /// Runs a failed or timed-out job again with a fresh attempt budget.
    Retry {
        /// The job id.
        #[arg(required_unless_present = "all_failed")]
        id: Option<String>,
        /// Instead of one job: every failed or timed-out job of this definition.
        #[arg(long, value_name = "NAME", conflicts_with = "id")]
        all_failed: Option<String>,
    },
    /// Cancels a job (a running one is stopped at its next step or heartbeat).
    Cancel {
        /// The job id.
        #[arg(required_unless_present_any = ["all_queued", "batch"])]
        id: Option<String>,
        /// Instead of one job: every queued job of this definition.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["id", "batch"])]
        all_queued: Option<String>,
        /// Instead of one job: every member of this batch that has not ended.
        #[arg(long, value_name = "BATCH", conflicts_with = "id")]
        batch: Option<String>,
        /// Why, recorded in the job's events.
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
    /// Deletes a finished job with its events and steps.
    Delete {
        /// The job id.
        #[arg(required_unless_present = "failed_before")]
        id: Option<String>,
        /// Instead of one job: every failed or timed-out job that ended before this instant
        /// (RFC 3339, such as 2026-11-01T00:00:00Z).
        #[arg(long, value_name = "TIME", conflicts_with = "id")]
        failed_before: Option<String>,
        /// With --failed-before: only jobs of this definition.
        #[arg(long, value_name = "NAME", requires = "failed_before")]
        name: Option<String>,
    },
    /// Pauses a job definition (none of its jobs start) or, with --queue, a queue (nothing
    /// is delivered). Running jobs finish. Durable until resumed.
    Pause {
        /// The job definition (or queue) name.
        name: String,
        /// NAME is a queue.
        #[arg(long)]
        queue: bool,
    },
    /// Resumes a paused job definition or, with --queue, a paused queue.
    Resume {
        /// The job definition (or queue) name.
        name: String,
        /// NAME is a queue.
        #[arg(long)]
        queue: bool,
    },
    /// Runs a schedule now, once per key.
    Trigger {
        /// The schedule id.
        schedule: String,
        /// The run's idempotency key: triggering again with the same key does nothing.
        /// Default: one key per invocation.
        #[arg(long)]
        key: Option<String>,
    },
}

/// The filters of `jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Only jobs of this definition.
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs in this state.
    #[arg(long, value_parser = ["waiting", "queued", "running", "completed", "failed", "cancelled", "timed_out"])]
    pub state: Option<String>,
    /// Only jobs with this meta entry, as key:value (a correlation id, say).
    #[arg(long, value_name = "KEY:VALUE")]
    pub meta: Option<String>,
    /// How many jobs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Start after this job id (the `next` of the page before).
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    /// Oldest first.
    #[arg(long)]
    pub oldest: bool,
}

/// An operation on a queue's dead letters.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Puts one dead letter, or all of them, back in line with a fresh delivery budget.
    Requeue {
        /// The message id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter of the queue.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Deletes one dead letter.
    Delete {
        /// The message id.
        id: String,
    },
    /// Deletes every dead letter of the queue.
    Purge,
}
