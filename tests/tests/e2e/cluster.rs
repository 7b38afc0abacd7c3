//! Relays over a NATS JetStream cluster: documents kept in JetStream, not
//! on a relay's disk, so a relay can die and another, started empty,
//! serves what the first stored, under the same member identity.

use std::time::Instant;

use serde_json::json;
use synkro::Role;
use synkro_tests::{CliHome, Nats, Relay};

use crate::{TIMEOUT, marker, repo_via};

fn cluster_relay(dir: &std::path::Path, nats: &Nats) -> anyhow::Result<Relay> {
    Relay::start(dir, &["--cluster", &nats.urls()])
}

/// Two relays of the cluster on `nats`, each with its own data directory
/// (returned first, so that it outlives its relay), and their TCP addresses.
fn two_relays(nats: &Nats) -> anyhow::Result<([tempfile::TempDir; 2], [Relay; 2], [String; 2])> {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut relays = [
        cluster_relay(dirs[0].path(), nats)?,
        cluster_relay(dirs[1].path(), nats)?,
    ];
    let addrs = [relays[0].addr("/tcp/"), relays[1].addr("/tcp/")];
    Ok((dirs, relays, addrs))
}

/// No document state in the data directory: only the lock and the WebRTC
/// certificate.
fn holds_no_documents(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    anyhow::ensure!(
        names.iter().all(|n| n == "lock" || n == "webrtc-cert.pem"),
        "the relay's data directory holds {names:?}"
    );
    Ok(())
}

fn replicas_of(nats: &Nats, stream: &str) -> anyhow::Result<u64> {
    nats.stream(0, stream)?["config"]["num_replicas"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no num_replicas"))
}

fn health(relay: &Relay) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&relay.get("/health")?.1)?)
}

/// Poll `/health` until `ready` holds for it (30 s at most); the last answer.
fn wait_health(relay: &Relay, ready: impl Fn(&serde_json::Value) -> bool) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let h = health(relay)?;
        if ready(&h) || std::time::Instant::now() > deadline {
            return Ok(h);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Wait until server `i` holds as many of the documents' messages as
/// server `j`: it caught up after a restart.
fn caught_up(nats: &Nats, i: usize, j: usize) -> anyhow::Result<()> {
    let count = |k| nats.stream(k, "SYNKRO_DOCS").map(|s| s["state"]["last_seq"].as_u64());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let (Ok(Some(a)), Ok(Some(b))) = (count(i), count(j))
            && a == b
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("NATS server {i} did not catch up with server {j} in 30 s")
}

#[test]
fn a_fresh_relay_serves_what_a_killed_one_stored_in_jetstream() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let (dir1, dir2) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut relay = cluster_relay(dir1.path(), &nats)?;
    let first_id = relay.peer_id();
    let addr = relay.addr("/tcp/");

    let (alice, bob) = (CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new", "--name", "plan"]);
    let text = marker("cluster");
    alice.ok(&["set", &doc, "plan", &format!("{text:?}")]);
    let for_bob = alice.ok(&["share", &doc, "--role", "write"]);
    let report = alice.ok(&["sync", "--relay", &addr, "--once"]);
    assert!(report.starts_with("synced 1 document with"), "{report}");
    holds_no_documents(dir1.path())?;

    // The relay dies without a goodbye; a new one starts with nothing of
    // its own and is the same member.
    relay.process.kill();
    drop(relay);
    let mut relay = cluster_relay(dir2.path(), &nats)?;
    assert_eq!(relay.peer_id(), first_id, "every relay of a cluster is the same member");
    let addr = relay.addr("/tcp/");

    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &addr, "--once"]);
    assert_eq!(bob.ok(&["get", &doc, "plan"]), format!("{text:?}"));
    bob.ok(&["set", &doc, "done", "true"]);
    bob.ok(&["sync", "--relay", &addr, "--once"]);
    alice.ok(&["sync", "--relay", &addr, "--once"]);
    assert_eq!(alice.ok(&["get", &doc, "done"]), "true");
    holds_no_documents(dir2.path())?;
    Ok(())
}

#[test]
fn three_nats_servers_keep_serving_when_one_is_killed() -> anyhow::Result<()> {
    let mut nats = Nats::start(3)?;
    let dir = tempfile::tempdir()?;
    let mut relay = cluster_relay(dir.path(), &nats)?;
    let addr = relay.addr("/tcp/");
    assert_eq!(replicas_of(&nats, "SYNKRO_DOCS")?, 3, "three servers: R3 by default");

    let (alice, bob) = (CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new", "--name", "trip"]);
    alice.ok(&["set", &doc, "days", "[1]"]);
    let for_bob = alice.ok(&["share", &doc, "--role", "read"]);
    alice.ok(&["sync", "--relay", &addr, "--once"]);

    // One server of three dies: a majority is left, writes stay durable.
    nats.kill(0);
    alice.ok(&["set", &doc, "days/1", "2"]);
    let report = alice.ok(&["sync", "--relay", &addr, "--once", "--timeout", "60"]);
    assert!(report.starts_with("synced 1 document with"), "{report}");

    // It comes back and catches up; then another dies, and nothing is lost.
    nats.restart(0)?;
    caught_up(&nats, 0, 2)?;
    nats.kill(1);
    alice.ok(&["set", &doc, "days/2", "3"]);
    alice.ok(&["sync", "--relay", &addr, "--once", "--timeout", "60"]);
    relay.process.kill();
    drop(relay);
    let dir = tempfile::tempdir()?;
    let mut relay = cluster_relay(dir.path(), &nats)?;
    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &relay.addr("/tcp/"), "--once", "--timeout", "60"]);
    assert_eq!(bob.json(&["get", &doc, "days"]), serde_json::json!([1, 2, 3]));
    Ok(())
}

#[test]
fn a_relay_cut_off_from_nats_acknowledges_nothing_and_recovers() -> anyhow::Result<()> {
    let mut nats = Nats::start(1)?;
    let dir = tempfile::tempdir()?;
    let mut relay = cluster_relay(dir.path(), &nats)?;
    let addr = relay.addr("/tcp/");
    let alice = CliHome::new();
    let doc = alice.ok(&["new", "--name", "notes"]);
    alice.ok(&["set", &doc, "n", "1"]);
    alice.ok(&["sync", "--relay", &addr, "--once"]);

    assert_eq!(health(&relay)?["status"], "ok");
    assert_eq!(health(&relay)?["cluster"]["connected"], true);

    nats.kill(0);
    let down = wait_health(&relay, |h| h["cluster"]["connected"] == false)?;
    assert_eq!(down["status"], "degraded", "{down}");
    assert_eq!(down["cluster"]["connected"], false, "{down}");
    alice.ok(&["set", &doc, "n", "2"]);
    let out = alice.run(&["sync", "--relay", &addr, "--once", "--timeout", "8"]);
    assert!(!out.status.success(), "nothing may be acknowledged while NATS is gone");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has not acknowledged 1 document"), "{err}");

    nats.restart(0)?;
    let report = alice.ok(&["sync", "--relay", &addr, "--once", "--timeout", "60"]);
    assert!(report.starts_with("synced 1 document with"), "{report}");
    let up = wait_health(&relay, |h| h["status"] == "ok")?;
    assert_eq!(up["cluster"]["stream"]["replicas"], 1, "{up}");
    // What was acknowledged is in JetStream: a fresh relay serves it.
    relay.process.kill();
    drop(relay);
    let dir = tempfile::tempdir()?;
    let mut relay = cluster_relay(dir.path(), &nats)?;
    let bob = CliHome::new();
    let for_bob = alice.ok(&["share", &doc, "--role", "read"]);
    alice.ok(&["sync", "--relay", &relay.addr("/tcp/"), "--once"]);
    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &relay.addr("/tcp/"), "--once"]);
    assert_eq!(bob.ok(&["get", &doc, "n"]), "2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_relays_edit_live_through_the_cluster() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let (_dirs, [relay1, relay2], [addr1, addr2]) = two_relays(&nats)?;
    let (alice, a_net, relay_id) = repo_via(&addr1).await?;
    let (bob, b_net, relay_id2) = repo_via(&addr2).await?;
    assert_eq!(relay_id, relay_id2, "one member, two relays");

    let doc = alice.create().await?;
    doc.set("title", &json!("from relay 1"))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    assert_eq!(bobs.get("title")?, Some(json!("from relay 1")));

    // Both stay connected, each to its own relay: edits cross over live,
    // both ways, through NATS.
    let (mut to_bob, mut to_alice) = (bobs.subscribe(), doc.subscribe());
    let mut latencies = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        doc.set("a", &json!(i))?;
        while bobs.get("a")? != Some(json!(i)) {
            tokio::time::timeout(TIMEOUT, to_bob.recv()).await?;
        }
        latencies.push(started.elapsed());
        bobs.set("b", &json!(i))?;
        while doc.get("b")? != Some(json!(i)) {
            tokio::time::timeout(TIMEOUT, to_alice.recv()).await?;
        }
    }
    latencies.sort();
    eprintln!(
        "relay 1 → NATS → relay 2: edit visible on the other side: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    for relay in [&relay1, &relay2] {
        assert!(relay.metric("synkro_cluster_published_total")? >= 10.0);
        assert!(
            relay.metric("synkro_cluster_heard_total")? >= 10.0,
            "each hears the other"
        );
        assert!(relay.metric("synkro_cluster_publish_seconds_count")? >= 10.0);
        // A conflict is harmless (the write is stored, marked for a full
        // read at start); how many happen depends on timing.
        eprintln!(
            "write conflicts: {}",
            relay.metric("synkro_cluster_write_conflicts_total")?
        );
    }
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_relay_dies_carries_on_through_another() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let (_dirs, [mut relay1, _relay2], [addr1, addr2]) = two_relays(&nats)?;

    // Alice knows both relays; she is connected to the first.
    let alice = synkro::Repo::in_memory().await?;
    let a_net = alice
        .connect(synkro::net::NetConfig {
            relays: vec![addr1.parse()?, addr2.parse()?],
            ..Default::default()
        })
        .await?;
    let relay_id = a_net.dial(addr1.parse()?).await?;
    let (bob, b_net, _) = repo_via(&addr2).await?;
    let doc = alice.create().await?;
    doc.set("n", &json!(0))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let bobs = bob.join(&doc.share(Role::Read).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;

    // Her relay dies while she types; she goes on through the other.
    relay1.process.kill();
    let killed = Instant::now();
    for i in 1..=20 {
        doc.set("n", &json!(i))?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    eprintln!(
        "failover: relay killed → every edit durable on the other relay after {:?}",
        killed.elapsed()
    );
    let mut changes = bobs.subscribe();
    while bobs.get("n")? != Some(json!(20)) {
        tokio::time::timeout(TIMEOUT, changes.recv()).await?;
    }
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_revoked_through_one_relay_is_refused_by_the_other() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let (_dirs, [_relay1, relay2], [addr1, addr2]) = two_relays(&nats)?;
    let (alice, a_net, relay_id) = repo_via(&addr1).await?;
    let (bob, b_net, _) = repo_via(&addr2).await?;
    let doc = alice.create().await?;
    doc.set("by", &json!("alice"))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    bobs.set("bob", &json!("before the revoke"))?;
    bobs.wait_durable_on(relay_id, TIMEOUT).await?;
    crate::wait_for_value(&doc, "bob", &json!("before the revoke")).await?;
    b_net.shutdown().await; // Bob goes offline and does not hear of what follows.

    // Alice revokes him through relay 1; relay 2 hears it through NATS.
    let heard = relay2.metric("synkro_cluster_heard_total")?;
    doc.revoke(bob.member_id()).await?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let rejected_before = relay2.metric("synkro_rejected_total")?;
    let deadline = Instant::now() + TIMEOUT;
    while relay2.metric("synkro_cluster_heard_total")? <= heard {
        assert!(Instant::now() < deadline, "relay 2 did not hear of the revocation");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + TIMEOUT;

    // Offline, Bob still believes he may write; he comes back on relay 2.
    let late = marker("after-revoke-cluster");
    bobs.set("bob", &json!(late))?;
    bobs.flush().await?;
    let (b_net, _) = crate::connect(&bob, &addr2).await?;
    while relay2.metric("synkro_rejected_total")? <= rejected_before {
        assert!(Instant::now() < deadline, "relay 2 did not refuse Bob's late chunk");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
    for store in nats.stores() {
        assert!(synkro_tests::files_containing(&store, late.as_bytes())?.is_empty());
    }
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}

#[test]
fn three_relays_on_three_nats_servers_serve_one_document_and_hold_no_plaintext() -> anyhow::Result<()> {
    let nats = Nats::start(3)?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
    // Each relay knows one NATS server only: the cluster routes between them.
    let mut relays = (0..3)
        .map(|i| Relay::start(dirs[i].path(), &["--cluster", &nats.url(i)]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addrs: Vec<String> = relays.iter_mut().map(|r| r.addr("/tcp/")).collect();

    let (alice, bob, carol) = (CliHome::new(), CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new", "--name", "minutes"]);
    let secret = marker("cluster-canary");
    alice.ok(&["set", &doc, "said", &format!("{secret:?}")]);
    let for_bob = alice.ok(&["share", &doc, "--role", "write"]);
    let for_carol = alice.ok(&["share", &doc, "--role", "read"]);
    alice.ok(&["sync", "--relay", &addrs[0], "--once"]);

    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &addrs[1], "--once"]);
    assert_eq!(bob.ok(&["get", &doc, "said"]), format!("{secret:?}"));
    bob.ok(&["set", &doc, "seconded", "true"]);
    bob.ok(&["sync", "--relay", &addrs[1], "--once"]);

    carol.ok(&["join", &for_carol]);
    carol.ok(&["sync", "--relay", &addrs[2], "--once"]);
    assert_eq!(carol.ok(&["get", &doc, "said"]), format!("{secret:?}"));
    assert_eq!(carol.ok(&["get", &doc, "seconded"]), "true");
    alice.ok(&["sync", "--relay", &addrs[2], "--once"]);
    assert_eq!(alice.ok(&["get", &doc, "seconded"]), "true");

    // NATS holds ciphertext only, on every server; the relays hold nothing.
    let stores = nats.stores();
    assert_eq!(stores.len(), 3);
    for store in &stores {
        assert!(synkro_tests::dir_size(store)? > 0, "{store:?} holds the documents");
        let found = synkro_tests::files_containing(store, secret.as_bytes())?;
        assert!(found.is_empty(), "plaintext in NATS's store: {found:?}");
    }
    for (dir, relay) in dirs.iter().zip(&relays) {
        holds_no_documents(dir.path())?;
        assert!(!synkro_tests::process_memory_contains(
            relay.process.pid(),
            secret.as_bytes()
        )?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_chunk_is_refused_before_anything_reaches_nats() -> anyhow::Result<()> {
    use futures::AsyncReadExt;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    use synkro_core::chunk::ChunkKind;
    use synkro_core::crypto::SymmetricKey;
    use synkro_core::{DeviceIdentity, Message, OpHash, PROTOCOL_VERSION, Refusal, SealedChunk};
    use synkro_net::{read_frame, write_frame};

    let nats = Nats::start(1)?;
    let (_dirs, [relay1, relay2], [addr1, addr2]) = two_relays(&nats)?;
    let (alice, a_net, relay_id) = repo_via(&addr1).await?;
    let doc = alice.create().await?;
    doc.set("title", &json!("honest"))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;

    // Mallory is a reader: a member, so the relay reads what she sends.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mallory = DeviceIdentity::generate(&mut rng);
    let hers = synkro::Repo::open_with(
        std::sync::Arc::new(synkro_storage::MemoryStorage::new()),
        DeviceIdentity::from_secret_bytes(&*mallory.to_secret_bytes())?,
        Default::default(),
    )
    .await?;
    let (m_net, _) = crate::connect(&hers, &addr2).await?;
    hers.join(&doc.share(Role::Read).await?).await?;
    hers.wait_synced(relay_id, TIMEOUT).await?;
    m_net.shutdown().await;
    drop(hers);

    let messages = |nats: &Nats| -> anyhow::Result<u64> {
        nats.stream(0, "SYNKRO_DOCS")?["state"]["messages"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no message count"))
    };
    // Relay 1 hears her claim (written through relay 2) when NATS delivers
    // it: the count to compare with is the one after that has settled.
    let mut heard = relay1.metric("synkro_cluster_heard_total")?;
    let settle = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = relay1.metric("synkro_cluster_heard_total")?;
        if now == heard || settle.elapsed() > TIMEOUT {
            break;
        }
        heard = now;
    }
    let stored = messages(&nats)?;

    // She speaks the protocol by hand and pushes a chunk she signed with a
    // key of her own: a reader has no authority to write.
    let (network, session, _events) = crate::raw_session(&addr2, *mallory.signing_seed()).await?;
    let (mut rd, mut wr) = session.stream.split();
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        query: crate::query_listing(&[]).into(),
    };
    write_frame(&mut wr, &hello.encode()).await?;
    let key = SymmetricKey::generate(&mut rng);
    let forged = SealedChunk::seal(
        &mut rng,
        &mallory,
        doc.id(),
        1,
        OpHash([9; 32]),
        &key,
        ChunkKind::Changes,
        b"forged",
    );
    let chunks = Message::Chunks {
        doc: doc.id(),
        chunks: vec![forged.encoded().to_vec().into()],
    };
    write_frame(&mut wr, &chunks.encode()).await?;
    let refused = tokio::time::timeout(TIMEOUT, async {
        while let Some(frame) = read_frame(&mut rd, synkro_net::MAX_FRAME_LEN).await? {
            if let Message::Refused { doc: d, reason } = Message::decode(&frame)? {
                return anyhow::Ok(Some((d, reason)));
            }
        }
        Ok(None)
    })
    .await??;
    assert_eq!(
        refused,
        Some((doc.id(), Refusal::NotAllowed)),
        "relay 2 refused her chunk and said why"
    );
    assert!(relay2.metric("synkro_rejected_total")? >= 1.0);

    // Nothing was published: the stream and the other relay saw nothing.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(messages(&nats)?, stored, "the forged chunk never reached NATS");
    assert_eq!(relay1.metric("synkro_cluster_heard_total")?, heard);
    for store in nats.stores() {
        assert!(synkro_tests::files_containing(&store, forged.encoded())?.is_empty());
    }
    assert_eq!(doc.get("title")?, Some(json!("honest")));
    network.shutdown().await;
    a_net.shutdown().await;
    Ok(())
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in
/// `dir`: (CA, certificate, key).
fn loopback_certificate(dir: &std::path::Path) -> anyhow::Result<[std::path::PathBuf; 3]> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca, &ca_key)?;
    let paths = ["ca.pem", "server.pem", "server-key.pem"].map(|n| dir.join(n));
    std::fs::write(&paths[0], ca.pem())?;
    std::fs::write(&paths[1], cert.pem())?;
    std::fs::write(&paths[2], key.serialize_pem())?;
    Ok(paths)
}

#[test]
fn a_relay_reaches_nats_over_tls_with_a_password_it_never_shows() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    let [ca, cert, key] = loopback_certificate(certs.path())?;
    let password = format!("p@ss-{}", marker("nats"));
    let nats = Nats::start_with(
        1,
        &format!(
            "tls {{\n  cert_file: {cert:?}\n  key_file: {key:?}\n}}\n\
             authorization {{\n  user: relay\n  password: {password:?}\n}}\n"
        ),
    )?;
    let port = nats.url(0).rsplit(':').next().unwrap_or_default().to_owned();
    let url = |pass: &str| format!("tls://relay:{}@127.0.0.1:{port}", pass.replace('@', "%40"));
    let ca = ca.to_string_lossy().into_owned();

    // The right password, and the CA that signed the server's certificate.
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &["--cluster", &url(&password), "--cluster-ca", &ca])?;
    let addr = relay.addr("/tcp/");
    let (alice, bob) = (CliHome::new(), CliHome::new());
    let doc = alice.ok(&["new", "--name", "over-tls"]);
    alice.ok(&["set", &doc, "n", "1"]);
    let for_bob = alice.ok(&["share", &doc, "--role", "read"]);
    alice.ok(&["sync", "--relay", &addr, "--once"]);
    bob.ok(&["join", &for_bob]);
    bob.ok(&["sync", "--relay", &addr, "--once"]);
    assert_eq!(bob.ok(&["get", &doc, "n"]), "1");
    assert!(replicas_of(&nats, "SYNKRO_DOCS")? >= 1, "the stream is there");
    assert!(
        relay.process.lines().iter().all(|l| !l.contains(&password)),
        "the password is never printed"
    );

    // A wrong password: the relay says why it cannot start, without it.
    let wrong = format!("wrong-{}", marker("nats"));
    let other = tempfile::tempdir()?;
    let mut child = std::process::Command::new(synkro_tests::bin("synkro-relay"))
        .arg("--data-dir")
        .arg(other.path())
        .args([
            "--http",
            "127.0.0.1:0",
            "--stun",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(["--cluster", &url(&wrong), "--cluster-ca", &ca])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("a relay NATS refuses did not stop");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        said.contains("authorization violation") && said.contains("check the user, password"),
        "{said}"
    );
    assert!(!said.contains(&wrong), "the password is never printed: {said}");
    Ok(())
}
