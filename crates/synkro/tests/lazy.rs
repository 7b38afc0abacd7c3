//! Documents load on first use and unload under the memory budget: opening
//! reads each document's index entry only, a handle or a peer's need loads
//! a document, idle ones leave memory, and a home written before the index
//! gets one without losing anything.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use synkro::{DocId, NodeConfig, Repo, RepoConfig, Role};
use synkro_storage::{FsStorage, Storage, WriteOp};

mod common;
use common::until;

fn tiny_budget() -> RepoConfig {
    RepoConfig {
        node: NodeConfig {
            memory_budget: 1,
            ..NodeConfig::default()
        },
    }
}

/// `n` named documents, each with a value, made in the home at `dir`.
async fn populate(dir: &Path, n: usize) -> Vec<DocId> {
    let repo = Repo::open(dir).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let doc = repo.create().await.unwrap();
        doc.set("n", &json!(i)).unwrap();
        doc.set_name(Some(format!("doc {i}"))).await.unwrap();
        doc.flush().await.unwrap();
        ids.push(doc.id());
    }
    repo.close().await.unwrap();
    ids
}

#[tokio::test]
async fn opening_reads_the_index_and_documents_load_on_use() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 30).await;

    let repo = Repo::open(home.path()).await.unwrap();
    let stats = repo.stats();
    assert_eq!((stats.documents, stats.loaded), (30, 0), "opening loads no document");
    assert!(repo.load_problems().is_empty(), "{:?}", repo.load_problems());
    // Listing comes from the index, names included (sealed in the entry).
    let info = repo.info(&ids[7]).unwrap();
    assert_eq!(info.name.as_deref(), Some("doc 7"));
    assert_eq!(info.my_role, Some(Role::Admin));
    assert!(info.readable);
    assert_eq!(repo.stats().loaded, 0, "info does not load");

    let doc = repo.find(&ids[7]).await.unwrap();
    assert_eq!(doc.get("n").unwrap(), Some(json!(7)));
    assert_eq!(repo.stats().loaded, 1, "a handle loads its document only");
    doc.set("n", &json!("seven")).unwrap();
    doc.flush().await.unwrap();
    drop(doc);
    repo.close().await.unwrap();

    let repo = Repo::open(home.path()).await.unwrap();
    assert_eq!(
        repo.find(&ids[7]).await.unwrap().get("n").unwrap(),
        Some(json!("seven"))
    );
}

#[tokio::test]
async fn idle_documents_unload_under_the_memory_budget_and_come_back() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 10).await;
    let repo = Repo::open_home(home.path(), tiny_budget()).await.unwrap();

    let held = repo.find(&ids[0]).await.unwrap();
    for id in &ids[1..] {
        let doc = repo.find(id).await.unwrap();
        doc.set("touched", &json!(true)).unwrap();
        doc.flush().await.unwrap();
    }
    // Every handle but one is gone: over a budget of one byte, the idle
    // documents leave memory; the one with a live handle stays.
    until("idle documents to unload", || repo.stats().loaded == 1).await;
    assert_eq!(held.get("n").unwrap(), Some(json!(0)), "a pinned document stays usable");

    for (i, id) in ids.iter().enumerate().skip(1) {
        let doc = repo.find(id).await.unwrap();
        assert_eq!(doc.get("n").unwrap(), Some(json!(i)));
        assert_eq!(
            doc.get("touched").unwrap(),
            Some(json!(true)),
            "an edit made before unloading"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_serves_documents_it_unloaded() {
    let (ha, hr, hb) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Repo::open(ha.path()).await.unwrap();
    let relay = Repo::open_home(hr.path(), tiny_budget()).await.unwrap();
    let b = Repo::open(hb.path()).await.unwrap();

    let doc = a.create().await.unwrap();
    doc.set("note", &json!("through an unloaded relay")).unwrap();
    doc.grant_replica(relay.member_id()).await.unwrap();
    let token = doc.share(Role::Write).await.unwrap();
    doc.flush().await.unwrap();
    let link = synkro::link::connect(&a, &relay).await.unwrap();
    a.wait_synced(relay.member_id(), Duration::from_secs(10)).await.unwrap();
    link.close().await;

    // The relay holds the document but no longer in memory.
    until("the relay to unload it", || relay.stats().loaded == 0).await;
    assert_eq!(relay.stats().documents, 1);

    // B joins through the relay alone: the relay loads it for B's need.
    let bdoc = b.join(&token).await.unwrap();
    let _link = synkro::link::connect(&relay, &b).await.unwrap();
    until("B to read the note", || {
        bdoc.get("note").ok().flatten() == Some(json!("through an unloaded relay"))
    })
    .await;
}

#[tokio::test]
async fn a_home_written_before_the_index_gets_one_and_loses_nothing() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 5).await;
    // Take the index entries out, as a home of the previous release was.
    let storage = FsStorage::open(home.path().join("docs")).unwrap();
    for ns in storage.namespaces().await.unwrap() {
        let loaded = storage.load(&ns).await.unwrap();
        assert!(
            loaded
                .records
                .iter()
                .any(|(k, _)| k.as_slice() == synkro_core::INDEX_RECORD)
        );
        let ops = vec![WriteOp::Delete {
            key: synkro_core::INDEX_RECORD.to_vec(),
        }];
        storage.write(&ns, ops).await.unwrap();
    }
    drop(storage);

    // Opened: each document without an entry is read whole and gets one.
    let repo = Repo::open(home.path()).await.unwrap();
    assert_eq!(
        repo.stats().loaded,
        5,
        "documents without an index entry load at opening"
    );
    assert!(repo.load_problems().is_empty(), "{:?}", repo.load_problems());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(repo.info(id).unwrap().name, Some(format!("doc {i}")));
    }
    repo.close().await.unwrap();

    // The next opening reads the index only.
    let repo = Repo::open(home.path()).await.unwrap();
    assert_eq!(repo.stats().loaded, 0);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(repo.find(id).await.unwrap().get("n").unwrap(), Some(json!(i)));
    }
}
