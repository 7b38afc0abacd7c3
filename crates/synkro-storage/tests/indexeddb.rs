//! The IndexedDB backend in real headless Chromium (wasm-bindgen-test):
//! `scripts/test.sh` runs it with `wasm-bindgen-test-runner`.
//!
//! Where a failure cannot be provoked for real (a full quota is a share of
//! the disk), a test patches the browser's IndexedDB prototypes to make it
//! happen, so the backend's own code path still runs end to end.
#![cfg(target_arch = "wasm32")]

mod common;

use common::contract::conformance;
use common::{NS_A, assert_clean, del, put};
use js_sys::{Array, Function, Promise, Uint8Array};
use synkro_storage::{IndexedDbStorage, ProblemKind, Storage, StorageError, from_dom_exception};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{DomException, IdbDatabase, IdbFactory, IdbRequest, IdbTransactionMode};

wasm_bindgen_test_configure!(run_in_browser);

async fn fresh(name: &str) -> IndexedDbStorage {
    IndexedDbStorage::delete(name).await.expect("delete old test database");
    IndexedDbStorage::open(name).await.expect("open")
}

fn records(loaded: &synkro_storage::Loaded) -> Vec<(&[u8], &[u8])> {
    loaded
        .records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect()
}

// --- Raw IndexedDB, bypassing the backend ---------------------------------

fn factory() -> IdbFactory {
    js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .expect("indexedDB")
        .dyn_into()
        .expect("an IDBFactory")
}

/// The request's result once it succeeds; panics on failure.
async fn done(request: &IdbRequest) -> JsValue {
    let p = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    JsFuture::from(p).await.expect("request failed");
    request.result().expect("result")
}

async fn raw_open(name: &str, version: Option<u32>) -> IdbDatabase {
    let request = match version {
        Some(v) => factory().open_with_u32(name, v),
        None => factory().open(name),
    }
    .expect("open");
    done(&request).await.dyn_into().expect("database")
}

/// Store `value` under `key` in the `records` store as is.
async fn raw_put(name: &str, key: &[u8], value: &JsValue) {
    let db = raw_open(name, None).await;
    let tx = db
        .transaction_with_str_and_mode("records", IdbTransactionMode::Readwrite)
        .expect("tx");
    let request = tx
        .object_store("records")
        .expect("store")
        .put_with_key(value, &Uint8Array::from(key).into())
        .expect("put");
    done(&request).await;
    let committed = Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    });
    JsFuture::from(committed).await.expect("commit");
    db.close();
}

fn js(args: &str, body: &str) -> Function {
    Function::new_with_args(args, body)
}

// --- Tests -----------------------------------------------------------------

#[wasm_bindgen_test]
async fn indexeddb_conformance() {
    let name = "synkro-test-conformance";
    let model = conformance(&fresh(name).await).await;
    // Everything acknowledged is still there after a reopen.
    let s = IndexedDbStorage::open(name).await.expect("reopen");
    assert_clean(&s.load(&NS_A).await.expect("load"), &model);
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![NS_A]);
}

#[wasm_bindgen_test]
async fn write_close_reopen_read_back() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let s = fresh("synkro-test-reopen").await;
    s.write(&a, vec![put(b"k1", b"one"), put(b"k2", b"two"), put(b"k1", b"uno")])
        .await
        .expect("write");
    s.write(&b, vec![put(b"x", &[0xFF; 1000])]).await.expect("write");
    s.write(&a, vec![del(b"k2")]).await.expect("delete");
    drop(s);

    let s = IndexedDbStorage::open("synkro-test-reopen").await.expect("reopen");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![a, b]);
    let loaded = s.load(&a).await.expect("load");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(
        records(&loaded),
        vec![(&b"k1"[..], &b"uno"[..])],
        "later op on a key wins"
    );
    assert_eq!(s.load(&b).await.expect("load").records[0].1, vec![0xFF; 1000]);
    assert!(s.load(&[9u8; 32]).await.expect("load").records.is_empty());
}

#[wasm_bindgen_test]
async fn keys_load_sorted_and_stay_inside_their_namespace() {
    // Namespaces next to each other in key order, keys of every length:
    // the key range of one must not reach into the other.
    let (low, high) = ([0x10u8; 32], {
        let mut n = [0x10u8; 32];
        n[31] = 0x11;
        n
    });
    let s = fresh("synkro-test-ranges").await;
    let longest = vec![0xFFu8; 255];
    s.write(
        &low,
        vec![put(&longest, b"max"), put(b"\x00", b"min"), put(b"m", b"mid")],
    )
    .await
    .expect("write");
    s.write(&high, vec![put(b"\x00", b"other")]).await.expect("write");
    let loaded = s.load(&low).await.expect("load");
    assert_eq!(
        records(&loaded),
        vec![
            (&b"\x00"[..], &b"min"[..]),
            (&b"m"[..], &b"mid"[..]),
            (longest.as_slice(), &b"max"[..])
        ]
    );
    assert_eq!(
        records(&s.load(&high).await.expect("load")),
        vec![(&b"\x00"[..], &b"other"[..])]
    );
}

#[wasm_bindgen_test]
async fn namespaces_list_exactly_those_with_records() {
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let s = fresh("synkro-test-namespaces").await;
    assert!(s.namespaces().await.expect("namespaces").is_empty());
    s.write(&c, vec![put(b"k", b"v")]).await.expect("write");
    s.write(&a, vec![put(b"k", b"v"), put(b"l", b"w")])
        .await
        .expect("write");
    // Put then delete of the same key in one write leaves nothing behind.
    s.write(&b, vec![put(b"k", b"v"), del(b"k")]).await.expect("write");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![a, c]);

    // Deleting one of two records keeps the namespace; the last drops it.
    s.write(&a, vec![del(b"k")]).await.expect("delete");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![a, c]);
    s.write(&a, vec![del(b"l"), del(b"never-there")]).await.expect("delete");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![c]);

    s.remove(&c).await.expect("remove");
    s.remove(&[7u8; 32])
        .await
        .expect("removing an absent namespace is fine");
    assert!(s.namespaces().await.expect("namespaces").is_empty());
    assert!(s.load(&c).await.expect("load").records.is_empty());
}

#[wasm_bindgen_test]
async fn remove_takes_one_namespace_and_leaves_the_others() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let s = fresh("synkro-test-remove").await;
    s.write(&a, vec![put(b"k", b"a"), put(&[0xFF; 255], b"a")])
        .await
        .expect("write");
    s.write(&b, vec![put(b"k", b"b")]).await.expect("write");
    s.remove(&a).await.expect("remove");
    drop(s);
    let s = IndexedDbStorage::open("synkro-test-remove").await.expect("reopen");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![b]);
    assert!(s.load(&a).await.expect("load").records.is_empty());
    assert_eq!(records(&s.load(&b).await.expect("load")), vec![(&b"k"[..], &b"b"[..])]);
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
    let err = s.write(&ns, vec![put(b"", b"1")]).await.expect_err("empty key");
    assert!(matches!(err, StorageError::InvalidKey { len: 0 }), "{err}");
    assert!(s.load(&ns).await.expect("load").records.is_empty(), "all or nothing");
    assert!(s.namespaces().await.expect("namespaces").is_empty());
}

#[wasm_bindgen_test]
async fn writes_ask_for_strict_durability() {
    // Chromium's default is "relaxed": `complete` before the data is on disk.
    let spy = js(
        "",
        "const original = IDBDatabase.prototype.transaction;
         const seen = [];
         IDBDatabase.prototype.transaction = function (...args) {
           const tx = original.apply(this, args);
           seen.push(tx.mode + ':' + tx.durability);
           return tx;
         };
         return [seen, () => { IDBDatabase.prototype.transaction = original; }];",
    )
    .call0(&JsValue::NULL)
    .expect("install spy");
    let spy: Array = spy.unchecked_into();
    let s = fresh("synkro-test-durability").await;
    let ns = [6u8; 32];
    let written = s.write(&ns, vec![put(b"k", b"v")]).await;
    let removed = s.remove(&ns).await;
    let _ = s.load(&ns).await;
    let restore: Function = spy.get(1).unchecked_into();
    restore.call0(&JsValue::NULL).expect("restore");
    written.expect("write");
    removed.expect("remove");
    let seen: Vec<String> = Array::from(&spy.get(0)).iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(seen, ["readwrite:strict", "readwrite:strict", "readonly:default"]);
}

/// When the transaction of the `nth` put from now aborts.
#[derive(Clone, Copy)]
enum Abort {
    /// Right after that put: the requests queued after it throw.
    AtPut,
    /// Once the backend has queued everything, as when a commit runs out
    /// of quota.
    AtCommit,
}

/// Make the `nth` put from now abort its transaction, as the browser does
/// when it runs out of quota: the transaction's `error` becomes `error`
/// (or stays null, as for a plain `abort()`).
fn abort_at_put(nth: u32, when: Abort, error: Option<&DomException>) {
    js(
        "nth, atCommit, error",
        "const original = IDBObjectStore.prototype.put;
         IDBObjectStore.prototype.put = function (...args) {
           const request = original.apply(this, args);
           if (--nth === 0) {
             IDBObjectStore.prototype.put = original;
             const tx = this.transaction;
             const abort = () => {
               tx.abort();
               if (error) Object.defineProperty(tx, 'error', { value: error });
             };
             if (atCommit) queueMicrotask(abort); else abort();
           }
           return request;
         };",
    )
    .call3(
        &JsValue::NULL,
        &nth.into(),
        &matches!(when, Abort::AtCommit).into(),
        &error.map_or(JsValue::NULL, Into::into),
    )
    .expect("install abort");
}

#[wasm_bindgen_test]
async fn a_quota_abort_is_typed_and_stores_none_of_the_write() {
    let (ns, fresh_ns) = ([4u8; 32], [5u8; 32]);
    let s = fresh("synkro-test-quota-abort").await;
    s.write(&ns, vec![put(b"a", b"old a"), put(b"b", b"old b")])
        .await
        .expect("write");

    let full = DomException::new_with_message_and_name("The quota has been exceeded.", "QuotaExceededError")
        .expect("DOMException");
    abort_at_put(2, Abort::AtPut, Some(&full));
    let err = s
        .write(
            &ns,
            vec![put(b"a", b"new a"), del(b"b"), put(b"c", b"new c"), put(b"d", b"d")],
        )
        .await
        .expect_err("aborted");
    match &err {
        StorageError::QuotaExceeded { detail } => assert!(detail.contains("quota"), "{detail}"),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert!(err.to_string().contains("storage for this site is full"), "{err}");
    // Nothing of it: a is old, b is back, c and d never came.
    let loaded = s.load(&ns).await.expect("load");
    assert_eq!(
        records(&loaded),
        vec![(&b"a"[..], &b"old a"[..]), (&b"b"[..], &b"old b"[..])]
    );

    // The first write to a namespace, aborted at commit: not listed either.
    abort_at_put(1, Abort::AtCommit, Some(&full));
    let err = s.write(&fresh_ns, vec![put(b"k", b"v")]).await.expect_err("aborted");
    assert!(matches!(err, StorageError::QuotaExceeded { .. }), "{err:?}");
    assert_eq!(s.namespaces().await.expect("namespaces"), vec![ns]);

    // An abort without a reason is still an error, not a success.
    abort_at_put(1, Abort::AtCommit, None);
    let err = s.write(&ns, vec![put(b"a", b"x")]).await.expect_err("aborted");
    assert!(
        matches!(&err, StorageError::Browser { name, .. } if name == "AbortError"),
        "{err:?}"
    );

    // And the store works on.
    s.write(&ns, vec![put(b"a", b"newer a")])
        .await
        .expect("write after aborts");
    assert_eq!(s.load(&ns).await.expect("load").records[0].1, b"newer a");
}

#[wasm_bindgen_test]
fn dom_exceptions_map_to_typed_errors() {
    let full = DomException::new_with_message_and_name("The quota has been exceeded.", "QuotaExceededError")
        .expect("DOMException");
    match from_dom_exception(&full) {
        StorageError::QuotaExceeded { detail } => assert_eq!(detail, "The quota has been exceeded."),
        other => panic!("{other}"),
    }
    let other = DomException::new_with_message_and_name("no such key", "DataError").expect("DOMException");
    match from_dom_exception(&other) {
        e @ StorageError::Browser { .. } => {
            let text = e.to_string();
            assert!(text.contains("DataError") && text.contains("no such key"), "{text}");
        }
        other => panic!("{other}"),
    }
}

#[wasm_bindgen_test]
async fn damaged_records_are_reported_and_the_rest_loads() {
    let ns = [4u8; 32];
    let name = "synkro-test-corrupt";
    let s = fresh(name).await;
    s.write(
        &ns,
        vec![
            put(b"a", b"intact"),
            put(b"b", b"will be damaged"),
            put(b"c", b"intact too"),
            put(b"d", b"will be cut short"),
            put(b"e", b"will not be bytes"),
        ],
    )
    .await
    .expect("write");
    drop(s);

    // Damage records behind the backend's back, as a bad disk or a buggy
    // extension might: flipped bytes, a value shorter than its checksum,
    // and a value that is not bytes at all.
    let key = |k: &[u8]| [&ns[..], k].concat();
    raw_put(name, &key(b"b"), &Uint8Array::from(&[0u8, 1, 2, 3, 4, 5][..])).await;
    raw_put(name, &key(b"d"), &Uint8Array::from(&[9u8, 9][..])).await;
    raw_put(name, &key(b"e"), &JsValue::from_str("not bytes")).await;

    let s = IndexedDbStorage::open(name).await.expect("reopen");
    let loaded = s.load(&ns).await.expect("load");
    assert_eq!(
        records(&loaded),
        vec![(&b"a"[..], &b"intact"[..]), (&b"c"[..], &b"intact too"[..])]
    );
    let kinds: Vec<ProblemKind> = loaded.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::BadChecksum,
            ProblemKind::BadChecksum,
            ProblemKind::BadFrame
        ]
    );
    let where_ = loaded.problems[0].to_string();
    assert!(where_.contains(name) && where_.contains("record 62"), "{where_}");
    // Gathering reads only the record asked for: damage there is reported
    // (and gives no value), damage elsewhere shows at load.
    let gathered = s.gather(b"b").await.expect("gather");
    assert!(gathered[0].value.is_none() && gathered[0].problems.len() == 1);
    let gathered = s.gather(b"a").await.expect("gather");
    assert_eq!(gathered[0].value.as_deref(), Some(&b"intact"[..]));
    assert!(gathered[0].problems.is_empty());
    // Damage does not stop writes: rewriting the record heals it.
    s.write(&ns, vec![put(b"b", b"rewritten")]).await.expect("write");
    assert_eq!(s.load(&ns).await.expect("load").problems.len(), 2);
}

#[wasm_bindgen_test]
async fn an_upgrade_from_another_tab_closes_this_connection() {
    let name = "synkro-test-versionchange";
    let s = fresh(name).await;
    s.write(&[5u8; 32], vec![put(b"k", b"v")]).await.expect("write");
    // Another tab opens a newer version: ours must step aside, not block it.
    let newer = raw_open(name, Some(2)).await;
    newer.close();
    let err = s.write(&[5u8; 32], vec![put(b"k", b"w")]).await.expect_err("closed");
    assert!(matches!(err, StorageError::ClosedByOtherConnection), "{err}");
    assert!(matches!(
        s.load(&[5u8; 32]).await,
        Err(StorageError::ClosedByOtherConnection)
    ));
    assert!(matches!(
        s.namespaces().await,
        Err(StorageError::ClosedByOtherConnection)
    ));
    assert!(matches!(
        s.remove(&[5u8; 32]).await,
        Err(StorageError::ClosedByOtherConnection)
    ));
    drop(s);
    // A database of a newer version is refused, not damaged.
    let err = IndexedDbStorage::open(name).await.expect_err("newer version");
    assert!(
        matches!(&err, StorageError::Browser { name, .. } if name == "VersionError"),
        "{err:?}"
    );
    IndexedDbStorage::delete(name).await.expect("cleanup");
}

#[wasm_bindgen_test]
async fn a_deletion_from_another_tab_closes_this_connection() {
    let name = "synkro-test-deleted";
    let s = fresh(name).await;
    s.write(&[5u8; 32], vec![put(b"k", b"v")]).await.expect("write");
    IndexedDbStorage::delete(name)
        .await
        .expect("the deletion is not blocked");
    let err = s.load(&[5u8; 32]).await.expect_err("closed");
    assert!(matches!(err, StorageError::ClosedByOtherConnection), "{err}");
    // Reopening starts an empty database.
    let s = IndexedDbStorage::open(name).await.expect("reopen");
    assert!(s.namespaces().await.expect("namespaces").is_empty());
}

#[wasm_bindgen_test]
async fn dropping_the_storage_closes_its_connection() {
    let name = "synkro-test-drop";
    let s = fresh(name).await;
    s.write(&[5u8; 32], vec![put(b"k", b"v")]).await.expect("write");
    drop(s);
    // An open connection would get `versionchange` and the deletion a
    // `blocked` event first; a closed one gets neither.
    let request = factory().delete_database(name).expect("delete");
    let outcome = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(
            &js("resolve", "return () => resolve('deleted')")
                .call1(&JsValue::NULL, &resolve)
                .expect("fn")
                .unchecked_into(),
        ));
        request.set_onblocked(Some(
            &js("resolve", "return () => resolve('blocked')")
                .call1(&JsValue::NULL, &resolve)
                .expect("fn")
                .unchecked_into(),
        ));
        request.set_onerror(Some(&reject));
    });
    let outcome = JsFuture::from(outcome).await.expect("delete");
    assert_eq!(outcome.as_string().as_deref(), Some("deleted"));
}
