//! The libp2p behaviours every synkro node runs, and those only a relay
//! server or a native node adds.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{connection_limits, dcutr, identify, identity, ping, relay};

use crate::config::{NetConfig, ServerConfig};
use crate::error::NetError;
use crate::per_ip::PerIpLimit;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Mdns = libp2p::mdns::tokio::Behaviour;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Autonat = libp2p::autonat::v2::server::Behaviour;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Rendezvous = libp2p::rendezvous::server::Behaviour;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type MemoryLimit = libp2p::memory_connection_limits::Behaviour;
// Browsers have no multicast, serve nobody, and cannot read their memory use.
#[cfg(target_arch = "wasm32")]
pub(crate) type Mdns = libp2p::swarm::dummy::Behaviour;
#[cfg(target_arch = "wasm32")]
pub(crate) type Autonat = libp2p::swarm::dummy::Behaviour;
#[cfg(target_arch = "wasm32")]
pub(crate) type Rendezvous = libp2p::swarm::dummy::Behaviour;
#[cfg(target_arch = "wasm32")]
pub(crate) type MemoryLimit = libp2p::swarm::dummy::Behaviour;

/// Agent and protocol version announced by identify.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/synkro/id/1.0.0";

/// What the swarm runs: [`Behaviour`], its connection handlers boxed.
pub(crate) type SwarmBehaviour = crate::boxed::Boxed<Behaviour>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub per_ip: Toggle<PerIpLimit>,
    pub memory: Toggle<MemoryLimit>,
    pub relay_server: Toggle<relay::Behaviour>,
    pub relay_client: relay::client::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<Mdns>,
    pub rendezvous: Toggle<Rendezvous>,
    pub autonat: Toggle<Autonat>,
    pub stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// The node's behaviour, as the swarm runs it (handlers boxed).
    pub fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        config: &NetConfig,
    ) -> Result<SwarmBehaviour, NetError> {
        let peer_id = key.public().to_peer_id();
        let server = config.server.as_ref();
        let limits = match server {
            Some(s) => connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(s.max_pending))
                .with_max_established_incoming(Some(s.max_connections))
                .with_max_established(Some(s.max_connections))
                .with_max_established_per_peer(Some(s.max_connections_per_peer)),
            None => connection_limits::ConnectionLimits::default(),
        };
        Ok(crate::boxed::Boxed(Self {
            limits: connection_limits::Behaviour::new(limits),
            per_ip: server.map(|s| PerIpLimit::new(s.max_connections_per_ip)).into(),
            memory: server.map(memory_limit).into(),
            relay_server: server.map(|s| relay::Behaviour::new(peer_id, relay_config(s))).into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("synkro/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(15))),
            mdns: mdns(config, peer_id)?.into(),
            rendezvous: server.map(|_| rendezvous()).into(),
            autonat: server.map(|_| autonat()).into(),
            stream: libp2p_stream::Behaviour::new(),
        }))
    }
}

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn relay_config(s: &ServerConfig) -> relay::Config {
    let minute = Duration::from_secs(60);
    relay::Config {
        max_reservations: s.max_reservations,
        max_reservations_per_peer: s.max_reservations_per_peer,
        reservation_duration: s.reservation_duration,
        max_circuits: s.max_circuits,
        max_circuits_per_peer: s.max_circuits_per_peer,
        max_circuit_duration: s.max_circuit_duration,
        max_circuit_bytes: s.max_circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_ip(per_minute(s.reservations_per_ip_per_minute), minute)
    .circuit_src_per_ip(per_minute(s.circuits_per_ip_per_minute), minute)
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_limit(s: &ServerConfig) -> MemoryLimit {
    MemoryLimit::with_max_bytes(s.max_memory_bytes)
}
#[cfg(target_arch = "wasm32")]
fn memory_limit(_: &ServerConfig) -> MemoryLimit {
    libp2p::swarm::dummy::Behaviour
}

#[cfg(not(target_arch = "wasm32"))]
fn mdns(config: &NetConfig, peer_id: libp2p::PeerId) -> Result<Option<Mdns>, NetError> {
    if !config.mdns {
        return Ok(None);
    }
    Mdns::new(libp2p::mdns::Config::default(), peer_id)
        .map(Some)
        .map_err(|e| NetError::Setup(std::sync::Arc::new(e)))
}
#[cfg(target_arch = "wasm32")]
fn mdns(_: &NetConfig, _: libp2p::PeerId) -> Result<Option<Mdns>, NetError> {
    Ok(None)
}

#[cfg(not(target_arch = "wasm32"))]
fn rendezvous() -> Rendezvous {
    Rendezvous::new(libp2p::rendezvous::server::Config::default())
}
#[cfg(target_arch = "wasm32")]
fn rendezvous() -> Rendezvous {
    libp2p::swarm::dummy::Behaviour
}

#[cfg(not(target_arch = "wasm32"))]
fn autonat() -> Autonat {
    Autonat::default()
}
#[cfg(target_arch = "wasm32")]
fn autonat() -> Autonat {
    libp2p::swarm::dummy::Behaviour
}
