//! The two embedded stores measured against `FsStorage`, each behind the
//! same [`Storage`] trait the repo uses, with the same layout: one table of
//! records keyed by `namespace (32 bytes) ‖ record key`, so a namespace is a
//! key range and listing namespaces is a skip scan.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use synkro_storage::{Loaded, Namespace, Storage, StorageError, WriteOp};

fn failed(path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        path: path.to_owned(),
        source: io::Error::other(e.to_string()),
    }
}

fn record_key(ns: &Namespace, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + key.len());
    k.extend_from_slice(ns);
    k.extend_from_slice(key);
    k
}

/// The namespace a stored key starts with.
fn namespace_of(key: &[u8]) -> Option<Namespace> {
    key.get(..32)?.try_into().ok()
}

/// The first key after every key of `ns`, or `None` after the last namespace.
fn after(ns: &Namespace) -> Option<Namespace> {
    let mut next = *ns;
    for b in next.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(next);
        }
    }
    None
}

async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| failed(path, e))?
}

const RECORDS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("records");

/// redb: one copy-on-write B-tree file; a write is one transaction committed
/// with `Durability::Immediate`.
#[derive(Clone)]
pub struct Redb {
    db: Arc<redb::Database>,
    path: PathBuf,
}

impl Redb {
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let path = dir.join("store.redb");
        let db = redb::Database::create(&path).map_err(|e| failed(&path, e))?;
        let txn = db.begin_write().map_err(|e| failed(&path, e))?;
        txn.open_table(RECORDS).map_err(|e| failed(&path, e))?;
        txn.commit().map_err(|e| failed(&path, e))?;
        Ok(Self { db: Arc::new(db), path })
    }
}

#[async_trait::async_trait]
impl Storage for Redb {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        let (db, path, ns) = (self.db.clone(), self.path.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let txn = db.begin_write().map_err(|e| failed(&path, e))?;
            {
                let mut table = txn.open_table(RECORDS).map_err(|e| failed(&path, e))?;
                for op in ops {
                    match op {
                        WriteOp::Put { key, value } => table.insert(record_key(&ns, &key).as_slice(), value.as_slice()),
                        WriteOp::Delete { key } => table.remove(record_key(&ns, &key).as_slice()),
                    }
                    .map_err(|e| failed(&path, e))?;
                }
            }
            txn.commit().map_err(|e| failed(&path, e))
        })
        .await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        use redb::ReadableDatabase;
        let (db, path, ns) = (self.db.clone(), self.path.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let txn = db.begin_read().map_err(|e| failed(&path, e))?;
            let table = txn.open_table(RECORDS).map_err(|e| failed(&path, e))?;
            let mut loaded = Loaded::default();
            let end = after(&ns);
            let range = match &end {
                Some(end) => table.range(ns.as_slice()..end.as_slice()),
                None => table.range(ns.as_slice()..),
            }
            .map_err(|e| failed(&path, e))?;
            for item in range {
                let (k, v) = item.map_err(|e| failed(&path, e))?;
                loaded
                    .records
                    .push((k.value().get(32..).unwrap_or_default().to_vec(), v.value().to_vec()));
            }
            Ok(loaded)
        })
        .await
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        use redb::ReadableDatabase;
        let (db, path) = (self.db.clone(), self.path.clone());
        blocking(&self.path.clone(), move || {
            let txn = db.begin_read().map_err(|e| failed(&path, e))?;
            let table = txn.open_table(RECORDS).map_err(|e| failed(&path, e))?;
            let mut out = Vec::new();
            let mut from: Option<Namespace> = Some([0; 32]);
            while let Some(start) = from {
                let next = table
                    .range(start.as_slice()..)
                    .map_err(|e| failed(&path, e))?
                    .next()
                    .transpose()
                    .map_err(|e| failed(&path, e))?;
                let Some((k, _)) = next else { break };
                let ns = namespace_of(k.value()).ok_or_else(|| failed(&path, "a key shorter than a namespace"))?;
                out.push(ns);
                from = after(&ns);
            }
            Ok(out)
        })
        .await
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        let (db, path, ns) = (self.db.clone(), self.path.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let txn = db.begin_write().map_err(|e| failed(&path, e))?;
            {
                let mut table = txn.open_table(RECORDS).map_err(|e| failed(&path, e))?;
                let end = after(&ns).unwrap_or([0xff; 32]);
                table
                    .retain_in(ns.as_slice()..end.as_slice(), |_, _| false)
                    .map_err(|e| failed(&path, e))?;
            }
            txn.commit().map_err(|e| failed(&path, e))
        })
        .await
    }
}

/// fjall: an LSM tree; a write is one batch committed to the journal, then
/// the journal is synced (`PersistMode::SyncData`) outside the journal's
/// lock, so concurrent writers can share a sync.
#[derive(Clone)]
pub struct Fjall {
    db: fjall::Database,
    records: fjall::Keyspace,
    path: PathBuf,
}

impl Fjall {
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let db = fjall::Database::builder(dir).open().map_err(|e| failed(dir, e))?;
        let records = db
            .keyspace("records", fjall::KeyspaceCreateOptions::default)
            .map_err(|e| failed(dir, e))?;
        Ok(Self {
            db,
            records,
            path: dir.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Storage for Fjall {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        let (this, ns) = (self.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let mut batch = this.db.batch();
            for op in ops {
                match op {
                    WriteOp::Put { key, value } => batch.insert(&this.records, record_key(&ns, &key), value),
                    WriteOp::Delete { key } => batch.remove(&this.records, record_key(&ns, &key)),
                }
            }
            batch.commit().map_err(|e| failed(&this.path, e))?;
            this.db
                .persist(fjall::PersistMode::SyncData)
                .map_err(|e| failed(&this.path, e))
        })
        .await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let (this, ns) = (self.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let mut loaded = Loaded::default();
            for item in this.records.prefix(ns) {
                let (k, v) = item.into_inner().map_err(|e| failed(&this.path, e))?;
                loaded
                    .records
                    .push((k.get(32..).unwrap_or_default().to_vec(), v.to_vec()));
            }
            Ok(loaded)
        })
        .await
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let this = self.clone();
        blocking(&self.path.clone(), move || {
            let mut out = Vec::new();
            let mut from: Option<Namespace> = Some([0; 32]);
            while let Some(start) = from {
                let Some(first) = this.records.range(start..).next() else {
                    break;
                };
                let k = first.key().map_err(|e| failed(&this.path, e))?;
                let ns = namespace_of(&k).ok_or_else(|| failed(&this.path, "a key shorter than a namespace"))?;
                out.push(ns);
                from = after(&ns);
            }
            Ok(out)
        })
        .await
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        let (this, ns) = (self.clone(), *ns);
        blocking(&self.path.clone(), move || {
            let mut batch = this.db.batch();
            for item in this.records.prefix(ns) {
                let k = item.key().map_err(|e| failed(&this.path, e))?;
                batch.remove(&this.records, k);
            }
            batch.commit().map_err(|e| failed(&this.path, e))?;
            this.db
                .persist(fjall::PersistMode::SyncData)
                .map_err(|e| failed(&this.path, e))
        })
        .await
    }
}
