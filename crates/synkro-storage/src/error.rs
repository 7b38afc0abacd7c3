//! Errors returned by storage backends, and the damage reports of a load.

use std::fmt;
use std::path::PathBuf;

use crate::MAX_KEY_LEN;

/// Why a storage call failed.
///
/// Damage found while reading is *not* an error: [`Storage::load`]
/// returns what is intact and lists the damage as [`Problem`]s.
///
/// [`Storage::load`]: crate::Storage::load
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system call on a storage file or directory failed.
    #[error(
        "storage I/O error on {}: {source} (check that the directory exists, \
         is writable by this user, and that the disk is not full)",
        path.display()
    )]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },

    /// The disk (or the user's quota on it) is full. The write that
    /// returned this was not applied; the store stays usable, and writes
    /// succeed again once space is freed.
    #[error(
        "the disk holding {} is full; free some space and try again (nothing of this change was stored)",
        path.display()
    )]
    DiskFull {
        /// The file the write was for.
        path: PathBuf,
    },

    /// The store refuses writes because an earlier `fsync` failed.
    ///
    /// After a failed `fsync` the OS may already have dropped the unwritten
    /// data, so retrying could report success for data that is not on disk.
    /// The write that hit the failure and every later write return this.
    /// A write that returned this may or may not be visible to a later
    /// `load`: treat it as not durable.
    #[error(
        "storage refuses writes because flushing data to disk (fsync) failed earlier, \
         so recent changes may not be on disk; restart the application and check the \
         disk (free space, health, system log)"
    )]
    Poisoned,

    /// A record key was empty or longer than [`MAX_KEY_LEN`] bytes.
    #[error("record key of {len} bytes is invalid: keys must be 1 to {} bytes", MAX_KEY_LEN)]
    InvalidKey {
        /// Length of the rejected key.
        len: usize,
    },

    /// A value, or a whole write, was larger than the backend accepts.
    ///
    /// Limits: [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) per value and
    /// [`MAX_WRITE_LEN`](crate::MAX_WRITE_LEN) per write.
    #[error("{len} bytes is more than storage accepts at once (limit: {max} bytes)")]
    TooLarge {
        /// Size of the rejected value or write.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },

    /// The operation could not run because the async runtime is shutting down.
    ///
    /// A write that returned this was not applied.
    #[error("storage operation was cancelled because the async runtime is shutting down")]
    Closed,

    /// The browser's storage quota for this site is used up (IndexedDB's
    /// `QuotaExceededError`, also when it aborted a transaction). Nothing
    /// of the failed write was stored.
    #[error(
        "the browser's storage for this site is full ({detail}); free space by deleting documents \
         or site data, or ask the browser for persistent storage"
    )]
    QuotaExceeded {
        /// What the browser said.
        detail: String,
    },

    /// The browser database this store used is closed: it was handed over
    /// to another tab, another connection (a newer version of the app in
    /// another tab, or a deletion of site data) asked to upgrade or delete
    /// it and this one stepped aside, or the browser closed it. Every later
    /// call returns this; open the store again.
    #[error(
        "the browser database is closed here: another tab took it over or is upgrading or deleting it, \
         or the browser closed it; reload the page"
    )]
    ClosedByOtherConnection,

    /// A networked store (a NATS JetStream cluster) did not confirm the
    /// operation: it is unreachable, has no quorum, timed out, or refused
    /// the write for lack of room. A write that returned this is not
    /// durable; it may have been stored, and writing the same ops again is
    /// safe. The store stays usable, and calls succeed again once it answers.
    #[error(
        "the cluster store did not confirm ({detail}); nothing is acknowledged until it does, and the write is retried"
    )]
    Unavailable {
        /// What the store (or the connection to it) said.
        detail: String,
    },

    /// The browser's storage failed in another way.
    #[error("browser storage failed: {name}: {message}")]
    Browser {
        /// The DOMException name (or the operation that failed).
        name: String,
        /// Its message.
        message: String,
    },
}

impl StorageError {
    /// Did the write fail for lack of room ([`DiskFull`](Self::DiskFull),
    /// [`QuotaExceeded`](Self::QuotaExceeded))? Nothing of it was stored,
    /// and the same write may succeed once there is room.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::DiskFull { .. } | Self::QuotaExceeded { .. })
    }

    /// May the same write succeed later ([`is_full`](Self::is_full), or
    /// [`Unavailable`](Self::Unavailable))? The store stays usable; a
    /// caller keeps the write and tries it again.
    pub fn is_transient(&self) -> bool {
        self.is_full() || matches!(self, Self::Unavailable { .. })
    }
}

/// Damage found and skipped while loading a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the damage is: the file path for file backends.
    pub location: String,
    /// Byte offset of the damaged region within `location`.
    pub offset: u64,
    /// What was wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.location, self.offset, self.kind)
    }
}

/// The kind of damage a [`Problem`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file ends in the middle of a frame: a write was interrupted
    /// (crash or power loss) before it was acknowledged. The partial frame
    /// was dropped.
    TornTail,
    /// A complete frame whose checksum does not match its contents: the
    /// bytes were damaged after being written. The frame was skipped.
    BadChecksum,
    /// Bytes that do not form a readable frame (bad header, implausible
    /// length, or contents that do not decode). They were skipped up to
    /// the next intact frame.
    BadFrame,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::TornTail => "incomplete frame at end of file (an interrupted write); it was dropped",
            ProblemKind::BadChecksum => "frame checksum mismatch (data damaged on disk); the frame was skipped",
            ProblemKind::BadFrame => "unreadable frame (bad header or contents); skipped to the next intact frame",
        })
    }
}
