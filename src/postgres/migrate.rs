//! The schema and its migrations: numbered, append-only, each applied once in order, all
//! under one advisory transaction lock so that nodes starting together migrate once.

use tokio_postgres::Client;

use super::pg_error;
use crate::error::{Error, Result};

/// The newest schema version this build knows; a schema at a higher one is refused.
pub(crate) const SCHEMA_VERSION: i32 = 6;

/// Each migration: its version and its statements. Never edit one that has shipped; add the
/// next.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE nodes (
         id bigserial PRIMARY KEY,
         pid integer NOT NULL,
         host text NOT NULL,
         started_at bigint NOT NULL,
         heartbeat_at bigint NOT NULL,
         state text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'dead', 'left')),
         ended_at bigint
     );
     CREATE INDEX nodes_live ON nodes (heartbeat_at) WHERE state = 'live';",
    ),
    (
        2,
        // Jobs: the record (the same versioned bytes as in the file) and the columns derived
        // from it that the indexes need. `state`: 0 delayed, 1 ready, 2 running, 3 completed,
        // 4 failed, 5 cancelled, 6 timed out. `due_at`: when a delayed job may run, when a
        // running attempt's lease or timeout ends, when a finished job's retention ends.
        "CREATE SEQUENCE job_ready_seq;
         CREATE TABLE jobs (
             id bigserial PRIMARY KEY,
             name text NOT NULL,
             key text,
             priority integer NOT NULL,
             meta jsonb NOT NULL,
             record bytea NOT NULL,
             state smallint NOT NULL,
             node bigint,
             due_at bigint,
             ready_seq bigint,
             updated_at bigint NOT NULL
         );
         CREATE UNIQUE INDEX jobs_key ON jobs (name, key) WHERE key IS NOT NULL;
         CREATE INDEX jobs_ready ON jobs (name, priority DESC, ready_seq) WHERE state = 1;
         CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
         CREATE INDEX jobs_node ON jobs (node) WHERE state = 2;
         CREATE INDEX jobs_state ON jobs (state, id);
         CREATE INDEX jobs_name ON jobs (name, id);
         CREATE TABLE job_events (
             job_id bigint NOT NULL,
             seq integer NOT NULL,
             event bytea NOT NULL,
             PRIMARY KEY (job_id, seq)
         );
         CREATE TABLE job_steps (
             job_id bigint NOT NULL,
             step text NOT NULL,
             value bytea NOT NULL,
             PRIMARY KEY (job_id, step)
         );
         -- Counters per node: no row that every node's every write updates.
         CREATE TABLE job_counters (
             node bigint NOT NULL,
             counter text NOT NULL,
             value bigint NOT NULL,
             PRIMARY KEY (node, counter)
         );
         ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
         ALTER TABLE job_events SET (autovacuum_vacuum_scale_factor = 0.05);",
    ),
    (
        3,
        // The queue: the record as in the file, and its columns. `state`: 0 delayed, 1 ready,
        // 2 leased, 3 dead. `due_at`: when a delayed message is due, a lease ends, a dead
        // letter is purged. `expires_at`: when a ready or delayed message passes its maximum
        // age. `node`: the node holding a lease.
        "CREATE SEQUENCE queue_ready_seq;
         CREATE TABLE queue_messages (
             id bigserial PRIMARY KEY,
             queue text NOT NULL,
             key text,
             priority integer NOT NULL,
             record bytea NOT NULL,
             state smallint NOT NULL,
             ready_seq bigint,
             due_at bigint,
             expires_at bigint,
             node bigint
         );
         CREATE UNIQUE INDEX queue_messages_key ON queue_messages (queue, key) WHERE key IS NOT NULL;
         CREATE INDEX queue_messages_ready ON queue_messages (queue, priority DESC, ready_seq) WHERE state = 1;
         CREATE INDEX queue_messages_due ON queue_messages (due_at) WHERE due_at IS NOT NULL;
         CREATE INDEX queue_messages_age ON queue_messages (expires_at) WHERE expires_at IS NOT NULL;
         CREATE INDEX queue_messages_dead ON queue_messages (queue, id) WHERE state = 3;
         CREATE INDEX queue_messages_node ON queue_messages (node) WHERE state = 2;
         ALTER TABLE queue_messages SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);",
    ),
    (
        4,
        // Counters sharded. The scheduler: the record as in the file and its next slot;
        // failures in a row and dead letters. The mutex: the live lease of each name, and fencing tokens from a
        // sequence taken after the row lock (so a later acquisition gets a larger token).
        "CREATE TABLE schedules (
             id text PRIMARY KEY,
             record bytea NOT NULL,
             next_run bigint
         );
         CREATE INDEX schedules_due ON schedules (next_run, id) WHERE next_run IS NOT NULL;
         CREATE TABLE schedule_failures (
             id text PRIMARY KEY,
             slot bigint NOT NULL,
             count integer NOT NULL,
             retry_at bigint NOT NULL
         );
         CREATE TABLE schedule_dead (
             id text NOT NULL,
             slot bigint NOT NULL,
             failures integer NOT NULL,
             error text NOT NULL,
             at bigint NOT NULL,
             PRIMARY KEY (id, slot)
         );
         -- Counters in shards: a node's concurrent transactions would otherwise queue on its
         -- one row per counter, each holding it through its commit.
         ALTER TABLE job_counters ADD COLUMN shard smallint NOT NULL DEFAULT 0;
         ALTER TABLE job_counters DROP CONSTRAINT job_counters_pkey;
         ALTER TABLE job_counters ADD PRIMARY KEY (node, counter, shard);
         CREATE SEQUENCE mutex_token_seq;
         CREATE TABLE mutexes (
             name text PRIMARY KEY,
             owner text NOT NULL,
             token bigint NOT NULL,
             expires_at bigint NOT NULL
         );",
    ),
    (
        5,
        // Topics: a row per topic holds its sequence counter, taken under the row lock by
        // each publish, so sequence numbers are gapless and become visible in order. Consumer
        // groups' cursors, and their deliveries not yet committed with the node holding them.
        // Ephemeral sets: a row per set holds its entry count and change position (the same
        // row lock orders its changes); entries with their expiry, and each set's changes.
        "CREATE TABLE topics (
             name text PRIMARY KEY,
             last_seq bigint NOT NULL DEFAULT 0,
             pruned_through bigint NOT NULL DEFAULT 0,
             retention_ms bigint NOT NULL DEFAULT 0
         );
         CREATE TABLE topic_events (
             topic text NOT NULL,
             seq bigint NOT NULL,
             at_ms bigint NOT NULL,
             key text,
             payload bytea NOT NULL,
             PRIMARY KEY (topic, seq)
         );
         CREATE UNIQUE INDEX topic_events_key ON topic_events (topic, key) WHERE key IS NOT NULL;
         CREATE TABLE topic_groups (
             topic text NOT NULL,
             name text NOT NULL,
             delivered_through bigint NOT NULL,
             committed_through bigint NOT NULL,
             PRIMARY KEY (topic, name)
         );
         CREATE TABLE topic_pending (
             topic text NOT NULL,
             grp text NOT NULL,
             seq bigint NOT NULL,
             deadline bigint NOT NULL,
             deliveries integer NOT NULL,
             committed boolean NOT NULL DEFAULT false,
             node bigint,
             PRIMARY KEY (topic, grp, seq)
         );
         CREATE INDEX topic_pending_node ON topic_pending (node) WHERE NOT committed;
         CREATE TABLE ephemeral_sets (
             name text PRIMARY KEY,
             entries bigint NOT NULL DEFAULT 0,
             position bigint NOT NULL DEFAULT 0,
             pruned_through bigint NOT NULL DEFAULT 0
         );
         CREATE TABLE ephemeral_entries (
             set_name text NOT NULL,
             key text NOT NULL,
             value bytea NOT NULL,
             expires_at bigint NOT NULL,
             updated_at bigint NOT NULL,
             PRIMARY KEY (set_name, key)
         );
         CREATE INDEX ephemeral_entries_expiry ON ephemeral_entries (expires_at);
         CREATE TABLE ephemeral_changes (
             set_name text NOT NULL,
             position bigint NOT NULL,
             at_ms bigint NOT NULL,
             record bytea NOT NULL,
             PRIMARY KEY (set_name, position)
         );
         CREATE INDEX ephemeral_changes_at ON ephemeral_changes (at_ms);
         ALTER TABLE ephemeral_entries SET (autovacuum_vacuum_scale_factor = 0.02);
         ALTER TABLE ephemeral_changes SET (autovacuum_vacuum_scale_factor = 0.02);
         ALTER TABLE topic_pending SET (autovacuum_vacuum_scale_factor = 0.02);",
    ),
    (
        6,
        "CREATE TABLE rate_limits (
             name text NOT NULL,
             key bytea NOT NULL,
             window_ms bigint NOT NULL,
             start_ms bigint NOT NULL,
             current bigint NOT NULL,
             previous bigint NOT NULL,
             expires_at bigint NOT NULL,
             PRIMARY KEY (name, key)
         );
         CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
         CREATE TABLE queue_paused (
             name text PRIMARY KEY,
             paused_at bigint NOT NULL
         );
         CREATE TABLE job_flow (
             name text PRIMARY KEY,
             paused_at bigint,
             window_ms bigint NOT NULL DEFAULT 0,
             start_ms bigint NOT NULL DEFAULT 0,
             current bigint NOT NULL DEFAULT 0,
             previous bigint NOT NULL DEFAULT 0
         );
         ALTER TABLE rate_limits SET (autovacuum_vacuum_scale_factor = 0.02);",
    ),
];

/// Creates the schema if missing and applies the migrations it lacks, in one transaction.
/// Returns the version it is at.
///
/// Errors: [`Error::NewerSchema`] if a newer jobfile migrated it (nothing is changed).
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<i32> {
    let context = |what: &str| format!("migrating schema {schema:?}: {what}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error(&context("begin"), e))?;
    // One migrator at a time per schema; the others wait, then find nothing left to do.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('jobfile migrate ' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(|e| pg_error(&context("lock"), e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (
             version integer NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(|e| pg_error(&context("create schema"), e))?;
    let found: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .map_err(|e| pg_error(&context("read version"), e))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            schema: schema.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {statements}"))
            .await
            .map_err(|e| pg_error(&context(&format!("migration {version}")), e))?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(|e| pg_error(&context("record version"), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| pg_error(&context("commit"), e))?;
    Ok(found.max(SCHEMA_VERSION))
}

/// The version the schema is at (0 if it has none).
#[cfg(test)]
pub(crate) async fn schema_version(client: &Client, schema: &str) -> Result<i32> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.schema_version")],
        )
        .await
        .map_err(|e| pg_error("reading the schema version", e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .map_err(|e| pg_error("reading the schema version", e))?
        .get(0))
}
