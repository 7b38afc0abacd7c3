//! The relay under attack, bounded in count and time, on loopback. The
//! attacker comes from 127.0.0.1, honest peers from ::1, so that the per-IP
//! caps can hold against one without touching the other.
//!
//! - 1,000 raw TCP connections that start the handshake and then trickle
//!   one byte a second (slowloris), far above the per-IP cap.
//! - 1,000 libp2p nodes that complete the handshake and stay connected,
//!   far above the relay's connection cap.
//! - A reservation flood: fresh peer ids from one address, each asking to be
//!   reachable through the relay.
//! - One circuit asked to carry three times its byte cap.
//!
//! Meanwhile two honest peers keep editing and syncing through the relay;
//! every edit must arrive, the caps must hold, and the relay's memory must
//! stay under its configured limit.

use std::time::{Duration, Instant};

use serde_json::json;
use synkro::Role;
use synkro::net::{Multiaddr, NetConfig};
use synkro_net::Network;
use synkro_tests::Relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TIMEOUT, marker, next_event, repo_via, wait_for_value};

const PER_IP: usize = 64;
const MEMORY_MIB: u64 = 512;

fn start_relay(dir: &std::path::Path) -> anyhow::Result<(Relay, String, String)> {
    start_relay_with(dir, &["--max-connections-per-ip", &PER_IP.to_string()])
}

/// A relay on 127.0.0.1 and ::1 with the memory limit and `caps`.
fn start_relay_with(dir: &std::path::Path, caps: &[&str]) -> anyhow::Result<(Relay, String, String)> {
    let memory = MEMORY_MIB.to_string();
    let mut args = vec!["--listen", "/ip6/::1/tcp/0", "--max-memory-mib", &memory];
    args.extend_from_slice(caps);
    let mut relay = Relay::start(dir, &args)?;
    let addrs = relay.addrs();
    let find = |prefix: &str| {
        addrs
            .iter()
            .find(|a| a.starts_with(prefix) && !a.contains("/ws"))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no {prefix} address among {addrs:?}"))
    };
    let (v4, v6) = (find("/ip4/127.0.0.1/tcp/")?, find("/ip6/::1/tcp/")?);
    Ok((relay, v4, v6))
}

/// Two honest peers on ::1 sharing a document through the relay.
async fn honest_pair(v6: &str) -> anyhow::Result<Honest> {
    let (alice, a_net, relay_id) = repo_via(v6).await?;
    let (bob, b_net, _) = repo_via(v6).await?;
    let doc = alice.create().await?;
    doc.set("edits", &json!(0))?;
    doc.set("note", &json!(marker("under-attack")))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let bobs = bob.join(&doc.share(Role::Write).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    Ok(Honest {
        _repos: (alice, bob),
        nets: vec![a_net, b_net],
        doc,
        bobs,
    })
}

struct Honest {
    _repos: (synkro::Repo, synkro::Repo),
    nets: Vec<synkro::net::Network>,
    doc: synkro::DocHandle,
    bobs: synkro::DocHandle,
}

impl Honest {
    /// Alice makes `n` edits, 100 ms apart; returns how many Bob saw.
    async fn edit_and_count(&self, from: usize, n: usize) -> anyhow::Result<usize> {
        for i in from..from + n {
            self.doc.set(&format!("e{i}"), &json!(i))?;
            self.doc.set("edits", &json!(i + 1))?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for_value(&self.bobs, "edits", &json!(from + n)).await?;
        let mut seen = 0;
        for i in from..from + n {
            seen += usize::from(self.bobs.get(&format!("e{i}"))? == Some(json!(i)));
        }
        Ok(seen)
    }

    /// After an attack: 5 more edits all arrive, and a new reader joining
    /// through the relay gets the document (`from` edits were made before).
    /// Then everyone leaves.
    async fn sync_after_the_flood(self, v6: &str, from: usize) -> anyhow::Result<()> {
        assert_eq!(self.edit_and_count(from, 5).await?, 5);
        let (carol, c_net, relay_id) = repo_via(v6).await?;
        let carols = carol.join(&self.doc.share(Role::Read).await?).await?;
        carol.wait_synced(relay_id, TIMEOUT).await?;
        wait_for_value(&carols, "edits", &json!(from + 5)).await?;
        c_net.shutdown().await;
        self.shutdown().await;
        Ok(())
    }

    async fn shutdown(self) {
        for n in self.nets {
            n.shutdown().await;
        }
    }
}

const SLOW_SECONDS: u64 = 12;

enum Slow {
    Refused,
    ClosedAfter(Duration),
    StillOpen,
}

/// One slowloris connection: the start of a multistream-select header,
/// then a byte a second for `SLOW_SECONDS`; when did the relay hang up?
async fn slow_handshake(port: u16) -> Slow {
    let started = Instant::now();
    let Ok(Ok(socket)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", port))).await
    else {
        return Slow::Refused;
    };
    let (mut rd, mut wr) = socket.into_split();
    let writer = async move {
        let _ = wr.write_all(b"\x13/multi").await;
        for b in b"stream/1.0.0\n".iter().cycle().take(SLOW_SECONDS as usize) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
        }
        wr
    };
    let reader = async move {
        let mut buf = [0u8; 256];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    let limit = Duration::from_secs(SLOW_SECONDS + 1);
    let (wr, closed) = tokio::join!(writer, tokio::time::timeout(limit, reader));
    drop(wr);
    match closed {
        Ok(after) => Slow::ClosedAfter(after),
        Err(_) => Slow::StillOpen,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_with_slow_handshakes_leaves_honest_peers_syncing() -> anyhow::Result<()> {
    synkro_tests::raise_descriptor_limit();
    const ATTACKERS: usize = 1000;
    let dir = tempfile::tempdir()?;
    let (relay, v4, v6) = start_relay(dir.path())?;
    let honest = honest_pair(&v6).await?;
    let port: u16 = v4.split('/').nth(4).and_then(|p| p.parse().ok()).expect("tcp port");

    // The flood: connect, send the start of multistream-select, then one
    // byte a second; note when the relay hangs up.
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        attackers.push(tokio::spawn(slow_handshake(port)));
    }
    let seen = honest.edit_and_count(0, 40).await?;
    let mut closed_after = Vec::new();
    let mut refused = 0;
    for a in attackers {
        match a.await? {
            Slow::Refused => refused += 1,
            Slow::ClosedAfter(d) => closed_after.push(d),
            Slow::StillOpen => {}
        }
    }
    closed_after.sort();
    let open = ATTACKERS - refused - closed_after.len();
    let rss = relay.rss_bytes()?;
    let connections = relay.metric("synkro_connections")?;
    let pct = |p: usize| {
        closed_after
            .get(closed_after.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "connection flood: {ATTACKERS} slow handshakes from one address over {:.1} s: {refused} refused at connect, \
         {} hung up by the relay (p50 after {:.1} s, max {:.1} s), {open} still open after {SLOW_SECONDS} s; \
         honest edits delivered {seen}/40; relay {connections} connections, RSS {:.1} MiB (limit {MEMORY_MIB})",
        started.elapsed().as_secs_f64(),
        closed_after.len(),
        pct(50).as_secs_f64(),
        closed_after.last().copied().unwrap_or_default().as_secs_f64(),
        rss as f64 / f64::from(1 << 20)
    );
    assert_eq!(seen, 40, "honest peers lost edits during the flood");
    // The per-IP cap turns away all but PER_IP at once; the handshake
    // timeout ends the rest.
    let at_once = closed_after.iter().filter(|d| **d < Duration::from_secs(5)).count();
    assert!(
        at_once + refused >= ATTACKERS - PER_IP,
        "only {at_once} turned away at once, per-IP cap {PER_IP}"
    );
    assert_eq!(open, 0, "slow handshakes still open after {SLOW_SECONDS} s");
    assert!(rss < MEMORY_MIB << 20, "relay RSS {rss} over its limit");
    assert_eq!(relay.get("/health")?.0, 200);

    // After the flood, honest peers still sync, and a new honest peer joins.
    honest.sync_after_the_flood(&v6, 40).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_flood_from_one_address_is_capped() -> anyhow::Result<()> {
    const FRESH: usize = 90;
    let dir = tempfile::tempdir()?;
    let (relay, v4, v6) = start_relay(dir.path())?;
    let honest = honest_pair(&v6).await?;
    let v4: Multiaddr = v4.parse()?;

    // Fresh peer ids from 127.0.0.1, each asking for a reservation.
    let mut flood = Vec::new();
    for i in 0..FRESH {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        key[8] = 0xf1;
        let started = Network::start(
            key,
            NetConfig {
                relays: vec![v4.clone()],
                reachable_via_relays: true,
                ..NetConfig::default()
            },
        )?;
        tokio::spawn(started.driver);
        flood.push(started.network);
    }
    let seen = honest.edit_and_count(0, 30).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reserved;
    loop {
        reserved = flood.iter().filter(|n| !n.reachable_via().is_empty()).count();
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rss = relay.rss_bytes()?;
    eprintln!(
        "reservation flood: {FRESH} fresh peer ids from one address, {reserved} reservations granted \
         (caps: {PER_IP} connections per IP, 60 reservations per IP per minute); honest edits delivered {seen}/30; \
         relay RSS {:.1} MiB",
        rss as f64 / f64::from(1 << 20)
    );
    assert_eq!(seen, 30, "honest peers lost edits during the flood");
    assert!(reserved <= 60.min(PER_IP), "{reserved} reservations from one address");
    assert!(rss < MEMORY_MIB << 20);
    for n in flood {
        n.shutdown().await;
    }
    honest.shutdown().await;
    Ok(())
}

/// One circuit asked to carry far more than its cap: the relay cuts it at
/// the cap, and the members still converge (through the relay's store,
/// then through a fresh circuit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_transfer_over_one_circuit_is_cut_at_its_cap_and_sync_completes() -> anyhow::Result<()> {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    use synkro::net::PeerEvent;

    const BLOBS: usize = 24;
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &["--max-circuit-mib", "1"])?;
    let relay_addr: Multiaddr = relay.addr("/tcp/").parse()?;
    let config = || NetConfig {
        relays: vec![relay_addr.clone()],
        reachable_via_relays: true,
        ..NetConfig::default()
    };
    let alice = synkro::Repo::in_memory().await?;
    let a_net = alice.connect(config()).await?;
    let relay_member = a_net.dial(relay_addr.clone()).await?;
    let doc = alice.create().await?;
    doc.set("title", &json!("big"))?;
    doc.wait_durable_on(relay_member, TIMEOUT).await?;
    let bob = synkro::Repo::in_memory().await?;
    let bobs = bob.join(&doc.share(Role::Read).await?).await?;
    let b_net = bob.connect(config()).await?;
    let mut events = b_net.events();
    let met = next_event(&mut events, |e| match e {
        PeerEvent::SessionOpened { peer, relayed } if peer == alice.member_id() => Some(relayed),
        _ => None,
    })
    .await?;
    assert!(met, "Alice and Bob meet over a circuit");

    // 3 MiB of incompressible text, pushed to Bob over the circuit (and to
    // the relay over Alice's own connection).
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let started = Instant::now();
    let mut last = String::new();
    for i in 0..BLOBS {
        let mut bytes = vec![0u8; 64 << 10];
        rng.fill_bytes(&mut bytes);
        last = bytes.iter().map(|b| format!("{b:02x}")).collect();
        doc.set(&format!("blob{i}"), &json!(last))?;
        doc.flush().await?;
    }
    let cut = next_event(&mut events, |e| match e {
        PeerEvent::SessionClosed { peer } if peer == alice.member_id() => Some(()),
        _ => None,
    })
    .await;
    bob.wait_synced(relay_member, TIMEOUT).await?;
    wait_for_value(&bobs, &format!("blob{}", BLOBS - 1), &json!(last)).await?;
    eprintln!(
        "circuit cap: {BLOBS} × 128 KiB pushed over a 1 MiB circuit: circuit cut: {}; Bob had everything after {:.1} s",
        cut.is_ok(),
        started.elapsed().as_secs_f64()
    );
    assert!(cut.is_ok(), "the relay let one circuit carry more than its cap");
    a_net.shutdown().await;
    b_net.shutdown().await;
    Ok(())
}

/// 1,000 libp2p nodes from 127.0.0.1 (standing in for many addresses: the
/// per-IP cap is lifted here) complete the whole handshake (TCP,
/// multistream-select, Noise, Yamux, then identify and the sync protocol)
/// and stay connected, against a relay that holds at most `CAP` connections.
/// The cap holds and turns the rest away at once, memory stays under the
/// limit, and the honest peers connected before keep syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_established_connections_stop_at_the_connection_cap() -> anyhow::Result<()> {
    synkro_tests::raise_descriptor_limit();
    const NODES: usize = 1000;
    const CAP: usize = 600;
    const WAVE: usize = 100;
    let dir = tempfile::tempdir()?;
    let cap = CAP.to_string();
    let (relay, v4, v6) = start_relay_with(
        dir.path(),
        &["--max-connections-per-ip", "4096", "--max-connections", &cap],
    )?;
    let honest = honest_pair(&v6).await?;
    let honest_connections = relay.metric("synkro_connections")?;
    let rss_before = relay.rss_bytes()?;
    let addr: Multiaddr = v4.parse()?;

    // Waves of 100 dials at once, each from a node with its own identity.
    let started = Instant::now();
    let mut nodes = Vec::new();
    let (mut joined, mut turned_away) = (0usize, Vec::new());
    for wave in 0..NODES / WAVE {
        let mut dials = Vec::new();
        for i in 0..WAVE {
            let mut seed = [0xa7u8; 32];
            seed[..8].copy_from_slice(&((wave * WAVE + i) as u64).to_le_bytes());
            let node = Network::start(seed, NetConfig::default())?;
            tokio::spawn(node.driver);
            let (net, events, addr) = (node.network, node.events, addr.clone());
            dials.push(async move {
                let t = Instant::now();
                let dialed = net.dial(addr).await;
                (net, events, dialed.is_ok(), t.elapsed())
            });
        }
        for (net, events, ok, took) in futures::future::join_all(dials).await {
            if ok {
                joined += 1;
            } else {
                turned_away.push(took);
            }
            nodes.push((net, events));
        }
    }
    let flood_took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = relay.metric("synkro_connections")?;
    let rss = relay.rss_bytes()?;
    let seen = honest.edit_and_count(0, 30).await?;
    let still_held = relay.metric("synkro_connections")?;
    turned_away.sort();
    let slowest_refusal = turned_away.last().copied().unwrap_or_default();
    eprintln!(
        "established flood: {NODES} nodes dialed in {:.1} s; {joined} connected and held, {} turned away \
         (slowest answer {:.2} s); relay {held} connections (cap {CAP}, {honest_connections} honest), {still_held} \
         after the honest edits; RSS {:.1} MiB, {:.1} KiB per held connection (limit {MEMORY_MIB} MiB); \
         honest edits delivered {seen}/30",
        flood_took.as_secs_f64(),
        turned_away.len(),
        slowest_refusal.as_secs_f64(),
        rss as f64 / f64::from(1 << 20),
        rss.saturating_sub(rss_before) as f64 / joined.max(1) as f64 / 1024.0,
    );
    assert_eq!(seen, 30, "honest peers lost edits while the relay was full");
    assert!(
        held <= CAP as f64,
        "the relay holds {held} connections, over its cap of {CAP}"
    );
    assert!(
        joined + honest_connections as usize >= CAP - 10,
        "only {joined} nodes got in under a cap of {CAP}"
    );
    assert_eq!(joined + turned_away.len(), NODES);
    assert!(
        slowest_refusal < Duration::from_secs(10),
        "a refused node waited {slowest_refusal:?} for its answer"
    );
    assert!(rss < MEMORY_MIB << 20, "relay RSS {rss} over its limit");
    assert_eq!(relay.get("/health")?.0, 200);

    // The flood leaves; the honest peers still sync and a new one gets in.
    futures::future::join_all(nodes.iter().map(|(net, _)| net.shutdown())).await;
    drop(nodes);
    honest.sync_after_the_flood(&v6, 30).await
}
