//! A store shared with other nodes: the relays of a cluster keep documents
//! in one JetStream stream, and each hears the records the others write.
//! Those records are taken as if a peer had sent them (verified the same
//! way, then forwarded to the peers in session), but not written again:
//! they are in the store already.

use rand_core::CryptoRng;

use super::Node;
use super::documents::diff_since;
use super::residency::Waiting;
use crate::chunk::SealedChunk;
use crate::ids::{DocId, MemberId};
use crate::replica::{Accepted, record};
use crate::{Event, Origin};

impl Node {
    /// Records another node sharing this node's storage wrote to `doc` (a
    /// write's puts). A document in memory takes the access-log ops and
    /// chunks among them, checked as any peer's are, and every peer in
    /// session on it receives what it lacks; a document not in memory takes
    /// the index entry, so listing and reconciliation see its new state,
    /// and its peers are told (which loads it).
    pub fn stored_elsewhere<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>) {
        if let Some(waiting) = self.loading.get_mut(&doc) {
            // Taken once the load is done, whatever the load read.
            return waiting.push(Waiting::Elsewhere { puts });
        }
        let Some(r) = self.docs.get_mut(&doc) else {
            let entry = puts.iter().find(|(k, _)| k.first() == Some(&record::INDEX));
            if let Some((_, entry)) = entry {
                let is_new = self.unloaded.insert_encoded(doc, entry.clone()).unwrap_or(false);
                if is_new {
                    self.emit(Event::DocAdded { doc });
                }
            }
            return self.tell_sharing_peers(doc);
        };
        let heads_before = r.doc.as_mut().map(|d| d.get_heads());
        let log_before = r.log.state().clone();
        let mut rejected = Vec::new();
        let mut chunks = Vec::new();
        for (key, value) in &puts {
            match key.first() {
                Some(&record::OP) => {
                    if let Err(e) = r.log.insert(value) {
                        rejected.push(e.to_string());
                    }
                }
                Some(&record::CHANGE) | Some(&record::SNAPSHOT) => match SealedChunk::decode_stored(value) {
                    Ok(c) => chunks.push(c),
                    Err(e) => rejected.push(e.to_string()),
                },
                // The index entry is rebuilt from what is taken; local
                // state belongs to the node that wrote it.
                _ => {}
            }
        }
        let log_changed = r.log.state() != &log_before;
        if log_changed && let Err(e) = r.refresh_keys(rng, &self.identity) {
            rejected.push(e.to_string());
        }
        // Snapshots first, so the change chunks they cover count as duplicates.
        chunks.sort_by_key(|c| c.covers().is_none());
        let mut new = false;
        for c in chunks {
            match r.accept(c, false) {
                Ok(Accepted::New { .. }) => new = true,
                Ok(Accepted::Duplicate) => {}
                Err(e) => rejected.push(e.to_string()),
            }
        }
        let patches = diff_since(r, heads_before);
        for reason in rejected {
            tracing::warn!(%doc, %reason, "a record written by another node was rejected");
            self.emit(Event::Rejected {
                peer: None,
                doc,
                reason,
            });
        }
        if let Some(patches) = patches {
            self.emit(Event::DocChanged {
                doc,
                patches,
                origin: Origin::Remote(self.me),
            });
        }
        if log_changed {
            self.heal_keys(rng, &doc);
            self.access_changed(&doc);
        } else if new {
            self.push_all(&doc);
        }
    }

    /// Every connected peer `doc` is shared with hears our state of it.
    fn tell_sharing_peers(&mut self, doc: DocId) {
        let peers: Vec<MemberId> = self
            .peers
            .keys()
            .copied()
            .filter(|p| self.shared_with(&doc, p))
            .collect();
        for p in peers {
            if let Some(x) = self.peers.get_mut(&p) {
                x.docs.entry(doc).or_default();
            }
            self.send_have(p, doc);
        }
    }
}
