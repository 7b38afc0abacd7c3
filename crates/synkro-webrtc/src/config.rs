//! How browser-to-browser connections are set up.

use std::time::Duration;

/// Which ICE candidates a peer connection may use (`iceTransportPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IcePolicy {
    /// Host, server-reflexive (STUN) and relay (TURN) candidates.
    #[default]
    All,
    /// TURN relays only: with no TURN server configured, no direct path
    /// can form (for tests, and for users who must not reveal addresses).
    RelayOnly,
}

/// Settings of the [`Transport`](crate::Transport).
#[derive(Clone, Debug)]
pub struct Config {
    /// ICE servers, as URLs (`stun:host:port`, `turn:…`).
    pub ice_servers: Vec<String>,
    /// Which candidates to use.
    pub ice_policy: IcePolicy,
    /// How long signaling plus ICE and DTLS may take before the attempt
    /// is given up (js-libp2p: 10 s).
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            ice_policy: IcePolicy::All,
            timeout: Duration::from_secs(10),
        }
    }
}
