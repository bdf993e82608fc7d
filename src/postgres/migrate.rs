//! The schema and its migrations: numbered, append-only, each applied once in order, all
//! under one advisory transaction lock so that nodes starting together migrate once.

use tokio_postgres::Client;

use super::pg_error;
use crate::error::{Error, Result};

/// The newest schema version this build knows; a schema at a higher one is refused.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Each migration: its version and its statements. Never edit one that has shipped; add the
/// next.
const MIGRATIONS: &[(i32, &str)] = &[(
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
)];

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
