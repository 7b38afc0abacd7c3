//! The `Storage` contract as one scenario, run against every backend: the
//! native ones in `conformance.rs`, IndexedDB in `indexeddb.rs`.

use synkro_storage::{MAX_KEY_LEN, MAX_VALUE_LEN, MAX_WRITE_LEN, Storage, StorageError, WriteOp};

use super::{Model, NS_A, NS_B, apply, assert_clean, del, put};

/// Writes `ops` to the store and to the model, then checks they agree.
async fn step(store: &dyn Storage, model: &mut Model, ops: Vec<WriteOp>) {
    apply(model, &ops);
    store.write(&NS_A, ops).await.expect("write");
    assert_clean(&store.load(&NS_A).await.expect("load"), model);
}

/// Runs the whole contract against `store`, which must start empty.
/// Returns the final contents of `NS_A`.
pub async fn conformance(store: &dyn Storage) -> Model {
    assert!(store.namespaces().await.expect("namespaces").is_empty());
    assert_clean(&store.load(&NS_A).await.expect("load"), &Model::new());

    let mut model = Model::new();
    // Put; load comes back sorted by key, not in write order.
    step(
        store,
        &mut model,
        vec![put(b"b", b"2"), put(b"a", b"1"), put(b"c", b"3")],
    )
    .await;
    assert_eq!(
        store.load(&NS_A).await.expect("load").records,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
    // Overwrite.
    step(store, &mut model, vec![put(b"b", b"22")]).await;
    // Delete, and delete of an absent key.
    step(store, &mut model, vec![del(b"a"), del(b"nope")]).await;
    // Within one write, later ops on a key win.
    step(
        store,
        &mut model,
        vec![put(b"d", b"1"), put(b"d", b"2"), put(b"e", b"x"), del(b"e")],
    )
    .await;
    // Empty values and maximal keys are fine.
    step(
        store,
        &mut model,
        vec![put(b"empty", b""), put(&[0xFF; MAX_KEY_LEN], b"max key")],
    )
    .await;
    // An empty write is a no-op.
    step(store, &mut model, vec![]).await;

    // Namespaces: listed sorted, only while they hold records.
    store.write(&NS_B, vec![put(b"x", b"y")]).await.expect("write B");
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_B, NS_A]);
    store.write(&NS_B, vec![del(b"x")]).await.expect("delete B");
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_A]);
    assert_clean(&store.load(&NS_B).await.expect("load B"), &Model::new());
    // A delete-only write to an absent namespace creates nothing.
    store.write(&NS_B, vec![del(b"x")]).await.expect("delete absent");
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_A]);

    // Gather: one record of every namespace, absent where it is not there.
    store.write(&NS_B, vec![put(b"x", b"y")]).await.expect("write B");
    let gathered = store.gather(b"b").await.expect("gather");
    let found: Vec<_> = gathered.iter().map(|g| (g.ns, g.value.clone())).collect();
    assert_eq!(found, vec![(NS_B, None), (NS_A, Some(b"22".to_vec()))]);
    assert!(gathered.iter().all(|g| g.problems.is_empty()));
    store.write(&NS_B, vec![del(b"x")]).await.expect("delete B");

    // Remove drops a namespace and leaves the others alone.
    store
        .write(&NS_B, vec![put(b"x", b"y"), put(b"z", b"w")])
        .await
        .expect("write B");
    store.remove(&NS_B).await.expect("remove");
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_A]);
    assert_clean(&store.load(&NS_B).await.expect("load B"), &Model::new());
    store.remove(&NS_B).await.expect("remove absent");
    // A removed namespace can be used again.
    store.write(&NS_B, vec![put(b"again", b"1")]).await.expect("write B");
    assert_eq!(
        store.load(&NS_B).await.expect("load B").records,
        vec![(b"again".to_vec(), b"1".to_vec())]
    );
    store.remove(&NS_B).await.expect("remove");

    // Invalid writes are rejected whole, before anything is stored.
    let err = store
        .write(&NS_A, vec![put(b"new", b"1"), put(b"", b"empty key")])
        .await;
    assert!(matches!(err, Err(StorageError::InvalidKey { len: 0 })), "{err:?}");
    let err = store
        .write(&NS_A, vec![put(b"new", b"1"), del(&[1; MAX_KEY_LEN + 1])])
        .await;
    assert!(
        matches!(err, Err(StorageError::InvalidKey { len }) if len == MAX_KEY_LEN + 1),
        "{err:?}"
    );
    let big = vec![0u8; MAX_VALUE_LEN + 1];
    let err = store.write(&NS_A, vec![put(b"new", b"1"), put(b"big", &big)]).await;
    assert!(
        matches!(err, Err(StorageError::TooLarge { len, max }) if len == MAX_VALUE_LEN + 1 && max == MAX_VALUE_LEN),
        "{err:?}"
    );
    drop(big);
    // Each value is allowed, but together they exceed one write's limit.
    let half = vec![7u8; MAX_VALUE_LEN];
    let err = store
        .write(&NS_A, vec![put(b"h1", &half), put(b"h2", &half), put(b"h3", b"!")])
        .await;
    assert!(
        matches!(err, Err(StorageError::TooLarge { max, .. }) if max == MAX_WRITE_LEN),
        "{err:?}"
    );
    assert_clean(&store.load(&NS_A).await.expect("load"), &model);

    model
}
