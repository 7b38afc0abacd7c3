//! The [`Driver`](crate::Driver)'s engine: the swarm and the bookkeeping
//! around it (sessions, dials, the relays and peers kept connected), driven
//! by swarm events and by commands from the [`Network`](crate::Network)
//! handles. The moves between relay circuits and direct WebRTC are
//! `direct.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, relay};
use libp2p_stream::OpenStreamError;
use tracing::{debug, info, warn};

use crate::behaviour::{BehaviourEvent, SwarmBehaviour};
use crate::config::NetConfig;
use crate::direct::DirectUpgrade;
use crate::error::{Cause, NetError, cause};
use crate::ids::{member_of, peer_in};

use crate::network::{Command, Dialed, Fut, Inbound, Metrics, NetEvent, PROTOCOL, Session, SessionEnd, Shared, boxed};
use crate::throttle::Throttle;

/// A relay or peer we stay connected to.
pub(crate) struct Kept {
    pub(crate) addr: Multiaddr,
    pub(crate) peer: PeerId,
    pub(crate) relay: bool,
    pub(crate) backoff: Duration,
    /// Our circuit listener through this relay.
    pub(crate) listener: Option<ListenerId>,
}

/// A [`Network::dial`] call waiting for its peer.
type DialWaiter = (Multiaddr, oneshot::Sender<Result<Dialed, NetError>>);

struct SessionEntry {
    id: u64,
    opened_by: PeerId,
    cancel: Option<oneshot::Sender<()>>,
}

/// What the [`Driver`](crate::Driver) owns: the swarm and the bookkeeping around it.
pub(crate) struct Engine {
    swarm: Swarm<SwarmBehaviour>,
    control: libp2p_stream::Control,
    config: NetConfig,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedSender<NetEvent>,
    sessions: HashMap<PeerId, SessionEntry>,
    next_id: u64,
    opening: FuturesUnordered<Fut<(PeerId, Result<libp2p::Stream, OpenStreamError>)>>,
    opening_for: HashSet<PeerId>,
    /// Peers with a dial in flight, so a second request does not open a
    /// second connection.
    dialing: HashSet<PeerId>,
    waiters: HashMap<PeerId, Vec<DialWaiter>>,
    kept: Vec<Kept>,
    redials: FuturesUnordered<Fut<usize>>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    metrics: Option<Metrics>,
    /// Circuits, direct browser-to-browser WebRTC, and the moves between them.
    direct: DirectUpgrade,
    /// Refused incoming connections, logged at most every 10 s.
    denials: Throttle,
}

/// How a connection reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Through a relay circuit.
    Circuit,
    /// Browser-to-browser WebRTC (set up over a circuit, then direct).
    WebRtc,
    /// Any other direct transport.
    Direct,
}

fn path_of(endpoint: &ConnectedPoint) -> Path {
    let addr = endpoint.get_remote_address();
    if synkro_webrtc::is_webrtc(addr) {
        Path::WebRtc
    } else if endpoint.is_relayed() {
        Path::Circuit
    } else {
        Path::Direct
    }
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        swarm: Swarm<SwarmBehaviour>,
        control: libp2p_stream::Control,
        config: NetConfig,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedSender<Command>,
        events: mpsc::UnboundedSender<NetEvent>,
        kept: Vec<Kept>,
        metrics: Option<Metrics>,
        upgrades: bool,
    ) -> Self {
        Self {
            swarm,
            control,
            config,
            shared,
            commands,
            events,
            sessions: HashMap::new(),
            next_id: 0,
            opening: FuturesUnordered::new(),
            opening_for: HashSet::new(),
            dialing: HashSet::new(),
            waiters: HashMap::new(),
            kept,
            redials: FuturesUnordered::new(),
            metrics,
            direct: DirectUpgrade::new(upgrades),
            denials: Throttle::new(Duration::from_secs(10)),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut incoming: Inbound,
        mut commands: mpsc::UnboundedReceiver<Command>,
        stopped: oneshot::Sender<()>,
    ) {
        for i in 0..self.kept.len() {
            self.redial(i);
        }
        loop {
            futures::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.next() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                // Accept at once: libp2p-stream drops inbound streams that
                // wait too long to be taken.
                stream = incoming.next().fuse() => match stream {
                    Some((peer, stream)) => self.register_session(peer, stream, peer),
                    None => break,
                },
                (peer, opened) = self.opening.select_next_some() => self.on_opened(peer, opened),
                i = self.redials.select_next_some() => self.redial(i),
                peer = self.direct.settled() => {
                    let direct_up = self.shared.state().connections.get(&peer).is_some_and(|(d, _)| *d > 0);
                    self.direct.close_circuits(&mut self.swarm, peer, direct_up);
                }
            }
        }
        for entry in self.sessions.values_mut() {
            if let Some(c) = entry.cancel.take() {
                let _ = c.send(());
            }
        }
        debug!("network stopped");
        let _ = stopped.send(());
    }

    fn emit(&self, e: NetEvent) {
        let _ = self.events.unbounded_send(e);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial(addr, reply) => self.dial(addr, reply),
            Command::ListenOn(addr, reply) => {
                let r = self
                    .swarm
                    .listen_on(addr.clone())
                    .map(drop)
                    .map_err(|e| NetError::Listen {
                        addr: addr.to_string(),
                        source: cause(e),
                    });
                let _ = reply.send(r);
            }
            Command::Disconnect(peer) => {
                // Meant: no falling back to the circuit either.
                self.direct.forget(&peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::SessionEnded { peer, id } => {
                if self.sessions.get(&peer).is_some_and(|e| e.id == id) {
                    self.sessions.remove(&peer);
                    self.shared.state().sessions.remove(&peer);
                }
            }
            Command::HangUp { peer, id } => {
                if self.sessions.get(&peer).is_some_and(|e| e.id == id) {
                    self.direct.forget(&peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Command::Shutdown => {}
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<Dialed, NetError>>) {
        let Some(peer) = peer_in(&addr) else {
            let _ = reply.send(Err(NetError::InvalidAddress {
                addr: addr.to_string(),
                reason: "it must end with /p2p/<peer id>".into(),
            }));
            return;
        };
        if peer == self.shared.local {
            let _ = reply.send(Err(NetError::InvalidAddress {
                addr: addr.to_string(),
                reason: "that is this node's own id".into(),
            }));
            return;
        }
        if cfg!(not(target_arch = "wasm32"))
            && uses_webrtc_direct(&addr)
            && !self.config.listen.iter().any(uses_webrtc_direct)
        {
            // libp2p's native WebRTC dials from the UDP socket of a listener.
            let _ = reply.send(Err(NetError::InvalidAddress {
                addr: addr.to_string(),
                reason: "a native node dials /webrtc-direct only while it listens on /udp/…/webrtc-direct; \
                         use the peer's /tcp, /quic-v1 or /ws address"
                    .into(),
            }));
            return;
        }
        if self.sessions.contains_key(&peer) {
            let _ = reply.send(Ok(Dialed { peer, session: true }));
            return;
        }
        let connected = self.swarm.is_connected(&peer);
        self.waiters.entry(peer).or_default().push((addr.clone(), reply));
        if connected {
            self.open_session(peer);
        } else if let Err(e) = self.start_dial(peer, addr) {
            self.fail_waiters(peer, e);
        }
    }

    /// Dial `peer` at `addr` unless a dial to it is already under way.
    /// Dial `peer` (an address, or options with several) unless a dial to
    /// it is under way.
    fn start_dial(&mut self, peer: PeerId, to: impl Into<libp2p::swarm::dial_opts::DialOpts>) -> Result<(), Cause> {
        if self.dialing.contains(&peer) {
            return Ok(());
        }
        self.swarm.dial(to).map_err(cause)?;
        self.dialing.insert(peer);
        Ok(())
    }

    fn fail_waiters(&mut self, peer: PeerId, why: Cause) {
        for (addr, reply) in self.waiters.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(NetError::Dial {
                addr: addr.to_string(),
                source: why.clone(),
            }));
        }
    }

    fn resolve_waiters(&mut self, peer: PeerId, session: bool) {
        for (_, reply) in self.waiters.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Ok(Dialed { peer, session }));
        }
    }

    /// Open the sync stream to a connected peer (the dialing side does).
    fn open_session(&mut self, peer: PeerId) {
        if !self.sessions.contains_key(&peer) {
            self.open_sync_stream(peer);
        }
    }

    /// Open a sync stream to `peer` (one at a time); [`Self::on_opened`]
    /// makes it the session, replacing any older one.
    fn open_sync_stream(&mut self, peer: PeerId) {
        if !self.opening_for.insert(peer) {
            return;
        }
        let mut control = self.control.clone();
        self.opening
            .push(boxed(async move { (peer, control.open_stream(peer, PROTOCOL).await) }));
    }

    fn on_opened(&mut self, peer: PeerId, opened: Result<libp2p::Stream, OpenStreamError>) {
        self.opening_for.remove(&peer);
        match opened {
            Ok(stream) => {
                let local = self.shared.local;
                self.register_session(peer, stream, local);
            }
            Err(OpenStreamError::UnsupportedProtocol(_)) => {
                debug!(%peer, "peer does not speak the sync protocol");
                self.resolve_waiters(peer, false);
            }
            Err(e) => {
                debug!(%peer, error = %e, "could not open the sync stream");
                self.fail_waiters(peer, cause(e));
            }
        }
    }

    /// Make `stream` the session with `peer`. When both ends opened one at
    /// once, both keep the stream opened by the smaller PeerId.
    fn register_session(&mut self, peer: PeerId, stream: libp2p::Stream, opened_by: PeerId) {
        let Some(member) = member_of(&peer) else {
            debug!(%peer, "sync stream from a peer without an Ed25519 id dropped");
            return;
        };
        if let Some(existing) = self.sessions.get_mut(&peer) {
            let winner = self.shared.local.min(peer);
            if existing.opened_by != opened_by && opened_by != winner {
                debug!(%peer, "duplicate sync stream dropped");
                return;
            }
            // A newer stream from the same opener means the old one is dead.
            if let Some(c) = existing.cancel.take() {
                let _ = c.send(());
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let (cancel_tx, cancel_rx) = oneshot::channel();
        self.sessions.insert(
            peer,
            SessionEntry {
                id,
                opened_by,
                cancel: Some(cancel_tx),
            },
        );
        let relayed = {
            let mut state = self.shared.state();
            state.sessions.insert(peer);
            state.connections.get(&peer).is_some_and(|(direct, _)| *direct == 0)
        };
        self.emit(NetEvent::Session(Box::new(Session {
            peer: member,
            peer_id: peer,
            relayed,
            stream,
            end: SessionEnd {
                id,
                peer,
                cancel: cancel_rx,
                commands: self.commands.clone(),
            },
        })));
        self.resolve_waiters(peer, true);
    }

    /// Once no circuit to `peer` is left and a direct connection is, the
    /// side with the smaller PeerId opens the session there (the other side
    /// accepts it in place of the old one: see [`Self::register_session`]).
    fn move_session_off_circuits(&mut self, peer: PeerId) {
        if self.direct.has_circuits(&peer) || !self.swarm.is_connected(&peer) {
            return;
        }
        if self.shared.local < peer && member_of(&peer).is_some() {
            self.open_sync_stream(peer);
        }
    }

    /// The direct connection to `peer` dropped and nothing else is left:
    /// dial the circuit it replaced, at once.
    fn fall_back(&mut self, peer: PeerId) {
        let Some(addr) = self.direct.fall_back(&peer) else {
            return;
        };
        if let Err(e) = self.start_dial(peer, addr.clone()) {
            debug!(%addr, error = %e, "cannot dial the circuit again");
        }
    }

    fn kept_index(&self, peer: &PeerId) -> Option<usize> {
        self.kept.iter().position(|k| k.peer == *peer)
    }

    /// Dial kept relay/peer `i` unless it is connected, at every address
    /// kept for it: the relays of a cluster are one peer at several
    /// addresses, and whichever answers first serves (failover).
    fn redial(&mut self, i: usize) {
        let Some(k) = self.kept.get(i) else { return };
        let (peer, addr) = (k.peer, k.addr.clone());
        if self.swarm.is_connected(&peer) {
            return;
        }
        let addrs: Vec<Multiaddr> = self
            .kept
            .iter()
            .filter(|k| k.peer == peer)
            .map(|k| k.addr.clone())
            .collect();
        debug!(%addr, addresses = addrs.len(), "dialing");
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addrs)
            .build();
        if let Err(e) = self.start_dial(peer, opts) {
            warn!(%addr, error = %e, "dial failed");
            self.schedule_redial(i);
        }
    }

    /// Try kept relay/peer `i` again after a growing delay.
    fn schedule_redial(&mut self, i: usize) {
        let max = self.config.max_backoff;
        let Some(k) = self.kept.get_mut(i) else { return };
        k.backoff = (k.backoff * 2).clamp(Duration::from_millis(500), max);
        let delay = k.backoff;
        self.redials.push(boxed(async move {
            futures_timer::Delay::new(delay).await;
            i
        }));
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(m) = &self.metrics {
            use libp2p::metrics::Recorder as _;
            m.record(&event);
            match &event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::RelayServer(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => m.record(e),
                _ => {}
            }
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let circuit = address.iter().any(|p| p == Protocol::P2pCircuit);
                if self.config.server.is_some() && self.config.external_addrs.is_empty() && !circuit {
                    // Without an explicit public address, a relay announces
                    // what it listens on (right for LANs and tests).
                    self.swarm.add_external_address(address.clone());
                }
                let full = address.with_p2p(self.shared.local).unwrap_or_else(|a| a);
                info!(addr = %full, "listening");
                self.shared.state().listen_addrs.push(full.clone());
                self.emit(NetEvent::Listening(full));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = address.with_p2p(self.shared.local).unwrap_or_else(|a| a);
                self.shared.state().listen_addrs.retain(|a| *a != full);
            }
            SwarmEvent::ListenerClosed {
                listener_id, addresses, ..
            } => {
                let full: Vec<Multiaddr> = addresses
                    .into_iter()
                    .map(|a| a.with_p2p(self.shared.local).unwrap_or_else(|a| a))
                    .collect();
                self.shared.state().listen_addrs.retain(|a| !full.contains(a));
                for k in &mut self.kept {
                    if k.listener == Some(listener_id) {
                        k.listener = None;
                        self.shared.state().reachable_via.remove(&k.peer);
                    }
                }
                self.emit(NetEvent::ListenerClosed(full));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint, num_established.get()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, ?cause, "connection closed");
                let path = path_of(&endpoint);
                let (gone, now_relayed) = {
                    let mut state = self.shared.state();
                    let mut now_relayed = false;
                    if let Some((direct, relayed)) = state.connections.get_mut(&peer_id) {
                        let n = if path == Path::Circuit {
                            &mut *relayed
                        } else {
                            &mut *direct
                        };
                        *n = n.saturating_sub(1);
                        now_relayed = path != Path::Circuit && *direct == 0 && *relayed > 0;
                    }
                    if num_established == 0 {
                        state.connections.remove(&peer_id);
                    }
                    (num_established == 0, now_relayed)
                };
                self.direct.closed(peer_id, connection_id, path == Path::WebRtc);
                if path == Path::WebRtc {
                    info!(peer = %peer_id, ?cause, "direct WebRTC connection closed");
                }
                if now_relayed {
                    self.emit(NetEvent::PathChanged {
                        peer: peer_id,
                        relayed: true,
                    });
                }
                if path == Path::Circuit && !gone {
                    self.move_session_off_circuits(peer_id);
                }
                if gone {
                    // No connection is left to carry the session: it is over,
                    // whether or not its pump has noticed yet. A new stream
                    // from the peer (over the next connection) must not be
                    // taken for a duplicate of it.
                    if let Some(mut entry) = self.sessions.remove(&peer_id) {
                        if let Some(c) = entry.cancel.take() {
                            let _ = c.send(());
                        }
                        self.shared.state().sessions.remove(&peer_id);
                    }
                    self.emit(NetEvent::Disconnected { peer: peer_id });
                    if let Some(i) = self.kept_index(&peer_id) {
                        self.schedule_redial(i);
                    }
                    if path == Path::WebRtc {
                        self.fall_back(peer_id);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id: Some(peer),
                error,
            } if self.direct.upgrade_failed(peer, connection_id) => {
                info!(%peer, error = %error, "no direct WebRTC connection: staying on the relay circuit");
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if !self.swarm.is_connected(&peer) => {
                self.dialing.remove(&peer);
                let why = cause(error);
                self.fail_waiters(peer, why.clone());
                if let Some(i) = self.kept_index(&peer) {
                    warn!(addr = %self.kept[i].addr, error = %why, "cannot reach");
                    self.schedule_redial(i);
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                // The memory cap, the connection limits or the per-address
                // limit said no; the metrics count each refusal.
                if let Some(refused) = self.denials.hit() {
                    warn!(refused, last_from = %send_back_addr, last_cause = %cause, "incoming connections refused");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            })) => {
                self.shared.state().reachable_via.insert(relay_peer_id);
                if !renewal {
                    info!(relay = %relay_peer_id, "reachable through relay");
                    self.emit(NetEvent::Reachable { relay: relay_peer_id });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                // Lets DCUtR and later dials find the peer's direct addresses.
                // Not `/webrtc` ones: only `upgrade` sets those up (once per
                // circuit, with its backoff), never a dial from an address book.
                for addr in info.listen_addrs.into_iter().filter(|a| !synkro_webrtc::is_webrtc(a)) {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            #[cfg(not(target_arch = "wasm32"))]
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found))) => {
                let mut dialed = HashSet::new();
                for (peer, addr) in found {
                    if peer != self.shared.local && !self.swarm.is_connected(&peer) && dialed.insert(peer) {
                        debug!(%peer, %addr, "found on the local network");
                        let _ = self.swarm.dial(addr.with_p2p(peer).unwrap_or_else(|a| a));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint, num_established: u32) {
        self.dialing.remove(&peer);
        let path = path_of(endpoint);
        let first_direct = {
            let mut state = self.shared.state();
            let (direct, relayed) = state.connections.entry(peer).or_default();
            if path == Path::Circuit {
                *relayed += 1;
                false
            } else {
                *direct += 1;
                *direct == 1 && *relayed > 0
            }
        };
        if num_established == 1 {
            self.emit(NetEvent::Connected {
                peer,
                relayed: path == Path::Circuit,
            });
        } else if first_direct {
            self.emit(NetEvent::PathChanged { peer, relayed: false });
        }
        match path {
            Path::Circuit => {
                let dialed = endpoint.is_dialer().then(|| endpoint.get_remote_address().clone());
                self.direct.circuit_up(&mut self.swarm, peer, id, dialed);
            }
            Path::WebRtc => {
                // Sync moves to the direct connection: the circuits close,
                // and the session follows once they are gone.
                let local = self.shared.local;
                self.direct
                    .webrtc_up(&mut self.swarm, local, peer, id, endpoint.is_dialer());
                return;
            }
            Path::Direct => {}
        }
        if let Some(i) = self.kept_index(&peer) {
            self.kept[i].backoff = Duration::ZERO;
            if self.kept[i].relay && self.config.reachable_via_relays && self.kept[i].listener.is_none() {
                let circuit = self.kept[i].addr.clone().with(Protocol::P2pCircuit);
                match self.swarm.listen_on(circuit.clone()) {
                    Ok(id) => self.kept[i].listener = Some(id),
                    Err(e) => warn!(addr = %circuit, error = %e, "cannot listen through relay"),
                }
            }
        }
        // The dialing side opens the sync stream; the other accepts it.
        let wanted = endpoint.is_dialer() || self.waiters.contains_key(&peer);
        if wanted && member_of(&peer).is_some() {
            self.open_session(peer);
        }
    }
}

fn uses_webrtc_direct(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::WebRTCDirect)
}
