//! The index entries of the documents a node holds but not in memory, kept
//! small: a repo may hold a hundred thousand of them for each one it has
//! loaded.
//!
//! An entry keeps decoded only what scans over every document read (the
//! digest a reconciliation compares, whether the document is shared with a
//! peer, its size), with its members and revocations shared between the
//! entries that have the same ones (most of a repo's documents have the
//! same few members), and the rest as the encoded [`DocSummary`], decoded
//! when one document is asked about.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::access::Role;
use crate::error::DecodeError;
use crate::ids::{DocId, MemberId};
use crate::message::Digest;
use crate::replica::DocSummary;

/// Who is in a document, as its index entry says.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Access {
    members: Box<[(MemberId, Role)]>,
    revoked: Box<[MemberId]>,
}

/// A document's index entry while it is not in memory.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) digest: Digest,
    pub(super) rooted: bool,
    pub(super) stored_bytes: u64,
    access: Arc<Access>,
    encoded: Box<[u8]>,
}

impl Entry {
    /// The role of `m`, if it is a member.
    pub(super) fn role(&self, m: &MemberId) -> Option<Role> {
        self.access.members.iter().find(|(x, _)| x == m).map(|(_, r)| *r)
    }

    /// Was `m` removed by a revoke?
    pub(super) fn revoked(&self, m: &MemberId) -> bool {
        self.access.revoked.contains(m)
    }

    /// Would this device sync the document with `peer`: it is a member or
    /// was revoked (it must learn that), or the document is one we joined
    /// and wait for?
    pub(super) fn shares(&self, peer: &MemberId) -> bool {
        !self.rooted || self.role(peer).is_some() || self.revoked(peer)
    }

    /// The whole entry, decoded; `None` if it no longer decodes.
    pub(super) fn decoded(&self) -> Option<DocSummary> {
        DocSummary::decode(&self.encoded).ok()
    }

    /// The whole entry, decoded.
    pub(super) fn summary(&self) -> DocSummary {
        // The bytes were decoded (or encoded) when the entry was made.
        DocSummary::decode(&self.encoded).unwrap_or_else(|e| {
            tracing::error!(error = %e, "an index entry kept in memory no longer decodes");
            DocSummary::placeholder(self.digest, self.rooted)
        })
    }
}

/// The entries, by document.
#[derive(Default)]
pub(super) struct Index {
    entries: BTreeMap<DocId, Entry>,
    /// Every distinct [`Access`] of an entry (and, until the next prune,
    /// some that no entry uses any more).
    accesses: HashSet<Arc<Access>>,
    /// How many there were after the last prune.
    pruned_to: usize,
}

impl Index {
    /// Keep `summary` as `doc`'s entry; true if `doc` had none.
    pub(super) fn insert(&mut self, doc: DocId, summary: &DocSummary) -> bool {
        let entry = self.entry(summary, summary.encode());
        self.entries.insert(doc, entry).is_none()
    }

    /// Keep `encoded` (an index record's value, untrusted) as `doc`'s
    /// entry; true if `doc` had none.
    pub(super) fn insert_encoded(&mut self, doc: DocId, encoded: Vec<u8>) -> Result<bool, DecodeError> {
        let summary = DocSummary::decode(&encoded)?;
        let entry = self.entry(&summary, encoded);
        Ok(self.entries.insert(doc, entry).is_none())
    }

    /// Keep every entry of `entries` (index records' values, untrusted,
    /// as a repo reads them at opening) whose document `skip` does not
    /// refuse; returns those that do not decode. Built in one go, the map
    /// takes about half the memory of one filled entry by entry.
    pub(super) fn extend_encoded(
        &mut self,
        entries: impl IntoIterator<Item = (DocId, Vec<u8>)>,
        skip: impl Fn(&DocId) -> bool,
    ) -> Vec<(DocId, DecodeError)> {
        let mut damaged = Vec::new();
        let entries = entries.into_iter();
        let mut added = Vec::with_capacity(entries.size_hint().1.unwrap_or(0));
        for (doc, encoded) in entries {
            if skip(&doc) {
                continue;
            }
            match DocSummary::decode(&encoded) {
                Ok(summary) => added.push((doc, self.entry(&summary, encoded))),
                Err(e) => damaged.push((doc, e)),
            }
        }
        // Of a document given twice, the last entry stands.
        let mut added = BTreeMap::from_iter(added);
        added.append(&mut self.entries);
        // Entries already held win over those read now.
        self.entries = added;
        damaged
    }

    fn entry(&mut self, s: &DocSummary, encoded: Vec<u8>) -> Entry {
        let access = Access {
            members: s.members.clone().into_boxed_slice(),
            revoked: s.revoked.clone().into_boxed_slice(),
        };
        let access = match self.accesses.get(&access) {
            Some(shared) => Arc::clone(shared),
            None => {
                let access = Arc::new(access);
                self.accesses.insert(Arc::clone(&access));
                self.prune();
                access
            }
        };
        Entry {
            digest: s.digest,
            rooted: s.rooted,
            stored_bytes: s.stored_bytes,
            access,
            encoded: encoded.into_boxed_slice(),
        }
    }

    /// Forget the accesses no entry uses, once there are twice as many as
    /// after the last time.
    fn prune(&mut self) {
        if self.accesses.len() > 2 * self.pruned_to + 64 {
            self.accesses.retain(|a| Arc::strong_count(a) > 1);
            self.pruned_to = self.accesses.len();
        }
    }

    pub(super) fn get(&self, doc: &DocId) -> Option<&Entry> {
        self.entries.get(doc)
    }

    pub(super) fn remove(&mut self, doc: &DocId) -> Option<Entry> {
        self.entries.remove(doc)
    }

    pub(super) fn contains_key(&self, doc: &DocId) -> bool {
        self.entries.contains_key(doc)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&DocId, &Entry)> {
        self.entries.iter()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &DocId> {
        self.entries.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vv::VersionVector;

    fn summary(members: &[(MemberId, Role)], seq: u64) -> DocSummary {
        let mut s = DocSummary::placeholder([seq as u8; 16], true);
        s.members = members.to_vec();
        let mut vv = VersionVector::default();
        vv.set(MemberId([9; 32]), seq);
        s.vv = vv;
        s
    }

    /// Entries with the same members share one copy of them; the rest
    /// comes back whole.
    #[test]
    fn same_members_are_shared() {
        let members = [(MemberId([1; 32]), Role::Admin), (MemberId([2; 32]), Role::Replicate)];
        let mut index = Index::default();
        for i in 0..100u8 {
            assert!(index.insert(DocId([i; 32]), &summary(&members, u64::from(i) + 1)));
        }
        assert_eq!(index.accesses.len(), 1);
        let e = index.get(&DocId([7; 32])).unwrap();
        assert_eq!(e.summary(), summary(&members, 8));
        assert_eq!(e.role(&MemberId([2; 32])), Some(Role::Replicate));
        assert!(e.shares(&MemberId([1; 32])) && !e.shares(&MemberId([3; 32])));
    }

    /// Accesses no entry uses any more are dropped as more come.
    #[test]
    fn unused_accesses_are_pruned() {
        let mut index = Index::default();
        for i in 0..1000u32 {
            let m = MemberId(blake3::hash(&i.to_le_bytes()).into());
            index.insert(DocId([0; 32]), &summary(&[(m, Role::Admin)], 1));
        }
        assert!(index.accesses.len() <= 2 * 64 + 2, "{} kept", index.accesses.len());
        assert_eq!(index.len(), 1);
    }

    /// Entries read at opening: damaged ones are returned, skipped ones
    /// left out, an entry already held stays, and the map is whole.
    #[test]
    fn entries_read_at_opening() {
        let members = [(MemberId([1; 32]), Role::Admin)];
        let mut index = Index::default();
        index.insert(DocId([5; 32]), &summary(&members, 50));
        let read = (0..200u8)
            .map(|i| (DocId([i; 32]), summary(&members, u64::from(i) + 1).encode()))
            .chain([(DocId([250; 32]), vec![0xff; 3])]);
        let damaged = index.extend_encoded(read, |doc| *doc == DocId([7; 32]));
        assert_eq!(
            damaged.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
            vec![DocId([250; 32])]
        );
        assert_eq!(index.len(), 199);
        assert!(!index.contains_key(&DocId([7; 32])));
        assert_eq!(index.get(&DocId([5; 32])).unwrap().summary(), summary(&members, 50));
        assert_eq!(index.get(&DocId([9; 32])).unwrap().summary(), summary(&members, 10));
        assert_eq!(index.accesses.len(), 1);
    }

    /// Bytes that are not an index entry are refused, and nothing is kept.
    #[test]
    fn damaged_entry_is_refused() {
        let mut index = Index::default();
        assert!(index.insert_encoded(DocId([1; 32]), vec![1, 2, 3]).is_err());
        assert_eq!(index.len(), 0);
    }
}
