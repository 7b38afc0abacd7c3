//! A document far larger than the send window reaches a fresh peer: the
//! sender holds chunks back while its window is full and resumes as the
//! transport reports frames transmitted, so nothing stalls and memory stays
//! bounded by the window rather than by the document.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::{CompactionPolicy, DeviceIdentity, NodeConfig, Repo, RepoConfig, Role};
use synkro_storage::MemoryStorage;

async fn repo(seed: u64, window: usize) -> anyhow::Result<Repo> {
    let config = RepoConfig {
        node: NodeConfig {
            send_window: window,
            // No snapshots: hundreds of chunks, each a fraction of the window.
            compaction: CompactionPolicy {
                min_tail_chunks: usize::MAX,
                min_tail_bytes: usize::MAX,
                max_tail_chunks: usize::MAX,
            },
            ..NodeConfig::default()
        },
    };
    let identity = DeviceIdentity::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    Ok(Repo::open_with(std::sync::Arc::new(MemoryStorage::new()), identity, config).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_many_windows_large_streams_to_a_new_peer() -> anyhow::Result<()> {
    const WINDOW: usize = 16 << 10;
    let alice = repo(1, WINDOW).await?;
    let bob = repo(2, WINDOW).await?;
    let doc = alice.create().await?;
    // Incompressible text, one flush per entry: ~3 MiB in ~300 chunks.
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for i in 0..300 {
        let mut bytes = [0u8; 5 << 10];
        rng.fill_bytes(&mut bytes);
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        doc.set(&format!("entries/e{i}"), &json!(text))?;
        doc.flush().await?;
    }
    let stored = doc.info()?.stored_bytes;
    assert!(
        stored > 100 * WINDOW,
        "the document ({stored} B) must span many windows"
    );

    let token = doc.share(Role::Read).await?;
    let bobs = bob.join(&token).await?;
    let _link = synkro::link::connect(&alice, &bob).await?;
    // The joiner waits: until its claim reaches Alice, it is not yet a
    // member in her eyes, so her side has nothing to wait for.
    bob.wait_synced(alice.member_id(), Duration::from_secs(60)).await?;
    assert_eq!(bobs.to_json()?, doc.to_json()?);
    eprintln!("{stored} bytes streamed through a {WINDOW}-byte send window");
    Ok(())
}
