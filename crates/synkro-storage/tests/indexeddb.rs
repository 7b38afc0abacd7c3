//! The IndexedDB backend in real headless Chromium (wasm-bindgen-test):
//! `scripts/test.sh` runs it with `wasm-bindgen-test-runner`.
#![cfg(target_arch = "wasm32")]

use synkro_storage::{IndexedDbStorage, ProblemKind, Storage, StorageError, WriteOp, from_dom_exception};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

async fn fresh(name: &str) -> IndexedDbStorage {
    IndexedDbStorage::delete(name).await.expect("delete old test database");
    IndexedDbStorage::open(name).await.expect("open")
}

#[wasm_bindgen_test]
async fn write_close_reopen_read_back() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let s = fresh("synkro-test-reopen").await;
    s.write(&a, vec![put(b"k1", b"one"), put(b"k2", b"two"), put(b"k1", b"uno")])
        .await
        .expect("write");
    s.write(&b, vec![put(b"x", &[0xFF; 1000])]).await.expect("write");
    s.write(&a, vec![WriteOp::Delete { key: b"k2".to_vec() }])
        .await
        .expect("delete");
    drop(s);

    let s = IndexedDbStorage::open("synkro-test-reopen").await.expect("reopen");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![a, b]);
    let loaded = s.load(&a).await.expect("load");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(
        loaded.records,
        vec![(b"k1".to_vec(), b"uno".to_vec())],
        "later op on a key wins"
    );
    assert_eq!(s.load(&b).await.expect("load").records[0].1, vec![0xFF; 1000]);

    s.remove(&b).await.expect("remove");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![a]);
    assert!(s.load(&b).await.expect("load").records.is_empty());
    // Deleting the last record of a namespace drops it from the index.
    s.write(&a, vec![WriteOp::Delete { key: b"k1".to_vec() }])
        .await
        .expect("delete");
    assert!(s.namespaces().await.expect("namespaces").is_empty());
}

#[wasm_bindgen_test]
async fn invalid_writes_store_nothing() {
    let ns = [3u8; 32];
    let s = fresh("synkro-test-invalid").await;
    let err = s
        .write(&ns, vec![put(b"ok", b"1"), put(&[7u8; 300], b"key too long")])
        .await
        .expect_err("invalid key");
    assert!(matches!(err, StorageError::InvalidKey { len: 300 }), "{err}");
    assert!(s.load(&ns).await.expect("load").records.is_empty(), "all or nothing");
}

#[wasm_bindgen_test]
async fn a_corrupt_record_is_reported_and_the_rest_loads() {
    let ns = [4u8; 32];
    let name = "synkro-test-corrupt";
    let s = fresh(name).await;
    s.write(
        &ns,
        vec![
            put(b"a", b"intact"),
            put(b"b", b"will be damaged"),
            put(b"c", b"intact too"),
        ],
    )
    .await
    .expect("write");
    drop(s);

    // Damage record "b" behind the backend's back, as a bad disk or a buggy
    // extension might.
    let factory = idb::Factory::new().expect("factory");
    let db = factory.open(name, None).expect("open").await.expect("raw open");
    let tx = db
        .transaction(&["records"], idb::TransactionMode::ReadWrite)
        .expect("tx");
    let mut key = ns.to_vec();
    key.extend_from_slice(b"b");
    let garbage = js_sys::Uint8Array::from(&[0u8, 1, 2, 3, 4, 5][..]);
    tx.object_store("records")
        .expect("store")
        .put(&garbage, Some(&js_sys::Uint8Array::from(key.as_slice()).into()))
        .expect("put")
        .await
        .expect("raw put");
    tx.await.expect("commit");
    db.close();

    let s = IndexedDbStorage::open(name).await.expect("reopen");
    let loaded = s.load(&ns).await.expect("load");
    let keys: Vec<&[u8]> = loaded.records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"a"[..], &b"c"[..]]);
    assert_eq!(loaded.problems.len(), 1);
    assert_eq!(loaded.problems[0].kind, ProblemKind::BadChecksum);
}

#[wasm_bindgen_test]
fn quota_errors_are_typed() {
    // A real quota cannot be reached in headless Chromium (it is a share of
    // the disk); the mapping is what can be checked.
    let full = web_sys::DomException::new_with_message_and_name("The quota has been exceeded.", "QuotaExceededError")
        .expect("DOMException");
    match from_dom_exception(&full) {
        StorageError::QuotaExceeded { detail } => assert!(detail.contains("quota")),
        other => panic!("{other}"),
    }
    let other = web_sys::DomException::new_with_message_and_name("nope", "ConstraintError").expect("DOMException");
    assert!(matches!(from_dom_exception(&other), StorageError::Browser { .. }));
    assert!(
        StorageError::QuotaExceeded { detail: "x".into() }
            .to_string()
            .contains("storage for this site is full")
    );
}

#[wasm_bindgen_test]
async fn an_upgrade_from_another_tab_closes_this_connection() {
    let name = "synkro-test-versionchange";
    let s = fresh(name).await;
    s.write(&[5u8; 32], vec![put(b"k", b"v")]).await.expect("write");
    // Another tab opens a newer version: ours must step aside, not block it.
    let factory = idb::Factory::new().expect("factory");
    let newer = factory
        .open(name, Some(2))
        .expect("open v2")
        .await
        .expect("the upgrade is not blocked");
    newer.close();
    let err = s.write(&[5u8; 32], vec![put(b"k", b"w")]).await.expect_err("closed");
    assert!(matches!(err, StorageError::ClosedByOtherConnection), "{err}");
    IndexedDbStorage::delete(name).await.expect("cleanup");
}
