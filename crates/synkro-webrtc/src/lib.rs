//! # synkro-webrtc
//!
//! A libp2p transport for direct browser-to-browser WebRTC connections,
//! following the libp2p WebRTC spec (`webrtc/webrtc.md`), as js-libp2p
//! speaks it:
//!
//! 1. Two browsers already share a relayed connection (circuit relay v2),
//!    authenticated end to end with Noise.
//! 2. The dialer opens a `/webrtc-signaling/0.0.1` stream on it, creates an
//!    `RTCPeerConnection` with a data channel labelled `init` (so that its
//!    offer has a data section), and sends its SDP offer; the listener
//!    answers; both trickle ICE candidates until the connection is up
//!    ([`signaling`]).
//! 3. The peer connection's data channels then carry libp2p streams with
//!    the spec's framing (libp2p-webrtc-websys' multiplexer).
//!
//! No Noise handshake runs on the new connection: the offer and answer
//! carry the DTLS certificate fingerprints and travel over the
//! authenticated relayed connection, and the browser checks them in the
//! DTLS handshake (the spec's FAQ). So the PeerId of the direct connection
//! is the one proven on the relayed connection.
//!
//! Addresses: a node that accepts such connections listens on
//! `<relay>/p2p-circuit/webrtc` (or a bare `/webrtc`: on any relayed
//! connection); others dial `<relay>/p2p-circuit/webrtc/p2p/<peer>`.
//!
//! The transport needs to open and accept streams on existing
//! connections, which a libp2p transport cannot do by itself: it takes a
//! [`libp2p_stream::Control`] once the swarm exists (`Handle::attach`,
//! browsers only). Put it before the relay client transport, which would
//! otherwise take `/p2p-circuit/webrtc` addresses for plain circuits.
//!
//! The signaling codec and the address rules build on every target (and
//! are tested natively); the transport itself is wasm32-only.
//!
//! ```
//! use synkro_webrtc::{dial_target, signaling::Signal};
//!
//! let addr = "/ip4/127.0.0.1/tcp/4001/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN\
//!             /p2p-circuit/webrtc/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE";
//! let peer = dial_target(&addr.parse().unwrap()).expect("a /webrtc address");
//! assert_eq!(peer.to_string(), "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE");
//!
//! // What arrives on the signaling stream is checked before a browser API sees it.
//! let bad = synkro_webrtc::signaling::Message { r#type: Some(1), data: Some("hello".into()) };
//! assert!(Signal::from_message(bad).is_err());
//! ```
#![warn(missing_docs)]

mod addr;
mod config;
mod error;
pub mod signaling;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
mod transport;

pub use addr::{dial_target, is_listen_addr, is_webrtc};
pub use config::{Config, IcePolicy};
pub use error::Error;
#[cfg(target_arch = "wasm32")]
pub use transport::{Handle, Transport};
