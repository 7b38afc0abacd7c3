//! Opening a document stays cheap as its history grows: writers fold the
//! tail of change chunks into snapshots, so a reopen decrypts one snapshot
//! plus a short tail, not every change ever made.

use std::time::Instant;

use serde_json::json;
use synkro::{CompactionPolicy, Repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_reads_a_snapshot_and_a_short_tail() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let edits = 600;
    let doc_id = {
        let repo = Repo::open(home.path()).await?;
        let doc = repo.create().await?;
        doc.set("log", &json!([]))?;
        for i in 0..edits {
            doc.set(&format!("log/{i}"), &json!(format!("entry {i}")))?;
            doc.set("count", &json!(i + 1))?;
            doc.flush().await?;
        }
        doc.id()
    };

    let started = Instant::now();
    let repo = Repo::open(home.path()).await?;
    let opened = started.elapsed();
    let doc = repo.find(&doc_id).await?;
    let info = doc.info()?;
    assert_eq!(doc.get("count")?, Some(json!(edits)));
    assert_eq!(
        doc.get(&format!("log/{}", edits - 1))?,
        Some(json!(format!("entry {}", edits - 1)))
    );

    let bound = CompactionPolicy::default().max_tail_chunks + 2;
    println!(
        "{edits} flushed edits: {} chunks held ({} bytes sealed), reopen in {:?}",
        info.chunks, info.stored_bytes, opened
    );
    assert!(
        info.chunks <= bound,
        "{} chunks held after {edits} edits; compaction should keep it under {bound}",
        info.chunks
    );
    assert!(
        info.chunks < edits / 4,
        "history was not compacted: {} chunks",
        info.chunks
    );
    Ok(())
}
