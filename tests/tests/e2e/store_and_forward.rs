//! Store and forward: devices that are never online at the same time sync
//! through what the relay stored, and the relay keeps it across a restart.

use std::time::Duration;

use synkro_tests::{CliHome, Relay};

use crate::marker;

#[test]
fn a_writes_and_leaves_b_and_c_get_everything_even_after_a_relay_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let relay_addr = relay.addr("/tcp/");
    let peer_id = relay.peer_id();

    let (alice, bob, carol) = (CliHome::new(), CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new", "--name", "trip"]);
    let text = marker("store-and-forward");
    alice.ok(&["set", &doc, "plan", &format!("{text:?}")]);
    alice.ok(&["set", &doc, "days", "[1, 2, 3]"]);
    let for_bob = alice.ok(&["share", &doc, "--role", "write"]);
    let for_carol = alice.ok(&["share", &doc, "--role", "read"]);
    let report = alice.ok(&["sync", "--relay", &relay_addr, "--once"]);
    assert!(report.starts_with("synced 1 document with"), "{report}");
    // Alice is gone from here on: only the relay holds her work.

    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &relay_addr, "--once"]);
    assert_eq!(bob.ok(&["get", &doc, "plan"]), format!("{text:?}"));
    bob.ok(&["set", &doc, "days/3", "4"]);
    bob.ok(&["sync", "--relay", &relay_addr, "--once"]);

    // The relay shuts down cleanly and comes back with the same identity.
    assert_eq!(relay.process.terminate(Duration::from_secs(10))?, Some(0));
    drop(relay);
    assert!(
        dir.path().join("docs").join("gathered.snapshot").is_file(),
        "a clean stop writes the index snapshot the next start reads"
    );
    let mut relay = Relay::start(dir.path(), &[])?;
    assert_eq!(relay.peer_id(), peer_id, "the relay keeps its identity");
    let relay_addr = relay.addr("/tcp/");

    carol.ok(&["join", &for_carol]);
    carol.ok(&["sync", "--relay", &relay_addr, "--once"]);
    let got = carol.json(&["get", &doc]);
    assert_eq!(got["plan"], serde_json::json!(text));
    assert_eq!(
        got["days"],
        serde_json::json!([1, 2, 3, 4]),
        "Bob's edit, forwarded too"
    );

    // Alice comes back and receives Bob's edit.
    alice.ok(&["sync", "--relay", &relay_addr, "--once"]);
    assert_eq!(alice.ok(&["get", &doc, "days/3"]), "4");
    Ok(())
}
