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
