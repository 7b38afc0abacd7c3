//! Plain Automerge in and out: a document saved by Automerge (or exported
//! by automerge-repo) becomes a synkro document, encrypted and
//! access-controlled from then on; a synkro document's content leaves as
//! the bytes Automerge's `load()` opens; and a document's history.

use rand_core::CryptoRng;

use super::Node;
use crate::automerge::{ActorId, AutoCommit, ChangeHash};
use crate::error::CoreError;
use crate::fence::fenced;
use crate::ids::{DocId, MemberId};
use crate::limits::MAX_ASSEMBLED_LEN;
use crate::replica::Authors;

impl Node {
    /// Make a new document, owned by this device, holding the changes in
    /// `bytes` (what `Automerge.save()` or `save_incremental` returns)
    /// with their history. Nothing is created if the bytes do not load,
    /// depend on changes they do not contain, or make a document larger
    /// than a snapshot may be.
    pub fn import_automerge<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, bytes: &[u8]) -> Result<DocId, CoreError> {
        self.host_only("importing a document")?;
        let (loaded, len) = check_automerge(bytes)?;
        let doc = self.create_doc(rng)?;
        let r = self.replica_mut(&doc)?;
        let d = r.readable_mut()?;
        let actor = d.get_actor().clone();
        *d = loaded.with_actor(actor);
        d.update_diff_cursor();
        // Other actors' changes are never sealed as this device's change
        // chunks: the whole document goes into the first snapshot.
        self.snapshot_now(rng, &doc)?;
        tracing::info!(%doc, bytes = len, "imported an Automerge document");
        Ok(doc)
    }

    /// Every change of the document, oldest first (in causal order).
    pub fn history(&mut self, doc: &DocId) -> Result<Vec<ChangeInfo>, CoreError> {
        self.touch(doc);
        let r = self.replica_mut(doc)?;
        let authors = Authors::of(doc, r.log.state());
        Ok(r.readable_mut()?
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| ChangeInfo {
                hash: m.hash,
                author: authors.author(&m.actor),
                actor: m.actor.into_owned(),
                seq: m.seq,
                time: m.timestamp,
                message: m.message.map(|m| m.into_owned()),
                deps: m.deps,
            })
            .collect())
    }

    /// The document as Automerge's own save format, history included.
    pub fn export_automerge(&mut self, doc: &DocId) -> Result<Vec<u8>, CoreError> {
        self.touch(doc);
        Ok(self.replica_mut(doc)?.readable_mut()?.save())
    }
}

/// One change of a document's history ([`Node::history`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeInfo {
    /// The change's hash (what heads are made of).
    pub hash: ChangeHash,
    /// The member who made it, when its actor says so: every change this
    /// release makes does (see `replica/authors.rs`); changes imported
    /// from plain Automerge or made by older releases do not.
    pub author: Option<MemberId>,
    /// The Automerge actor that made it (one per device and document).
    pub actor: ActorId,
    /// Its number among the actor's changes, from 1.
    pub seq: u64,
    /// When it was made, as its author's clock said: seconds since the
    /// Unix epoch (0 when the author did not say).
    pub time: i64,
    /// The message its author gave it.
    pub message: Option<String>,
    /// The changes it came after.
    pub deps: Vec<ChangeHash>,
}

/// `bytes` loaded into a document, and its saved size, if it can become
/// a synkro document.
fn check_automerge(bytes: &[u8]) -> Result<(AutoCommit, usize), CoreError> {
    let bad = |why: String| CoreError::BadAutomerge(why);
    if bytes.is_empty() {
        return Err(bad("there are none".into()));
    }
    let mut loaded = fenced("loading Automerge bytes", || AutoCommit::load(bytes))?.map_err(|e| bad(e.to_string()))?;
    let missing = loaded.get_missing_deps(&[]).len();
    if missing > 0 {
        return Err(bad(format!(
            "they depend on {missing} changes they do not contain (save the whole document, not an increment)"
        )));
    }
    let len = loaded.save().len();
    if len > MAX_ASSEMBLED_LEN {
        return Err(bad(format!(
            "the document is {len} bytes saved, over the limit of {MAX_ASSEMBLED_LEN} for one snapshot"
        )));
    }
    Ok((loaded, len))
}
