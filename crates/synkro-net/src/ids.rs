//! Member ids are Ed25519 public keys; libp2p PeerIds embed the same key.

use libp2p::identity::{PublicKey, ed25519};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use synkro_core::MemberId;

/// The PeerId of a member.
pub fn peer_id_of(member: &MemberId) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(member.as_bytes()).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// The member behind a PeerId (`None` for non-Ed25519 or hashed ids).
pub fn member_of(peer: &PeerId) -> Option<MemberId> {
    let digest = peer.as_ref().digest();
    let key = PublicKey::try_decode_protobuf(digest).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(MemberId(ed.to_bytes()))
}

/// The peer an address leads to: its last `/p2p/<id>` (for a circuit
/// `/…/p2p/RELAY/p2p-circuit/p2p/TARGET`, the target).
pub fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter()
        .filter_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None })
        .last()
}
