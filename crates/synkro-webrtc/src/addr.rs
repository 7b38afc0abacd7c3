//! Which multiaddrs are browser-to-browser WebRTC ones.

use libp2p_core::multiaddr::{Multiaddr, Protocol};
use libp2p_identity::PeerId;

/// Whether `addr` names the `/webrtc` (browser-to-browser) transport, as
/// opposed to `/webrtc-direct` or a plain relay circuit.
pub fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::WebRTC)
}

/// The peer a dial to `addr` reaches: `addr` must be
/// `<relay address>/p2p/<relay>/p2p-circuit/webrtc/p2p/<peer>`, naming the
/// circuit that carries the signaling.
///
/// A bare `/webrtc/p2p/<peer>` (what the listening side calls an inbound
/// connection) is not dialable: it names no way to reach the peer, and an
/// address book that kept it would otherwise start a new WebRTC setup each
/// time something dials the peer.
pub fn dial_target(addr: &Multiaddr) -> Option<PeerId> {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    let mut rev = parts.into_iter().rev();
    let Some(Protocol::P2p(peer)) = rev.next() else {
        return None;
    };
    let (Some(Protocol::WebRTC), Some(Protocol::P2pCircuit), Some(Protocol::P2p(_relay))) =
        (rev.next(), rev.next(), rev.next())
    else {
        return None;
    };
    Some(peer)
}

/// Whether `addr` is one to listen on: `/webrtc`, or
/// `<relay>/p2p-circuit/webrtc`.
pub fn is_listen_addr(addr: &Multiaddr) -> bool {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    let mut rev = parts.into_iter().rev();
    matches!(rev.next(), Some(Protocol::WebRTC)) && matches!(rev.next(), None | Some(Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    const PEER: &str = "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE";

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn dial_addresses() {
        let peer: PeerId = PEER.parse().unwrap();
        assert_eq!(
            dial_target(&a(&format!("{RELAY}/p2p-circuit/webrtc/p2p/{PEER}"))),
            Some(peer)
        );
        for not in [
            format!("/webrtc/p2p/{PEER}"),
            format!("/p2p-circuit/webrtc/p2p/{PEER}"),
            format!("{RELAY}/p2p-circuit/p2p/{PEER}"),
            format!("{RELAY}/p2p-circuit/webrtc"),
            format!("/ip4/127.0.0.1/udp/1/webrtc-direct/p2p/{PEER}"),
            format!("/ip4/127.0.0.1/tcp/1/webrtc/p2p/{PEER}"),
        ] {
            assert_eq!(dial_target(&a(&not)), None, "{not}");
        }
        assert!(is_webrtc(&a(&format!("{RELAY}/p2p-circuit/webrtc/p2p/{PEER}"))));
        assert!(!is_webrtc(&a(&format!("{RELAY}/p2p-circuit/p2p/{PEER}"))));
    }

    #[test]
    fn listen_addresses() {
        assert!(is_listen_addr(&a("/webrtc")));
        assert!(is_listen_addr(&a(&format!("{RELAY}/p2p-circuit/webrtc"))));
        assert!(!is_listen_addr(&a(&format!("{RELAY}/p2p-circuit"))));
        assert!(!is_listen_addr(&a("/ip4/127.0.0.1/udp/0/webrtc-direct")));
        assert!(!is_listen_addr(&a("/ip4/127.0.0.1/tcp/0/webrtc")));
    }
}
