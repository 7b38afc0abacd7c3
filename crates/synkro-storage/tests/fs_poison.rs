//! Poisoning after an fsync failure, through the `fault-injection` seam
//! (enabled for this crate's tests by its dev-dependency on itself).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{NS_A, NS_B, file_len, put};
use synkro_storage::{FsStorage, ProblemKind, Storage, StorageError};

#[tokio::test]
async fn failed_log_fsync_poisons_every_later_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    store.write(&NS_A, vec![put(b"a", b"1")]).await.expect("write");
    assert!(!store.is_poisoned());

    store.inject_sync_failure_for_tests();
    let err = store.write(&NS_A, vec![put(b"b", b"2")]).await;
    assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
    assert!(store.is_poisoned());

    // No retry, no recovery: later writes and removes are refused too,
    // in this namespace and every other.
    for ns in [NS_A, NS_B] {
        let err = store.write(&ns, vec![put(b"c", b"3")]).await;
        assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
    }
    let err = store.remove(&NS_A).await;
    assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
    // Reads keep working and still show what was acknowledged.
    let loaded = store.load(&NS_A).await.expect("load");
    assert!(loaded.records.contains(&(b"a".to_vec(), b"1".to_vec())));
    drop(store);

    // A restart starts clean, with the acknowledged data.
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert!(!store.is_poisoned());
    store
        .write(&NS_A, vec![put(b"d", b"4")])
        .await
        .expect("write after restart");
    let records = store.load(&NS_A).await.expect("load").records;
    assert!(records.contains(&(b"a".to_vec(), b"1".to_vec())));
    assert!(records.contains(&(b"d".to_vec(), b"4".to_vec())));
}

#[tokio::test]
async fn failed_directory_fsync_poisons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    store.write(&NS_A, vec![put(b"a", b"1")]).await.expect("write");
    // `remove` only fsyncs the directory, so that is the sync that fails.
    store.inject_sync_failure_for_tests();
    let err = store.remove(&NS_A).await;
    assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
    let err = store.write(&NS_B, vec![put(b"b", b"2")]).await;
    assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
}

#[tokio::test]
async fn poisoned_store_reports_but_does_not_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    store.write(&NS_A, vec![put(b"a", b"1")]).await.expect("write");
    let path = store.log_path(&NS_A);
    let good = file_len(&path);
    store.write(&NS_A, vec![put(b"b", b"2")]).await.expect("write");
    let full = std::fs::read(&path).expect("read log");
    // A fresh store sees a torn tail...
    drop(store);
    std::fs::write(&path, &full[..full.len() - 3]).expect("tear tail");
    let store = FsStorage::open(dir.path()).expect("reopen");
    store.inject_sync_failure_for_tests();
    let err = store.write(&NS_B, vec![put(b"x", b"y")]).await;
    assert!(matches!(err, Err(StorageError::Poisoned)), "{err:?}");
    // ...reports it, but being poisoned leaves the file as it is.
    let loaded = store.load(&NS_A).await.expect("load");
    assert_eq!(loaded.records, vec![(b"a".to_vec(), b"1".to_vec())]);
    assert_eq!(loaded.problems.len(), 1);
    assert_eq!(loaded.problems[0].kind, ProblemKind::TornTail);
    assert_eq!(loaded.problems[0].offset, good);
    assert_eq!(file_len(&path), (full.len() - 3) as u64);
}
