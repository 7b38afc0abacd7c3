use std::path::PathBuf;

use synkro_core::{CoreError, DocId};
use synkro_storage::StorageError;
use thiserror::Error;

/// Everything that can go wrong in the public API.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A document operation failed (unknown doc, no access, bad token ...).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The storage backend failed; see the message for what to check.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A storage write failed earlier, so this repo no longer accepts
    /// changes: what is in memory may not be on disk.
    #[error(
        "the repository stopped accepting changes after a storage failure ({0}); reopen it once the disk is healthy"
    )]
    Failed(#[source] std::sync::Arc<StorageError>),
    /// Storage is full (the disk, or the browser's quota for the site):
    /// the edits are kept in memory and written on their own once there is
    /// room; until then they are not durable and would be lost if the
    /// process ended. Data from peers is refused meanwhile.
    #[error("storage is full: the changes are kept in memory and written once there is room (free some space)")]
    StorageFull,
    /// Another process has this home directory open.
    #[error("{0} is in use by another synkro process; close it first")]
    HomeInUse(PathBuf),
    /// The tab holding a browser repo refused or could not do what this
    /// tab (a guest) asked of it: creating, joining, importing, sharing,
    /// revoking, naming.
    #[error("the tab holding the repo: {message}")]
    AtHost {
        /// The kind of the error there.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// A repo name that cannot be used.
    #[error("{0}")]
    InvalidName(String),
    /// The device identity file cannot be used.
    #[error("device identity {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A filesystem operation on the home directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A document path (like `meta/title`) does not fit the document.
    #[error("path {path:?}: {reason}")]
    Path {
        /// The path given.
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// A text insert over [`MAX_TEXT_INSERT`](crate::json::MAX_TEXT_INSERT)
    /// characters was refused before anything changed.
    #[error(
        "inserting {chars} characters in one change is over the limit of {max}; insert the text in several \
         changes (or attach it as a file)"
    )]
    TextTooLarge {
        /// Characters in the insert.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The value cannot be stored (e.g. a number JSON cannot represent).
    #[error("value: {0}")]
    Value(String),
    /// The document is not in this repo.
    #[error("unknown document {0}; `list` shows the documents on this device")]
    UnknownDocument(DocId),
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] synkro_net::NetError),
    /// The peer answered but does not run the sync protocol.
    #[error("{0} does not sync documents (a relay started without storage?); give a synkro peer or a storing relay")]
    NotASyncPeer(String),
    /// A peer did not acknowledge everything in time.
    #[error(
        "{peer} has not acknowledged {unsynced} document(s) and {pending} joined document(s) have not arrived; is it reachable and a member?"
    )]
    NotSynced {
        /// The peer.
        peer: synkro_core::MemberId,
        /// Shared documents it has not acknowledged.
        unsynced: usize,
        /// Joined documents nobody has sent yet.
        pending: usize,
    },
    /// A peer refused data of a document (see the reason): waiting longer
    /// will not help.
    #[error("{peer} refused document {doc}: {reason}")]
    Refused {
        /// The peer.
        peer: synkro_core::MemberId,
        /// The document.
        doc: DocId,
        /// Why.
        reason: synkro_core::Refusal,
    },
    /// The repo was closed ([`Repo::close`](crate::Repo::close)).
    #[error("the repository is closed; open it again to change it")]
    Closed,
    /// A blob's manifest (`chunk` is `None`) or one of its chunks is not on
    /// this device, or is damaged here.
    #[error("blob {blob}: {} is not on this device", match chunk { Some(i) => format!("chunk {i}"), None => "the manifest".to_owned() })]
    BlobMissing {
        /// The blob.
        blob: synkro_core::blob::BlobId,
        /// Which chunk, counting from 0.
        chunk: Option<usize>,
    },
}

/// What kind of error an [`Error`] is, for bindings that map errors to
/// classes (the npm package's `InvalidArgumentError`, `AccessError`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad argument: a malformed path, value, token, backup or document.
    InvalidArgument,
    /// No such document, or its content has not arrived yet.
    NotFound,
    /// The document's access rules do not allow it.
    Access,
    /// Storage failed or is full, or the repo is closed.
    Storage,
    /// A relay or peer could not be reached, or refused.
    Network,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Its name: `invalid-argument`, `not-found`, `access`, `storage`,
    /// `network` or `other`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Access => "access",
            ErrorKind::Storage => "storage",
            ErrorKind::Network => "network",
            ErrorKind::Other => "other",
        }
    }

    /// The kind [`name`](Self::name) names (`Other` for anything else).
    pub fn from_name(name: &str) -> ErrorKind {
        [
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::Access,
            ErrorKind::Storage,
            ErrorKind::Network,
        ]
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or(ErrorKind::Other)
    }
}

impl Error {
    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        use synkro_core::CoreError as C;
        match self {
            Error::Path { .. } | Error::Value(_) | Error::TextTooLarge { .. } | Error::InvalidName(_) => {
                ErrorKind::InvalidArgument
            }
            Error::Core(C::BadInvite(_) | C::BadBackup | C::BadAutomerge(_) | C::ChangeTooLarge { .. }) => {
                ErrorKind::InvalidArgument
            }
            Error::UnknownDocument(_)
            | Error::BlobMissing { .. }
            | Error::Core(C::UnknownDocument(_) | C::NotYetSynced(_)) => ErrorKind::NotFound,
            Error::Core(C::NoReadAccess(_) | C::NotAllowed { .. } | C::NotAMember { .. }) => ErrorKind::Access,
            Error::Storage(_) | Error::StorageFull | Error::Failed(_) | Error::Identity { .. } | Error::Closed => {
                ErrorKind::Storage
            }
            Error::Net(_) | Error::NotASyncPeer(_) | Error::NotSynced { .. } | Error::Refused { .. } => {
                ErrorKind::Network
            }
            Error::AtHost { kind, .. } => *kind,
            _ => ErrorKind::Other,
        }
    }

    /// An [`Error::AtHost`] of kind `Other`: the host's answer did not make sense.
    pub(crate) fn at_host(message: impl Into<String>) -> Error {
        Error::AtHost {
            kind: ErrorKind::Other,
            message: message.into(),
        }
    }
}
