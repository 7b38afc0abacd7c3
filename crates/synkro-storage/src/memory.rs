//! In-memory backend: for tests and ephemeral repositories, on every target.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Loaded, Namespace, RecordKey, Storage, StorageError, WriteOp, check_ops};

type Records = BTreeMap<RecordKey, Vec<u8>>;

/// A [`Storage`] that keeps everything in memory and loses it on drop.
///
/// Writes are atomic (applied under one lock) and "durable" for the life
/// of the value. It never reports problems and is never poisoned. It
/// enforces the same key and size limits as the file backend (`FsStorage`),
/// so code tested against it behaves the same on disk.
///
/// (The example runs on tokio, which is not built for wasm32.)
///
/// ```ignore-wasm32
/// use synkro_storage::{MemoryStorage, Storage, WriteOp};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// rt.block_on(async {
///     let store = MemoryStorage::new();
///     let ns = [7u8; 32];
///     store
///         .write(&ns, vec![WriteOp::Put { key: b"k".to_vec(), value: b"v".to_vec() }])
///         .await?;
///     let loaded = store.load(&ns).await?;
///     assert_eq!(loaded.records, vec![(b"k".to_vec(), b"v".to_vec())]);
///     assert_eq!(store.namespaces().await?, vec![ns]);
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStorage {
    namespaces: Mutex<HashMap<Namespace, Records>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the map. Nothing done under the lock can panic half way (see
    /// `write`), so a poisoned lock still guards a consistent map.
    fn lock(&self) -> MutexGuard<'_, HashMap<Namespace, Records>> {
        self.namespaces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Storage for MemoryStorage {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        check_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let mut map = self.lock();
        // Applied in place under one lock: BTreeMap insert/remove cannot
        // panic (allocation failure aborts), so no reader sees half a write.
        let records = map.entry(*ns).or_default();
        for op in ops {
            match op {
                WriteOp::Put { key, value } => {
                    records.insert(key, value);
                }
                WriteOp::Delete { key } => {
                    records.remove(&key);
                }
            }
        }
        // Keep only namespaces with records, as `namespaces()` promises.
        if records.is_empty() {
            map.remove(ns);
        }
        Ok(())
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let map = self.lock();
        let records = map
            .get(ns)
            .map(|r| r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Loaded {
            records,
            problems: Vec::new(),
        })
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let mut out: Vec<Namespace> = self.lock().keys().copied().collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        self.lock().remove(ns);
        Ok(())
    }
}
