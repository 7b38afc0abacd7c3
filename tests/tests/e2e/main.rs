//! synkro end to end: native repos and `synkro` CLI devices syncing through
//! a real `synkro-relay` process, over real libp2p connections on loopback.
//! One test binary, a module per scenario.

mod blind_relay;
mod circuit;
mod cluster;
mod cluster_store;
mod full_disk;
mod hello_flood;
mod hostile_frames;
mod http_limits;
mod large_document;
mod many_docs;
mod relay_process;
mod relay_sync;
mod soak;
mod store_and_forward;
mod under_attack;

use std::time::Duration;

use synkro::net::{Multiaddr, NetConfig, Network};
use synkro::{MemberId, Repo};

/// Generous: CI machines are small and busy.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Poll `check` every 50 ms until it holds or `timeout` passes; its last
/// answer.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<bool> {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if check()? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// An in-memory repo connected to the relay at `addr` (which it may
/// replicate to), with its session open.
pub async fn repo_via(addr: &str) -> anyhow::Result<(Repo, Network, MemberId)> {
    let repo = Repo::in_memory().await?;
    let (net, relay) = connect(&repo, addr).await?;
    Ok((repo, net, relay))
}

/// Connect `repo` to the relay at `addr`; returns the relay's member id.
pub async fn connect(repo: &Repo, addr: &str) -> anyhow::Result<(Network, MemberId)> {
    log_from_env();
    let addr: Multiaddr = addr.parse()?;
    let net = repo
        .connect(NetConfig {
            relays: vec![addr.clone()],
            ..NetConfig::default()
        })
        .await?;
    let relay = net.dial(addr).await?;
    Ok((net, relay))
}

/// A unique text that must never appear outside readers.
pub fn marker(what: &str) -> String {
    format!("{}{what}-7f3c9a1e5b", synkro_tests::CANARY_PREFIX)
}

/// Logs of this process's repos, filtered by `RUST_LOG` (e.g.
/// `RUST_LOG=synkro=debug cargo test -p synkro-tests -- --nocapture`).
pub fn log_from_env() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Wait until `path` of `doc` reads `value` (it arrives from a peer).
pub async fn wait_for_value(doc: &synkro::DocHandle, path: &str, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut changes = doc.subscribe();
    tokio::time::timeout(TIMEOUT, async {
        while doc.get(path)?.as_ref() != Some(value) {
            changes.recv().await;
        }
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("{path} did not become {value} within {TIMEOUT:?}"))?
}

/// Wait (up to [`TIMEOUT`]) for the first network event `pick` maps to a value.
pub async fn next_event<T>(
    events: &mut synkro::Events<synkro::net::PeerEvent>,
    mut pick: impl FnMut(synkro::net::PeerEvent) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pick(e) {
                        return Ok(v);
                    }
                }
                Err(e) => anyhow::bail!("network events ended: {e}"),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no such network event within {TIMEOUT:?}"))?
}

/// A bare network node with Ed25519 `seed`, dialed to `addr`, and its first
/// sync session (up to [`TIMEOUT`]): for speaking the protocol by hand. Keep
/// the events receiver while the session is used.
pub async fn raw_session(
    addr: &str,
    seed: [u8; 32],
) -> anyhow::Result<(
    synkro_net::Network,
    synkro_net::Session,
    futures::channel::mpsc::UnboundedReceiver<synkro_net::NetEvent>,
)> {
    use futures::StreamExt;
    let started = synkro_net::Network::start(seed, synkro_net::NetConfig::default())?;
    tokio::spawn(started.driver);
    let mut events = started.events;
    started.network.dial(addr.parse()?).await?;
    loop {
        match tokio::time::timeout(TIMEOUT, events.next()).await? {
            Some(synkro_net::NetEvent::Session(s)) => return Ok((started.network, *s, events)),
            Some(_) => {}
            None => anyhow::bail!("network stopped"),
        }
    }
}

/// What a peer that shares nothing answers to a reconciliation `query`
/// (the `Answer` a stranger must get, whatever it asks).
pub fn empty_answer(query: &[u8]) -> Vec<u8> {
    let mut storage = negentropy::NegentropyStorageVector::new();
    storage.seal().expect("sealed once");
    let mut side = negentropy::Negentropy::owned(storage, 1 << 20).expect("frame limit over the minimum");
    side.reconcile(query).unwrap_or_default()
}

/// A reconciliation query listing `ids` (as document id prefixes with a
/// digest), the way a peer lists a few documents.
pub fn query_listing(ids: &[[u8; 32]]) -> Vec<u8> {
    // Protocol version, the bound "everything", mode IdList, the count.
    let mut query = vec![0x61, 0x00, 0x00, 0x02];
    let mut n = ids.len() as u64;
    let mut varint = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        varint.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    varint.reverse();
    query.extend(varint);
    for id in ids {
        query.extend(id);
    }
    query
}
