//! Where synkro keeps its bytes.
//!
//! Every document lives in its own [`Namespace`] (the 32 bytes of its id).
//! Inside a namespace, records are addressed by a short opaque [`RecordKey`]
//! chosen by `synkro-core`. The values are already sealed (encrypted and
//! signed) by the time they reach a backend, so every backend is encrypted
//! at rest without doing any cryptography itself.
//!
//! Backends:
//! - [`MemoryStorage`]: for tests and ephemeral repos; every target.
//! - [`FsStorage`] (native only): one append-only log file per namespace,
//!   crash-safe, and a snapshot of the index entries written at a clean
//!   close; see its docs for the exact guarantees.
//! - `IndexedDbStorage` (wasm32 only): the browser's IndexedDB, one
//!   transaction per write, every record checksummed.
//!
//! Blobs (files attached to documents) have their own content-addressed
//! store, [`BlobStore`]: [`MemoryBlobs`] and, natively, [`FsBlobs`].
//!
//! The trait is `Send` on native targets and `?Send` on `wasm32`, where
//! browser storage futures cannot cross threads.
#![warn(missing_docs)]

mod blobs;
mod error;
#[cfg(not(target_arch = "wasm32"))]
mod fault;
pub mod frame;
#[cfg(not(target_arch = "wasm32"))]
mod fs;
#[cfg(target_arch = "wasm32")]
mod indexeddb;
mod memory;

pub use blobs::{BlobKey, BlobKind, BlobStore, MemoryBlobs};
pub use error::{Problem, ProblemKind, StorageError};
#[cfg(all(not(target_arch = "wasm32"), feature = "fault-injection"))]
pub use fault::{Fault, FaultKind, FaultPoint};
#[cfg(not(target_arch = "wasm32"))]
pub use fs::{FsBlobs, FsStorage};
#[cfg(target_arch = "wasm32")]
pub use indexeddb::{IndexedDbStorage, from_dom_exception};
pub use memory::MemoryStorage;

/// The 32-byte namespace a document's records live in (its `DocId`).
pub type Namespace = [u8; 32];

/// Key of one record inside a namespace: 1 to [`MAX_KEY_LEN`] bytes.
pub type RecordKey = Vec<u8>;

/// Longest accepted [`RecordKey`].
pub const MAX_KEY_LEN: usize = 255;

/// Largest accepted single value (64 MiB): bounds every allocation made
/// while reading a file back.
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// Largest accepted single [`Storage::write`] (128 MiB), counted as
/// [`write_len`] does: 4 bytes, plus for each op its key and value lengths
/// and 8 bytes of bookkeeping. Bounds the size of one log frame.
pub const MAX_WRITE_LEN: usize = 128 << 20;

/// Bookkeeping bytes counted per op by [`write_len`]; every backend's
/// encoding of an op fits in its key, its value and this many bytes.
const OP_OVERHEAD: usize = 8;

/// The size of `ops` as checked against [`MAX_WRITE_LEN`].
///
/// Saturates instead of overflowing, so an absurd write is still rejected.
pub fn write_len(ops: &[WriteOp]) -> usize {
    ops.iter().fold(4usize, |acc, op| {
        let (key, value_len) = match op {
            WriteOp::Put { key, value } => (key, value.len()),
            WriteOp::Delete { key } => (key, 0),
        };
        acc.saturating_add(key.len())
            .saturating_add(value_len)
            .saturating_add(OP_OVERHEAD)
    })
}

/// One change to a namespace, applied as part of an atomic [`Storage::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or overwrite the value at `key`.
    Put {
        /// Record key.
        key: RecordKey,
        /// Record value (sealed bytes).
        value: Vec<u8>,
    },
    /// Remove the record at `key` (no error if absent).
    Delete {
        /// Record key.
        key: RecordKey,
    },
}

/// What [`Storage::load`] found in a namespace.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// Live records, sorted by key.
    pub records: Vec<(RecordKey, Vec<u8>)>,
    /// Damage found and skipped while reading: torn tails, bad checksums.
    /// The records above are everything that could be read intact.
    pub problems: Vec<Problem>,
}

/// An async key-value store of sealed records, grouped by namespace.
///
/// Contract every backend keeps:
/// - [`write`](Storage::write) is atomic (all its ops survive a crash or
///   none do) and returns only once the data is durable.
/// - After a durability failure (an `fsync` error) the backend refuses
///   every later write with [`StorageError::Poisoned`]: the OS may have
///   dropped dirty pages, so retrying and pretending would lose data.
/// - [`load`](Storage::load) never panics on damaged data: it returns what
///   is intact and lists the damage in [`Loaded::problems`].
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Storage: MaybeSendSync {
    /// Apply `ops` to `ns` atomically and durably, in order (a later op
    /// on the same key wins).
    ///
    /// Invalid writes are rejected before anything is stored:
    /// [`StorageError::InvalidKey`] / [`StorageError::TooLarge`] (see
    /// [`MAX_KEY_LEN`], [`MAX_VALUE_LEN`], [`MAX_WRITE_LEN`]). A write that
    /// returns any other error may or may not have been applied, but never
    /// partly. An empty `ops` is a no-op.
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError>;

    /// Read every live record of `ns` (empty if it does not exist).
    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError>;

    /// List namespaces that hold at least one record, sorted.
    ///
    /// A file backend may also list a namespace whose file was left with no
    /// intact record by a crash or by damage.
    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError>;

    /// Remove a namespace and all its records, durably (no error if absent).
    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError>;

    /// Every namespace with the value of its record at `key`, if it has
    /// one: what a repo reads at opening (each document's index entry)
    /// instead of every record. Where damage was found in a namespace, its
    /// [`Gathered::problems`] say so and `value` is `None`, so that the
    /// caller reads it whole rather than trust an entry written before it.
    ///
    /// The default reads each namespace whole and keeps that one record; a
    /// backend that can reach one key of every namespace directly should.
    async fn gather(&self, key: &[u8]) -> Result<Vec<Gathered>, StorageError> {
        gather_by_loading(self, key).await
    }

    /// The repo is closing: write now whatever makes the next opening
    /// fast (`FsStorage`: its index snapshot). The store stays usable; a
    /// later write simply undoes it. The default does nothing.
    async fn checkpoint(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// [`Storage::gather`] by reading every namespace whole.
pub(crate) async fn gather_by_loading<S: Storage + ?Sized>(
    storage: &S,
    key: &[u8],
) -> Result<Vec<Gathered>, StorageError> {
    let mut out = Vec::new();
    for ns in storage.namespaces().await? {
        let loaded = storage.load(&ns).await?;
        let value = match loaded.problems.is_empty() {
            true => loaded
                .records
                .into_iter()
                .find(|(k, _)| k.as_slice() == key)
                .map(|(_, v)| v),
            false => None,
        };
        out.push(Gathered {
            ns,
            value,
            problems: loaded.problems,
        });
    }
    Ok(out)
}

/// One namespace as [`Storage::gather`] found it.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// The namespace.
    pub ns: Namespace,
    /// The value of the record asked for, if it is there and intact.
    pub value: Option<Vec<u8>>,
    /// Damage found in the namespace (then `value` is `None`).
    pub problems: Vec<Problem>,
}

/// `Send + Sync` on native targets, nothing on `wasm32`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` on native targets, nothing on `wasm32`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// Validates a write before any backend touches it: every key is 1 to
/// [`MAX_KEY_LEN`] bytes, every value at most [`MAX_VALUE_LEN`] bytes and
/// the whole write at most [`MAX_WRITE_LEN`] bytes.
pub fn check_ops(ops: &[WriteOp]) -> Result<(), StorageError> {
    for op in ops {
        let (key, value_len) = match op {
            WriteOp::Put { key, value } => (key, value.len()),
            WriteOp::Delete { key } => (key, 0),
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(StorageError::InvalidKey { len: key.len() });
        }
        if value_len > MAX_VALUE_LEN {
            return Err(StorageError::TooLarge {
                len: value_len,
                max: MAX_VALUE_LEN,
            });
        }
    }
    let len = write_len(ops);
    if len > MAX_WRITE_LEN {
        return Err(StorageError::TooLarge {
            len,
            max: MAX_WRITE_LEN,
        });
    }
    Ok(())
}
