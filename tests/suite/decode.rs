//! The stored-record decoder on hostile bytes (the fuzz target's function, run on stable Rust):
//! every input is a typed error or a record, never a panic.

use crate::common;

use common::{secs, temp_file};
use std::time::Duration;

use jobfile::Error;
use jobfile::testing::decode_stored_records;

#[tokio::test]
async fn real_records_decode_and_every_mutation_is_an_error_or_a_record() {
    let (_dir, path) = temp_file();
    let engine = jobfile::Engine::open(&path).await.unwrap();
    let q = engine.queue("work").unwrap();
    q.send(b"payload".to_vec())
        .key("k")
        .priority(-3)
        .await
        .unwrap();
    q.receive_for(secs(30)).await.unwrap();
    engine.shutdown(secs(5)).await.unwrap();

    let db = redb::Database::open(&path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("queue_messages");
    let table = rtx.open_table(def).unwrap();
    let stored = redb::ReadableTable::get(&table, 1u64)
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    decode_stored_records(&stored).expect("a real record decodes");

    // Every truncation, and every single-byte change, of a real record.
    let mut errors = 0;
    for len in 0..stored.len() {
        if decode_stored_records(&stored[..len]).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "truncated records must be refused");
    for i in 0..stored.len() {
        for b in [0x00u8, 0x7F, 0x80, 0xFF] {
            let mut m = stored.clone();
            m[i] = b;
            match decode_stored_records(&m) {
                Ok(()) | Err(Error::Corrupt { .. }) => {}
                Err(other) => panic!("unexpected error kind: {other:?}"),
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for len in 0..2_000usize {
        let bytes: Vec<u8> = (0..len % 300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = decode_stored_records(&bytes);
    }
    assert!(matches!(
        decode_stored_records(&[]),
        Err(Error::Corrupt {
            table: "queue_messages",
            ..
        })
    ));
}

/// Every record of every table in a file that holds jobs, events, steps, leases and ephemeral
/// entries, through the decoder of its kind: each decodes, and every truncation and byte
/// change is either decoded or refused as `Corrupt`, never a panic.
#[test]
fn real_records_of_every_kind_and_their_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.jobfile");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = jobfile::Engine::open(&path).await.unwrap();
        let h = engine
            .register(
                jobfile::JobSpec::new("k"),
                |ctx: jobfile::JobCtx, n: u32| async move {
                    // Enough events that the later ones spill from the record into the table
                    // (a heartbeat between progress updates keeps them from being coalesced).
                    for percent in [10, 20, 30, 40, 50, 60, 70, 80] {
                        ctx.progress(percent, "working").await?;
                        ctx.heartbeat().await?;
                    }
                    Ok(n + 1)
                },
            )
            .unwrap();
        let id = h.submit(1).key("key").await.unwrap().id;
        h.join(id, None).await.unwrap();
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
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let db = redb::Database::open(&path).unwrap();
    let rtx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let mut records: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let u64_bytes: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("jobs");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(u64_bytes).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("jobs", v.value().to_vec()));
    }
    let events: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("job_events");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(events).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("job_events", v.value().to_vec()));
    }
    let by_name: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("mutexes");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(by_name).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("mutexes", v.value().to_vec()));
    }
    let sets: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("ephemeral_sets");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(sets).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("ephemeral_sets", v.value().to_vec()));
    }
    let entries: redb::TableDefinition<(&str, &str), &[u8]> =
        redb::TableDefinition::new("ephemeral_entries");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(entries).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("ephemeral_entries", v.value().to_vec()));
    }
    let changes: redb::TableDefinition<(&str, u64), &[u8]> =
        redb::TableDefinition::new("ephemeral_changes");
    for (_, v) in redb::ReadableTable::iter(&rtx.open_table(changes).unwrap())
        .unwrap()
        .map(|e| e.unwrap())
    {
        records.push(("ephemeral_changes", v.value().to_vec()));
    }
    let kinds: std::collections::BTreeSet<&str> = records.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    assert!(records.len() >= 10);
    let of_kind = |kind: &str, bytes: &[u8]| {
        jobfile::testing::decode_each_record_kind(bytes)
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r)
            .unwrap()
    };
    for (kind, bytes) in &records {
        of_kind(kind, bytes).unwrap_or_else(|e| panic!("a real {kind} record: {e}"));
        for len in 0..bytes.len() {
            match of_kind(kind, &bytes[..len]) {
                Ok(()) | Err(Error::Corrupt { .. }) => {}
                Err(other) => panic!("unexpected error kind: {other:?}"),
            }
        }
        for i in 0..bytes.len() {
            for b in [0x00u8, 0x7F, 0x80, 0xFF] {
                let mut m = bytes.clone();
                m[i] = b;
                let _ = jobfile::testing::decode_each_record_kind(&m);
            }
        }
    }
}
