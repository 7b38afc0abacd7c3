//! [`Node`]: every document of one device and its sync sessions with peers.
//!
//! One type, split by concern: `documents` (load, create, change, flush),
//! `access` (members, roles, keys), `backups` (export, import), `presence`
//! (ephemeral messages), `sync` (sessions with peers and the protocol's
//! messages), `store` (what one call writes), and `effect` (what the node
//! asks of its runtime and tells the app).

mod access;
mod backups;
mod documents;
mod effect;
mod presence;
mod store;
mod sync;

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::crypto::NONCE_LEN;
use crate::error::CoreError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, MemberId};
use crate::limits::MAX_FRAME_LEN;
use crate::message::Message;
use crate::replica::{CompactionPolicy, DocReplica};

pub use effect::{DocInfo, Effect, Event, LoadReport, Origin, SyncStatus};
use store::StoreBatch;
use sync::Peer;

/// Tunables of a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// When writers fold history into snapshots.
    pub compaction: CompactionPolicy,
    /// Bytes of [`Effect::Send`] per peer that may be waiting to be
    /// transmitted (see [`Node::transmitted`]) before the node holds back
    /// further chunks: a slow peer costs at most this much memory, and a
    /// large initial sync streams instead of being queued whole.
    pub send_window: usize,
    /// Most documents a peer may make this node store (a relay's quota);
    /// documents created, joined or imported locally are not limited.
    pub max_docs: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            compaction: CompactionPolicy::default(),
            send_window: 4 << 20,
            max_docs: usize::MAX,
        }
    }
}

/// All documents of one device and its sync sessions. See the crate docs
/// for the run-loop contract.
pub struct Node {
    identity: DeviceIdentity,
    me: MemberId,
    config: NodeConfig,
    docs: BTreeMap<DocId, DocReplica>,
    peers: BTreeMap<MemberId, Peer>,
    effects: VecDeque<Effect>,
    /// Nonces of recent ephemeral messages, oldest first, so a copy that
    /// comes back around (two relays forwarding to each other) is dropped.
    seen_ephemeral: (HashSet<[u8; NONCE_LEN]>, VecDeque<[u8; NONCE_LEN]>),
    /// [`Event::Rejected`] emitted so far.
    rejected: u64,
}

impl Node {
    /// A node with no documents.
    pub fn new(identity: DeviceIdentity, config: NodeConfig) -> Self {
        let me = identity.member_id();
        Self {
            identity,
            me,
            config,
            docs: BTreeMap::new(),
            peers: BTreeMap::new(),
            effects: VecDeque::new(),
            seen_ephemeral: (HashSet::new(), VecDeque::new()),
            rejected: 0,
        }
    }

    /// This device's member id.
    pub fn member_id(&self) -> MemberId {
        self.me
    }

    /// This device's identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// Next effect to execute, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Documents held.
    pub fn docs(&self) -> Vec<DocId> {
        self.docs.keys().copied().collect()
    }

    /// Is this document held?
    pub fn has_doc(&self, doc: &DocId) -> bool {
        self.docs.contains_key(doc)
    }

    fn replica(&self, doc: &DocId) -> Result<&DocReplica, CoreError> {
        self.docs.get(doc).ok_or(CoreError::UnknownDocument(*doc))
    }

    fn replica_mut(&mut self, doc: &DocId) -> Result<&mut DocReplica, CoreError> {
        self.docs.get_mut(doc).ok_or(CoreError::UnknownDocument(*doc))
    }

    /// Sealed bytes held over all documents (access ops and chunks).
    pub fn stored_bytes(&self) -> usize {
        self.docs.values().map(|r| r.stored_bytes()).sum()
    }

    /// How many times data from a peer was refused ([`Event::Rejected`])
    /// since the node started: for metrics that must not miss any.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn send(&mut self, peer: MemberId, msg: &Message) {
        let message = msg.encode();
        if message.len() > MAX_FRAME_LEN {
            // Every message is built within the limits: this is a bug, and
            // the peer would end the session over it.
            tracing::error!(%peer, len = message.len(), "a message over the frame limit was not sent");
            debug_assert!(false, "message of {} bytes over the frame limit", message.len());
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.queued = p.queued.saturating_add(message.len());
        }
        self.effects.push_back(Effect::Send { peer, message });
    }

    fn persist(&mut self, doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) {
        if !puts.is_empty() || !deletes.is_empty() {
            self.effects.push_back(Effect::Persist { doc, puts, deletes });
        }
    }

    fn store(&mut self, doc: DocId, batch: StoreBatch) {
        let (puts, deletes) = batch.finish();
        self.persist(doc, puts, deletes);
    }

    fn emit(&mut self, e: Event) {
        if matches!(e, Event::Rejected { .. }) {
            self.rejected += 1;
        }
        self.effects.push_back(Effect::Event(e));
    }

    fn disconnect(&mut self, peer: MemberId, reason: String) {
        tracing::warn!(%peer, %reason, "dropping peer");
        self.peers.remove(&peer);
        self.effects.push_back(Effect::Disconnect { peer, reason });
    }
}
