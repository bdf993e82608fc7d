//! The stored-record decoder on hostile bytes (the fuzz target's function, run on stable Rust):
//! every input is a typed error or a record, never a panic.

mod common;

use common::{secs, temp_file};
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
