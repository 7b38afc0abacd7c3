//! Messages of the sync protocol `/synkro/sync/1`.
//!
//! One connection between two peers carries every document they share.
//! Each side starts with [`Message::Hello`], which lists a short digest of
//! every document it would sync with this peer; documents whose digests
//! match cost nothing more, so reconnecting with thousands of unchanged
//! documents is one exchange. For documents that differ, each side sends a
//! [`Message::Have`] (access-log heads and version vector) and answers the
//! other's `Have` with the ops and chunks it lacks. A `Have` sent after
//! storing received data doubles as the acknowledgement that it is durable.
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

/// Version sent in [`Message::Hello`].
pub const PROTOCOL_VERSION: u16 = 1;
/// Hard cap on one encoded message (a chunk plus framing).
pub const MAX_FRAME_LEN: usize = crate::chunk::MAX_CHUNK_LEN + (1 << 16);
/// Soft cap used when batching several chunks into one message.
pub const BATCH_TARGET_LEN: usize = 1 << 20;

/// A document's short state digest, compared in [`Message::Hello`].
pub type Digest = [u8; 16];

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message on a connection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u16,
        /// Documents the sender would sync with this peer, with their digests.
        docs: Vec<(DocId, Digest)>,
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
}

impl Message {
    /// Encode for the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode from the wire, rejecting anything over [`MAX_FRAME_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode("sync message", bytes, MAX_FRAME_LEN)
    }
}
