//! Damaged storage files: the damage is reported, the rest loads. After a
//! clean close a document's damage shows when it is read (opening reads
//! the index snapshot, not the logs); after a crash (no snapshot) opening
//! reads every log and finds it at once.

use std::path::{Path, PathBuf};

use serde_json::json;
use synkro::{DocId, Repo};

/// Three documents, each with `edits` separately flushed changes.
async fn populate(home: &Path, edits: usize) -> Vec<DocId> {
    let repo = Repo::open(home).await.unwrap();
    let mut ids = Vec::new();
    for d in 0..3 {
        let doc = repo.create().await.unwrap();
        doc.set("items", &json!([])).unwrap();
        for i in 0..edits {
            doc.set(&format!("items/{i}"), &json!(format!("doc {d} item {i}")))
                .unwrap();
            doc.flush().await.unwrap();
        }
        ids.push(doc.id());
    }
    ids
}

fn log_file(home: &Path, doc: &DocId) -> PathBuf {
    let hex: String = doc.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    home.join("docs").join(format!("{hex}.log"))
}

async fn items(repo: &Repo, doc: &DocId) -> Vec<serde_json::Value> {
    repo.find(doc)
        .await
        .unwrap()
        .get("items")
        .unwrap()
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_flipped_byte_is_reported_and_the_rest_loads() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 10).await;
    let path = log_file(home.path(), &ids[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let repo = Repo::open(home.path())
        .await
        .expect("a damaged file does not stop the repo from opening");
    for id in &ids {
        let _ = repo.find(id).await;
    }
    assert!(
        repo.load_problems().iter().any(|p| p.doc == ids[1]),
        "damage not reported: {:?}",
        repo.load_problems()
    );
    assert!(
        repo.load_problems().iter().all(|p| p.doc == ids[1]),
        "only the damaged doc has problems"
    );
    for other in [ids[0], ids[2]] {
        assert_eq!(items(&repo, &other).await.len(), 10, "undamaged documents load fully");
    }
    // The damaged document keeps what is intact: its start at least.
    let damaged = items(&repo, &ids[1]).await;
    assert!(
        !damaged.is_empty() && damaged[0] == json!("doc 1 item 0"),
        "{damaged:?}"
    );
    // And it still works.
    let doc = repo.find(&ids[1]).await.unwrap();
    doc.set("after", &json!("repair")).unwrap();
    doc.flush().await.unwrap();
}

#[tokio::test]
async fn truncation_at_any_point_keeps_the_prefix() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 6).await;
    let path = log_file(home.path(), &ids[0]);
    let full = std::fs::read(&path).unwrap();
    let mut last_len = usize::MAX;
    for cut in [full.len() - 1, full.len() * 3 / 4, full.len() / 2, full.len() / 4, 10] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let repo = Repo::open(home.path()).await.expect("opens after truncation");
        let _ = repo.find(&ids[0]).await;
        assert!(
            repo.load_problems().iter().any(|p| p.doc == ids[0]),
            "truncation at {cut} not reported"
        );
        let n = repo.find(&ids[0]).await.map(|d| d.get("items").ok().flatten());
        let len = match n {
            Ok(Some(v)) => v.as_array().map_or(0, Vec::len),
            _ => 0,
        };
        assert!(len <= last_len, "shorter file, more data?");
        last_len = len;
        for other in [ids[1], ids[2]] {
            assert_eq!(items(&repo, &other).await.len(), 6);
        }
    }
    assert!(last_len < 6, "cutting most of the file must lose its tail");
}

#[tokio::test]
async fn a_garbage_document_file_is_reported_not_fatal() {
    let home = tempfile::tempdir().unwrap();
    let ids = populate(home.path(), 3).await;
    let garbage = home.path().join("docs").join(format!("{}.log", "ab".repeat(32)));
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&garbage, noise).unwrap();

    // After a clean close, opening reads the snapshot: the stray file is
    // not looked at.
    let repo = Repo::open(home.path()).await.expect("opens beside a garbage file");
    assert_eq!(repo.list().len(), ids.len(), "garbage must not appear as a document");
    for id in &ids {
        assert_eq!(items(&repo, id).await.len(), 3);
    }
    drop(repo);
    // As after a crash (no snapshot): every log is read, the garbage too.
    let _ = std::fs::remove_file(home.path().join("docs").join("gathered.snapshot"));
    let repo = Repo::open(home.path()).await.expect("opens beside a garbage file");
    assert!(!repo.load_problems().is_empty(), "garbage not reported");
    assert_eq!(repo.list().len(), ids.len(), "garbage must not appear as a document");
    for id in &ids {
        assert_eq!(items(&repo, id).await.len(), 3);
    }
}
