//! Version vectors: per author, the highest sequence number held without gaps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<MemberId, u64>);

impl VersionVector {
    /// Highest contiguous seq of `author` (0 if none).
    pub fn get(&self, author: &MemberId) -> u64 {
        self.0.get(author).copied().unwrap_or(0)
    }

    /// Set `author`'s entry (removing it when 0, so equal vectors compare equal).
    pub fn set(&mut self, author: MemberId, seq: u64) {
        if seq == 0 {
            self.0.remove(&author);
        } else {
            self.0.insert(author, seq);
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
                self.0.insert(*a, *s);
            }
        }
    }

    /// Is every entry of `other` ≤ the matching entry here?
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(a, s)| self.get(a) >= *s)
    }

    /// Iterate over `(author, seq)` pairs in author order.
    pub fn iter(&self) -> impl Iterator<Item = (&MemberId, &u64)> {
        self.0.iter()
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
        self.0.values().fold(0u64, |t, s| t.saturating_add(*s))
    }
}
