//! Settings of a [`Network`](crate::Network).

use std::time::Duration;

use libp2p::Multiaddr;

/// Settings of a [`Network`](crate::Network).
///
/// ```
/// use synkro_net::NetConfig;
/// let config = NetConfig {
///     relays: vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse()?],
///     reachable_via_relays: true,
///     ..NetConfig::default()
/// };
/// # Ok::<(), synkro_net::MultiaddrError>(())
/// ```
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on (native): `/ip4/0.0.0.0/tcp/4001`,
    /// `/ip4/0.0.0.0/udp/4001/quic-v1`, `/ip4/0.0.0.0/tcp/4002/ws`,
    /// `/ip4/0.0.0.0/tcp/4443/tls/ws` (needs [`tls`](Self::tls)) or
    /// `/ip4/0.0.0.0/udp/4003/webrtc-direct`. Port 0 picks a free port.
    pub listen: Vec<Multiaddr>,
    /// Relays to stay connected to (reconnecting with backoff), each ending
    /// in `/p2p/<relay id>`.
    pub relays: Vec<Multiaddr>,
    /// Peers to stay connected to, like relays (e.g. a circuit address
    /// `/…/p2p/RELAY/p2p-circuit/p2p/PEER`).
    pub peers: Vec<Multiaddr>,
    /// Take a reservation on every relay so others can dial us through it
    /// at `/…/p2p/RELAY/p2p-circuit/p2p/US`. A `synkro` repo then also
    /// dials the other members of its documents through the relays, so
    /// online collaborators sync over a direct session.
    pub reachable_via_relays: bool,
    /// Find and dial peers on the local network with mDNS (native).
    pub mdns: bool,
    /// Addresses others can reach us at, announced to peers (a relay
    /// behind NAT or a load balancer sets its public address here).
    pub external_addrs: Vec<Multiaddr>,
    /// Run as a relay server (native).
    pub server: Option<ServerConfig>,
    /// Accept `/synkro/sync/1` streams. A relay that only relays turns this
    /// off, and peers see that it does not sync.
    pub accept_sync: bool,
    /// Certificate chain and key for `/tls/ws` listeners (native).
    pub tls: Option<TlsConfig>,
    /// PEM of the WebRTC-direct certificate (native). Its hash is part of
    /// `/webrtc-direct` addresses, so a server keeps it across restarts; see
    /// [`generate_webrtc_certificate`](crate::generate_webrtc_certificate).
    /// `None` generates one for this run.
    pub webrtc_certificate: Option<String>,
    /// Close connections that carry no stream for this long.
    pub idle_timeout: Duration,
    /// How long [`Network::dial`](crate::Network::dial) waits.
    pub dial_timeout: Duration,
    /// Longest wait between two attempts to reach a relay or peer.
    pub max_backoff: Duration,
    /// Browsers: after meeting another browser through a relay circuit,
    /// try a direct WebRTC connection to it (`/webrtc`, signaled over the
    /// circuit); once it is up, sync moves there and the circuit closes,
    /// and if it fails or later drops, the peers stay on (or go back to)
    /// the circuit. With no ICE servers configured, each relay's host is
    /// asked for STUN at port [`DEFAULT_STUN_PORT`](crate::DEFAULT_STUN_PORT).
    /// `None`: stay on circuits. Native nodes ignore it.
    pub direct_webrtc: Option<synkro_webrtc::Config>,
    /// Bytes of received frames held at once, over all sessions, before
    /// they are handled: room is taken for a frame before it is read, so a
    /// reader waits (and its peer is slowed down) while this is used up,
    /// and many peers sending large frames at once cannot exhaust memory.
    /// At least one frame ([`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN)).
    pub max_inbound_bytes: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            relays: Vec::new(),
            peers: Vec::new(),
            reachable_via_relays: false,
            mdns: false,
            external_addrs: Vec::new(),
            server: None,
            accept_sync: true,
            tls: None,
            webrtc_certificate: None,
            idle_timeout: Duration::from_secs(60),
            dial_timeout: Duration::from_secs(15),
            max_backoff: Duration::from_secs(30),
            direct_webrtc: Some(synkro_webrtc::Config::default()),
            max_inbound_bytes: 64 << 20,
        }
    }
}

/// A TLS certificate chain and its private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsConfig {
    /// Certificates, leaf first.
    pub cert_chain_pem: Vec<u8>,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// What a relay server accepts. Every limit bounds the memory, time or
/// bandwidth a stranger can make the relay spend.
///
/// The circuit limits are far above libp2p's defaults (2 minutes and
/// 128 KiB per circuit), which cut a collaboration session off after a
/// couple of minutes or one large document. A circuit lasts up to an hour
/// and carries up to 64 MiB each way; then the peers reconnect, which costs
/// one `Hello` exchange. 256 circuits × 64 MiB bounds the relayed volume per
/// hour; the per-IP and per-peer caps keep one party from taking it all.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Reservations held at once (peers reachable through this relay).
    pub max_reservations: usize,
    /// Reservations per peer.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the peer renews it.
    pub reservation_duration: Duration,
    /// Circuits relayed at once.
    pub max_circuits: usize,
    /// Circuits per peer.
    pub max_circuits_per_peer: usize,
    /// Longest life of one circuit.
    pub max_circuit_duration: Duration,
    /// Most bytes one circuit carries in each direction.
    pub max_circuit_bytes: u64,
    /// New reservations per IP address per minute.
    pub reservations_per_ip_per_minute: u32,
    /// New circuits per source IP address per minute.
    pub circuits_per_ip_per_minute: u32,
    /// Established connections at once.
    pub max_connections: u32,
    /// Established connections per peer.
    pub max_connections_per_peer: u32,
    /// Connections (handshaking or established) per IP address.
    pub max_connections_per_ip: u32,
    /// Connections still handshaking at once (bounds slow handshakes).
    pub max_pending: u32,
    /// Refuse new connections while the process uses more memory than this.
    pub max_memory_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_reservations: 1024,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(60 * 60),
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_circuit_duration: Duration::from_secs(60 * 60),
            max_circuit_bytes: 64 << 20,
            reservations_per_ip_per_minute: 60,
            circuits_per_ip_per_minute: 120,
            max_connections: 4096,
            max_connections_per_peer: 8,
            max_connections_per_ip: 256,
            max_pending: 256,
            max_memory_bytes: 1 << 30,
        }
    }
}
