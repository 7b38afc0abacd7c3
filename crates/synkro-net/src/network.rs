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
use futures::{FutureExt, StreamExt};
#[cfg(target_arch = "wasm32")]
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity, relay};
use synkro_core::MemberId;
use tracing::info;

use crate::behaviour::SwarmBehaviour;
use crate::config::NetConfig;
use crate::engine::{Engine, Kept};
use crate::error::{NetError, cause};
use crate::ids::peer_in;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(crate::SYNC_PROTOCOL);

#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Fut<T> = futures::future::BoxFuture<'static, T>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Fut<T> = futures::future::LocalBoxFuture<'static, T>;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn boxed<T>(f: impl Future<Output = T> + Send + 'static) -> Fut<T> {
    f.boxed()
}
#[cfg(target_arch = "wasm32")]
pub(crate) fn boxed<T>(f: impl Future<Output = T> + 'static) -> Fut<T> {
    f.boxed_local()
}

/// Sync streams other peers open to us.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Inbound = futures::stream::BoxStream<'static, (PeerId, libp2p::Stream)>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Inbound = futures::stream::LocalBoxStream<'static, (PeerId, libp2p::Stream)>;

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
    pub(crate) id: u64,
    pub(crate) peer: PeerId,
    pub(crate) cancel: oneshot::Receiver<()>,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
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
pub(crate) struct State {
    pub(crate) listen_addrs: Vec<Multiaddr>,
    /// Open connections per peer: (direct, relayed).
    pub(crate) connections: HashMap<PeerId, (u32, u32)>,
    pub(crate) sessions: HashSet<PeerId>,
    pub(crate) reachable_via: BTreeSet<PeerId>,
}

pub(crate) struct Shared {
    pub(crate) local: PeerId,
    pub(crate) state: Mutex<State>,
    pub(crate) stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
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
    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| NetError::Setup(cause(e)))
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Metrics = libp2p::metrics::Metrics;
/// Browsers record no libp2p metrics.
#[cfg(target_arch = "wasm32")]
pub(crate) type Metrics = std::convert::Infallible;

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
            return Err(NetError::Unsupported("a browser cannot run a relay server"));
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
                source: cause(e),
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
                source: cause(e),
            })?;
        }
        let upgrades = direct.is_some();
        let mut control = swarm.behaviour().stream.new_control();
        let incoming: Inbound = if config.accept_sync {
            boxed_stream(control.accept(PROTOCOL).map_err(|e| NetError::Setup(cause(e)))?)
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
        let engine = Engine::new(
            swarm,
            control,
            config.clone(),
            shared.clone(),
            commands.clone(),
            events,
            kept,
            metrics,
            upgrades,
        );
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
