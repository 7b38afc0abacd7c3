//! Building the swarm: which transports each target has.
//!
//! Native: TCP, QUIC, WebSocket (`/ws`, and `/tls/ws` with a certificate),
//! WebRTC-direct, DNS, and circuits through relays. Browsers: WebSocket and
//! WebRTC-direct through the browser's own APIs, circuits, and direct
//! browser-to-browser WebRTC (`synkro-webrtc`, signaled over circuits). Every
//! connection is authenticated with Noise (or DTLS + Noise for WebRTC) and
//! multiplexed, so the PeerId at the other end is proven.

use libp2p::swarm::Swarm;
use libp2p::{SwarmBuilder, identity, noise, yamux};

use crate::behaviour::{Behaviour, SwarmBehaviour};
use crate::config::NetConfig;
use crate::error::NetError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn setup(e: impl Into<BoxError>) -> NetError {
    NetError::Setup(std::sync::Arc::from(e.into()))
}

/// Streams one connection may have open at once (yamux's default).
const MAX_STREAMS: usize = 512;
/// The window yamux grants every stream to begin with (its spec's 256 KiB).
const STREAM_CREDIT: usize = 256 * 1024;
/// The largest data frame rust-yamux reads; a larger one ends the connection.
const MAX_FRAME: usize = 1024 * 1024;

/// yamux, with no stream's receive window growing past [`MAX_FRAME`].
///
/// yamux doubles a busy stream's window (up to 16 MiB by default), and
/// js-libp2p's yamux sends data frames as large as the window it is granted,
/// while rust-yamux refuses any frame over 1 MiB and ends the connection
/// (`FrameTooLarge`). So the windows of a connection's streams may grow, all
/// together, by only what takes one stream from 256 KiB to 1 MiB: one busy
/// stream still gets 1 MiB per round trip, and every frame a standard peer
/// sends fits.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(MAX_STREAMS);
    config.set_max_connection_receive_window(Some(MAX_STREAMS * STREAM_CREDIT + (MAX_FRAME - STREAM_CREDIT)));
    config
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::build;
#[cfg(not(target_arch = "wasm32"))]
pub use native::generate_webrtc_certificate;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::build;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use libp2p::core::Transport as _;
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::upgrade::Version;
    use libp2p::metrics::Registry;
    use libp2p::{dns, tcp, websocket};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::config::TlsConfig;

    /// A fresh WebRTC-direct certificate, as PEM (keep it: its hash is part
    /// of the node's `/webrtc-direct` addresses).
    pub fn generate_webrtc_certificate() -> Result<String, NetError> {
        libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())
            .map(|c| c.serialize_pem())
            .map_err(|e| NetError::WebrtcCertificate(e.to_string()))
    }

    fn webrtc_certificate(config: &NetConfig) -> Result<libp2p_webrtc::tokio::Certificate, NetError> {
        let bad = |e: &dyn std::fmt::Display| NetError::WebrtcCertificate(e.to_string());
        match &config.webrtc_certificate {
            Some(pem) => libp2p_webrtc::tokio::Certificate::from_pem(pem).map_err(|e| bad(&e)),
            None => libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng()).map_err(|e| bad(&e)),
        }
    }

    /// Parse PEM before libp2p sees it: its constructors panic on bad keys.
    fn tls_config(tls: &TlsConfig) -> Result<websocket::tls::Config, NetError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| NetError::Tls(format!("{what}: {e}"));
        let certs = CertificateDer::pem_slice_iter(&tls.cert_chain_pem)
            .map(|c| c.map(|c| websocket::tls::Certificate::new(c.to_vec())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        if certs.is_empty() {
            return Err(NetError::Tls("no certificate in the certificate file".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| bad("private key", &e))?;
        let der = key.secret_der().to_vec();
        // `PrivateKey::new` expects on the format; check it will not.
        PrivateKeyDer::try_from(der.clone()).map_err(|e| bad("private key", &e))?;
        websocket::tls::Config::new(websocket::tls::PrivateKey::new(der), certs).map_err(|e| bad("certificate", &e))
    }

    pub fn build(
        key: identity::Keypair,
        config: &NetConfig,
        metrics: Option<&mut Registry>,
    ) -> Result<Swarm<SwarmBehaviour>, NetError> {
        // rustls is built with two crypto back ends here (QUIC brings
        // aws-lc-rs), so it cannot pick one by itself: pick ring for the
        // process, unless the application already chose.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let webrtc = webrtc_certificate(config)?;
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let relay_phase = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
            .map_err(setup)?
            .with_quic()
            .with_other_transport(|key| -> Result<_, BoxError> {
                let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
                let mut ws = websocket::Config::new(dns::tokio::Transport::system(tcp)?);
                if let Some(tls) = tls {
                    ws.set_tls_config(tls);
                }
                Ok(ws
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux_config()))
            })
            .map_err(setup)?
            .with_other_transport(|key| {
                libp2p_webrtc::tokio::Transport::new(key.clone(), webrtc)
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
            })
            .map_err(setup)?
            .with_dns()
            .map_err(setup)?
            .with_relay_client(noise::Config::new, yamux_config)
            .map_err(setup)?;
        let behaviour = |key: &identity::Keypair, relay| Behaviour::new(key, relay, config).map_err(BoxError::from);
        let idle = config.idle_timeout;
        // Metrics change the builder's type, so each arm finishes the build.
        Ok(match metrics {
            Some(registry) => relay_phase
                .with_bandwidth_metrics(registry)
                .with_behaviour(behaviour)
                .map_err(setup)?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build(),
            None => relay_phase
                .with_behaviour(behaviour)
                .map_err(setup)?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use libp2p::core::Transport as _;
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::transport::OptionalTransport;
    use libp2p::core::upgrade::Version;
    use libp2p::multiaddr::Protocol;
    use libp2p::{relay, webrtc_websys, websocket_websys};

    use super::*;

    /// With no ICE server configured, ask each relay's host for STUN.
    fn with_stun(mut webrtc: synkro_webrtc::Config, config: &NetConfig) -> synkro_webrtc::Config {
        if webrtc.ice_servers.is_empty() {
            for relay in &config.relays {
                let host = relay.iter().find_map(|p| match p {
                    Protocol::Ip4(ip) => Some(ip.to_string()),
                    Protocol::Ip6(ip) => Some(format!("[{ip}]")),
                    Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => Some(h.to_string()),
                    _ => None,
                });
                if let Some(host) = host {
                    webrtc
                        .ice_servers
                        .push(format!("stun:{host}:{}", crate::DEFAULT_STUN_PORT));
                }
            }
        }
        webrtc
    }

    pub fn build(
        key: identity::Keypair,
        config: &NetConfig,
    ) -> Result<(Swarm<SwarmBehaviour>, Option<synkro_webrtc::Handle>), NetError> {
        let (direct, handle) = match &config.direct_webrtc {
            Some(c) => {
                let (t, h) = synkro_webrtc::Transport::new(with_stun(c.clone(), config));
                (OptionalTransport::some(t), Some(h))
            }
            None => (OptionalTransport::none(), None),
        };
        // Transports are tried in order. The relay client is wired by hand,
        // after `/webrtc` (it would take `…/p2p-circuit/webrtc/p2p/<peer>`
        // for a plain circuit) and before WebSocket (which would dial the
        // relay part of `…/ws/p2p/RELAY/p2p-circuit/p2p/<peer>` itself).
        let (relay_transport, relay_behaviour) = relay::client::new(key.public().to_peer_id());
        let swarm = SwarmBuilder::with_existing_identity(key)
            .with_wasm_bindgen()
            .with_other_transport(|key| -> Result<_, BoxError> {
                let relayed = relay_transport
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux_config())
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
                Ok(direct
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
                    .or_transport(relayed)
                    .map(|either, _| either.into_inner()))
            })
            .map_err(setup)?
            .with_other_transport(|key| -> Result<_, BoxError> {
                Ok(websocket_websys::Transport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux_config()))
            })
            .map_err(setup)?
            .with_other_transport(|key| {
                webrtc_websys::Transport::new(webrtc_websys::Config::new(key))
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
            })
            .map_err(setup)?
            .with_behaviour(|key| Behaviour::new(key, relay_behaviour, config).map_err(BoxError::from))
            .map_err(setup)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        Ok((swarm, handle))
    }
}
