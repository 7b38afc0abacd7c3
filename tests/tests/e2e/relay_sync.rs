//! Native repos sync through a relay process: a change made on one side is
//! visible on the other (latency printed), and three writers editing at
//! once converge.

use std::time::{Duration, Instant};

use serde_json::json;
use synkro::Role;
use synkro::automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use synkro_tests::Relay;

use crate::{TIMEOUT, repo_via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repos_sync_through_a_relay_process() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    for transport in ["/tcp/", "/quic-v1", "/ws/"] {
        let addr = relay.addr(transport);
        let (alice, a_net, relay_id) = repo_via(&addr).await?;
        let (bob, b_net, _) = repo_via(&addr).await?;
        let doc = alice.create().await?;
        doc.set("title", &json!(format!("over {transport}")))?;
        doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
        let bobs = bob.join(&doc.share(Role::Write).await?).await?;
        bob.wait_synced(relay_id, TIMEOUT).await?;
        assert_eq!(bobs.get("title")?, Some(json!(format!("over {transport}"))));

        // Edit → sealed → relay (durable) → other side, one at a time.
        let mut latencies = Vec::new();
        let mut changes = bobs.subscribe();
        for i in 0..20 {
            let started = Instant::now();
            doc.set("counter", &json!(i))?;
            while bobs.get("counter")? != Some(json!(i)) {
                tokio::time::timeout(TIMEOUT, changes.recv()).await?;
            }
            latencies.push(started.elapsed());
        }
        latencies.sort();
        eprintln!(
            "{transport}: edit visible on the other side via the relay: p50 {:?}, max {:?} (flush window 50 ms)",
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
        a_net.shutdown().await;
        b_net.shutdown().await;
    }
    let (_, health) = relay.get("/health")?;
    let health: serde_json::Value = serde_json::from_str(&health)?;
    assert_eq!(
        health["documents"],
        json!(3),
        "one stored document per transport: {health}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_editing_at_once_converge() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let doc = alice.create().await?;
    doc.change(|d| {
        d.put_object(ROOT, "log", ObjType::List)?;
        d.put_object(ROOT, "text", ObjType::Text)?;
        Ok(())
    })?;
    let mut handles = vec![doc.clone()];
    let mut nets = vec![a_net];
    for _ in 0..2 {
        let (repo, net, _) = repo_via(&addr).await?;
        doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
        let h = repo.join(&doc.share(Role::Write).await?).await?;
        repo.wait_synced(relay_id, TIMEOUT).await?;
        handles.push(h);
        nets.push(net);
    }
    // Each writer appends to one list, types into one text and sets its own
    // key, all at once.
    let mut tasks = Vec::new();
    for (w, h) in handles.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                h.change(|d| {
                    let log = d
                        .get(ROOT, "log")?
                        .map(|(_, id)| id)
                        .ok_or(synkro::automerge::AutomergeError::Fail)?;
                    let len = d.length(&log);
                    d.insert(&log, len, format!("w{w}-{i}"))?;
                    let text = d
                        .get(ROOT, "text")?
                        .map(|(_, id)| id)
                        .ok_or(synkro::automerge::AutomergeError::Fail)?;
                    d.splice_text(&text, 0, 0, &w.to_string())?;
                    d.put(ROOT, format!("writer{w}"), i as i64)
                })?;
                if i % 7 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Ok::<_, synkro::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Every writer's last batch reaches the relay; then all pull.
    for h in &handles {
        h.wait_durable_on(relay_id, TIMEOUT).await?;
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let all: Vec<serde_json::Value> = handles.iter().map(|h| h.to_json()).collect::<Result<_, _>>()?;
        if all.iter().all(|j| *j == all[0]) {
            let log = all[0]["log"].as_array().map(Vec::len);
            assert_eq!(log, Some(180), "every append survived: {}", all[0]);
            assert_eq!(all[0]["text"].as_str().map(str::len), Some(180));
            for w in 0..3 {
                assert_eq!(all[0][format!("writer{w}")], json!(59));
            }
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in nets {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_through_the_relay_to_members_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    let (eve, e_net, _) = repo_via(&addr).await?;
    eve.wait_synced(relay_id, TIMEOUT).await?;
    let doc = alice.create().await?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?; // the relay holds it all
    let bobs = bob.join(&doc.share(Role::Read).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    let mut at_bob = bobs.ephemeral();
    let mut at_eve = eve.events();
    let eve_before = e_net.traffic(&relay_id);

    let mut latencies = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        doc.send_ephemeral(format!(r#"{{"cursor": {i}}}"#).as_bytes()).await?;
        let (from, data) = tokio::time::timeout(TIMEOUT, at_bob.recv()).await?.expect("repo alive");
        latencies.push(started.elapsed());
        assert_eq!(from, alice.member_id());
        assert_eq!(data, format!(r#"{{"cursor": {i}}}"#).into_bytes());
    }
    latencies.sort();
    eprintln!(
        "presence through the relay: p50 {:?}, max {:?} (not batched, not stored)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Eve, connected to the same relay but not a member, is sent nothing.
    assert_eq!(e_net.traffic(&relay_id), eve_before);
    while let Ok(e) = at_eve.try_recv() {
        assert!(!matches!(e, synkro::Event::Ephemeral { .. }), "{e:?}");
    }
    // And it was never stored: the relay has one document, unchanged.
    let (_, health) = relay.get("/health")?;
    assert!(health.contains(r#""documents":1"#), "{health}");
    for net in [a_net, b_net, e_net] {
        net.shutdown().await;
    }
    Ok(())
}
