//! The relay is blind but checks: nothing it stores or holds in memory
//! contains plaintext, a non-member cannot fetch a document from it, and it
//! refuses chunks from a writer who was revoked.

use std::time::Duration;

use futures::AsyncReadExt;
use serde_json::json;
use synkro::Role;
use synkro_core::{Message, PROTOCOL_VERSION, VersionVector};
use synkro_net::{read_frame, write_frame};
use synkro_tests::{Relay, files_containing, process_memory_contains};

use crate::{TIMEOUT, connect, marker, repo_via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_holds_plaintext_and_serves_only_members() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    let canary = marker("blind-relay");
    let doc = alice.create().await?;
    doc.set("secret", &json!(canary))?;
    doc.set("more", &json!(format!("{canary} in a longer text, twice: {canary}")))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
    let bobs = bob.join(&doc.share(Role::Read).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    assert_eq!(bobs.get("secret")?, Some(json!(canary)), "readers read it");

    // Nothing on the relay's disk, nothing in its memory.
    assert!(
        !synkro_tests::dir_size(dir.path())?.eq(&0),
        "the relay stored something"
    );
    assert_eq!(
        files_containing(dir.path(), canary.as_bytes())?,
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        !process_memory_contains(relay.process.pid(), canary.as_bytes())?,
        "the relay process holds plaintext"
    );
    // The scan does find what is there: this process holds the canary.
    assert!(process_memory_contains(std::process::id(), canary.as_bytes())?);

    // A stranger who knows the document id asks the relay for it.
    let (stranger, session, _events) = crate::raw_session(&addr, [42; 32]).await?;
    let (mut rd, mut wr) = session.stream.split();
    let query = crate::query_listing(&[doc.id().0]);
    let ask = [
        Message::Hello {
            version: PROTOCOL_VERSION,
            query: query.clone().into(),
        },
        Message::Have {
            doc: doc.id(),
            heads: Vec::new(),
            vv: VersionVector::default(),
            snapshots: Vec::new(),
        },
    ];
    for m in &ask {
        write_frame(&mut wr, &m.encode()).await?;
    }
    let mut answers = Vec::new();
    while let Ok(Ok(Some(frame))) =
        tokio::time::timeout(Duration::from_secs(2), read_frame(&mut rd, synkro_net::MAX_FRAME_LEN)).await
    {
        answers.push(Message::decode(&frame)?);
    }
    assert!(
        answers.iter().any(|m| matches!(m, Message::Hello { .. })),
        "the relay talks to strangers: {answers:?}"
    );
    for m in &answers {
        assert!(
            !matches!(m, Message::Ops { .. } | Message::Chunks { .. }),
            "a non-member was sent document data: {m:?}"
        );
        if let Message::Have { vv, .. } = m {
            assert!(vv.is_empty(), "a non-member learnt what the document holds");
        }
        if let Message::Answer { ranges } = m {
            assert_eq!(
                ranges.as_slice(),
                crate::empty_answer(&query),
                "answered as an empty set"
            );
        }
    }
    stranger.shutdown().await;
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_writers_later_edits_are_refused_by_the_relay() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    let doc = alice.create().await?;
    doc.set("by", &json!("alice"))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    bobs.set("bob", &json!("before the revoke"))?;
    bobs.wait_durable_on(relay_id, TIMEOUT).await?;
    // Alice revokes knowing his edit: edits she has not seen are his last.
    crate::wait_for_value(&doc, "bob", &json!("before the revoke")).await?;
    b_net.shutdown().await; // Bob goes offline and does not hear of what follows.

    doc.revoke(bob.member_id()).await?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let rejected_before = relay.metric("synkro_rejected_total")?;

    // Offline, Bob still believes he may write.
    let late = marker("after-revoke");
    bobs.set("bob", &json!(late))?;
    bobs.flush().await?;
    let (b_net, _) = connect(&bob, &addr).await?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while relay.metric("synkro_rejected_total")? <= rejected_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not refuse Bob's late chunk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.wait_synced(relay_id, TIMEOUT).await?;
    assert_eq!(
        doc.get("bob")?,
        Some(json!("before the revoke")),
        "his earlier edit stays"
    );
    assert!(
        !doc.to_json()?.to_string().contains(&late),
        "his late edit never reached Alice"
    );
    assert_eq!(files_containing(dir.path(), late.as_bytes())?.len(), 0);
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}
