//! Error types of the core. Every byte from a peer, the disk or an app is
//! untrusted: decoding and verification return these, never panic.

use std::sync::Arc;

use thiserror::Error;

use crate::access::Role;
use crate::ids::{DocId, MemberId};

/// A string was not a valid base58 id.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("not a valid {what}: {input:?} (expected 32 bytes in base58)")]
pub struct ParseIdError {
    /// What kind of id was expected.
    pub what: &'static str,
    /// The offending input (first 80 characters).
    pub input: String,
}

/// Bytes that do not decode into the expected structure.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the hard limit for this structure.
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Structure being decoded.
        what: &'static str,
        /// Input length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The input is not a valid encoding.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Structure being decoded.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// The input has bytes after a complete structure.
    #[error("{what} has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Structure being decoded.
        what: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// An unsupported format version.
    #[error("{what} has format version {found}; this build understands {supported}")]
    Version {
        /// Structure being decoded.
        what: &'static str,
        /// Version found.
        found: u16,
        /// Version supported.
        supported: u16,
    },
}

/// Authentication or authorisation failures of signed and sealed data.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The Ed25519 signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The bytes decode but name a different document.
    #[error("belongs to document {found}, not {expected}")]
    WrongDocument {
        /// Document we were verifying for.
        expected: DocId,
        /// Document named by the data.
        found: DocId,
    },
    /// The author is not (or no longer) allowed to do this.
    #[error("{member} lacks the {needed:?} role")]
    NotAllowed {
        /// The author.
        member: MemberId,
        /// The role the action needs.
        needed: Role,
    },
    /// The access log does not let the op's author do this (now, or in
    /// the causal history the op names).
    #[error("not authorised by the access log")]
    Unauthorised,
    /// The chunk names a key that this document's access log does not have.
    #[error("unknown document key")]
    UnknownKey,
    /// AEAD decryption failed: tampered, or sealed with another key.
    #[error("decryption failed (tampered data or wrong key)")]
    Decrypt,
    /// The decoded content is inconsistent (e.g. a genesis that does not hash to its doc id).
    #[error("invalid content: {0}")]
    Invalid(&'static str),
    /// Bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Errors from [`crate::Node`] operations requested by the local app.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// No document with this id in the repo.
    #[error("unknown document {0}; run `list` to see the documents on this device")]
    UnknownDocument(DocId),
    /// The document is held but not in memory: load it first
    /// ([`Node::load_doc`](crate::Node::load_doc)); a runtime does this itself.
    #[error("document {0} is not loaded")]
    NotLoaded(DocId),
    /// The document is known but its content is not here yet (joined, not yet synced).
    #[error("document {0} has not arrived yet; sync with a peer or relay that has it")]
    NotYetSynced(DocId),
    /// This device cannot decrypt the document.
    #[error("this device cannot read document {0} (it is not a reader, or holds no key)")]
    NoReadAccess(DocId),
    /// This device may not do what was asked.
    #[error("this device lacks the {needed:?} role on document {doc}; ask an admin for it")]
    NotAllowed {
        /// Document.
        doc: DocId,
        /// Role required.
        needed: Role,
    },
    /// The member is not part of the document.
    #[error("{member} is not a member of document {doc}")]
    NotAMember {
        /// Document.
        doc: DocId,
        /// Member.
        member: MemberId,
    },
    /// The invitation token or backup could not be used.
    #[error("invalid invitation: {0}")]
    BadInvite(String),
    /// A guest node ([`NodeConfig::guest`](crate::NodeConfig::guest)) does
    /// not write the store: the host does this.
    #[error("{0} is done by the tab that holds the repo, not by this one")]
    Guest(&'static str),
    /// Bytes given as an Automerge document cannot become one here.
    #[error("cannot import these bytes as an Automerge document: {0}")]
    BadAutomerge(String),
    /// Wrong passphrase or damaged backup.
    #[error("cannot open backup: wrong passphrase or damaged file")]
    BadBackup,
    /// A single change is larger than a chunk group can carry; it was
    /// undone, and nothing else was lost.
    #[error(
        "a change to document {doc} is {len} bytes, over the limit of {max}; split it into smaller changes \
         (large files belong in attachments, not in the document)"
    )]
    ChangeTooLarge {
        /// Document.
        doc: DocId,
        /// The change's size.
        len: usize,
        /// The limit ([`MAX_ASSEMBLED_LEN`](crate::limits::MAX_ASSEMBLED_LEN)).
        max: usize,
    },
    /// Automerge rejected the data or the change.
    #[error("document error: {0}")]
    Automerge(#[source] AutomergeFailure),
    /// A panic inside Automerge or inside the closure passed to a change
    /// was contained. The document was rebuilt from its stored chunks:
    /// edits not yet flushed may be gone, everything flushed is there.
    #[error(
        "internal error contained ({what}: {message}); the document was reloaded from storage, \
         edits made since the last flush may be lost"
    )]
    Panicked {
        /// Which operation panicked.
        what: &'static str,
        /// The panic message.
        message: String,
    },
    /// Data failed verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Data failed to decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl From<automerge::AutomergeError> for CoreError {
    fn from(e: automerge::AutomergeError) -> Self {
        CoreError::Automerge(AutomergeFailure(Arc::new(e)))
    }
}

/// An [`automerge::AutomergeError`], shared so that [`CoreError`] stays
/// cheap to clone; compared by what it says.
#[derive(Clone, Debug)]
pub struct AutomergeFailure(Arc<automerge::AutomergeError>);

impl AutomergeFailure {
    /// The error Automerge returned.
    pub fn automerge(&self) -> &automerge::AutomergeError {
        &self.0
    }
}

impl core::fmt::Display for AutomergeFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AutomergeFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for AutomergeFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for AutomergeFailure {}
