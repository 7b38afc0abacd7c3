//! [`Network`]: one libp2p node, its sync sessions, and the relays and peers
//! it keeps connected.
//!
//! Everything the swarm does happens in one future, the [`Driver`], which
//! the caller spawns on whatever runs its tasks (tokio natively,
//! `wasm-bindgen-futures` in a browser). The [`Network`] handle talks to it
//! over a channel; what it reports arrives as [`NetEvent`]s.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, identity, relay};
use libp2p_stream::OpenStreamError;
use synkro_core::MemberId;
use tracing::{debug, info, warn};
use web_time::Instant;

use crate::behaviour::{BehaviourEvent, SwarmBehaviour};
use crate::config::NetConfig;
use crate::error::NetError;
use crate::ids::{member_of, peer_in};

const PROTOCOL: StreamProtocol = StreamProtocol::new(crate::SYNC_PROTOCOL);

#[cfg(not(target_arch = "wasm32"))]
type Fut<T> = futures::future::BoxFuture<'static, T>;
#[cfg(target_arch = "wasm32")]
type Fut<T> = futures::future::LocalBoxFuture<'static, T>;

#[cfg(not(target_arch = "wasm32"))]
fn boxed<T>(f: impl Future<Output = T> + Send + 'static) -> Fut<T> {
    f.boxed()
}
#[cfg(target_arch = "wasm32")]
fn boxed<T>(f: impl Future<Output = T> + 'static) -> Fut<T> {
    f.boxed_local()
}

/// Sync streams other peers open to us.
#[cfg(not(target_arch = "wasm32"))]
type Inbound = futures::stream::BoxStream<'static, (PeerId, libp2p::Stream)>;
#[cfg(target_arch = "wasm32")]
type Inbound = futures::stream::LocalBoxStream<'static, (PeerId, libp2p::Stream)>;

#[cfg(not(target_arch = "wasm32"))]
fn boxed_stream(s: impl futures::Stream<Item = (PeerId, libp2p::Stream)> + Send + 'static) -> Inbound {
    s.boxed()
}
#[cfg(target_arch = "wasm32")]
fn boxed_stream(s: impl futures::Stream<Item = (PeerId, libp2p::Stream)> + 'static) -> Inbound {
    s.boxed_local()
}

/// Something the network did.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// Listening on an address (ending in `/p2p/<our id>`).
    Listening(Multiaddr),
    /// No longer listening on these addresses.
    ListenerClosed(Vec<Multiaddr>),
    /// The first connection to a peer is up.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Through a relay circuit.
        relayed: bool,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A sync session with a peer started: pump it (see [`Session`]).
    Session(Box<Session>),
    /// A relay accepted our reservation: others can dial us through it.
    Reachable {
        /// The relay.
        relay: PeerId,
    },
    /// The way to a connected peer changed: a direct connection came up
    /// next to (or instead of) a relay circuit, or the last direct one
    /// closed and only circuits are left.
    PathChanged {
        /// The peer.
        peer: PeerId,
        /// Only through relays now.
        relayed: bool,
    },
}

/// One authenticated `/synkro/sync/1` stream. The application reads and
/// writes frames on [`stream`](Self::stream) with
/// [`read_frame`](crate::read_frame) / [`write_frame`](crate::write_frame)
/// and stops when [`SessionEnd::replaced`] resolves. Dropping the parts
/// ends the session.
pub struct Session {
    /// The member at the other end, proven by the Noise handshake.
    pub peer: MemberId,
    /// The same, as a PeerId.
    pub peer_id: PeerId,
    /// Whether every connection to the peer goes through a relay.
    pub relayed: bool,
    /// The stream.
    pub stream: libp2p::Stream,
    /// Tells when the network closed or replaced this session.
    pub end: SessionEnd,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("relayed", &self.relayed)
            .finish()
    }
}

/// The network's side of a [`Session`]: resolves when the session must
/// stop, and tells the network when the application has stopped it.
pub struct SessionEnd {
    id: u64,
    peer: PeerId,
    cancel: oneshot::Receiver<()>,
    commands: mpsc::UnboundedSender<Command>,
}

impl SessionEnd {
    /// Resolves once a newer session with the same peer replaced this one
    /// or the network shut down.
    pub async fn replaced(&mut self) {
        let _ = (&mut self.cancel).await;
    }
}

impl SessionEnd {
    /// What closes this session's peer for misbehaving on it (see
    /// [`HangUp`]); take it before awaiting [`replaced`](Self::replaced).
    pub fn hang_up_handle(&self) -> HangUp {
        HangUp {
            id: self.id,
            peer: self.peer,
            commands: self.commands.clone(),
        }
    }
}

/// Closes every connection to a session's peer, if that session is still
/// the peer's current one: a session whose connection died and that a new
/// one (over a new connection) replaced must not take the new one down.
#[derive(Clone)]
pub struct HangUp {
    id: u64,
    peer: PeerId,
    commands: mpsc::UnboundedSender<Command>,
}

impl HangUp {
    /// Hang up on the peer (asynchronously; a no-op once the session is over).
    pub fn hang_up(&self) {
        let _ = self.commands.unbounded_send(Command::HangUp {
            peer: self.peer,
            id: self.id,
        });
    }
}

impl Drop for SessionEnd {
    fn drop(&mut self) {
        let _ = self.commands.unbounded_send(Command::SessionEnded {
            peer: self.peer,
            id: self.id,
        });
    }
}

/// What a successful [`Network::dial`] reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialed {
    /// The peer.
    pub peer: PeerId,
    /// A sync session is open (false: the peer does not speak
    /// `/synkro/sync/1`, e.g. a relay that only relays).
    pub session: bool,
}

/// A peer we are connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The peer.
    pub peer: PeerId,
    /// Every connection to it goes through a relay.
    pub relayed: bool,
    /// A sync session is open.
    pub session: bool,
}

pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<Dialed, NetError>>),
    ListenOn(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    Disconnect(PeerId),
    SessionEnded { peer: PeerId, id: u64 },
    HangUp { peer: PeerId, id: u64 },
    Shutdown,
}

#[derive(Default)]
struct State {
    listen_addrs: Vec<Multiaddr>,
    /// Open connections per peer: (direct, relayed).
    connections: HashMap<PeerId, (u32, u32)>,
    sessions: HashSet<PeerId>,
    reachable_via: BTreeSet<PeerId>,
}

struct Shared {
    local: PeerId,
    state: Mutex<State>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps and lists: still consistent after a panic elsewhere.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running libp2p node. Cheap to clone; the node runs until
/// [`shutdown`](Self::shutdown) or until every handle and the event
/// receiver are gone.
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    dial_timeout: Duration,
}

fn keypair(mut seed: [u8; 32]) -> Result<identity::Keypair, NetError> {
    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| NetError::Setup(e.to_string()))
}

#[cfg(not(target_arch = "wasm32"))]
type Metrics = libp2p::metrics::Metrics;
/// Browsers record no libp2p metrics.
#[cfg(target_arch = "wasm32")]
type Metrics = std::convert::Infallible;

/// What attaches browser-to-browser WebRTC to the swarm (browsers only).
#[cfg(target_arch = "wasm32")]
type DirectHandle = synkro_webrtc::Handle;
#[cfg(not(target_arch = "wasm32"))]
type DirectHandle = std::convert::Infallible;

/// The future that runs a [`Network`]; spawn it.
#[must_use = "the network does nothing until its driver is spawned"]
pub struct Driver(Fut<()>);

impl Future for Driver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// What [`Network::start`] returns.
pub struct Started {
    /// The handle.
    pub network: Network,
    /// Spawn this.
    pub driver: Driver,
    /// Sessions and other events, in order.
    pub events: mpsc::UnboundedReceiver<NetEvent>,
}

impl Network {
    /// Start a node with the device's Ed25519 `seed`, so its PeerId is the
    /// device's member id.
    pub fn start(seed: [u8; 32], config: NetConfig) -> Result<Started, NetError> {
        #[cfg(not(target_arch = "wasm32"))]
        let (swarm, direct) = (crate::transport::build(keypair(seed)?, &config, None)?, None);
        #[cfg(target_arch = "wasm32")]
        let (swarm, direct) = crate::transport::build(keypair(seed)?, &config)?;
        Self::launch(swarm, config, None, direct)
    }

    /// [`start`](Self::start), recording libp2p metrics (connections,
    /// bandwidth, identify, ping, relay, DCUtR) in `registry`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn start_with_metrics(
        seed: [u8; 32],
        config: NetConfig,
        registry: &mut crate::Registry,
    ) -> Result<Started, NetError> {
        let swarm = crate::transport::build(keypair(seed)?, &config, Some(registry))?;
        Self::launch(swarm, config, Some(libp2p::metrics::Metrics::new(registry)), None)
    }

    fn launch(
        mut swarm: Swarm<SwarmBehaviour>,
        config: NetConfig,
        metrics: Option<Metrics>,
        direct: Option<DirectHandle>,
    ) -> Result<Started, NetError> {
        let local = *swarm.local_peer_id();
        #[cfg(target_arch = "wasm32")]
        if config.server.is_some() {
            return Err(NetError::Setup("a browser cannot run a relay server".into()));
        }
        if let Some(server) = swarm.behaviour_mut().relay_server.as_mut() {
            // A relay is run to be reachable: serve reservations without
            // waiting for AutoNAT to confirm an external address.
            server.set_status(Some(relay::Status::Enable));
        }
        for addr in &config.external_addrs {
            swarm.add_external_address(addr.clone());
        }
        for addr in &config.listen {
            swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        }
        let mut kept = Vec::new();
        for (addr, relay) in config
            .relays
            .iter()
            .map(|a| (a, true))
            .chain(config.peers.iter().map(|a| (a, false)))
        {
            let peer = peer_in(addr).ok_or_else(|| NetError::InvalidAddress {
                addr: addr.to_string(),
                reason: "it must end with /p2p/<peer id>".into(),
            })?;
            kept.push(Kept {
                addr: addr.clone(),
                peer,
                relay,
                backoff: Duration::ZERO,
                listener: None,
            });
        }

        // Browsers: accept direct WebRTC offers on any relayed connection.
        #[cfg(target_arch = "wasm32")]
        if let Some(handle) = &direct {
            handle.attach(swarm.behaviour().stream.new_control());
            let any_circuit = Multiaddr::empty().with(Protocol::WebRTC);
            swarm.listen_on(any_circuit).map_err(|e| NetError::Listen {
                addr: "/webrtc".into(),
                reason: e.to_string(),
            })?;
        }
        let upgrades = direct.is_some();
        let mut control = swarm.behaviour().stream.new_control();
        let incoming: Inbound = if config.accept_sync {
            boxed_stream(control.accept(PROTOCOL).map_err(|e| NetError::Setup(e.to_string()))?)
        } else {
            boxed_stream(futures::stream::pending())
        };
        let (commands, commands_rx) = mpsc::unbounded();
        let (events, events_rx) = mpsc::unbounded();
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            local,
            state: Mutex::new(State::default()),
            stopped: Mutex::new(Some(stopped_rx)),
        });
        let engine = Engine {
            swarm,
            control,
            config: config.clone(),
            shared: shared.clone(),
            commands: commands.clone(),
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
            upgrades,
            circuits: HashMap::new(),
            upgrading: HashMap::new(),
            next_upgrade: HashMap::new(),
            fall_back_to: HashMap::new(),
            closers: FuturesUnordered::new(),
            webrtc: HashMap::new(),
        };
        info!(peer = %local, "network started");
        Ok(Started {
            network: Network {
                shared,
                commands,
                dial_timeout: config.dial_timeout,
            },
            driver: Driver(boxed(engine.run(incoming, commands_rx, stopped_tx))),
            events: events_rx,
        })
    }

    /// Our PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.shared.local
    }

    /// Addresses we listen on, each ending in `/p2p/<our id>` (relay
    /// circuits included once the relay accepted us).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.state().listen_addrs.clone()
    }

    /// Peers we are connected to.
    pub fn connections(&self) -> Vec<Connection> {
        let state = self.shared.state();
        state
            .connections
            .iter()
            .map(|(peer, (direct, _))| Connection {
                peer: *peer,
                relayed: *direct == 0,
                session: state.sessions.contains(peer),
            })
            .collect()
    }

    /// Relays that currently hold a reservation for us.
    pub fn reachable_via(&self) -> Vec<PeerId> {
        self.shared.state().reachable_via.iter().copied().collect()
    }

    /// Connect to `addr`, which ends in `/p2p/<peer id>` (through a relay:
    /// `/…/p2p/RELAY/p2p-circuit/p2p/TARGET`), and wait until the sync
    /// session is open or the peer turns out not to speak it.
    pub async fn dial(&self, addr: Multiaddr) -> Result<Dialed, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .unbounded_send(Command::Dial(addr.clone(), tx))
            .map_err(|_| NetError::Closed)?;
        let timeout = futures_timer::Delay::new(self.dial_timeout);
        match futures::future::select(rx, timeout).await {
            futures::future::Either::Left((reply, _)) => reply.map_err(|_| NetError::Closed)?,
            futures::future::Either::Right(_) => Err(NetError::Timeout {
                addr: addr.to_string(),
                seconds: self.dial_timeout.as_secs(),
            }),
        }
    }

    /// Listen on one more address (e.g. `/…/p2p/RELAY/p2p-circuit`).
    pub async fn listen_on(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .unbounded_send(Command::ListenOn(addr, tx))
            .map_err(|_| NetError::Closed)?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// Close every connection to `peer`.
    pub fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.unbounded_send(Command::Disconnect(peer));
    }

    /// Stop the node, closing every connection, and wait until it has.
    pub async fn shutdown(&self) {
        let _ = self.commands.unbounded_send(Command::Shutdown);
        let stopped = self.shared.stopped.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = stopped {
            let _ = s.await;
        }
    }
}

/// A relay or peer we stay connected to.
struct Kept {
    addr: Multiaddr,
    peer: PeerId,
    relay: bool,
    backoff: Duration,
    /// Our circuit listener through this relay.
    listener: Option<ListenerId>,
}

/// A [`Network::dial`] call waiting for its peer.
type DialWaiter = (Multiaddr, oneshot::Sender<Result<Dialed, NetError>>);

struct SessionEntry {
    id: u64,
    opened_by: PeerId,
    cancel: Option<oneshot::Sender<()>>,
}

/// What the [`Driver`] owns: the swarm and the bookkeeping around it.
struct Engine {
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
    /// Try direct browser-to-browser WebRTC over circuits (browsers).
    upgrades: bool,
    /// Open relay circuits per peer, with the address we dialed (if we did).
    circuits: HashMap<PeerId, Vec<(ConnectionId, Option<Multiaddr>)>>,
    /// Peers with a direct WebRTC dial in flight, and its connection.
    upgrading: HashMap<PeerId, ConnectionId>,
    /// No new direct attempt to a peer before this (after one failed or
    /// dropped: the circuit serves meanwhile).
    next_upgrade: HashMap<PeerId, Instant>,
    /// The circuit to dial again if the direct connection to a peer drops.
    fall_back_to: HashMap<PeerId, Multiaddr>,
    /// Peers whose circuits close once their direct connection has settled.
    closers: FuturesUnordered<Fut<PeerId>>,
    /// Direct WebRTC connections per peer, and whether we dialed each.
    webrtc: HashMap<PeerId, Vec<(ConnectionId, bool)>>,
}

/// How long a circuit stays open next to the direct connection replacing it.
const CIRCUIT_GRACE: Duration = Duration::from_secs(1);

/// How long the circuit serves after a direct attempt failed or dropped.
const UPGRADE_RETRY: Duration = Duration::from_secs(60);

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
    async fn run(
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
                peer = self.closers.select_next_some() => self.close_circuits(peer),
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
                        reason: e.to_string(),
                    });
                let _ = reply.send(r);
            }
            Command::Disconnect(peer) => {
                // Meant: no falling back to the circuit either.
                self.fall_back_to.remove(&peer);
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
                    self.fall_back_to.remove(&peer);
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
            self.fail_waiters(peer, &e);
        }
    }

    /// Dial `peer` at `addr` unless a dial to it is already under way.
    fn start_dial(&mut self, peer: PeerId, addr: Multiaddr) -> Result<(), String> {
        if self.dialing.contains(&peer) {
            return Ok(());
        }
        self.swarm.dial(addr).map_err(|e| e.to_string())?;
        self.dialing.insert(peer);
        Ok(())
    }

    fn fail_waiters(&mut self, peer: PeerId, reason: &str) {
        for (addr, reply) in self.waiters.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(NetError::Dial {
                addr: addr.to_string(),
                reason: reason.to_owned(),
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
                self.fail_waiters(peer, &format!("could not open the sync stream: {e}"));
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

    /// Over a circuit we dialed to `peer` (a browser, perhaps), try a direct
    /// WebRTC connection in the background (the spec's dialer is the
    /// circuit's dialer). Nothing changes for the app if it fails.
    fn upgrade(&mut self, peer: PeerId, circuit: &Multiaddr) {
        if !self.upgrades || member_of(&peer).is_none() || self.upgrading.contains_key(&peer) {
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
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.upgrading.insert(peer, id);
            }
            Err(e) => debug!(%addr, error = %e, "direct WebRTC dial refused"),
        }
    }

    /// Both sides may have offered WebRTC at once (each dialed a circuit):
    /// of two direct connections, both sides keep the one the smaller
    /// PeerId dialed. Returns whether `id` was the one closed.
    fn drop_duplicate_webrtc(&mut self, peer: PeerId, id: ConnectionId, we_dialed: bool) -> bool {
        let ours = self.shared.local < peer;
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
            self.swarm.close_connection(*c);
        }
        close.contains(&id)
    }

    /// A direct connection to `peer` has been up for [`CIRCUIT_GRACE`]: close
    /// the circuits it replaces.
    fn close_circuits(&mut self, peer: PeerId) {
        let direct = self.shared.state().connections.get(&peer).is_some_and(|(d, _)| *d > 0);
        if !direct {
            return;
        }
        let circuits: Vec<_> = self.circuits.get(&peer).into_iter().flatten().cloned().collect();
        for (circuit, dialed) in &circuits {
            if let Some(addr) = dialed {
                self.fall_back_to.insert(peer, addr.clone());
            }
            self.swarm.close_connection(*circuit);
        }
        // With none left, the session has moved already (when the last one
        // closed, see the `ConnectionClosed` arm).
    }

    /// Once no circuit to `peer` is left and a direct connection is, the
    /// side with the smaller PeerId opens the session there (the other side
    /// accepts it in place of the old one: see [`Self::register_session`]).
    fn move_session_off_circuits(&mut self, peer: PeerId) {
        if self.circuits.contains_key(&peer) || !self.swarm.is_connected(&peer) {
            return;
        }
        if self.shared.local < peer && member_of(&peer).is_some() {
            self.open_sync_stream(peer);
        }
    }

    /// The direct connection to `peer` dropped and nothing else is left:
    /// dial the circuit it replaced, at once.
    fn fall_back(&mut self, peer: PeerId) {
        let Some(addr) = self.fall_back_to.remove(&peer) else {
            return;
        };
        info!(%peer, "direct connection lost: back to the relay circuit");
        if let Err(e) = self.start_dial(peer, addr.clone()) {
            debug!(%addr, error = %e, "cannot dial the circuit again");
        }
    }

    fn kept_index(&self, peer: &PeerId) -> Option<usize> {
        self.kept.iter().position(|k| k.peer == *peer)
    }

    /// Dial kept relay/peer `i` unless it is connected.
    fn redial(&mut self, i: usize) {
        let Some(k) = self.kept.get(i) else { return };
        if self.swarm.is_connected(&k.peer) {
            return;
        }
        let (peer, addr) = (k.peer, k.addr.clone());
        debug!(%addr, "dialing");
        if let Err(e) = self.start_dial(peer, addr.clone()) {
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
                if let Some(list) = self.circuits.get_mut(&peer_id) {
                    list.retain(|(id, _)| *id != connection_id);
                    if list.is_empty() {
                        self.circuits.remove(&peer_id);
                    }
                }
                if let Some(list) = self.webrtc.get_mut(&peer_id) {
                    list.retain(|(id, _)| *id != connection_id);
                    if list.is_empty() {
                        self.webrtc.remove(&peer_id);
                    }
                }
                if path == Path::WebRtc {
                    info!(peer = %peer_id, ?cause, "direct WebRTC connection closed");
                    self.next_upgrade.insert(peer_id, Instant::now() + UPGRADE_RETRY);
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
            } if self.upgrading.get(&peer) == Some(&connection_id) => {
                self.upgrading.remove(&peer);
                info!(%peer, error = %error, "no direct WebRTC connection: staying on the relay circuit");
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if !self.swarm.is_connected(&peer) => {
                self.dialing.remove(&peer);
                self.fail_waiters(peer, &error.to_string());
                if let Some(i) = self.kept_index(&peer) {
                    warn!(addr = %self.kept[i].addr, error = %error, "cannot reach");
                    self.schedule_redial(i);
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
                self.circuits.entry(peer).or_default().push((id, dialed.clone()));
                if let Some(addr) = dialed {
                    self.upgrade(peer, &addr);
                }
            }
            Path::WebRtc => {
                self.upgrading.remove(&peer);
                if self.drop_duplicate_webrtc(peer, id, endpoint.is_dialer()) {
                    return;
                }
                // Sync moves to the direct connection: the circuits close
                // (after a moment, so that the other side, whose end of the
                // connection may come up a little later, never sees the
                // peer gone). The session follows once they are gone.
                self.closers.push(boxed(async move {
                    futures_timer::Delay::new(CIRCUIT_GRACE).await;
                    peer
                }));
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
