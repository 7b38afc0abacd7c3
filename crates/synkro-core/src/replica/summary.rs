//! A document's index entry: what listing and sync need without loading it.
//!
//! Every write of a document carries its summary as of that write (record
//! [`record::INDEX`](super::record::INDEX)), in the same atomic write as the
//! records it describes, so the entry and the records cannot disagree after
//! a crash. Loading a document recomputes it from the verified records;
//! where the two differ (damage skipped, a record dropped), the records win
//! and the entry is rewritten.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::DocReplica;
use crate::access::Role;
use crate::encoding::{decode, encode};
use crate::error::DecodeError;
use crate::ids::{MemberId, OpHash};
use crate::message::Digest;
use crate::vv::VersionVector;

/// Format version of an encoded [`DocSummary`].
const VERSION: u8 = 1;
/// Largest encoded summary accepted: a document with thousands of members.
const MAX_SUMMARY_LEN: usize = 4 << 20;

/// What this device holds of one document, in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocSummary {
    version: u8,
    /// The `Hello` digest of the access-log heads and version vector.
    pub digest: Digest,
    /// Access-log heads.
    pub heads: Vec<OpHash>,
    /// Version vector of the chunks held.
    pub vv: VersionVector,
    /// Snapshots held.
    pub snapshots: Vec<[u8; 32]>,
    /// Does the access log reach its root (false: joined, nothing arrived)?
    pub rooted: bool,
    /// Members and their roles.
    pub members: Vec<(MemberId, Role)>,
    /// Members removed by a revoke.
    pub revoked: Vec<MemberId>,
    /// Access-log ops held.
    pub log_ops: u64,
    /// Change chunks and snapshots held.
    pub chunks: u64,
    /// Sealed bytes held.
    pub stored_bytes: u64,
    /// Can this device read the content?
    pub readable: bool,
    /// The device-private local state (its name among it), sealed as stored.
    pub(crate) local: ByteBuf,
}

impl DocSummary {
    pub(crate) fn of(r: &DocReplica) -> Self {
        let state = r.log.state();
        Self {
            version: VERSION,
            digest: r.digest(),
            heads: r.log.heads(),
            vv: r.vv.clone(),
            snapshots: r.snapshot_ids(),
            rooted: r.log.is_rooted(),
            members: state.members.iter().map(|(m, e)| (*m, e.role)).collect(),
            revoked: state.revoked.iter().copied().collect(),
            log_ops: r.log.len() as u64,
            chunks: (r.changes.len() + r.snapshots.len()) as u64,
            stored_bytes: r.stored_bytes() as u64,
            readable: r.doc.is_some(),
            local: ByteBuf::from(r.local_sealed.clone()),
        }
    }

    /// An entry that says only `digest` and `rooted`: what stands in for
    /// one that cannot be read.
    pub(crate) fn placeholder(digest: Digest, rooted: bool) -> Self {
        Self {
            version: VERSION,
            digest,
            heads: Vec::new(),
            vv: VersionVector::default(),
            snapshots: Vec::new(),
            rooted,
            members: Vec::new(),
            revoked: Vec::new(),
            log_ops: 0,
            chunks: 0,
            stored_bytes: 0,
            readable: false,
            local: ByteBuf::new(),
        }
    }

    /// The role of `m`, if it is a member.
    pub fn role(&self, m: &MemberId) -> Option<Role> {
        self.members.iter().find(|(x, _)| x == m).map(|(_, r)| *r)
    }

    /// Encode as the index record's value.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode an index record (untrusted bytes from storage).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let s: Self = decode("index entry", bytes, MAX_SUMMARY_LEN)?;
        if s.version != VERSION {
            return Err(DecodeError::Malformed {
                what: "index entry",
                detail: format!("version {} is not {VERSION}", s.version),
            });
        }
        Ok(s)
    }
}
