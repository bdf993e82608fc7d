//! The integration tests, one module per area, built as one test binary: each binary of its
//! own linked jobfile, tokio and the backends again, and that build was most of CI's time.
//! A test that needs a process of its own (one that sets a global tracing subscriber) stays
//! a binary of its own beside this one, under `tests/`.
//!
//! A child process re-runs this binary with one test's full name (`crash::child_entry`), so
//! `common::spawn_child` is given the module as well as the test.

#[macro_use]
mod common;

mod admin;
mod backward_compat;
mod bad_input;
mod bulk_actions;
mod cli;
mod crash;
mod dashboard;
mod decode;
mod ephemeral;
mod fault_sweep;
mod faults;
mod file_lifecycle;
mod flow_control;
mod fuzz_corpus;
mod handler_ergonomics;
mod job_backends;
mod job_crash;
mod job_failures;
mod job_lifecycle;
mod job_ownership;
mod job_storage;
mod log_crash;
mod model;
mod mutex;
mod pg_nodes;
mod pg_restart;
mod queue;
mod queue_backends;
mod rate_limit;
mod retry;
mod scheduler;
mod scheduler_crash;
mod serialize;
mod shutdown;
mod testing_support;
mod topics;
mod torture;
mod transactions;
mod workflows;
