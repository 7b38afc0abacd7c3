//! Strangers flooding the relay with maximal `Hello`s (each listing as many
//! random document ids as a frame holds) cost it memory only while they
//! are there: no answer but an empty set's, no state per listed id, and
//! the memory goes back once they leave. Honest peers sync throughout.

use std::time::{Duration, Instant};

use futures::AsyncReadExt;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::Role;
use synkro_core::{Message, PROTOCOL_VERSION};
use synkro_net::{read_frame, write_frame};
use synkro_tests::Relay;

use crate::{TIMEOUT, repo_via, wait_for_value};

/// Strangers at once.
const STRANGERS: usize = 16;

/// A `Hello` listing as many random ids as fit a frame.
fn maximal_hello(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let n = (synkro_net::MAX_FRAME_LEN - 1024) / 32;
    let ids: Vec<[u8; 32]> = (0..n)
        .map(|_| {
            let mut id = [0; 32];
            rng.fill_bytes(&mut id);
            id
        })
        .collect();
    let bytes = Message::Hello {
        version: PROTOCOL_VERSION,
        query: crate::query_listing(&ids).into(),
    }
    .encode();
    assert!(bytes.len() <= synkro_net::MAX_FRAME_LEN);
    bytes
}

/// Connect as a fresh peer, send `hello`, and return what the relay said
/// in the next second (besides its own greeting).
async fn flood(addr: String, seed: u8, hello: Vec<u8>) -> anyhow::Result<Vec<Message>> {
    let (network, session, _events) = crate::raw_session(&addr, [seed; 32]).await?;
    let (mut rd, mut wr) = session.stream.split();
    // The relay takes frames as its inbound budget allows; a stranger still
    // waiting when its Hello timeout ends is cut off, which is fine too.
    if let Err(e) = write_frame(&mut wr, &hello).await {
        eprintln!("stranger {seed}: cut off before its Hello was read ({e})");
        network.shutdown().await;
        return Ok(Vec::new());
    }
    let Message::Hello { query, .. } = Message::decode(&hello)? else {
        anyhow::bail!("not a Hello")
    };
    let empty = crate::empty_answer(&query);
    let mut answers = Vec::new();
    while let Ok(Ok(Some(frame))) =
        tokio::time::timeout(Duration::from_secs(1), read_frame(&mut rd, synkro_net::MAX_FRAME_LEN)).await
    {
        match Message::decode(&frame)? {
            Message::Hello { .. } => {}
            Message::Answer { ranges } if ranges.as_slice() == empty => {}
            m => answers.push(m),
        }
    }
    network.shutdown().await;
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_maximal_hellos_costs_the_relay_nothing_once_it_is_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    let doc = alice.create().await?;
    doc.set("n", &json!(0))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    // One stranger first, so that what any first connection sets up once
    // (worker threads, metric families) counts as before.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let warm_up = flood(addr.clone(), 99, maximal_hello(&mut rng)).await?;
    assert!(warm_up.is_empty(), "the relay answered a stranger: {warm_up:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = relay.rss_bytes()?;

    let hellos: Vec<Vec<u8>> = (0..STRANGERS).map(|_| maximal_hello(&mut rng)).collect();
    let ids = (synkro_net::MAX_FRAME_LEN - 1024) / 32;
    let floods: Vec<_> = hellos
        .into_iter()
        .enumerate()
        .map(|(i, h)| tokio::spawn(flood(addr.clone(), 100 + i as u8, h)))
        .collect();
    // Honest peers sync during the flood ...
    let mut peak = before;
    for i in 1..=3 {
        doc.set("n", &json!(i))?;
        wait_for_value(&bobs, "n", &json!(i)).await?;
        peak = peak.max(relay.rss_bytes()?);
    }
    for f in floods {
        let answers = f.await??;
        assert!(answers.is_empty(), "the relay answered a stranger: {answers:?}");
        peak = peak.max(relay.rss_bytes()?);
    }
    // ... and after it; the memory goes back.
    doc.set("n", &json!("after"))?;
    wait_for_value(&bobs, "n", &json!("after")).await?;
    let left = Instant::now();
    let mut after = relay.rss_bytes()?;
    while after as f64 > 1.10 * before as f64 && left.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = relay.rss_bytes()?;
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "hello flood: {STRANGERS} strangers x {ids} ids ({:.1} MiB each): relay RSS {:.1} MiB before, peak {:.1} MiB, {:.1} MiB {:?} after they left ({:.2}x)",
        mib(synkro_net::MAX_FRAME_LEN as u64),
        mib(before),
        mib(peak),
        mib(after),
        left.elapsed(),
        after as f64 / before as f64
    );
    assert!(
        after as f64 <= 1.10 * before as f64,
        "relay RSS {:.1} MiB 30 s after the flood, {:.1} MiB before",
        mib(after),
        mib(before)
    );
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}
