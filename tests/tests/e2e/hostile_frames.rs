//! Malformed, oversize and truncated frames: the relay closes the offending
//! connection, and keeps serving everyone else.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use serde_json::json;
use synkro::Role;
use synkro_net::write_frame;
use synkro_tests::Relay;

use crate::{TIMEOUT, repo_via};

/// Open a raw sync stream to the relay as a fresh peer, send `bytes`
/// (optionally closing our side), and wait for the relay to hang up.
async fn send_and_expect_hangup(addr: &str, seed: u8, bytes: &[u8], close: bool) -> anyhow::Result<()> {
    let (network, session, _events) = crate::raw_session(addr, [seed; 32]).await?;
    let (mut rd, mut wr) = session.stream.split();
    wr.write_all(bytes).await?;
    wr.flush().await?;
    if close {
        wr.close().await?;
    }
    // The relay reads our frame and closes the connection: our reads end.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the relay kept a misbehaving connection open");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while network.connections().iter().any(|c| c.session) {
        assert!(std::time::Instant::now() < deadline, "connection still up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    network.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_connection_and_the_relay_carries_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    // An honest pair is connected throughout.
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    let doc = alice.create().await?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;

    // A length over the cap (4 GiB), refused before allocating.
    send_and_expect_hangup(&addr, 1, &u32::MAX.to_le_bytes(), false).await?;
    // A well-framed message that is not a sync message.
    let mut garbage = Vec::new();
    write_frame(&mut garbage, &[0xff; 64]).await?;
    send_and_expect_hangup(&addr, 2, &garbage, false).await?;
    // A frame cut short, then the stream closed.
    let mut truncated = 1000u32.to_le_bytes().to_vec();
    truncated.extend_from_slice(&[0; 10]);
    send_and_expect_hangup(&addr, 3, &truncated, true).await?;

    assert_eq!(relay.get("/health")?.0, 200, "the relay is up");
    assert!(relay.metric("synkro_misbehaving_peers_total")? >= 2.0);
    let mut changes = bobs.subscribe();
    doc.set("still", &json!("syncing"))?;
    while bobs.get("still")?.is_none() {
        tokio::time::timeout(TIMEOUT, changes.recv()).await?;
    }
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}
