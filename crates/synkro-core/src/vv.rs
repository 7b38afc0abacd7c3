//! Version vectors: per author, the highest sequence number held without gaps.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::MemberId;

/// Author → highest contiguous chunk sequence number held (0 = none).
///
/// ```
/// use synkro_core::{MemberId, VersionVector};
/// let (a, b) = (MemberId([1; 32]), MemberId([2; 32]));
/// let mut x = VersionVector::default();
/// x.set(a, 3);
/// let mut y = VersionVector::default();
/// y.set(a, 1);
/// y.set(b, 2);
/// assert!(!x.dominates(&y));
/// x.merge(&y);
/// assert_eq!((x.get(&a), x.get(&b)), (3, 2));
/// assert!(x.dominates(&y));
/// ```
///
/// Kept as a vector sorted by author (a document has few authors, and a
/// vector is a fraction of a map's memory: a repo keeps one per document it
/// holds). Encoded as a map, author → seq.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(Vec<(MemberId, u64)>);

impl VersionVector {
    /// Highest contiguous seq of `author` (0 if none).
    pub fn get(&self, author: &MemberId) -> u64 {
        self.find(author).map_or(0, |i| self.0[i].1)
    }

    fn find(&self, author: &MemberId) -> Result<usize, usize> {
        self.0.binary_search_by(|(a, _)| a.cmp(author))
    }

    /// Set `author`'s entry (removing it when 0, so equal vectors compare equal).
    pub fn set(&mut self, author: MemberId, seq: u64) {
        match (self.find(&author), seq) {
            (Ok(i), 0) => {
                self.0.remove(i);
            }
            (Ok(i), _) => self.0[i].1 = seq,
            (Err(_), 0) => {}
            (Err(i), _) => self.0.insert(i, (author, seq)),
        }
    }

    /// Set `author`'s entry as decoded (a zero is kept, as it was sent).
    fn put(&mut self, author: MemberId, seq: u64) {
        match self.find(&author) {
            Ok(i) => self.0[i].1 = seq,
            Err(i) => self.0.insert(i, (author, seq)),
        }
    }

    /// Does this vector include `(author, seq)`?
    pub fn covers(&self, author: &MemberId, seq: u64) -> bool {
        seq <= self.get(author)
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (a, s) in &other.0 {
            if *s > self.get(a) {
                self.put(*a, *s);
            }
        }
    }

    /// Is every entry of `other` ≤ the matching entry here?
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(a, s)| self.get(a) >= *s)
    }

    /// Iterate over `(author, seq)` pairs in author order.
    pub fn iter(&self) -> impl Iterator<Item = (&MemberId, &u64)> {
        self.0.iter().map(|(a, s)| (a, s))
    }

    /// Number of authors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no author has an entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum of all entries: how many change chunks this vector stands for.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |t, (_, s)| t.saturating_add(*s))
    }
}

impl Serialize for VersionVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for VersionVector {
    /// A map as any encoder wrote it: in any order, a repeated author's
    /// last entry standing (as a map decoder keeps it).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = VersionVector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of author to sequence number")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VersionVector, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<MemberId, u64>()? {
                    entries.push(entry);
                }
                // Latest first, so that the stable sort keeps a repeated
                // author's last entry first, and dedup keeps that one.
                entries.reverse();
                entries.sort_by_key(|(a, _)| *a);
                entries.dedup_by(|(a, _), (b, _)| a == b);
                entries.shrink_to_fit();
                Ok(VersionVector(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::encoding::{decode, encode};

    /// The encoding is a map's: what the earlier map-backed vector wrote
    /// decodes to the same vector, and encodes to the same bytes.
    #[test]
    fn encoded_as_a_map() {
        let (a, b, c) = (MemberId([3; 32]), MemberId([1; 32]), MemberId([2; 32]));
        let map: BTreeMap<MemberId, u64> = [(a, 7), (b, 1), (c, 0)].into_iter().collect();
        let bytes = encode(&map);
        let vv: VersionVector = decode("vv", &bytes, 1 << 16).unwrap();
        assert_eq!(
            vv.iter().map(|(m, s)| (*m, *s)).collect::<Vec<_>>(),
            vec![(b, 1), (c, 0), (a, 7)]
        );
        assert_eq!(encode(&vv), bytes);
    }

    /// A repeated author in untrusted bytes: the last entry stands, as a
    /// map decoder would keep it, and the vector stays sorted.
    #[test]
    fn repeated_author_keeps_the_last() {
        let (a, b) = (MemberId([1; 32]), MemberId([2; 32]));
        let pairs: Vec<(MemberId, u64)> = vec![(b, 4), (a, 1), (b, 9), (a, 2)];
        let vv: VersionVector = decode("vv", &encode(&pairs), 1 << 16).unwrap();
        assert_eq!(
            vv.iter().map(|(m, s)| (*m, *s)).collect::<Vec<_>>(),
            vec![(a, 2), (b, 9)]
        );
    }

    #[test]
    fn set_keeps_order_and_drops_zero() {
        let (a, b) = (MemberId([1; 32]), MemberId([2; 32]));
        let mut vv = VersionVector::default();
        vv.set(b, 2);
        vv.set(a, 1);
        vv.set(b, 0);
        vv.set(b, 0);
        assert_eq!(vv.iter().map(|(m, s)| (*m, *s)).collect::<Vec<_>>(), vec![(a, 1)]);
        assert_eq!(vv.total(), 1);
    }
}
