//! [`Node`]: every document of one device and its sync sessions with peers.
//!
//! One type, split by concern: `documents` (load, create, change, flush),
//! `access` (members, roles, keys), `backups` (export, import), `presence`
//! (ephemeral messages), `sync` (sessions with peers and the protocol's
//! messages), `store` (what one call writes), and `effect` (what the node
//! asks of its runtime and tells the app).

mod access;
mod backups;
mod blobs;
mod documents;
mod effect;
mod index;
mod interop;
pub use interop::ChangeInfo;
mod presence;
mod reconcile;
mod residency;
mod session;
mod shared_store;
mod store;
mod sync;
mod tabs;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use rand_core::CryptoRng;

use crate::crypto::NONCE_LEN;
use crate::error::CoreError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, MemberId};
use crate::limits::MAX_FRAME_LEN;
use crate::message::Message;
use crate::replica::{CompactionPolicy, DocReplica, DocSummary, INDEX_RECORD};
use crate::time::Instant;

pub use effect::{
    DocInfo, Effect, Event, LoadReport, Origin, SessionId, StorageState, SyncStatus, WriteFailure, WriteId,
};
use session::Peer;
use store::{StoreBatch, Writes};
use timers::{Timer, Timers};

/// Tunables of a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// How long edits gather while they come fast: an edit made when its
    /// document's last seal is at least this long ago is sealed at once
    /// (at the next [`Node::handle_timeout`]); one made sooner waits this
    /// long, and every edit made meanwhile goes into the same chunk. A
    /// typist's keystroke leaves at once, and a burst costs at most one
    /// chunk per window, like Nagle's algorithm with a clock instead of
    /// acknowledgements.
    pub flush_window: Duration,
    /// Whether an edit made when its document was not sealed within the
    /// last flush window is sealed at once (`true`, the default). With
    /// `false` every edit not yet sealed waits for a whole window from the
    /// first of them: fewer chunks for apps that make a few edits in a row,
    /// at the cost of the window's delay on each.
    pub seal_at_once: bool,
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
    /// How long a new session may go without the peer's `Hello` before the
    /// node ends it: a stream that never speaks holds nothing open.
    pub hello_timeout: Duration,
    /// How long the node waits before retrying writes that failed for lack
    /// of space ([`WriteFailure::Full`]).
    pub write_retry: Duration,
    /// Roughly how many bytes the documents in memory may take before the
    /// least recently used idle ones are unloaded (their index entries
    /// stay; they load again on their next use). Pinned documents (live
    /// handles) never are. See [`Node::memory_estimate`].
    pub memory_budget: usize,
    /// Another node (a browser's host tab) writes the store this node
    /// reads: this one writes nothing, seals and signs nothing, and hands
    /// its edits to the host ([`Effect::ForHost`]); it learns what the
    /// host stored through [`Node::stored_elsewhere`]. See `tabs`.
    pub guest: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            flush_window: Duration::from_millis(50),
            seal_at_once: true,
            compaction: CompactionPolicy::default(),
            send_window: 4 << 20,
            max_docs: usize::MAX,
            hello_timeout: Duration::from_secs(30),
            write_retry: Duration::from_secs(2),
            memory_budget: 256 << 20,
            guest: false,
        }
    }
}

/// All documents of one device and its sync sessions. See the crate docs
/// for the run-loop contract.
pub struct Node {
    identity: DeviceIdentity,
    me: MemberId,
    config: NodeConfig,
    /// Documents in memory.
    docs: BTreeMap<DocId, DocReplica>,
    /// Documents held but not in memory, by their index entries (see `residency`).
    unloaded: index::Index,
    /// Pins per document ([`Node::pin`]): kept in memory.
    pins: BTreeMap<DocId, usize>,
    /// Counts uses of documents, for least-recently-used unloading.
    use_clock: u64,
    /// Documents loaded since the node last looked at its memory budget.
    loads_since_evict: usize,
    /// Documents asked of the runtime with [`Effect::Load`], and what waits for them.
    loading: BTreeMap<DocId, Vec<residency::Waiting>>,
    /// Peers with a session, by member, and which member each session is.
    peers: BTreeMap<MemberId, Peer>,
    sessions: HashMap<SessionId, MemberId>,
    next_session: u64,
    effects: VecDeque<Effect>,
    timers: Timers,
    /// The latest time the runtime told ([`Node::handle_timeout`]).
    now: Option<Instant>,
    writes: Writes,
    /// Nonces of recent ephemeral messages, oldest first, so a copy that
    /// comes back around (two relays forwarding to each other) is dropped.
    seen_ephemeral: (HashSet<[u8; NONCE_LEN]>, VecDeque<[u8; NONCE_LEN]>),
    /// [`Event::Rejected`] emitted so far.
    rejected: u64,
    /// Whether writes succeed.
    storage: StorageState,
    /// Data refused for lack of room: (peer, document), told our state
    /// again once there is room so that they send it again.
    full_refused: BTreeSet<(MemberId, DocId)>,
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
            unloaded: index::Index::default(),
            loading: BTreeMap::new(),
            pins: BTreeMap::new(),
            use_clock: 0,
            loads_since_evict: 0,
            peers: BTreeMap::new(),
            sessions: HashMap::new(),
            next_session: 0,
            effects: VecDeque::new(),
            timers: Timers::default(),
            now: None,
            writes: Writes::default(),
            seen_ephemeral: (HashSet::new(), VecDeque::new()),
            rejected: 0,
            storage: StorageState::Ok,
            full_refused: BTreeSet::new(),
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

    /// Next effect to execute (see [`Effect`] for what may run at once).
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When the node next needs [`handle_timeout`](Self::handle_timeout),
    /// or `None` if no timer runs. Ask after every
    /// `handle_timeout`: inputs since the last one may have started timers
    /// that only it arms.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Tell the node the time: timers started since the last call count
    /// from `now`, and those due fire (a flush window closes: its edits
    /// are sealed). Call it after every batch of inputs and whenever
    /// [`poll_timeout`](Self::poll_timeout)'s instant has come.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Instant) {
        // Time as the node counts it never goes back, so a timer started
        // below with a window is never due at once (even a zero window).
        let now = self.now.map_or(now, |t| t.max(now));
        self.now = Some(now);
        for timer in self.timers.expire(now) {
            match timer {
                Timer::Flush(doc) => {
                    // Sealed less than a window ago: edits are coming fast,
                    // so this one waits a window and gathers those that follow.
                    let window = self.config.flush_window;
                    let sealed = self.docs.get(&doc).and_then(|r| r.sealed_at);
                    if sealed.is_some_and(|at| at + window > now) {
                        self.timers.start(Timer::Flush(doc), window);
                        continue;
                    }
                    if let Err(e) = self.flush(rng, &doc) {
                        tracing::warn!(%doc, error = %e, "sealing pending edits failed");
                    }
                }
                Timer::Hello(session) => {
                    if let Some(peer) = self.session_peer(session)
                        && self.peers.get(&peer).is_some_and(|p| !p.said_hello)
                    {
                        let after = self.config.hello_timeout;
                        self.disconnect(peer, format!("no Hello within {after:?}"));
                    }
                }
                Timer::Evict => self.evict(),
                Timer::RetryWrites => {
                    if self.storage == StorageState::Full {
                        self.effects.push_back(Effect::RetryWrites);
                    }
                }
            }
        }
        // Arm what was started above (none of it is due at `now`), so that
        // `poll_timeout` sees it.
        let again = self.timers.expire(now);
        debug_assert!(again.is_empty());
    }

    /// Has every timer started been armed by a [`handle_timeout`](Self::handle_timeout)?
    pub fn timers_armed(&self) -> bool {
        !self.timers.unarmed()
    }

    /// The runtime carried out [`Effect::Persist`] `write`: it is durable.
    /// Messages that waited for it leave now.
    pub fn persisted(&mut self, write: WriteId) {
        // What was written may have grown what is in memory past the budget.
        self.timers.start(Timer::Evict, residency::EVICT_AFTER);
        for (_, session, peer, message) in self.writes.done(write) {
            // Only to the session it was meant for: a new session starts over.
            if self.peers.get(&peer).is_some_and(|p| p.session == session) {
                self.effects.push_back(Effect::Send { session, peer, message });
            }
        }
        if self.storage == StorageState::Full && !self.writes.any_failed() {
            self.set_storage(StorageState::Ok);
            self.timers.stop(Timer::RetryWrites);
            // Peers whose data we refused: our state makes them send it again.
            for (peer, doc) in std::mem::take(&mut self.full_refused) {
                if let Some(pd) = self.peers.get_mut(&peer).and_then(|p| p.docs.get_mut(&doc)) {
                    pd.last_sent = None;
                    self.send_have(peer, doc);
                }
            }
        }
    }

    /// The runtime could not carry out [`Effect::Persist`] `write`. For
    /// [`WriteFailure::Full`] it keeps the write and carries it out again,
    /// after what it still holds of earlier writes of the same document,
    /// on [`Effect::RetryWrites`]; until then data from peers is refused
    /// with [`Refusal::StorageFull`](crate::Refusal::StorageFull). For
    /// [`WriteFailure::Failed`] nothing more is written: data from peers is
    /// refused for good, and what the node holds is still served.
    pub fn persist_failed(&mut self, write: WriteId, failure: WriteFailure) {
        if !self.writes.fail(write) {
            return;
        }
        match failure {
            WriteFailure::Full => {
                self.timers.start(Timer::RetryWrites, self.config.write_retry);
                if self.storage == StorageState::Ok {
                    self.set_storage(StorageState::Full);
                }
            }
            WriteFailure::Failed => self.set_storage(StorageState::Failed),
        }
    }

    /// Whether writes succeed (see [`StorageState`]).
    pub fn storage_state(&self) -> StorageState {
        self.storage
    }

    /// Did a write of `doc` still in flight fail ([`persist_failed`](Self::persist_failed))?
    pub fn write_failed(&self, doc: &DocId) -> bool {
        self.writes.doc_failed(doc)
    }

    /// Is every write up to and including `write` durable, or failed? A
    /// runtime that slows a peer down to the disk's pace waits for this:
    /// what failed for lack of room is retried on the node's own time.
    pub fn settled_through(&self, write: WriteId) -> bool {
        self.writes.settled_through(write)
    }

    fn set_storage(&mut self, state: StorageState) {
        if self.storage != state {
            match state {
                StorageState::Ok => tracing::info!("storage accepts writes again"),
                StorageState::Full => tracing::warn!(
                    "storage is full or unreachable; refusing new data from peers until it takes writes again"
                ),
                StorageState::Failed => tracing::error!("storage failed; refusing new data from peers"),
            }
            self.storage = state;
            self.emit(Event::Storage(state));
        }
    }

    /// Is everything this node holds of `doc` durable (no write in flight)?
    pub fn is_durable(&self, doc: &DocId) -> bool {
        self.writes.pending(doc).is_none()
    }

    /// Is everything this node holds durable (no write in flight at all)?
    pub fn all_durable(&self) -> bool {
        self.writes.idle()
    }

    /// The newest [`Effect::Persist`] queued so far: a runtime that wants
    /// to wait for what a call wrote compares it before and after the call
    /// and waits for [`durable_through`](Self::durable_through).
    pub fn last_write(&self) -> Option<WriteId> {
        self.writes.last()
    }

    /// Is every write up to and including `write` durable?
    pub fn durable_through(&self, write: WriteId) -> bool {
        self.writes.durable_through(write)
    }

    /// Documents held, loaded or not, in order.
    pub fn docs(&self) -> Vec<DocId> {
        let mut docs: Vec<DocId> = self.docs.keys().chain(self.unloaded.keys()).copied().collect();
        docs.sort_unstable();
        docs
    }

    /// How many documents are held, loaded or not.
    pub fn doc_count(&self) -> usize {
        self.docs.len() + self.unloaded.len()
    }

    /// Is this document held (loaded or not)?
    pub fn has_doc(&self, doc: &DocId) -> bool {
        self.docs.contains_key(doc) || self.unloaded.contains_key(doc)
    }

    /// How many documents are in memory.
    pub fn loaded_docs(&self) -> usize {
        self.docs.len()
    }

    fn replica(&self, doc: &DocId) -> Result<&DocReplica, CoreError> {
        self.docs.get(doc).ok_or_else(|| self.absent(doc))
    }

    fn replica_mut(&mut self, doc: &DocId) -> Result<&mut DocReplica, CoreError> {
        let absent = self.absent(doc);
        self.docs.get_mut(doc).ok_or(absent)
    }

    /// Why `doc` is not in memory.
    fn absent(&self, doc: &DocId) -> CoreError {
        if self.unloaded.contains_key(doc) {
            CoreError::NotLoaded(*doc)
        } else {
            CoreError::UnknownDocument(*doc)
        }
    }

    /// Fail with [`CoreError::NotLoaded`] if `doc` is held but not in memory:
    /// calls that would otherwise start it afresh.
    fn check_not_unloaded(&self, doc: &DocId) -> Result<(), CoreError> {
        match self.unloaded.contains_key(doc) {
            true => Err(CoreError::NotLoaded(*doc)),
            false => Ok(()),
        }
    }

    /// Sealed bytes held over all documents (access ops and chunks).
    pub fn stored_bytes(&self) -> usize {
        let unloaded: u64 = self.unloaded.values().map(|s| s.stored_bytes).sum();
        self.docs.values().map(|r| r.stored_bytes()).sum::<usize>() + unloaded as usize
    }

    /// How many times data from a peer was refused ([`Event::Rejected`])
    /// since the node started: for metrics that must not miss any.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Send `msg` on `peer`'s session; a message about a document with a
    /// write in flight waits for it (see [`store`]).
    fn send(&mut self, peer: MemberId, msg: &Message) {
        let message = msg.encode();
        if message.len() > MAX_FRAME_LEN {
            // Every message is built within the limits: this is a bug, and
            // the peer would end the session over it.
            tracing::error!(%peer, len = message.len(), "a message over the frame limit was not sent");
            debug_assert!(false, "message of {} bytes over the frame limit", message.len());
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else { return };
        p.queued = p.queued.saturating_add(message.len());
        let session = p.session;
        let doc = match msg {
            Message::Have { doc, .. } | Message::Ops { doc, .. } | Message::Chunks { doc, .. } => Some(*doc),
            _ => None,
        };
        match doc.and_then(|d| self.writes.pending(&d).map(|w| (d, w))) {
            Some((doc, after)) => self.writes.hold(doc, after, session, peer, message),
            None => self.effects.push_back(Effect::Send { session, peer, message }),
        }
    }

    /// Queue a write of `doc` if there is anything to write.
    fn persist(&mut self, doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) {
        if !puts.is_empty() || !deletes.is_empty() {
            self.write(doc, puts, deletes);
        }
    }

    /// Queue a write of `doc`. It carries the document's index entry as of
    /// this write, so the entry and the records are stored atomically.
    fn write(&mut self, doc: DocId, mut puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) {
        if self.config.guest {
            // The host writes the store; what a guest would write here is
            // its index entry, which the host's writes carry.
            return;
        }
        if let Some(r) = self.docs.get(&doc) {
            puts.push((INDEX_RECORD.to_vec(), DocSummary::of(r).encode()));
        }
        let write = self.writes.begin(doc);
        self.effects.push_back(Effect::Persist {
            write,
            doc,
            puts,
            deletes,
        });
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
        if let Some(p) = self.peers.remove(&peer) {
            self.sessions.remove(&p.session);
            self.effects.push_back(Effect::Disconnect {
                session: p.session,
                peer,
                reason,
            });
        }
    }
}
