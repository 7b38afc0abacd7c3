//! Which documents are in memory. A document the node holds may be
//! *unloaded*: only its index entry ([`DocSummary`]) is kept, which is
//! enough to list it, to greet a peer with its digest, and to tell where it
//! stands with a peer. Whatever needs more (a peer's `Have`, ops or chunks
//! of it, a `Have` to send) asks the runtime to load it
//! ([`Effect::Load`]) and waits; [`Node::load_doc`] carries out what waited.

use std::time::Duration;

use rand_core::CryptoRng;

use super::timers::Timer;
use super::{Node, effect::*};
use crate::error::DecodeError;
use crate::ids::{DocId, MemberId};
use crate::message::Message;
use crate::replica::{DocReplica, DocSummary};

/// What waits for a document to load.
pub(super) enum Waiting {
    /// A message a peer sent about it, handled as if it came now.
    Message { session: SessionId, bytes: Vec<u8> },
    /// Our `Have` owed to a peer (after its `Hello`), with our access log
    /// first when the peer did not mention the document.
    Have { session: SessionId, ops_first: bool },
    /// Records another node wrote to the shared store while the load was
    /// under way (the load may have read the store before them).
    Elsewhere { puts: Vec<(Vec<u8>, Vec<u8>)> },
    /// A guest tab's edits ([`Node::take_from_guest`]).
    FromGuest { changes: Vec<Vec<u8>> },
    /// Chunks held back for the peer of `session` by its send window
    /// (the document left memory while it waited its turn).
    Push { session: SessionId },
}

/// How long after a document loads the node checks its memory budget: a
/// burst of loads is looked at once.
pub(super) const EVICT_AFTER: Duration = Duration::from_secs(1);

/// Loads after which the node looks at its budget at once: a peer that
/// needs thousands of documents loads them faster than one a second.
const EVICT_EVERY: usize = 256;

impl Node {
    /// The node holds `doc` without loading it: `summary` is its index
    /// entry. A runtime opening a repo calls this for every document with
    /// an intact entry, and [`load_doc`](Self::load_doc) for the others.
    pub fn add_unloaded(&mut self, doc: DocId, summary: DocSummary) {
        if !self.docs.contains_key(&doc) {
            self.unloaded.insert(doc, &summary);
        }
    }

    /// [`add_unloaded`](Self::add_unloaded) for every document of a repo
    /// being opened, with each entry as stored (an index record's value,
    /// untrusted): kept as it is, after checking that it decodes. Returns
    /// the documents whose entry does not decode, for the runtime to load
    /// (which rebuilds the entry from the records).
    pub fn add_indexed(&mut self, entries: impl IntoIterator<Item = (DocId, Vec<u8>)>) -> Vec<(DocId, DecodeError)> {
        let docs = &self.docs;
        self.unloaded.extend_encoded(entries, |doc| docs.contains_key(doc))
    }

    /// Is `doc` in memory (held and loaded)?
    pub fn is_loaded(&self, doc: &DocId) -> bool {
        self.docs.contains_key(doc)
    }

    /// The index entry of `doc` as it stands now, loaded or not.
    pub fn summary(&self, doc: &DocId) -> Option<DocSummary> {
        match self.docs.get(doc) {
            Some(r) => Some(DocSummary::of(r)),
            None => self.unloaded.get(doc).map(|e| e.summary()),
        }
    }

    /// Drop `doc` from memory, keeping its index entry, if nothing needs it
    /// there: it is not pinned, no edit waits to be sealed, no write is in
    /// flight, no joiner's ops wait for it. A peer's backlog may name it: it
    /// is loaded again when its turn comes ([`pump`](Self::pump)). Returns
    /// whether it was unloaded.
    pub fn unload(&mut self, doc: &DocId) -> bool {
        let Some(r) = self.docs.get(doc) else { return false };
        let busy = r.dirty
            || self.pins.contains_key(doc)
            || self.writes.pending(doc).is_some()
            || self.writes.doc_failed(doc)
            || self.loading.contains_key(doc)
            || self.peers.values().any(|p| p.parked.iter().any(|(d, _)| d == doc))
            || self.full_refused.iter().any(|(_, d)| d == doc);
        if busy {
            return false;
        }
        let summary = DocSummary::of(r);
        self.docs.remove(doc);
        self.unloaded.insert(*doc, &summary);
        true
    }

    /// The runtime could not read `doc` for [`Effect::Load`]: what waited
    /// for it is dropped (peers ask again when they reconnect), and the
    /// next need of it asks again.
    pub fn load_failed(&mut self, doc: &DocId) {
        if let Some(waiting) = self.loading.remove(doc) {
            tracing::warn!(%doc, dropped = waiting.len(), "a document could not be loaded");
            for w in waiting {
                if let Waiting::Push { session } = w {
                    // The peer asks again when it reconnects; the others
                    // of its backlog go on.
                    if let Some(peer) = self.push_loaded(session) {
                        self.pump(peer);
                    }
                }
            }
        }
    }

    /// Keep `doc` in memory while pinned (a live handle): pins count, and
    /// [`unpin`](Self::unpin) undoes one.
    pub fn pin(&mut self, doc: &DocId) {
        *self.pins.entry(*doc).or_default() += 1;
    }

    /// Undo one [`pin`](Self::pin) of `doc`.
    pub fn unpin(&mut self, doc: &DocId) {
        if let Some(n) = self.pins.get_mut(doc) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(doc);
                self.timers.start(Timer::Evict, EVICT_AFTER);
            }
        }
    }

    /// Roughly the bytes the documents in memory take: their sealed chunks
    /// and ops, plus for those this device reads about four times as much
    /// for the Automerge document, plus a fixed overhead each.
    pub fn memory_estimate(&self) -> usize {
        self.docs.values().map(replica_estimate).sum()
    }

    /// `doc` was used now (least recently used documents unload first).
    pub(super) fn touch(&mut self, doc: &DocId) {
        self.use_clock += 1;
        if let Some(r) = self.docs.get_mut(doc) {
            r.last_used = self.use_clock;
        }
    }

    /// Unload the least recently used idle, unpinned documents until those
    /// in memory fit the budget.
    pub(super) fn evict(&mut self) {
        self.loads_since_evict = 0;
        let budget = self.config.memory_budget;
        let sizes: Vec<(u64, DocId, usize)> = self
            .docs
            .values()
            .map(|r| (r.last_used, r.id, replica_estimate(r)))
            .collect();
        let mut total: usize = sizes.iter().map(|(_, _, size)| size).sum();
        if total <= budget {
            return;
        }
        let mut candidates: Vec<(u64, DocId, usize)> = sizes
            .into_iter()
            .filter(|(_, doc, _)| !self.pins.contains_key(doc))
            .collect();
        candidates.sort_unstable();
        let mut unloaded = 0usize;
        for (_, doc, size) in candidates {
            if total <= budget {
                break;
            }
            if self.unload(&doc) {
                total = total.saturating_sub(size);
                unloaded += 1;
            }
        }
        tracing::debug!(
            unloaded,
            estimate = total,
            budget,
            "documents unloaded to fit the memory budget"
        );
        if total > budget && unloaded == 0 {
            // Everything is busy or pinned: look again later.
            self.timers.start(Timer::Evict, EVICT_AFTER);
        }
    }

    /// Is `doc` held but not in memory (unloaded, or loading)?
    pub(super) fn is_unloaded(&self, doc: &DocId) -> bool {
        self.unloaded.contains_key(doc)
    }

    /// Hold `w` until `doc` is loaded, asking the runtime to load it.
    pub(super) fn wait_for_load(&mut self, doc: DocId, w: Waiting) {
        let waiting = self.loading.entry(doc).or_default();
        if waiting.is_empty() {
            self.effects.push_back(Effect::Load { doc });
        }
        waiting.push(w);
    }

    /// `doc` is loaded: carry out what waited for it, in order.
    pub(super) fn resume<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: DocId) {
        self.touch(&doc);
        self.loads_since_evict += 1;
        if self.loads_since_evict >= EVICT_EVERY {
            self.evict();
        } else {
            self.timers.start(Timer::Evict, EVICT_AFTER);
        }
        let waiting = self.loading.remove(&doc).unwrap_or_default();
        // Loaded only to be sent: it leaves memory once sent.
        let only_sent = !waiting.is_empty() && waiting.iter().all(|w| matches!(w, Waiting::Push { .. }));
        for w in waiting {
            match w {
                Waiting::Message { session, bytes } => self.handle_message(rng, session, &bytes),
                Waiting::Have { session, ops_first } => {
                    let Some(peer) = self.session_peer(session) else {
                        continue;
                    };
                    if ops_first {
                        self.push_ops(peer, doc);
                    }
                    self.send_have(peer, doc);
                }
                Waiting::Elsewhere { puts } => self.stored_elsewhere(rng, doc, puts),
                Waiting::FromGuest { changes } => {
                    if let Err(e) = self.take_from_guest(doc, changes) {
                        tracing::warn!(%doc, error = %e, "a guest tab's edits were refused");
                    }
                }
                Waiting::Push { session } => {
                    if let Some(peer) = self.push_loaded(session) {
                        self.push_missing(peer, doc);
                        self.pump(peer);
                    }
                }
            }
        }
        if only_sent && !self.peers.values().any(|p| p.backlog.contains(&doc)) {
            self.unload(&doc);
        }
    }

    /// A load [`pump`](Self::pump) asked for on `session` is over: the
    /// session's peer, if it is still connected on it.
    fn push_loaded(&mut self, session: SessionId) -> Option<MemberId> {
        let peer = self.session_peer(session)?;
        let p = self.peers.get_mut(&peer).filter(|p| p.session == session)?;
        p.push_loads = p.push_loads.saturating_sub(1);
        Some(peer)
    }

    /// Does `msg` from `peer` need `doc` loaded first? Then it waits for
    /// the load (which this asks for) and the answer is true. Only a peer
    /// we share the document with, or one bringing ops (a joiner's claim),
    /// makes us load it; anything else gets the usual silence.
    pub(super) fn needs_load(&mut self, session: SessionId, peer: &MemberId, msg: &Message, bytes: &[u8]) -> bool {
        let Some(doc) = message_doc(msg) else { return false };
        self.touch(&doc);
        let Some(summary) = self.unloaded.get(&doc) else {
            return false;
        };
        let wanted = summary.shares(peer)
            || matches!(msg, Message::Ops { .. })
            || self.peers.get(peer).is_some_and(|p| p.docs.contains_key(&doc));
        if wanted {
            let bytes = bytes.to_vec();
            self.wait_for_load(doc, Waiting::Message { session, bytes });
        }
        true
    }
}

/// What a replica in memory costs beyond its bytes, as measured (heaptrack
/// on a relay holding 10,000 small documents: 12.9 KiB of heap each, for
/// 4 access ops, a chunk and about 1.5 KiB of their bytes): the replica and
/// its maps, and for each access op or chunk its entry and the access
/// state it adds to.
const REPLICA_OVERHEAD: usize = 8 << 10;
const ITEM_OVERHEAD: usize = 1 << 10;

/// [`Node::memory_estimate`] of one document.
fn replica_estimate(r: &DocReplica) -> usize {
    let sealed = r.stored_bytes();
    let doc = if r.doc.is_some() { sealed.saturating_mul(4) } else { 0 };
    let items = r.log.len() + r.changes.len() + r.snapshots.len();
    sealed
        .saturating_add(doc)
        .saturating_add(REPLICA_OVERHEAD)
        .saturating_add(items.saturating_mul(ITEM_OVERHEAD))
}

/// The document a message is about (none for the reconciliation).
fn message_doc(msg: &Message) -> Option<DocId> {
    match msg {
        Message::Have { doc, .. }
        | Message::Ops { doc, .. }
        | Message::Chunks { doc, .. }
        | Message::Ephemeral { doc, .. }
        | Message::Refused { doc, .. } => Some(*doc),
        Message::Hello { .. } | Message::Query { .. } | Message::Answer { .. } | Message::Reconciled => None,
    }
}
