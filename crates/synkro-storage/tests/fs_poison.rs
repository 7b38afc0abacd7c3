//! Poisoning after an fsync failure, through the `fault-injection` seam
//! (enabled for this crate's tests by its dev-dependency on itself).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{NS_A, NS_B, file_len, put};
use std::time::Duration;

use synkro_storage::{Fault, FaultKind, FaultPoint, FsStorage, ProblemKind, Storage, StorageError};

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

/// Sixty-four new logs at once: their directory fsyncs are shared, and when
/// one of the fsyncs fails every writer still answers (none waits forever
/// for a sync that will not come, none is acknowledged without one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shared_directory_fsync_answers_every_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let namespaces: Vec<[u8; 32]> = (0..64u8).map(|i| [i; 32]).collect();
    let all = |store: FsStorage| {
        let writes: Vec<_> = namespaces
            .iter()
            .map(|ns| {
                let (store, ns) = (store.clone(), *ns);
                tokio::spawn(async move { store.write(&ns, vec![put(b"k", &ns[..1])]).await })
            })
            .collect();
        async move {
            let mut results = Vec::new();
            for w in writes {
                results.push(w.await.expect("writer"));
            }
            results
        }
    };
    let results = tokio::time::timeout(Duration::from_secs(60), all(store.clone()))
        .await
        .expect("every creation answered");
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let dir2 = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir2.path()).expect("open");
    // A log's fdatasync and the directory's fsync for each: fail one of
    // the later ones, while others are waiting to share it.
    store.inject_fault(Fault::new(FaultPoint::Sync, 40, FaultKind::Error));
    let results = tokio::time::timeout(Duration::from_secs(60), all(store.clone()))
        .await
        .expect("every creation answered");
    assert!(store.is_poisoned());
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StorageError::Poisoned))),
        "{results:?}"
    );
    assert!(results.iter().any(Result::is_err));
    let acknowledged: Vec<_> = namespaces
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(ns, _)| *ns)
        .collect();
    drop(store);
    let store = FsStorage::open(dir2.path()).expect("reopen");
    for ns in acknowledged {
        let records = store.load(&ns).await.expect("load").records;
        assert_eq!(records, vec![(b"k".to_vec(), ns[..1].to_vec())]);
    }
}
