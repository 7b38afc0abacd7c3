//! Sessions with peers: one per connected peer, what it holds of each
//! shared document, and the queries about it (sync status, durability).
//! The protocol's messages are `sync.rs`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde_bytes::ByteBuf;

use super::reconcile::Reconciliation;
use super::timers::Timer;
use super::{Node, effect::*};
use crate::ids::{DocId, MemberId, OpHash};
use crate::message::{Digest, Message, PROTOCOL_VERSION, Refusal};
use crate::replica::DocReplica;
use crate::vv::VersionVector;

#[derive(Default)]
pub(super) struct PeerDoc {
    pub(super) heads: Vec<OpHash>,
    pub(super) vv: VersionVector,
    /// What the peer last reported in a `Have` (sent after its writes are
    /// durable), unlike `heads`/`vv`, which also count what we sent it.
    pub(super) acked: Option<(Vec<OpHash>, VersionVector)>,
    pub(super) snapshots: Vec<[u8; 32]>,
    pub(super) last_sent: Option<Digest>,
    /// The peer's last refusal of data we sent, until it acknowledges.
    pub(super) refused: Option<Refusal>,
    /// It refused for lack of room: send it nothing more until its next `Have`.
    pub(super) paused: bool,
}

pub(super) struct Peer {
    /// The session the peer is connected on.
    pub(super) session: SessionId,
    pub(super) docs: BTreeMap<DocId, PeerDoc>,
    /// Bytes sent to this peer and not yet reported transmitted.
    pub(super) queued: usize,
    /// Documents with chunks held back by the send window. They may be
    /// unloaded meanwhile: each is loaded again when its turn comes.
    pub(super) backlog: BTreeSet<DocId>,
    /// Documents of the backlog being loaded to be sent, at most
    /// [`MAX_PUSH_LOADS`].
    pub(super) push_loads: usize,
    /// Its `Hello` arrived.
    pub(super) said_hello: bool,
    /// Both reconciliations of the session; once ours is over we know
    /// which shared documents the peer holds in which state.
    pub(super) recon: Reconciliation,
    /// Ops it sent for documents we do not hold (a joiner's claim that came
    /// before the document did), taken up if the document arrives while
    /// the session lasts; at most [`MAX_PARKED`] bytes.
    pub(super) parked: Vec<(DocId, Vec<ByteBuf>)>,
}

/// Most documents of one peer's backlog loaded at once: enough to keep
/// its send window full, few enough that a peer behind 100,000 documents
/// does not bring them all into memory.
pub(super) const MAX_PUSH_LOADS: usize = 8;

/// Most bytes of ops kept per session for documents not held: a few
/// joiners' claims, not a store for strangers.
pub(super) const MAX_PARKED: usize = 64 << 10;

impl Peer {
    pub(super) fn parked_len(&self) -> usize {
        self.parked.iter().flat_map(|(_, ops)| ops).map(|o| o.len()).sum()
    }
}

impl Node {
    /// A session with `peer` (authenticated by the transport) is up: name it
    /// in the inputs that come from it. It replaces any earlier session
    /// with the same peer, whose inputs are ignored from now on.
    pub fn peer_connected(&mut self, peer: MemberId) -> SessionId {
        self.next_session += 1;
        let session = SessionId(self.next_session);
        let (recon, query) = Reconciliation::start(self.shared_digests(&peer));
        let old = self.peers.insert(
            peer,
            Peer {
                session,
                docs: BTreeMap::new(),
                queued: 0,
                backlog: BTreeSet::new(),
                push_loads: 0,
                said_hello: false,
                recon,
                parked: Vec::new(),
            },
        );
        if let Some(old) = old {
            self.sessions.remove(&old.session);
        }
        self.sessions.insert(session, peer);
        self.timers.start(Timer::Hello(session), self.config.hello_timeout);
        self.send(
            peer,
            &Message::Hello {
                version: PROTOCOL_VERSION,
                query: ByteBuf::from(query),
            },
        );
        session
    }

    /// The documents we would sync with `peer`: held (in memory or not)
    /// and shared with it.
    pub(super) fn shared_docs<'a>(&'a self, peer: &'a MemberId) -> impl Iterator<Item = DocId> + 'a {
        let loaded = self.docs.values().filter(move |r| shares(r, peer)).map(|r| r.id);
        let unloaded = self
            .unloaded
            .iter()
            .filter(move |(_, s)| s.shares(peer))
            .map(|(d, _)| *d);
        loaded.chain(unloaded)
    }

    /// The documents we would sync with `peer`, with their digests, as our
    /// reconciliation compares them.
    pub(super) fn shared_digests(&self, peer: &MemberId) -> Vec<(DocId, Digest)> {
        self.shared_docs(peer).map(|d| (d, self.offered_digest(&d))).collect()
    }

    /// The digest `doc` is compared by: what is not durable yet is not
    /// offered as held (a digest that matches nothing makes the documents
    /// be compared); a document not in memory, by its index entry.
    pub(super) fn offered_digest(&self, doc: &DocId) -> Digest {
        match self.docs.get(doc) {
            Some(r) if self.is_durable(doc) => r.digest(),
            Some(_) => [0; 16],
            None => self.unloaded.get(doc).map_or([0; 16], |s| s.digest),
        }
    }

    /// `session` is over (its connection closed, or it was replaced). A
    /// session the node ended itself ([`Effect::Disconnect`]) or that was
    /// replaced is forgotten already.
    pub fn peer_disconnected(&mut self, session: SessionId) {
        self.timers.stop(Timer::Hello(session));
        if let Some(peer) = self.sessions.remove(&session) {
            self.peers.remove(&peer);
            self.full_refused.retain(|(p, _)| *p != peer);
        }
    }

    /// Do we hold `doc` and share it with `peer` (it is a member, or the
    /// document is one we joined and wait for)? A peer we do not share a
    /// document with learns nothing about it from us, not even whether we
    /// hold it, and costs us nothing for it.
    pub(super) fn shared_with(&self, doc: &DocId, peer: &MemberId) -> bool {
        match self.docs.get(doc) {
            Some(r) => shares(r, peer),
            None => self.unloaded.get(doc).is_some_and(|s| s.shares(peer)),
        }
    }

    /// Has `peer` a session on `doc` (it was a member during this session)?
    pub(super) fn in_session(&self, peer: &MemberId, doc: &DocId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.docs.contains_key(doc))
    }

    /// `peer`'s current session, if it is connected.
    pub fn session_of(&self, peer: &MemberId) -> Option<SessionId> {
        self.peers.get(peer).map(|p| p.session)
    }

    /// The peer at the other end of `session`, while it is current.
    pub fn session_peer(&self, session: SessionId) -> Option<MemberId> {
        self.sessions.get(&session).copied()
    }

    /// Is `peer` connected, with our reconciliation over (so
    /// [`sync_status`](Self::sync_status) knows what it holds)?
    pub fn greeted(&self, peer: &MemberId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.recon.is_done())
    }

    /// Where each document stands with `peer`, from what it acknowledged.
    pub fn sync_status(&self, peer: &MemberId) -> SyncStatus {
        let mut status = SyncStatus::default();
        for doc in self.docs() {
            let (rooted, member) = match (self.docs.get(&doc), self.unloaded.get(&doc)) {
                (Some(r), _) => (r.log.is_rooted(), r.role_of(peer).is_some()),
                (None, Some(e)) => (e.rooted, e.role(peer).is_some()),
                (None, None) => continue,
            };
            if !rooted {
                status.pending.push(doc);
            } else if !member {
                status.not_shared.push(doc);
            } else if self.durable_on(peer, &doc) && self.holds_all_of(peer, &doc) {
                status.synced.push(doc);
            } else {
                status.unsynced.push(doc);
                let refused = self
                    .peers
                    .get(peer)
                    .and_then(|p| p.docs.get(&doc))
                    .and_then(|pd| pd.refused.clone());
                if let Some(reason) = refused {
                    status.refused.push((doc, reason));
                }
            }
        }
        status
    }

    /// What `peer` last reported holding of `doc` in a `Have`.
    fn acked(&self, peer: &MemberId, doc: &DocId) -> Option<&(Vec<OpHash>, VersionVector)> {
        self.peers.get(peer)?.docs.get(doc)?.acked.as_ref()
    }

    /// Has `peer` acknowledged storing everything this node holds of `doc`
    /// (every sealed edit and access op)? Unsealed edits count as not held.
    pub fn durable_on(&self, peer: &MemberId, doc: &DocId) -> bool {
        let acked = self.acked(peer, doc);
        let Some(r) = self.docs.get(doc) else {
            // Not in memory: judged from its index entry (same heads, and
            // every chunk we hold).
            return self.unloaded.get(doc).is_some_and(|e| {
                acked.is_some_and(|(heads, vv)| {
                    let s = e.summary();
                    vv.dominates(&s.vv) && same_heads(heads, &s.heads)
                })
            });
        };
        !r.dirty && acked.is_some_and(|(heads, vv)| vv.dominates(&r.vv) && r.log.known_to(heads))
    }

    /// Why `peer` last refused data of `doc` we sent it, if it has not
    /// acknowledged the document since.
    pub fn refusal(&self, peer: &MemberId, doc: &DocId) -> Option<&Refusal> {
        self.peers.get(peer)?.docs.get(doc)?.refused.as_ref()
    }

    /// Do we hold everything `peer` last reported holding of `doc`?
    pub(super) fn holds_all_of(&self, peer: &MemberId, doc: &DocId) -> bool {
        let acked = self.acked(peer, doc);
        let Some(r) = self.docs.get(doc) else {
            return self.unloaded.get(doc).is_some_and(|e| {
                acked.is_some_and(|(heads, vv)| {
                    let s = e.summary();
                    s.vv.dominates(vv) && same_heads(heads, &s.heads)
                })
            });
        };
        let state = r.log.state();
        // Chunks we would refuse (a revoked writer's edits after the revoke,
        // which the peer took before it learnt of it) are not missing.
        let holds = |(author, seq): (&MemberId, &u64)| {
            let ours = r.vv.get(author);
            ours >= *seq || !state.may_author(author, ours.saturating_add(1))
        };
        acked.is_some_and(|(heads, vv)| vv.iter().all(holds) && heads.iter().all(|h| r.log.contains(h)))
    }

    /// Peers with an open session.
    pub fn peers(&self) -> Vec<MemberId> {
        self.peers.keys().copied().collect()
    }
}

/// Are two lists of access-log heads the same set?
pub(super) fn same_heads(a: &[OpHash], b: &[OpHash]) -> bool {
    a.len() == b.len() && a.iter().all(|h| b.contains(h))
}

/// Is `r` a document we may talk about with `peer`: one it is a member of,
/// was a member of (it learns where the log stands, and its late edits are
/// refused with a reason), or one we joined and wait for?
pub(super) fn shares(r: &DocReplica, peer: &MemberId) -> bool {
    !r.log.is_rooted() || r.role_of(peer).is_some() || r.log.state().revoked.contains(peer)
}
