//! [`IndexedDbStorage`]: the browser backend (wasm32 only).
//!
//! One database per repo with two object stores:
//! - `records`: key = namespace (32 bytes) ‖ record key, as a binary key;
//!   value = CRC32C of the record (4 bytes, little endian) ‖ the record.
//! - `namespaces`: key = namespace, for a cheap [`Storage::namespaces`].
//!
//! Each [`Storage::write`] is one readwrite transaction holding all its
//! ops and the namespace index, and returns only on the transaction's
//! `complete` event (IndexedDB's durability point; Chromium flushes
//! readwrite transactions by default). A quota failure, whether on a
//! request or as the reason a transaction aborted, is
//! [`StorageError::QuotaExceeded`]. Every value is checked on load: a
//! mismatch is reported in [`Loaded::problems`] and the other records load.
//! When another tab asks to upgrade or delete the database, this connection
//! closes and later calls fail with [`StorageError::ClosedByOtherConnection`].
//!
//! The backend uses the `idb` crate directly rather than its wrapper
//! `rexie`, which hides the database handle needed for `versionchange`.

use std::cell::Cell;
use std::rc::Rc;

use idb::{Database, DatabaseEvent, Factory, KeyRange, ObjectStore, Query, TransactionMode, TransactionResult};
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DomException;

use crate::{
    Loaded, MAX_KEY_LEN, Namespace, Problem, ProblemKind, RecordKey, Storage, StorageError, WriteOp, check_ops,
};

const RECORDS: &str = "records";
const NAMESPACES: &str = "namespaces";
const VERSION: u32 = 1;
const CRC_LEN: usize = 4;

/// Sealed records in the browser's IndexedDB. See the module docs.
pub struct IndexedDbStorage {
    name: String,
    db: Database,
    closed: Rc<Cell<bool>>,
}

impl std::fmt::Debug for IndexedDbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexedDbStorage({})", self.name)
    }
}

impl IndexedDbStorage {
    /// Open (or create) the database `name`.
    pub async fn open(name: &str) -> Result<Self, StorageError> {
        let factory = Factory::new().map_err(from_idb)?;
        let mut request = factory.open(name, Some(VERSION)).map_err(from_idb)?;
        request.on_upgrade_needed(|event| {
            // Version 1: create both stores. Failures here abort the open,
            // which the awaited request then reports.
            if let Ok(db) = event.database() {
                for store in [RECORDS, NAMESPACES] {
                    if !db.store_names().iter().any(|s| s == store) {
                        let _ = db.create_object_store(store, idb::ObjectStoreParams::new());
                    }
                }
            }
        });
        let mut db = request.await.map_err(from_idb)?;
        let closed = Rc::new(Cell::new(false));
        let flag = closed.clone();
        db.on_version_change(move |event| {
            flag.set(true);
            if let Some(db) = event.target().and_then(|t| t.dyn_into::<web_sys::IdbDatabase>().ok()) {
                db.close();
            }
        });
        Ok(Self {
            name: name.to_owned(),
            db,
            closed,
        })
    }

    /// Delete the database `name` (waits until other tabs close it).
    pub async fn delete(name: &str) -> Result<(), StorageError> {
        let factory = Factory::new().map_err(from_idb)?;
        factory.delete(name).map_err(from_idb)?.await.map_err(from_idb)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if self.closed.get() {
            Err(StorageError::ClosedByOtherConnection)
        } else {
            Ok(())
        }
    }

    fn transaction(&self, stores: &[&str], mode: TransactionMode) -> Result<idb::Transaction, StorageError> {
        self.check_open()?;
        self.db.transaction(stores, mode).map_err(from_idb)
    }

    async fn finish(tx: idb::Transaction) -> Result<(), StorageError> {
        match tx.await.map_err(from_idb)? {
            TransactionResult::Committed => Ok(()),
            TransactionResult::Aborted => Err(StorageError::Browser {
                name: "AbortError".into(),
                message: "the transaction was aborted; nothing of it was stored".into(),
            }),
        }
    }
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

fn record_key(ns: &Namespace, key: &[u8]) -> JsValue {
    let mut k = Vec::with_capacity(ns.len() + key.len());
    k.extend_from_slice(ns);
    k.extend_from_slice(key);
    bytes(&k)
}

/// Every key of namespace `ns`: keys are at most [`MAX_KEY_LEN`] bytes, so
/// `ns ‖ 0xFF…` one byte longer is above all of them.
fn namespace_range(ns: &Namespace) -> Result<KeyRange, StorageError> {
    let mut upper = ns.to_vec();
    upper.extend(std::iter::repeat_n(0xFF, MAX_KEY_LEN + 1));
    KeyRange::bound(&bytes(ns), &bytes(&upper), Some(false), Some(false)).map_err(from_idb)
}

/// Binary keys come back as `ArrayBuffer`s, values as we stored them.
fn to_vec(v: &JsValue) -> Option<Vec<u8>> {
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Some(a.to_vec());
    }
    if v.is_instance_of::<js_sys::ArrayBuffer>() {
        return Some(Uint8Array::new(v).to_vec());
    }
    None
}

fn seal_value(value: &[u8]) -> JsValue {
    let mut v = Vec::with_capacity(CRC_LEN + value.len());
    v.extend_from_slice(&crc32c::crc32c(value).to_le_bytes());
    v.extend_from_slice(value);
    bytes(&v)
}

/// The record inside a stored value, if its checksum holds.
fn open_value(stored: &[u8]) -> Option<&[u8]> {
    let (crc, value) = stored.split_at_checked(CRC_LEN)?;
    (crc32c::crc32c(value).to_le_bytes() == crc).then_some(value)
}

/// Map an IndexedDB failure, recognising quota errors wherever they appear.
pub fn from_idb(e: idb::Error) -> StorageError {
    let dom = match &e {
        idb::Error::DomException(d) => Some(d.clone()),
        idb::Error::AddFailed(v)
        | idb::Error::DeleteFailed(v)
        | idb::Error::UpdateFailed(v)
        | idb::Error::TransactionAbortError(v)
        | idb::Error::TransactionCommitError(v)
        | idb::Error::TransactionOpenFailed(v)
        | idb::Error::IndexedDbOpenFailed(v)
        | idb::Error::GetAllFailed(v)
        | idb::Error::GetAllKeysFailed(v) => v.dyn_ref::<DomException>().cloned(),
        _ => None,
    };
    match dom {
        Some(d) => from_dom_exception(&d),
        None => StorageError::Browser {
            name: "IndexedDB".into(),
            message: e.to_string(),
        },
    }
}

/// Map a `DOMException` from IndexedDB.
pub fn from_dom_exception(d: &DomException) -> StorageError {
    if d.name() == "QuotaExceededError" {
        StorageError::QuotaExceeded { detail: d.message() }
    } else {
        StorageError::Browser {
            name: d.name(),
            message: d.message(),
        }
    }
}

fn store(tx: &idb::Transaction, name: &str) -> Result<ObjectStore, StorageError> {
    tx.object_store(name).map_err(from_idb)
}

#[async_trait::async_trait(?Send)]
impl Storage for IndexedDbStorage {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        check_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.transaction(&[RECORDS, NAMESPACES], TransactionMode::ReadWrite)?;
        let records = store(&tx, RECORDS)?;
        let namespaces = store(&tx, NAMESPACES)?;
        let mut any_put = false;
        for op in &ops {
            // Requests are queued on the transaction in order; their
            // outcome is the transaction's.
            match op {
                WriteOp::Put { key, value } => {
                    any_put = true;
                    records
                        .put(&seal_value(value), Some(&record_key(ns, key)))
                        .map_err(from_idb)?;
                }
                WriteOp::Delete { key } => {
                    records.delete(Query::Key(record_key(ns, key))).map_err(from_idb)?;
                }
            }
        }
        if any_put {
            namespaces.put(&JsValue::TRUE, Some(&bytes(ns))).map_err(from_idb)?;
        } else {
            let left = records
                .count(Some(Query::KeyRange(namespace_range(ns)?)))
                .map_err(from_idb)?
                .await
                .map_err(from_idb)?;
            if left == 0 {
                namespaces.delete(Query::Key(bytes(ns))).map_err(from_idb)?;
            }
        }
        Self::finish(tx).await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let tx = self.transaction(&[RECORDS], TransactionMode::ReadOnly)?;
        let records = store(&tx, RECORDS)?;
        let range = namespace_range(ns)?;
        let keys_req = records
            .get_all_keys(Some(Query::KeyRange(range.clone())), None)
            .map_err(from_idb)?;
        let values_req = records.get_all(Some(Query::KeyRange(range)), None).map_err(from_idb)?;
        let keys = keys_req.await.map_err(from_idb)?;
        let values = values_req.await.map_err(from_idb)?;
        let mut loaded = Loaded::default();
        let location = format!("IndexedDB {}/{}", self.name, hex(ns));
        for (i, (k, v)) in keys.iter().zip(values.iter()).enumerate() {
            let problem = |kind| Problem {
                location: location.clone(),
                offset: i as u64,
                kind,
            };
            let key: Option<RecordKey> = to_vec(k).and_then(|k| k.get(ns.len()..).map(<[u8]>::to_vec));
            let (Some(key), Some(stored)) = (key, to_vec(v)) else {
                loaded.problems.push(problem(ProblemKind::BadFrame));
                continue;
            };
            match open_value(&stored) {
                Some(value) if !key.is_empty() => loaded.records.push((key, value.to_vec())),
                Some(_) => loaded.problems.push(problem(ProblemKind::BadFrame)),
                None => loaded.problems.push(problem(ProblemKind::BadChecksum)),
            }
        }
        Ok(loaded)
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let tx = self.transaction(&[NAMESPACES], TransactionMode::ReadOnly)?;
        let keys = store(&tx, NAMESPACES)?
            .get_all_keys(None, None)
            .map_err(from_idb)?
            .await
            .map_err(from_idb)?;
        let mut out: Vec<Namespace> = keys
            .iter()
            .filter_map(|k| to_vec(k).and_then(|v| Namespace::try_from(v.as_slice()).ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        let tx = self.transaction(&[RECORDS, NAMESPACES], TransactionMode::ReadWrite)?;
        store(&tx, RECORDS)?
            .delete(Query::KeyRange(namespace_range(ns)?))
            .map_err(from_idb)?;
        store(&tx, NAMESPACES)?
            .delete(Query::Key(bytes(ns)))
            .map_err(from_idb)?;
        Self::finish(tx).await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
