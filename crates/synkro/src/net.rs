//! Syncing a [`Repo`] over the network: libp2p through `synkro-net`.
//!
//! [`Repo::connect`] starts this device's libp2p node and pumps every sync
//! session it opens (dialed or accepted) into the repo. Relays named in
//! [`NetConfig::relays`] are kept connected, and once a relay's session is
//! open the repo lets it replicate every document it administers (see
//! [`Repo::replicate_to`]), so the relay stores their ciphertext for peers
//! that are never online at the same time.
//!
//! ```no_run
//! # async fn demo(repo: synkro::Repo) -> Result<(), synkro::Error> {
//! use std::time::Duration;
//! use synkro::net::NetConfig;
//!
//! let relay: synkro::net::Multiaddr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse().unwrap();
//! let net = repo.connect(NetConfig { relays: vec![relay.clone()], ..NetConfig::default() }).await?;
//! let relay = net.dial(relay).await?;
//! let doc = repo.create().await?;
//! doc.set("title", &serde_json::json!("stored on the relay"))?;
//! // Sealed, sent, and acknowledged as durable by the relay:
//! doc.wait_durable_on(relay, Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, SinkExt, Stream, StreamExt};
pub use synkro_net::{
    Connection, DEFAULT_STUN_PORT, IcePolicy, MAX_FRAME_LEN, Multiaddr, NetConfig, NetError, PeerId, Protocol,
    ServerConfig, TlsConfig, WebrtcConfig, peer_id_of, peer_in,
};
use synkro_net::{NetEvent, Session, member_of, read_frame_body, read_frame_len, write_frames};
#[cfg(not(target_arch = "wasm32"))]
pub use synkro_net::{Registry, generate_webrtc_certificate};
use tracing::{debug, info, warn};

use crate::rt::{Broadcast, Spawner, relock};

mod budget;
mod meet;
use crate::{Error, Events, MemberId, Repo, SessionId};
use budget::{Budget, Permit};

/// Messages and bytes exchanged with one peer (sync frames, both ways).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames sent.
    pub messages_sent: u64,
    /// Frames received.
    pub messages_received: u64,
    /// Bytes of frames sent (payload, without the 4-byte length).
    pub bytes_sent: u64,
    /// Bytes of frames received.
    pub bytes_received: u64,
}

/// Events counted since the network started, for metrics. Unlike
/// [`Network::events`], which a slow reader can fall behind on in a burst,
/// every event is counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetCounts {
    /// Sync sessions opened ([`PeerEvent::SessionOpened`]).
    pub sessions_opened: u64,
    /// Peers disconnected for malformed or oversized frames
    /// ([`PeerEvent::Misbehaved`]).
    pub misbehaved: u64,
}

/// What the network did, for status displays.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// Listening on an address (ending in `/p2p/<our id>`).
    Listening(Multiaddr),
    /// Connected to a peer (`relayed`: through a relay circuit).
    Connected {
        /// The peer.
        peer: PeerId,
        /// Through a relay.
        relayed: bool,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A sync session with a member started.
    SessionOpened {
        /// The member.
        peer: MemberId,
        /// Through a relay.
        relayed: bool,
    },
    /// A sync session ended.
    SessionClosed {
        /// The member.
        peer: MemberId,
    },
    /// A relay accepted our reservation: others can dial us through it.
    Reachable {
        /// The relay.
        relay: PeerId,
    },
    /// The way to a connected peer changed: a direct connection replaced
    /// the relay circuit (`relayed: false`), or the direct one dropped and
    /// only a circuit is left (`relayed: true`).
    PathChanged {
        /// The peer.
        peer: PeerId,
        /// Only through a relay now.
        relayed: bool,
    },
    /// A peer sent a malformed or oversized frame; its connection was closed.
    Misbehaved {
        /// The peer.
        peer: MemberId,
        /// What was wrong.
        reason: String,
    },
}

struct Shared {
    events: Broadcast<PeerEvent>,
    /// Room for received frames not handled yet, over all sessions.
    inbound: Arc<Budget>,
    traffic: Mutex<HashMap<MemberId, Traffic>>,
    sessions_opened: AtomicU64,
    misbehaved: AtomicU64,
}

impl Shared {
    fn traffic(&self) -> MutexGuard<'_, HashMap<MemberId, Traffic>> {
        relock(self.traffic.lock())
    }
}

/// A [`Repo`]'s libp2p node. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    net: synkro_net::Network,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Network({})", self.net.peer_id())
    }
}

impl Repo {
    /// Start this device's libp2p node (its PeerId is the member id) and
    /// sync every session it opens with this repo.
    pub async fn connect(&self, config: NetConfig) -> Result<Network, Error> {
        // The tab holding a browser repo holds its connections (one
        // libp2p identity, one connection per relay).
        self.inner.node().host_only("connecting")?;
        let relays = relay_members(&config);
        let (meet, inbound) = (config.reachable_via_relays, config.max_inbound_bytes);
        let started = synkro_net::Network::start(self.network_seed(), config)?;
        Ok(self.run_network(started, relays, meet, inbound))
    }

    /// [`connect`](Self::connect), recording libp2p metrics in `registry`.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn connect_with_metrics(&self, config: NetConfig, registry: &mut Registry) -> Result<Network, Error> {
        let relays = relay_members(&config);
        let (meet, inbound) = (config.reachable_via_relays, config.max_inbound_bytes);
        let started = synkro_net::Network::start_with_metrics(self.network_seed(), config, registry)?;
        Ok(self.run_network(started, relays, meet, inbound))
    }

    fn network_seed(&self) -> [u8; 32] {
        *self.inner.node().identity().signing_seed()
    }

    /// Drive the node, route its sessions into the repo, and (`meet`) dial
    /// the other members of our documents through the relays.
    fn run_network(
        &self,
        started: synkro_net::Started,
        relays: Vec<(MemberId, Multiaddr)>,
        meet: bool,
        inbound: usize,
    ) -> Network {
        // The relays named in the config replicate what this device
        // administers, like any relay given to `replicate_to`: one list.
        self.inner.add_replicas(relays.iter().map(|(m, _)| *m));
        let spawner = Spawner::current();
        spawner.spawn(started.driver);
        let network = Network {
            net: started.network,
            shared: Arc::new(Shared {
                events: Broadcast::new(256),
                inbound: Budget::new(inbound),
                traffic: Mutex::new(HashMap::new()),
                sessions_opened: AtomicU64::new(0),
                misbehaved: AtomicU64::new(0),
            }),
        };
        spawner.spawn(route(self.clone(), network.clone(), started.events, spawner.clone()));
        if meet {
            spawner.spawn(meet::meet_members(
                self.clone(),
                network.clone(),
                relays,
                spawner.clone(),
            ));
        }
        network
    }
}

/// The relays named in the config, as members, with their addresses.
fn relay_members(config: &NetConfig) -> Vec<(MemberId, Multiaddr)> {
    config
        .relays
        .iter()
        .filter_map(|a| Some((member_of(&peer_in(a)?)?, a.clone())))
        .collect()
}

impl Network {
    /// Our PeerId (the device's member id as libp2p spells it).
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// Addresses we listen on, each ending in `/p2p/<our id>`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.net.listen_addrs()
    }

    /// Peers we are connected to.
    pub fn connections(&self) -> Vec<Connection> {
        self.net.connections()
    }

    /// Relays that hold a reservation for us (we are reachable through them).
    pub fn reachable_via(&self) -> Vec<PeerId> {
        self.net.reachable_via()
    }

    /// Connect to a peer or relay (`/…/p2p/<id>`, or a circuit
    /// `/…/p2p/RELAY/p2p-circuit/p2p/PEER`) and wait for the sync session.
    /// Fails with [`NetError::Dial`] or [`NetError::Timeout`] when it cannot
    /// be reached, and with [`Error::NotASyncPeer`] when it answers but does
    /// not sync (a relay run without storage).
    pub async fn dial(&self, addr: Multiaddr) -> Result<MemberId, Error> {
        let dialed = self.net.dial(addr.clone()).await?;
        let member = member_of(&dialed.peer).ok_or_else(|| NetError::InvalidAddress {
            addr: addr.to_string(),
            reason: "the peer id is not an Ed25519 key".into(),
        })?;
        if !dialed.session {
            return Err(Error::NotASyncPeer(addr.to_string()));
        }
        Ok(member)
    }

    /// Listen on one more address, e.g. a circuit `/…/p2p/RELAY/p2p-circuit`.
    pub async fn listen_on(&self, addr: Multiaddr) -> Result<(), Error> {
        Ok(self.net.listen_on(addr).await?)
    }

    /// Frames exchanged with `peer` since the network started.
    pub fn traffic(&self, peer: &MemberId) -> Traffic {
        self.shared.traffic().get(peer).copied().unwrap_or_default()
    }

    /// Frames exchanged with every peer since the network started.
    pub fn total_traffic(&self) -> Traffic {
        self.shared.traffic().values().fold(Traffic::default(), |t, p| Traffic {
            messages_sent: t.messages_sent + p.messages_sent,
            messages_received: t.messages_received + p.messages_received,
            bytes_sent: t.bytes_sent + p.bytes_sent,
            bytes_received: t.bytes_received + p.bytes_received,
        })
    }

    /// Sessions opened and peers dropped for misbehaving, since the
    /// network started: exact, where [`Network::events`] may skip some.
    pub fn counts(&self) -> NetCounts {
        NetCounts {
            sessions_opened: self.shared.sessions_opened.load(Ordering::Relaxed),
            misbehaved: self.shared.misbehaved.load(Ordering::Relaxed),
        }
    }

    /// Follow connections and sessions.
    pub fn events(&self) -> Events<PeerEvent> {
        self.shared.events.subscribe()
    }

    /// Close every connection and stop the node.
    pub async fn shutdown(&self) {
        self.net.shutdown().await;
    }

    fn emit(&self, e: PeerEvent) {
        let counter = match e {
            PeerEvent::SessionOpened { .. } => Some(&self.shared.sessions_opened),
            PeerEvent::Misbehaved { .. } => Some(&self.shared.misbehaved),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.events.send(e);
    }

    fn count(&self, peer: MemberId, sent: bool, bytes: usize) {
        let mut traffic = self.shared.traffic();
        let t = traffic.entry(peer).or_default();
        if sent {
            t.messages_sent += 1;
            t.bytes_sent += bytes as u64;
        } else {
            t.messages_received += 1;
            t.bytes_received += bytes as u64;
        }
    }
}

/// Turn network events into sessions and status events.
async fn route(repo: Repo, network: Network, mut events: mpsc::UnboundedReceiver<NetEvent>, spawner: Spawner) {
    while let Some(event) = events.next().await {
        match event {
            NetEvent::Session(session) => {
                // Attach here, in the network's order: when both ends opened
                // a session at once, the one the network keeps must also be
                // the one the repo sends on.
                let hang_up = session.end.hang_up_handle();
                if let Some(attached) = attach(&repo, session.peer, hang_up).await {
                    spawner.spawn(pump(repo.clone(), network.clone(), *session, attached));
                }
            }
            NetEvent::Listening(a) => network.emit(PeerEvent::Listening(a)),
            NetEvent::Connected { peer, relayed } => network.emit(PeerEvent::Connected { peer, relayed }),
            NetEvent::Disconnected { peer } => network.emit(PeerEvent::Disconnected { peer }),
            NetEvent::Reachable { relay } => network.emit(PeerEvent::Reachable { relay }),
            NetEvent::PathChanged { peer, relayed } => network.emit(PeerEvent::PathChanged { peer, relayed }),
            _ => {}
        }
    }
}

/// Attach a new session's peer to the repo: its id and outgoing frames. If
/// the repo drops the peer (it sent something forged), the connection is
/// hung up.
async fn attach(
    repo: &Repo,
    peer: MemberId,
    hang_up: synkro_net::HangUp,
) -> Option<(SessionId, mpsc::UnboundedReceiver<Vec<u8>>)> {
    let (tx, rx) = mpsc::unbounded::<Vec<u8>>();
    // Grant a relay its role first, so our Hello already lists every
    // document it may store.
    if repo.inner.is_replica(&peer)
        && let Err(e) = repo.replicate_to(peer).await
    {
        warn!(%peer, error = %e, "could not let the relay replicate");
    }
    let id = repo
        .attach_peer(peer, tx, Some(Box::new(move || hang_up.hang_up())))
        .ok()?;
    Some((id, rx))
}

/// Most frames handed to the repo, or written to the connection, in one batch.
const MAX_BATCH: usize = 64;

/// `first` and the frames queued behind it now, up to [`MAX_BATCH`].
fn ready_batch<T, S: Stream<Item = T> + Unpin>(first: T, queue: &mut S) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.next().now_or_never() {
            Some(Some(frame)) => batch.push(frame),
            _ => break,
        }
    }
    batch
}

/// Carry one session's frames between the socket and the repo.
async fn pump(
    repo: Repo,
    network: Network,
    session: Session,
    (id, mut rx): (SessionId, mpsc::UnboundedReceiver<Vec<u8>>),
) {
    let Session {
        peer,
        relayed,
        stream,
        mut end,
        ..
    } = session;
    let (mut rd, mut wr) = stream.split();
    let hang_up = end.hang_up_handle();
    let hang_up_on_read = hang_up.clone();
    info!(%peer, relayed, "sync session open");
    network.emit(PeerEvent::SessionOpened { peer, relayed });
    // Frames are read into a short queue and handed to the repo in
    // batches: when they arrive faster than storage keeps up, what they
    // store is written together instead of one fsync per frame.
    // Each frame holds room in the network's inbound budget, taken before
    // it is read, until the repo has handled it.
    let (mut queue, mut queued) = mpsc::channel::<(Vec<u8>, Permit)>(MAX_BATCH);
    let net_ref = &network;
    let read = async move {
        loop {
            let frame = match read_frame_len(&mut rd, MAX_FRAME_LEN).await {
                Ok(Some(len)) => {
                    let room = net_ref.shared.inbound.acquire(len).await;
                    read_frame_body(&mut rd, len).await.map(|f| Some((f, room)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match frame {
                Ok(Some((frame, room))) => {
                    net_ref.count(peer, false, frame.len());
                    if queue.send((frame, room)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e)
                    if e.kind() == std::io::ErrorKind::InvalidData || e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    // Not speaking the protocol (oversize or torn frame):
                    // drop the whole connection, not only this stream. (A
                    // connection that died mid-frame looks the same; if a
                    // new one has taken over, `hang_up` leaves it alone.)
                    warn!(%peer, error = %e, "malformed frame; closing the connection");
                    net_ref.emit(PeerEvent::Misbehaved {
                        peer,
                        reason: e.to_string(),
                    });
                    hang_up_on_read.hang_up();
                    return;
                }
                Err(e) => {
                    debug!(%peer, error = %e, "session read ended");
                    return;
                }
            }
        }
    };
    let deliver = async {
        while let Some(first) = queued.next().await {
            let (batch, _room): (Vec<Vec<u8>>, Vec<Permit>) = ready_batch(first, &mut queued).into_iter().unzip();
            if repo.deliver(id, &batch).await.is_err() {
                return;
            }
        }
    };
    // Frames read before the peer hung up are still delivered.
    let reader = async {
        futures::join!(read, deliver);
    };
    let writer = async {
        // Frames queued together leave together (one write, one flush).
        while let Some(first) = rx.next().await {
            let batch = ready_batch(first, &mut rx);
            if write_frames(&mut wr, &batch).await.is_err() {
                return;
            }
            for frame in &batch {
                network.count(peer, true, frame.len());
            }
            if repo.transmitted(id, batch.iter().map(Vec::len).sum()).is_err() {
                return;
            }
        }
        // The repo dropped the session: it hung up already if the peer
        // misbehaved; a newer session (both ends dialed at once) may use
        // the same connection, which stays up.
        let _ = wr.close().await;
    };
    let why = futures::select! {
        () = reader.fuse() => "the peer's side ended",
        () = writer.fuse() => "our side ended",
        () = end.replaced().fuse() => "replaced",
    };
    repo.detach_peer(id);
    debug!(%peer, why, "sync session closed");
    network.emit(PeerEvent::SessionClosed { peer });
}
