//! Where a repo keeps its blobs: sealed chunks and manifests, by document,
//! each addressed by a hash of its bytes that `synkro-core` computes and
//! checks when it reads them back (a store never has to trust its disk:
//! damaged bytes fail that check and count as missing).
//!
//! Unlike document records, blob items are immutable and content-addressed:
//! storing one twice is storing it once, and there is nothing to merge.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{MAX_VALUE_LEN, MaybeSendSync, Namespace, StorageError};

/// What a blob item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKind {
    /// A sealed chunk of a file.
    Chunk,
    /// A signed manifest (the list of a blob's chunks).
    Manifest,
}

/// The address of a blob item within its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey {
    /// Chunk or manifest.
    pub kind: BlobKind,
    /// The hash naming it.
    pub id: [u8; 32],
}

impl BlobKey {
    /// A chunk named `id`.
    pub fn chunk(id: [u8; 32]) -> Self {
        Self {
            kind: BlobKind::Chunk,
            id,
        }
    }

    /// A manifest named `id`.
    pub fn manifest(id: [u8; 32]) -> Self {
        Self {
            kind: BlobKind::Manifest,
            id,
        }
    }
}

/// An async store of blob items, grouped by document.
///
/// Contract every backend keeps:
/// - [`put`](BlobStore::put) returns once every item is durable; each item
///   is stored whole or not at all (a failure may leave some of the items).
/// - Values are at most [`MAX_VALUE_LEN`] bytes, on the way in and out: a
///   damaged store cannot make a reader allocate more.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait BlobStore: MaybeSendSync {
    /// Store `items` of document `doc`; an item already held is kept as is.
    async fn put(&self, doc: &Namespace, items: Vec<(BlobKey, Vec<u8>)>) -> Result<(), StorageError>;

    /// The item at `key`, if held.
    async fn get(&self, doc: &Namespace, key: &BlobKey) -> Result<Option<Vec<u8>>, StorageError>;

    /// Which of `keys` are held, in order.
    async fn has(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<Vec<bool>, StorageError>;

    /// Every item held for `doc`, sorted.
    async fn list(&self, doc: &Namespace) -> Result<Vec<BlobKey>, StorageError>;

    /// Forget `keys` of `doc`, durably (no error for one not held).
    async fn remove(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<(), StorageError>;
}

/// Refuses an item over [`MAX_VALUE_LEN`].
pub(crate) fn check_items(items: &[(BlobKey, Vec<u8>)]) -> Result<(), StorageError> {
    match items.iter().map(|(_, v)| v.len()).find(|len| *len > MAX_VALUE_LEN) {
        Some(len) => Err(StorageError::TooLarge {
            len,
            max: MAX_VALUE_LEN,
        }),
        None => Ok(()),
    }
}

/// A [`BlobStore`] in memory, lost on drop: tests, ephemeral repos, and
/// browsers until blobs have their IndexedDB store.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    docs: Mutex<HashMap<Namespace, BTreeMap<BlobKey, Vec<u8>>>>,
}

impl MemoryBlobs {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn docs(&self) -> MutexGuard<'_, HashMap<Namespace, BTreeMap<BlobKey, Vec<u8>>>> {
        // Every operation leaves the maps consistent: a panic elsewhere cannot tear them.
        self.docs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl BlobStore for MemoryBlobs {
    async fn put(&self, doc: &Namespace, items: Vec<(BlobKey, Vec<u8>)>) -> Result<(), StorageError> {
        check_items(&items)?;
        let mut docs = self.docs();
        let held = docs.entry(*doc).or_default();
        for (key, value) in items {
            held.entry(key).or_insert(value);
        }
        Ok(())
    }

    async fn get(&self, doc: &Namespace, key: &BlobKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.docs().get(doc).and_then(|held| held.get(key).cloned()))
    }

    async fn has(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<Vec<bool>, StorageError> {
        let docs = self.docs();
        let held = docs.get(doc);
        Ok(keys.iter().map(|k| held.is_some_and(|h| h.contains_key(k))).collect())
    }

    async fn list(&self, doc: &Namespace) -> Result<Vec<BlobKey>, StorageError> {
        Ok(self
            .docs()
            .get(doc)
            .map(|h| h.keys().copied().collect())
            .unwrap_or_default())
    }

    async fn remove(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<(), StorageError> {
        if let Some(held) = self.docs().get_mut(doc) {
            for k in keys {
                held.remove(k);
            }
        }
        Ok(())
    }
}
