//! The file backend holds no descriptor per document: a store of many
//! documents works under the usual limit of 1,024 open files.
#![cfg(target_os = "linux")]

mod common;

use common::put;
use synkro_storage::{FsStorage, Namespace, Storage};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

fn ns(i: u32) -> Namespace {
    let mut ns = [0u8; 32];
    ns[..4].copy_from_slice(&i.to_be_bytes());
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_logs_hold_no_descriptors() {
    const DOCS: u32 = 3_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let before = open_descriptors();
    for i in 0..DOCS {
        store
            .write(&ns(i), vec![put(b"k", &i.to_le_bytes())])
            .await
            .expect("write");
    }
    for i in 0..DOCS {
        let loaded = store.load(&ns(i)).await.expect("load");
        assert_eq!(loaded.records, vec![(b"k".to_vec(), i.to_le_bytes().to_vec())]);
    }
    let held = open_descriptors().saturating_sub(before);
    assert!(held < 32, "{held} descriptors held after writing {DOCS} logs");

    // Reopened, it lists them all and they load.
    drop(store);
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert_eq!(store.namespaces().await.expect("list").len(), DOCS as usize);
    for i in (0..DOCS).step_by(97) {
        assert!(!store.load(&ns(i)).await.expect("load").records.is_empty());
    }
}
