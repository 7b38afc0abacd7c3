//! # synkro-net
//!
//! Carries synkro's sync protocol over libp2p, natively and in browsers.
//!
//! One [`Network`] per device. Its PeerId is derived from the device's
//! Ed25519 member key, so the transport handshake (Noise) already proves
//! which member is at the other end. Every connection to another synkro
//! peer gets one `/synkro/sync/1` stream that carries every document the
//! two share, as length-prefixed frames ([`read_frame`], [`write_frame`]:
//! u32 little-endian length, at most [`MAX_FRAME_LEN`] bytes, checked
//! before anything is allocated).
//!
//! The crate knows nothing about documents. It hands each stream to the
//! application as a [`Session`] in a [`NetEvent::Session`]; the `synkro`
//! crate pumps sessions into a `Repo`.
//!
//! It runs on any executor: [`Network::start`] returns a [`Driver`] future
//! to spawn (tokio natively, `wasm-bindgen-futures` in a browser) and an
//! event receiver; timers come from `futures-timer`.
//!
//! | target | transports |
//! |---|---|
//! | native | TCP, QUIC, WebSocket (`/ws`, `/tls/ws`), WebRTC-direct, DNS, relay circuits, mDNS |
//! | wasm32 | WebSocket, WebRTC-direct, relay circuits, browser-to-browser WebRTC (`/webrtc`) |
//!
//! The same [`Network`] runs the relay: with [`NetConfig::server`] set it
//! is a circuit relay v2 server with bounded limits ([`ServerConfig`]), a
//! rendezvous point and an AutoNAT server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), synkro_net::NetError> {
//! use futures::StreamExt;
//! use synkro_net::{NetConfig, NetEvent, Network};
//!
//! let started = Network::start([7; 32], NetConfig::default())?;
//! tokio::spawn(started.driver);
//! let relay = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
//! let dialed = started.network.dial(relay.parse().unwrap()).await?;
//! let mut events = started.events;
//! while let Some(event) = events.next().await {
//!     if let NetEvent::Session(session) = event {
//!         // read and write frames on session.stream
//!         # drop(session);
//!     }
//! }
//! # let _ = dialed; Ok(()) }
//! ```
#![warn(missing_docs)]

mod behaviour;
mod boxed;
mod config;
mod direct;
mod engine;
mod error;
mod framing;
mod ids;
mod network;
mod per_ip;
mod throttle;
mod transport;

pub use config::{NetConfig, ServerConfig, TlsConfig};
pub use error::NetError;
pub use framing::{MAX_FRAME_LEN, read_frame, read_frame_body, read_frame_len, write_frame, write_frames};
pub use ids::{member_of, peer_id_of, peer_in};
#[cfg(not(target_arch = "wasm32"))]
pub use libp2p::metrics::Registry;
pub use libp2p::multiaddr::{Error as MultiaddrError, Protocol};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use network::{Connection, Dialed, Driver, HangUp, NetEvent, Network, Session, SessionEnd, Started};
pub use per_ip::{PerIpLimit, TooManyFromIp};
pub use synkro_core::MemberId;
pub use throttle::Throttle;
#[cfg(not(target_arch = "wasm32"))]
pub use transport::generate_webrtc_certificate;

pub use synkro_webrtc::{Config as WebrtcConfig, IcePolicy};

/// The UDP port a relay answers STUN on unless told otherwise (RFC 8489's
/// default), which browsers ask when no ICE server is configured.
pub const DEFAULT_STUN_PORT: u16 = 3478;

/// The sync protocol's libp2p protocol name.
pub const SYNC_PROTOCOL: &str = "/synkro/sync/1";
