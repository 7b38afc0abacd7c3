//! Messages of the sync protocol `/synkro/sync/1`.
//!
//! One connection between two peers carries every document they share.
//! Each side starts with [`Message::Hello`], which opens a range-based set
//! reconciliation ([negentropy]) over the documents it would sync with this
//! peer, each named by its id and a short digest of its state. The other
//! side answers ([`Message::Answer`]) with fingerprints of the ranges that
//! differ; the opener narrows them ([`Message::Query`]) until it knows which
//! documents differ, then says [`Message::Reconciled`]. When nothing
//! changed this is one round trip of a few hundred bytes, however many
//! documents the peers share; otherwise its cost follows what changed. For
//! documents that differ, each side sends a [`Message::Have`] (access-log
//! heads and version vector) and answers the other's `Have` with the ops
//! and chunks it lacks. A `Have` sent after storing received data doubles
//! as the acknowledgement that it is durable.
//!
//! [negentropy]: https://github.com/hoytech/negentropy
//!
//! The encoding is postcard; the transport frames each message with a
//! length prefix and must reject frames over [`MAX_FRAME_LEN`] before
//! reading them.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::encoding::{decode, encode};
use crate::error::DecodeError;
use crate::ids::{DocId, OpHash};
use crate::vv::VersionVector;

/// Version sent in [`Message::Hello`]. Version 2 added chunks sealed in
/// parts and [`Message::Refused`]; version 3 replaced the list of digests
/// in `Hello` by a set reconciliation.
pub const PROTOCOL_VERSION: u16 = 3;
pub use crate::limits::{BATCH_TARGET_LEN, MAX_FRAME_LEN};

/// Longest [`Refusal::Invalid`] detail kept from a peer.
const MAX_DETAIL_LEN: usize = 256;

/// A document's short state digest, compared by the reconciliation that
/// [`Message::Hello`] opens.
pub type Digest = [u8; 16];

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message on a connection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u16,
        /// The first negentropy message of the sender's reconciliation over
        /// the documents it would sync with this peer.
        query: ByteBuf,
    },
    /// The sender's state of one document.
    Have {
        /// Document.
        doc: DocId,
        /// Access-log heads.
        heads: Vec<OpHash>,
        /// Chunks held (empty when the receiver is not a member).
        vv: VersionVector,
        /// Digests of the snapshots held (empty when the receiver is not a member).
        snapshots: Vec<[u8; 32]>,
    },
    /// Access-log ops the receiver lacks, parents first.
    Ops {
        /// Document.
        doc: DocId,
        /// Encoded ops.
        ops: Vec<ByteBuf>,
    },
    /// Sealed chunks the receiver lacks.
    Chunks {
        /// Document.
        doc: DocId,
        /// Encoded chunks.
        chunks: Vec<ByteBuf>,
    },
    /// A [`SealedEphemeral`](crate::ephemeral::SealedEphemeral) message
    /// (presence, cursors): delivered to members online now, never stored.
    Ephemeral {
        /// Document.
        doc: DocId,
        /// The encoded message.
        message: ByteBuf,
    },
    /// The sender refused data of `doc` that the receiver sent it, and why;
    /// the receiver tells its app (`Event::PeerRefused`) and shows the
    /// document as stuck in its sync status.
    Refused {
        /// Document.
        doc: DocId,
        /// Why.
        reason: Refusal,
    },
    /// The next negentropy message of the sender's reconciliation, after an
    /// [`Answer`](Message::Answer) it needs to narrow.
    Query {
        /// The negentropy message.
        ranges: ByteBuf,
    },
    /// The answer to the receiver's `Hello` or `Query`.
    Answer {
        /// The negentropy message.
        ranges: ByteBuf,
    },
    /// The sender's reconciliation is over: the receiver may forget the
    /// state that answers it.
    Reconciled,
}

/// Why a peer refused data it was sent ([`Message::Refused`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A chunk or op over the peer's size limit.
    #[error("{len} bytes is over the peer's limit of {max}")]
    TooLarge {
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Its author may not write the document (never could, or was revoked).
    #[error("the author may not write this document")]
    NotAllowed,
    /// It failed verification (bad key, not Automerge data, ...).
    #[error("it failed verification: {0}")]
    Invalid(String),
    /// The peer holds as many documents as it is allowed to.
    #[error("the peer holds its limit of {max} documents")]
    DocumentLimit {
        /// Its limit.
        max: u64,
    },
    /// The peer cannot store for now (its disk is full, or its cluster
    /// store does not answer): it refuses new data until it can again.
    #[error("the peer's storage is full or unreachable; it accepts new data again once it can store it")]
    StorageFull,
    /// The peer's storage failed and no longer accepts writes.
    #[error("the peer's storage failed; it accepts no new data until it is repaired")]
    StorageFailed,
}

impl Refusal {
    /// Why a chunk or op failed verification, as a peer is told it.
    pub fn from_verify(e: &crate::error::VerifyError) -> Self {
        use crate::error::{DecodeError, VerifyError};
        match e {
            VerifyError::NotAllowed { .. } | VerifyError::Unauthorised => Refusal::NotAllowed,
            VerifyError::Decode(DecodeError::TooLarge { len, max, .. }) => Refusal::TooLarge {
                len: *len as u64,
                max: *max as u64,
            },
            other => Refusal::Invalid(other.to_string()),
        }
    }

    /// Will the peer take the same data later (its disk was full)?
    pub fn is_transient(&self) -> bool {
        matches!(self, Refusal::StorageFull)
    }

    /// The refusal with any text from a peer cut to a displayable length.
    fn bounded(self) -> Self {
        match self {
            Refusal::Invalid(mut detail) if detail.len() > MAX_DETAIL_LEN => {
                let mut cut = MAX_DETAIL_LEN;
                while !detail.is_char_boundary(cut) {
                    cut -= 1;
                }
                detail.truncate(cut);
                Refusal::Invalid(detail)
            }
            other => other,
        }
    }
}

impl Message {
    /// Encode for the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode from the wire, rejecting anything over [`MAX_FRAME_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let message = decode("sync message", bytes, MAX_FRAME_LEN)?;
        Ok(match message {
            Message::Refused { doc, reason } => Message::Refused {
                doc,
                reason: reason.bounded(),
            },
            other => other,
        })
    }
}
