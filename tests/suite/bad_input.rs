//! Files that are not ours, or not ours to read: typed errors, and the file left unchanged.

use crate::common;

use common::{secs, temp_file};
use jobfile::{Engine, Error};

/// Writes `value` under `key` in `table` of the file, as another program (or a future jobfile)
/// might.
fn put<K, V>(path: &std::path::Path, table: &str, key: K::SelfType<'_>, value: V::SelfType<'_>)
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<K, V> = redb::TableDefinition::new(table);
        tx.open_table(def).unwrap().insert(key, value).unwrap();
    }
    tx.commit().unwrap();
}

fn assert_unchanged(path: &std::path::Path, before: &[u8]) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file must be left unchanged"
    );
}

#[tokio::test]
async fn random_bytes_are_not_a_jobfile() {
    let (_dir, path) = temp_file();
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    match Engine::open(&path).await {
        Err(Error::NotAJobfile { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("redb database header"), "{reason}");
        }
        other => panic!("expected NotAJobfile, got {other:?}"),
    }
    assert_unchanged(&path, &bytes);
}

#[tokio::test]
async fn a_text_file_shorter_than_a_header_is_not_a_jobfile() {
    let (_dir, path) = temp_file();
    std::fs::write(&path, b"hello").unwrap();
    let err = Engine::open(&path).await.unwrap_err();
    assert!(matches!(err, Error::NotAJobfile { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_unchanged(&path, b"hello");
}

#[tokio::test]
async fn another_programs_redb_file_is_refused_untouched() {
    let (_dir, path) = temp_file();
    put::<&str, u64>(&path, "users", "alice", 1);
    let before = std::fs::read(&path).unwrap();
    match Engine::open(&path).await {
        Err(Error::NotAJobfile { reason, .. }) => {
            assert!(reason.contains("without jobfile metadata"), "{reason}");
            assert!(reason.contains("users"), "{reason}");
        }
        other => panic!("expected NotAJobfile, got {other:?}"),
    }
    assert_unchanged(&path, &before);
}

#[tokio::test]
async fn a_newer_format_is_refused_untouched() {
    let (_dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    engine
        .queue("work")
        .unwrap()
        .send(b"x".to_vec())
        .await
        .unwrap();
    engine.shutdown(secs(5)).await.unwrap();
    // What a future jobfile would write.
    put::<&str, u64>(&path, "jobfile_meta", "format_version", 99);
    let before = std::fs::read(&path).unwrap();
    match Engine::open(&path).await {
        Err(Error::NewerFormat {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, 7)),
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert_unchanged(&path, &before);
}

#[tokio::test]
async fn an_empty_file_becomes_a_new_jobfile() {
    let (_dir, path) = temp_file();
    std::fs::write(&path, b"").unwrap();
    let engine = Engine::open(&path).await.unwrap();
    assert_eq!(engine.epoch(), 1);
    let q = engine.queue("work").unwrap();
    assert_eq!(q.send(b"x".to_vec()).await.unwrap().id, 1);
}

#[tokio::test]
async fn a_corrupt_record_is_a_typed_error_not_a_panic() {
    let (_dir, path) = temp_file();
    let engine = Engine::open(&path).await.unwrap();
    let id = engine
        .queue("work")
        .unwrap()
        .send(b"x".to_vec())
        .await
        .unwrap()
        .id;
    engine.shutdown(secs(5)).await.unwrap();
    put::<u64, &[u8]>(&path, "queue_messages", id, &[0xFFu8, 0xFF, 0xFF][..]);
    let engine = Engine::open(&path).await.unwrap();
    let q = engine.queue("work").unwrap();
    match q.get(id).await {
        Err(Error::Corrupt { table, .. }) => assert_eq!(table, "queue_messages"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A receive meeting it fails with the same typed error; the engine stays usable.
    assert!(matches!(
        q.try_receive(1, secs(30)).await,
        Err(Error::Corrupt { .. })
    ));
    assert!(engine.poisoned().is_none());
    let other = engine.queue("other").unwrap();
    other.send(b"fine".to_vec()).await.unwrap();
    assert_eq!(other.receive().await.unwrap().payload(), b"fine");
}
