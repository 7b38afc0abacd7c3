//! The `Storage` contract, checked the same way on every backend (the
//! scenario is in `common/contract.rs`; the browser runs it in `indexeddb.rs`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::contract::conformance;
use common::{Model, NS_A, apply, assert_clean, put, records};
use synkro_storage::{FsStorage, MAX_KEY_LEN, MAX_VALUE_LEN, MemoryStorage, Storage, StorageError};

#[tokio::test]
async fn memory_conformance() {
    conformance(&MemoryStorage::new()).await;
}

#[tokio::test]
async fn fs_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = conformance(&FsStorage::open(dir.path()).expect("open")).await;

    // Everything acknowledged is still there after a reopen.
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert_clean(&store.load(&NS_A).await.expect("load"), &model);
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_A]);
}

#[tokio::test]
async fn largest_value_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = FsStorage::open(dir.path()).expect("open");
    let mem = MemoryStorage::new();
    let value: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 251) as u8).collect();
    let mut model = Model::new();
    let ops = vec![put(&[9; MAX_KEY_LEN], &value), put(b"small", b"s")];
    apply(&mut model, &ops);
    for store in [&fs as &dyn Storage, &mem] {
        store.write(&NS_A, ops.clone()).await.expect("write");
        assert_clean(&store.load(&NS_A).await.expect("load"), &model);
    }
    let reopened = FsStorage::open(dir.path()).expect("reopen");
    assert_eq!(reopened.load(&NS_A).await.expect("load").records, records(&model));
}

#[test]
fn errors_tell_the_user_what_to_do() {
    let poisoned = StorageError::Poisoned.to_string();
    assert!(poisoned.contains("restart") && poisoned.contains("disk"), "{poisoned}");
    let io = StorageError::Io {
        path: "/some/dir".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    }
    .to_string();
    assert!(io.contains("/some/dir") && io.contains("check"), "{io}");
    let key = StorageError::InvalidKey { len: 300 }.to_string();
    assert!(key.contains("300") && key.contains(&MAX_KEY_LEN.to_string()), "{key}");
}
