//! Two devices that are never online at the same time share a document
//! through a blind relay: it stores and forwards the sealed chunks, checks
//! who wrote them, and cannot read them.
//!
//! The relay here is a third repo in this process, listening on loopback
//! with the relay server on (what the `synkro-relay` binary runs); point
//! `NetConfig::relays` at a real relay's address instead in an app.
//!
//! `cargo run -p synkro --example two-peers-via-relay`

use std::time::Duration;

use serde_json::json;
use synkro::net::{Multiaddr, NetConfig, PeerEvent, ServerConfig};
use synkro::{Repo, Role};

const WAIT: Duration = Duration::from_secs(20);

/// A relay node: a repo that stores what members let it replicate.
async fn start_relay() -> anyhow::Result<(Repo, synkro::net::Network, Multiaddr)> {
    let relay = Repo::in_memory().await?;
    let net = relay
        .connect(NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            server: Some(ServerConfig::default()),
            accept_sync: true,
            mdns: false,
            ..NetConfig::default()
        })
        .await?;
    let mut events = net.events();
    let addr = match net.listen_addrs().into_iter().next() {
        Some(addr) => addr,
        None => loop {
            if let PeerEvent::Listening(addr) = tokio::time::timeout(WAIT, events.recv()).await?? {
                break addr;
            }
        },
    };
    Ok((relay, net, addr))
}

/// A device that syncs through `relay` (and lets it replicate what it administers).
async fn device(relay: &Multiaddr) -> anyhow::Result<(Repo, synkro::net::Network, synkro::MemberId)> {
    let repo = Repo::in_memory().await?;
    let net = repo
        .connect(NetConfig {
            relays: vec![relay.clone()],
            mdns: false,
            ..NetConfig::default()
        })
        .await?;
    let relay_id = net.dial(relay.clone()).await?;
    Ok((repo, net, relay_id))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_relay, relay_net, addr) = start_relay().await?;
    println!("relay listening at {addr}");

    // Alice writes, makes sure the relay holds it, invites Bob, goes offline.
    let (alice, alice_net, relay_id) = device(&addr).await?;
    let trip = alice.create().await?;
    trip.set("title", &json!("Lisbon in May"))?;
    trip.set("todo", &json!(["book flights"]))?;
    let invite = trip.share(Role::Write).await?;
    trip.wait_durable_on(relay_id, WAIT).await?;
    alice_net.shutdown().await;
    println!("alice stored {} on the relay and went offline", trip.id());

    // Bob comes online later and gets everything from the relay alone.
    let (bob, bob_net, _) = device(&addr).await?;
    let bobs = bob.join(&invite).await?;
    bob.wait_synced(relay_id, WAIT).await?;
    println!("bob has it: {}", bobs.to_json()?);
    bobs.insert("todo", 1, &json!("pack sunscreen"))?;
    bobs.wait_durable_on(relay_id, WAIT).await?;
    println!("bob's edit is on the relay, sealed; alice gets it when she is back");

    bob_net.shutdown().await;
    relay_net.shutdown().await;
    Ok(())
}
