//! Two devices reach each other through a relay circuit and sync directly,
//! with the relay storing nothing.

use std::time::Duration;

use synkro_tests::{CliHome, Relay};

#[test]
fn peers_sync_over_a_circuit_through_a_relay_that_stores_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &["--no-store"])?;
    let relay_addr = relay.addr("/tcp/");

    let (alice, bob) = (CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new"]);
    alice.ok(&["set", &doc, "via", r#""circuit""#]);
    let token = alice.ok(&["share", &doc, "--role", "write"]);
    bob.ok(&["join", &token]);

    // A relay that only relays is not a sync peer: a clear error.
    let out = bob.run(&["sync", "--relay", &relay_addr, "--once", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not sync documents"));

    // Alice is reachable only through the relay (she listens on loopback
    // too, but Bob is given the circuit address).
    let mut served = alice.serve(&["--listen", "/ip4/127.0.0.1/tcp/0", "--relay", &relay_addr, "--no-mdns"])?;
    // The relay announces all its transports; take the circuit over TCP.
    let relay_tcp = relay_addr.split("/p2p/").next().unwrap_or_default().to_owned();
    served.wait_for(Duration::from_secs(30), |lines| {
        lines
            .iter()
            .any(|l| l.contains("/p2p-circuit/") && l.contains(&relay_tcp))
    })?;
    let circuit = served
        .listening()
        .into_iter()
        .find(|a| a.contains("/p2p-circuit/") && a.starts_with(&relay_tcp))
        .expect("a circuit address through the relay's TCP listener");
    assert!(circuit.contains(&relay.peer_id()), "{circuit}");

    let report = bob.ok(&["sync", "--peer", &circuit, "--once"]);
    assert!(report.starts_with("synced 1 document"), "{report}");
    assert_eq!(bob.ok(&["get", &doc, "via"]), r#""circuit""#);
    bob.ok(&["set", &doc, "back", "true"]);
    bob.ok(&["sync", "--peer", &circuit, "--once"]);
    drop(served);
    assert_eq!(alice.ok(&["get", &doc, "back"]), "true");

    let (_, health) = relay.get("/health")?;
    let health: serde_json::Value = serde_json::from_str(&health)?;
    assert_eq!(health["documents"], serde_json::json!(0), "{health}");
    assert_eq!(health["store"], serde_json::json!(false), "{health}");
    Ok(())
}

/// Members who keep a reservation on their relay find each other through
/// it by themselves, and their edits then travel over the circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_meet_through_their_relay_by_themselves() -> anyhow::Result<()> {
    use synkro::net::{NetConfig, PeerEvent};
    use synkro::{Repo, Role};

    crate::log_from_env();
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let relay_addr: synkro::net::Multiaddr = relay.addr("/tcp/").parse()?;
    let config = || NetConfig {
        relays: vec![relay_addr.clone()],
        reachable_via_relays: true,
        ..NetConfig::default()
    };

    let alice = Repo::in_memory().await?;
    let a_net = alice.connect(config()).await?;
    let relay_member = a_net.dial(relay_addr.clone()).await?;
    let doc = alice.create().await?;
    doc.set("title", &serde_json::json!("meet me"))?;
    doc.wait_durable_on(relay_member, Duration::from_secs(20)).await?;
    let token = doc.share(Role::Write).await?;

    let bob = Repo::in_memory().await?;
    let bobs = bob.join(&token).await?;
    let mut b_events = {
        let b_net = bob.connect(config()).await?;
        let events = b_net.events();
        (b_net, events)
    };
    // Nobody dials anybody: Bob's repo finds Alice through the relay.
    let met = tokio::time::timeout(
        Duration::from_secs(30),
        crate::next_event(&mut b_events.1, |e| match e {
            PeerEvent::SessionOpened { peer, relayed } if peer == alice.member_id() => Some(relayed),
            _ => None,
        }),
    )
    .await??;
    assert!(met, "Alice and Bob meet over a relay circuit");

    // An edit now reaches Bob over the direct session with Alice.
    let before = b_events.0.traffic(&alice.member_id()).messages_received;
    let mut changes = bobs.subscribe();
    doc.set("reply", &serde_json::json!("over the circuit"))?;
    while bobs.get("reply")?.is_none() {
        tokio::time::timeout(Duration::from_secs(10), changes.recv()).await?;
    }
    // The relay may deliver its copy first; Alice's own copy follows.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b_events.0.traffic(&alice.member_id()).messages_received <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never came from Alice herself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_net.shutdown().await;
    b_events.0.shutdown().await;
    Ok(())
}
