//! Files attached to documents: stored as sealed chunks and a signed
//! manifest in the home, read back after a restart, deduplicated, checked
//! on the way out, and attached only by members who may write.

use std::path::{Path, PathBuf};

use futures::io::AsyncReadExt;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::{BlobMeta, BlobRef, Error, Repo, Role};

mod common;
use common::until;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0; len];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn meta(name: &str) -> BlobMeta {
    BlobMeta {
        mime: "application/pdf".into(),
        name: name.into(),
    }
}

/// The chunk files of `blob`'s document in the home at `home`.
fn chunk_files(home: &Path, blob: &BlobRef) -> Vec<PathBuf> {
    let hex: String = blob.doc.0.iter().map(|b| format!("{b:02x}")).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join("blobs").join(hex))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('c'))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn an_attached_file_reads_back_after_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let data = random(1_200_000, 1);
    let (doc, blob) = {
        let repo = Repo::open(home.path()).await.unwrap();
        let doc = repo.create().await.unwrap();
        let mut seen = Vec::new();
        let blob = doc
            .attach_with_progress(&data[..], meta("plan.pdf"), |n| seen.push(n))
            .await
            .unwrap();
        assert_eq!(seen.last(), Some(&(data.len() as u64)), "progress reaches the end");
        assert_eq!(
            (blob.doc, blob.size, blob.mime.as_str(), blob.name.as_str()),
            (doc.id(), data.len() as u64, "application/pdf", "plan.pdf")
        );
        doc.set("plan", &serde_json::to_value(&blob).unwrap()).unwrap();
        repo.close().await.unwrap();
        (doc.id(), blob)
    };
    let repo = Repo::open(home.path()).await.unwrap();
    let stored: BlobRef = serde_json::from_value(repo.find(&doc).await.unwrap().get("plan").unwrap().unwrap()).unwrap();
    assert_eq!(stored, blob, "the reference kept in the document");
    let mut reading = repo.blob(&stored).await.unwrap();
    assert_eq!(reading.size(), data.len() as u64);
    let mut back = Vec::new();
    while let Some(chunk) = reading.next_chunk().await.unwrap() {
        assert!(chunk.len() <= 256 << 10, "a chunk at a time");
        back.extend(chunk);
        assert_eq!(reading.read(), back.len() as u64);
    }
    assert!(back == data, "the same bytes after a restart");
    let mut streamed = Vec::new();
    repo.blob(&blob)
        .await
        .unwrap()
        .into_async_read()
        .read_to_end(&mut streamed)
        .await
        .unwrap();
    assert!(streamed == data, "the same bytes through AsyncRead");
    // Nothing of the file is in the home in the clear.
    for file in chunk_files(home.path(), &blob) {
        let sealed = std::fs::read(file).unwrap();
        assert!(!sealed.windows(64).any(|w| data.windows(64).next() == Some(w)));
    }
}

#[tokio::test]
async fn one_byte_changed_stores_only_the_chunks_around_it() {
    let home = tempfile::tempdir().unwrap();
    let repo = Repo::open(home.path()).await.unwrap();
    let doc = repo.create().await.unwrap();
    let mut data = random(4 << 20, 2);
    let first = doc.attach(&data[..], meta("a.bin")).await.unwrap();
    let before = chunk_files(home.path(), &first).len();
    assert!(before >= 32, "4 MiB in chunks of about 64 KiB: {before}");
    // The same file again stores nothing new.
    let again = doc.attach(&data[..], meta("a.bin")).await.unwrap();
    assert_eq!(chunk_files(home.path(), &again).len(), before);
    data[2 << 20] ^= 1;
    let second = doc.attach(&data[..], meta("a.bin")).await.unwrap();
    let added = chunk_files(home.path(), &second).len() - before;
    assert!((1..=2).contains(&added), "{added} chunks stored for one byte changed");
    assert!(repo.blob(&second).await.unwrap().to_vec().await.unwrap() == data);
    assert!(repo.blob(&first).await.unwrap().to_vec().await.unwrap() != data);
}

#[tokio::test]
async fn a_damaged_or_missing_chunk_is_reported_and_nothing_wrong_is_returned() {
    let home = tempfile::tempdir().unwrap();
    let repo = Repo::open(home.path()).await.unwrap();
    let doc = repo.create().await.unwrap();
    let data = random(600_000, 3);
    let blob = doc.attach(&data[..], meta("b.bin")).await.unwrap();
    let files = chunk_files(home.path(), &blob);
    let mut sealed = std::fs::read(&files[1]).unwrap();
    sealed[100] ^= 0x40;
    std::fs::write(&files[1], &sealed).unwrap();

    let mut reading = repo.blob(&blob).await.unwrap();
    let mut got = 0;
    let err = loop {
        match reading.next_chunk().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("a damaged blob read to its end"),
            Err(e) => break e,
        }
    };
    // Files are named by hash, not in the blob's order: whichever chunk it
    // was, the chunks before it came back and the error names it.
    assert!(got < files.len(), "the damaged chunk was returned");
    assert!(
        matches!(err, Error::BlobMissing { blob: b, chunk: Some(i) } if b == blob.id && i == got),
        "{err}"
    );
    assert_eq!(err.kind(), synkro::ErrorKind::NotFound);

    // Without its manifest, a blob is unknown here.
    let hex: String = blob.doc.0.iter().map(|b| format!("{b:02x}")).collect();
    let dir = home.path().join("blobs").join(hex);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with('m') {
            std::fs::remove_file(path).unwrap();
        }
    }
    let err = repo.blob(&blob).await.err().expect("no manifest, no blob");
    assert!(matches!(err, Error::BlobMissing { chunk: None, .. }), "{err}");
}

#[tokio::test]
async fn readers_cannot_attach_and_blobs_outlive_a_key_rotation() {
    let alice = Repo::in_memory().await.unwrap();
    let bob = Repo::in_memory().await.unwrap();
    let doc = alice.create().await.unwrap();
    doc.set("title", &json!("Trip")).unwrap();
    let bobs = bob.join(&doc.share(Role::Read).await.unwrap()).await.unwrap();
    let _link = synkro::link::connect(&alice, &bob).await.unwrap();
    until("bob reads the document", || bobs.get("title").ok().flatten().is_some()).await;

    let err = bobs
        .attach(&b"not allowed"[..], meta("x"))
        .await
        .expect_err("a reader attached a file");
    assert_eq!(err.kind(), synkro::ErrorKind::Access, "{err}");

    let before = doc.attach(&random(100_000, 4)[..], meta("old")).await.unwrap();
    doc.revoke(bob.member_id()).await.unwrap();
    let after = doc.attach(&random(100_000, 5)[..], meta("new")).await.unwrap();
    assert!(alice.blob(&before).await.unwrap().to_vec().await.unwrap() == random(100_000, 4));
    assert!(alice.blob(&after).await.unwrap().to_vec().await.unwrap() == random(100_000, 5));
}
