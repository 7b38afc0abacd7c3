//! The file backend's index snapshot: a clean close lets the next gather
//! read one file; any change after opening, a crash, or damage sends it
//! back to the logs, which win.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{NS_A, NS_B, del, put};
use synkro_storage::{FsStorage, Gathered, Namespace, Storage};

const KEY: &[u8] = b"I";
const SNAPSHOT: &str = "gathered.snapshot";
const BASE: &str = "gathered.base";
const NS_C: Namespace = [0xcc; 32];

fn values(found: &[Gathered]) -> BTreeMap<Namespace, Option<Vec<u8>>> {
    found.iter().map(|g| (g.ns, g.value.clone())).collect()
}

/// A store with three namespaces (one without the key), gathered and
/// closed cleanly.
async fn closed_store(dir: &Path) -> BTreeMap<Namespace, Option<Vec<u8>>> {
    let store = FsStorage::open(dir).unwrap();
    store
        .write(&NS_A, vec![put(KEY, b"a1"), put(b"x", b"data")])
        .await
        .unwrap();
    store.write(&NS_B, vec![put(b"x", b"no entry")]).await.unwrap();
    store.write(&NS_C, vec![put(KEY, b"c1")]).await.unwrap();
    let found = values(&store.gather(KEY).await.unwrap());
    drop(store);
    found
}

/// Appends bytes that are no frame to `ns`'s log: a gather that reads the
/// logs reports damage there, one that reads the snapshot does not.
fn scribble(dir: &Path, ns: &Namespace) {
    let path = FsStorage::open(dir).unwrap().log_path(ns);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"not a frame");
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test]
async fn a_clean_close_lets_the_next_gather_read_only_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let first = closed_store(dir.path()).await;
    assert_eq!(first.len(), 3);
    assert!(dir.path().join(SNAPSHOT).is_file(), "written at close");

    scribble(dir.path(), &NS_A);
    let store = FsStorage::open(dir.path()).unwrap();
    let found = store.gather(KEY).await.unwrap();
    assert!(found.iter().all(|g| g.problems.is_empty()), "no log was read");
    assert_eq!(values(&found), first);
    // A gather of another key reads the logs.
    let other = store.gather(b"x").await.unwrap();
    assert!(other.iter().any(|g| !g.problems.is_empty()));
}

#[tokio::test]
async fn the_first_change_moves_it_aside_and_the_next_close_writes_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    let store = FsStorage::open(dir.path()).unwrap();
    let gathered = store.gather(KEY).await.unwrap();
    store.write(&NS_A, vec![put(KEY, b"a2")]).await.unwrap();
    assert!(
        !dir.path().join(SNAPSHOT).exists(),
        "moved aside before the log changed"
    );
    assert!(dir.path().join(BASE).is_file(), "kept as the next one's base");
    store.write(&NS_B, vec![put(KEY, b"b1")]).await.unwrap();
    store.write(&NS_C, vec![del(KEY)]).await.unwrap();
    store.remove(&NS_B).await.unwrap();
    let new: Namespace = [0xdd; 32];
    store.write(&new, vec![put(KEY, b"d1")]).await.unwrap();
    store.write(&new, vec![put(b"y", b"more")]).await.unwrap();
    assert_eq!(gathered.len(), 3);
    drop(store);
    assert!(dir.path().join(SNAPSHOT).is_file());
    assert!(!dir.path().join(BASE).exists(), "the base is in the new snapshot");

    // What the logs say, and what the snapshot says, agree.
    let store = FsStorage::open(dir.path()).unwrap();
    let from_snapshot = values(&store.gather(KEY).await.unwrap());
    std::fs::remove_file(dir.path().join(SNAPSHOT)).unwrap();
    drop(store);
    let store = FsStorage::open(dir.path()).unwrap();
    let from_logs = values(&store.gather(KEY).await.unwrap());
    assert_eq!(from_snapshot, from_logs);
    // NS_C held only the key: deleting it removed the namespace.
    let expected: BTreeMap<Namespace, Option<Vec<u8>>> =
        [(NS_A, Some(b"a2".to_vec())), (new, Some(b"d1".to_vec()))].into();
    assert_eq!(from_logs, expected);
}

#[tokio::test]
async fn a_crash_after_a_change_leaves_no_snapshot_and_the_logs_win() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    let store = FsStorage::open(dir.path()).unwrap();
    store.gather(KEY).await.unwrap();
    store.write(&NS_A, vec![put(KEY, b"after")]).await.unwrap();
    // No destructor: as a kill -9 would leave it.
    std::mem::forget(store);
    assert!(!dir.path().join(SNAPSHOT).exists());
    assert!(dir.path().join(BASE).is_file());
    let store = FsStorage::open(dir.path()).unwrap();
    assert!(!dir.path().join(BASE).exists(), "a stale base is removed, never read");
    let found = values(&store.gather(KEY).await.unwrap());
    assert_eq!(found.get(&NS_A), Some(&Some(b"after".to_vec())));
}

#[tokio::test]
async fn writes_before_a_gather_or_a_damaged_snapshot_fall_back_to_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let first = closed_store(dir.path()).await;
    // Damaged: flipped byte.
    let path = dir.path().join(SNAPSHOT);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    scribble(dir.path(), &NS_C);
    let store = FsStorage::open(dir.path()).unwrap();
    let found = store.gather(KEY).await.unwrap();
    assert!(
        found.iter().any(|g| g.ns == NS_C && !g.problems.is_empty()),
        "the logs were read"
    );
    assert_eq!(values(&found).get(&NS_A), first.get(&NS_A));
    drop(store);

    // A store written without a gather writes no snapshot at close.
    let other = tempfile::tempdir().unwrap();
    let store = FsStorage::open(other.path()).unwrap();
    store.write(&NS_A, vec![put(KEY, b"a")]).await.unwrap();
    drop(store);
    assert!(!other.path().join(SNAPSHOT).exists());
}

#[tokio::test]
async fn a_checkpoint_writes_it_while_the_store_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    store.write(&NS_A, vec![put(KEY, b"a1")]).await.unwrap();
    store.gather(KEY).await.unwrap();
    store.checkpoint().await.unwrap();
    assert!(dir.path().join(SNAPSHOT).is_file());
    // Another handle of the same store keeps it alive: only the checkpoint wrote.
    let other = store.clone();
    store.write(&NS_A, vec![put(KEY, b"a2")]).await.unwrap();
    assert!(!dir.path().join(SNAPSHOT).exists(), "a write undoes it");
    drop(store);
    assert!(!dir.path().join(SNAPSHOT).exists());
    other.checkpoint().await.unwrap();
    drop(other);
    let store = FsStorage::open(dir.path()).unwrap();
    scribble(dir.path(), &NS_A);
    let found = store.gather(KEY).await.unwrap();
    assert!(found[0].problems.is_empty(), "read from the snapshot");
    assert_eq!(found[0].value.as_deref(), Some(&b"a2"[..]));
}
