//! Moving a peer's session from a relay circuit to a direct
//! browser-to-browser WebRTC connection, and back when the direct one
//! drops: the circuits and direct connections each peer has, upgrades in
//! flight and when to try again, and which circuit to fall back to.
//!
//! The dialer of a circuit (the spec's WebRTC dialer) tries a direct
//! connection over it in the background. Once one is up for
//! [`CIRCUIT_GRACE`], the circuits close and the session follows to the
//! direct connection; if that drops and nothing else is left, the circuit
//! is dialed again at once. A failed or dropped attempt is not retried for
//! [`UPGRADE_RETRY`]: the circuit serves meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{FuturesUnordered, SelectNextSome};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use tracing::{debug, info};
use web_time::Instant;

use crate::behaviour::SwarmBehaviour;
use crate::ids::member_of;
use crate::network::{Fut, boxed};

/// How long a circuit stays open next to the direct connection replacing it.
const CIRCUIT_GRACE: Duration = Duration::from_secs(1);

/// How long the circuit serves after a direct attempt failed or dropped.
const UPGRADE_RETRY: Duration = Duration::from_secs(60);

pub(crate) struct DirectUpgrade {
    /// Try direct WebRTC over circuits at all (browsers do).
    enabled: bool,
    /// Open relay circuits per peer, with the address we dialed (if we did).
    circuits: HashMap<PeerId, Vec<(ConnectionId, Option<Multiaddr>)>>,
    /// Peers with a direct WebRTC dial in flight, and its connection.
    upgrading: HashMap<PeerId, ConnectionId>,
    /// No new direct attempt to a peer before this.
    next_upgrade: HashMap<PeerId, Instant>,
    /// The circuit to dial again if the direct connection to a peer drops.
    fall_back_to: HashMap<PeerId, Multiaddr>,
    /// Peers whose circuits close once their direct connection has settled.
    closers: FuturesUnordered<Fut<PeerId>>,
    /// Direct WebRTC connections per peer, and whether we dialed each.
    webrtc: HashMap<PeerId, Vec<(ConnectionId, bool)>>,
}

impl DirectUpgrade {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            circuits: HashMap::new(),
            upgrading: HashMap::new(),
            next_upgrade: HashMap::new(),
            fall_back_to: HashMap::new(),
            closers: FuturesUnordered::new(),
            webrtc: HashMap::new(),
        }
    }

    /// A circuit to `peer` is up (we dialed it at `dialed`, if we did):
    /// over one we dialed, try a direct WebRTC connection in the background.
    pub fn circuit_up(
        &mut self,
        swarm: &mut Swarm<SwarmBehaviour>,
        peer: PeerId,
        id: ConnectionId,
        dialed: Option<Multiaddr>,
    ) {
        self.circuits.entry(peer).or_default().push((id, dialed.clone()));
        if let Some(addr) = dialed {
            self.upgrade(swarm, peer, &addr);
        }
    }

    /// Over a circuit we dialed to `peer` (a browser, perhaps), try a direct
    /// WebRTC connection (the spec's dialer is the circuit's dialer).
    /// Nothing changes for the app if it fails.
    fn upgrade(&mut self, swarm: &mut Swarm<SwarmBehaviour>, peer: PeerId, circuit: &Multiaddr) {
        if !self.enabled || member_of(&peer).is_none() || self.upgrading.contains_key(&peer) {
            return;
        }
        if self.next_upgrade.get(&peer).is_some_and(|t| Instant::now() < *t) {
            return;
        }
        if !circuit.iter().any(|p| p == Protocol::P2pCircuit) {
            return;
        }
        // `<relay>/p2p-circuit/p2p/<peer>` → `<relay>/p2p-circuit/webrtc/p2p/<peer>`
        let mut addr: Multiaddr = circuit
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(id) if *id == peer))
            .collect();
        addr.push(Protocol::WebRTC);
        addr.push(Protocol::P2p(peer));
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        debug!(%addr, "trying a direct WebRTC connection");
        self.next_upgrade.insert(peer, Instant::now() + UPGRADE_RETRY);
        match swarm.dial(opts) {
            Ok(()) => {
                self.upgrading.insert(peer, id);
            }
            Err(e) => debug!(%addr, error = %e, "direct WebRTC dial refused"),
        }
    }

    /// A direct WebRTC connection to `peer` is up. Returns false if it was
    /// closed at once as a duplicate; otherwise the circuits it replaces
    /// close after [`CIRCUIT_GRACE`] (so that the other side, whose end may
    /// come up a little later, never sees the peer gone).
    pub fn webrtc_up(
        &mut self,
        swarm: &mut Swarm<SwarmBehaviour>,
        local: PeerId,
        peer: PeerId,
        id: ConnectionId,
        we_dialed: bool,
    ) -> bool {
        self.upgrading.remove(&peer);
        if self.drop_duplicate_webrtc(swarm, local, peer, id, we_dialed) {
            return false;
        }
        self.closers.push(boxed(async move {
            futures_timer::Delay::new(CIRCUIT_GRACE).await;
            peer
        }));
        true
    }

    /// Both sides may have offered WebRTC at once (each dialed a circuit):
    /// of two direct connections, both sides keep the one the smaller
    /// PeerId dialed. Returns whether `id` was the one closed.
    fn drop_duplicate_webrtc(
        &mut self,
        swarm: &mut Swarm<SwarmBehaviour>,
        local: PeerId,
        peer: PeerId,
        id: ConnectionId,
        we_dialed: bool,
    ) -> bool {
        let ours = local < peer;
        let list = self.webrtc.entry(peer).or_default();
        list.push((id, we_dialed));
        if list.len() < 2 {
            return false;
        }
        // Keep the one dialed by the smaller id; close every other one.
        let keep = list.iter().find(|(_, dialed)| *dialed == ours).map(|(c, _)| *c);
        let Some(keep) = keep else { return false };
        let close: Vec<ConnectionId> = list.iter().map(|(c, _)| *c).filter(|c| *c != keep).collect();
        list.retain(|(c, _)| *c == keep);
        for c in &close {
            debug!(%peer, "closing a duplicate direct WebRTC connection");
            swarm.close_connection(*c);
        }
        close.contains(&id)
    }

    /// The next peer whose direct connection has settled ([`CIRCUIT_GRACE`]).
    /// Fused: while none is pending, `select!` leaves it alone.
    pub fn settled(&mut self) -> SelectNextSome<'_, FuturesUnordered<Fut<PeerId>>> {
        self.closers.select_next_some()
    }

    /// `peer`'s direct connection has settled: close the circuits it
    /// replaces (if it is still up), keeping the address to fall back to.
    pub fn close_circuits(&mut self, swarm: &mut Swarm<SwarmBehaviour>, peer: PeerId, direct_up: bool) {
        if !direct_up {
            return;
        }
        let circuits: Vec<_> = self.circuits.get(&peer).into_iter().flatten().cloned().collect();
        for (circuit, dialed) in &circuits {
            if let Some(addr) = dialed {
                self.fall_back_to.insert(peer, addr.clone());
            }
            swarm.close_connection(*circuit);
        }
        // With none left, the session has moved already (when the last one
        // closed: see `closed`).
    }

    /// Connection `id` to `peer` closed; `webrtc` if it was a direct one.
    pub fn closed(&mut self, peer: PeerId, id: ConnectionId, webrtc: bool) {
        if let Some(list) = self.circuits.get_mut(&peer) {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                self.circuits.remove(&peer);
            }
        }
        if let Some(list) = self.webrtc.get_mut(&peer) {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                self.webrtc.remove(&peer);
            }
        }
        if webrtc {
            self.next_upgrade.insert(peer, Instant::now() + UPGRADE_RETRY);
        }
    }

    /// Does `peer` still have a relay circuit open?
    pub fn has_circuits(&self, peer: &PeerId) -> bool {
        self.circuits.contains_key(peer)
    }

    /// Our direct dial to `peer` (connection `id`) failed, if it was one:
    /// the circuit stays. Returns whether it was.
    pub fn upgrade_failed(&mut self, peer: PeerId, id: ConnectionId) -> bool {
        if self.upgrading.get(&peer) != Some(&id) {
            return false;
        }
        self.upgrading.remove(&peer);
        true
    }

    /// The circuit to dial again now that `peer`'s direct connection dropped
    /// and nothing else is left, if there is one.
    pub fn fall_back(&mut self, peer: &PeerId) -> Option<Multiaddr> {
        let addr = self.fall_back_to.remove(peer)?;
        info!(%peer, "direct connection lost: back to the relay circuit");
        Some(addr)
    }

    /// An explicit disconnect or hang-up: no falling back to the circuit.
    pub fn forget(&mut self, peer: &PeerId) {
        self.fall_back_to.remove(peer);
    }
}
