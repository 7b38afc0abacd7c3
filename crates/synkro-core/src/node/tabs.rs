//! A repo shared by a browser's tabs. Every tab runs a node over the same
//! store; one of them, the *host*, writes it. The others are guests
//! ([`NodeConfig::guest`](super::NodeConfig::guest)): they read the store,
//! take what the host writes as [`Node::stored_elsewhere`] records, and
//! edit documents as any node does, but seal nothing. Their edits leave as
//! [`Effect::ForHost`]; the host takes them with
//! [`Node::take_from_guest`], seals them under this device's key with its
//! own, and stores them, which tells every guest. A guest's actors carry
//! the device's prefix (they are the same member), so the author rule
//! holds for what the host seals.

use automerge::Change;

use super::Node;
use super::documents::diff_since;
use super::effect::Effect;
use super::residency::Waiting;
use crate::access::Role;
use crate::error::CoreError;
use crate::ids::DocId;
use crate::limits::MAX_ASSEMBLED_LEN;
use crate::replica::authors;

impl Node {
    /// Is this node a guest (see [`NodeConfig::guest`](super::NodeConfig::guest))?
    pub fn is_guest(&self) -> bool {
        self.config.guest
    }

    /// This guest now writes the store (the host went away and this node's
    /// runtime holds the store now): from here on it seals, writes and
    /// connects like any node. Its runtime first brings it up to date with
    /// the store ([`stored_elsewhere`](Self::stored_elsewhere) with every
    /// record of each document in memory), so that no seq the old host
    /// used is used again, then hands it the edits the old host never
    /// stored ([`take_from_guest`](Self::take_from_guest)).
    pub fn become_host(&mut self) {
        self.config.guest = false;
    }

    /// [`CoreError::Guest`] on a guest: `what` is the host's to do (it
    /// writes the store, or holds the connections).
    pub fn host_only(&self, what: &'static str) -> Result<(), CoreError> {
        if self.config.guest {
            return Err(CoreError::Guest(what));
        }
        Ok(())
    }

    /// A guest's flush: its edits go to the host.
    pub(super) fn forward_to_host(&mut self, doc: &DocId) -> Result<bool, CoreError> {
        let changes = self.replica_mut(doc)?.take_unflushed()?;
        if changes.is_empty() {
            return Ok(false);
        }
        self.effects.push_back(Effect::ForHost { doc: *doc, changes });
        Ok(true)
    }

    /// Edits a guest of this device made to `doc` ([`Effect::ForHost`]):
    /// applied here as this device's own, sealed when this device's own
    /// edits would be (with those made meanwhile, while edits come fast)
    /// and stored (a document not in memory is loaded first). Refused, with
    /// nothing applied, unless every change is one of this device's actors
    /// for `doc`, this device may write it, and the bytes are Automerge
    /// changes.
    pub fn take_from_guest(&mut self, doc: DocId, changes: Vec<Vec<u8>>) -> Result<(), CoreError> {
        self.host_only("sealing a guest's edits")?;
        if let Some(waiting) = self.loading.get_mut(&doc) {
            waiting.push(Waiting::FromGuest { changes });
            return Ok(());
        }
        if !self.docs.contains_key(&doc) {
            if self.unloaded.get(&doc).is_none() {
                return Err(CoreError::UnknownDocument(doc));
            }
            self.wait_for_load(doc, Waiting::FromGuest { changes });
            return Ok(());
        }
        let me = self.me;
        let mut parsed = Vec::with_capacity(changes.len());
        for bytes in changes {
            if bytes.len() > MAX_ASSEMBLED_LEN {
                return Err(CoreError::ChangeTooLarge {
                    doc,
                    len: bytes.len(),
                    max: MAX_ASSEMBLED_LEN,
                });
            }
            let change = Change::from_bytes(bytes).map_err(|e| CoreError::BadAutomerge(e.to_string()))?;
            if !authors::is_of(change.actor_id(), &doc, &me) {
                return Err(CoreError::BadAutomerge(
                    "a guest's change is not one of this device's actors".into(),
                ));
            }
            parsed.push(change);
        }
        self.touch(&doc);
        let r = self.replica_mut(&doc)?;
        if !r.role_of(&me).is_some_and(Role::can_write) {
            return Err(CoreError::NotAllowed {
                doc,
                needed: Role::Write,
            });
        }
        let d = r.readable_mut()?;
        let before = d.get_heads();
        let hashes: Vec<_> = parsed.iter().map(Change::hash).collect();
        d.apply_changes(parsed)?;
        r.from_guests.extend(hashes);
        r.dirty = true;
        let patches = diff_since(r, Some(before));
        self.edited_here(doc, patches);
        Ok(())
    }
}
