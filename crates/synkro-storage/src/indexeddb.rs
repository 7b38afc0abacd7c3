//! [`IndexedDbStorage`]: the browser backend (wasm32 only).
//!
//! One database per repo (version 1) with two object stores:
//! - `records`: key = namespace (32 bytes) ‖ record key, as a binary key;
//!   value = a `Uint8Array` holding the CRC32C of the record (4 bytes,
//!   little endian) ‖ the record.
//! - `namespaces`: key = namespace, value `true`; it lists the namespaces
//!   holding at least one record, so [`Storage::namespaces`] reads no
//!   records.
//!
//! Each [`Storage::write`] is one readwrite transaction holding all its ops
//! and the namespace-index update. It asks for `strict` durability
//! (Chromium defaults to `relaxed` since version 121, which fires `complete`
//! before the data reaches the disk) and returns only on the transaction's
//! `complete` event. If anything fails, the transaction is aborted, so
//! nothing of the write is stored. A full quota is
//! [`StorageError::QuotaExceeded`], whether a request reports it or it is
//! the reason the transaction aborted.
//!
//! Opening a repo reads one record of each namespace (its index entry,
//! [`Storage::gather`]), not the rest.
//!
//! Every value is checked on load: damage is reported in
//! [`Loaded::problems`] and the other records still load. Nothing read from
//! the database can make the backend panic (a panic would kill the whole
//! wasm instance).
//!
//! When another connection asks to upgrade or delete the database (a newer
//! version of the app in another tab, or site data being cleared), or the
//! browser closes the connection, this connection closes at once instead of
//! blocking it, and later calls fail with
//! [`StorageError::ClosedByOtherConnection`].
//!
//! Built on `web-sys` directly: `rexie` hides the connection (so no
//! `versionchange`), neither it nor `idb` under it can ask for durability or
//! report why a transaction aborted (the quota), and both pull in tokio.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DomException, Event, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use crate::{
    Gathered, Loaded, MAX_KEY_LEN, Namespace, Problem, ProblemKind, RecordKey, Storage, StorageError, WriteOp,
    check_ops,
};

const RECORDS: &str = "records";
const NAMESPACES: &str = "namespaces";
const VERSION: u32 = 1;
const CRC_LEN: usize = 4;

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, for the `transaction(stores, mode, options)` form
    /// that web-sys binds only behind `--cfg web_sys_unstable_apis`.
    type DatabaseWithOptions;

    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        stores: &Array,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// Sealed records in the browser's IndexedDB; see the module docs for the
/// layout and the guarantees.
///
/// Dropping it closes the connection (once its running transactions end),
/// so another tab can upgrade or delete the database without waiting.
///
/// ```no_run
/// # async fn demo() -> Result<(), synkro_storage::StorageError> {
/// use synkro_storage::{IndexedDbStorage, Storage, WriteOp};
///
/// let store = IndexedDbStorage::open("synkro/my-repo").await?;
/// let ns = [7u8; 32];
/// store
///     .write(&ns, vec![WriteOp::Put { key: b"k".to_vec(), value: b"v".to_vec() }])
///     .await?;
/// let loaded = store.load(&ns).await?;
/// assert_eq!(loaded.records, vec![(b"k".to_vec(), b"v".to_vec())]);
/// # Ok(())
/// # }
/// ```
pub struct IndexedDbStorage {
    name: String,
    db: IdbDatabase,
    /// Set once the connection has been closed under us.
    closed: Rc<Cell<bool>>,
    /// The connection's `versionchange` and `close` handler: sets `closed`
    /// and closes the connection. Unhooked in `drop` before it is freed.
    _on_close: Closure<dyn FnMut(Event)>,
}

impl std::fmt::Debug for IndexedDbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedDbStorage")
            .field("name", &self.name)
            .field("closed", &self.closed.get())
            .finish_non_exhaustive()
    }
}

/// Unsets `onupgradeneeded` before its closure is freed, also when the
/// open is cancelled half way.
struct UpgradeHandler {
    request: IdbOpenDbRequest,
    _closure: Closure<dyn FnMut(Event)>,
}

impl Drop for UpgradeHandler {
    fn drop(&mut self) {
        self.request.set_onupgradeneeded(None);
    }
}

impl IndexedDbStorage {
    /// Open (or create) the database `name`; use one database per repo.
    ///
    /// Fails with [`StorageError::Browser`] where IndexedDB is missing or
    /// disabled, or when the database was created by a newer version of
    /// this library (`VersionError`).
    pub async fn open(name: &str) -> Result<Self, StorageError> {
        let request = factory()?
            .open_with_u32(name, VERSION)
            .map_err(|e| from_js("opening the database", e))?;
        let closure = Closure::<dyn FnMut(Event)>::new({
            let request = request.clone();
            move |_: Event| create_stores(&request)
        });
        request.set_onupgradeneeded(Some(closure.as_ref().unchecked_ref()));
        let upgrade = UpgradeHandler {
            request: request.clone(),
            _closure: closure,
        };
        let opened = settle(&request).await;
        drop(upgrade);
        let db: IdbDatabase = opened?.dyn_into().map_err(|_| StorageError::Browser {
            name: "opening the database".into(),
            message: "the open request did not return a database".into(),
        })?;

        let closed = Rc::new(Cell::new(false));
        let on_close = Closure::<dyn FnMut(Event)>::new({
            let (db, closed) = (db.clone(), closed.clone());
            move |_: Event| {
                closed.set(true);
                db.close();
            }
        });
        db.set_onversionchange(Some(on_close.as_ref().unchecked_ref()));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self {
            name: name.to_owned(),
            db,
            closed,
            _on_close: on_close,
        })
    }

    /// Delete the database `name` and everything in it. Open
    /// [`IndexedDbStorage`]s of it, in this tab or others, close themselves
    /// to let the deletion through.
    pub async fn delete(name: &str) -> Result<(), StorageError> {
        let request = factory()?
            .delete_database(name)
            .map_err(|e| from_js("deleting the database", e))?;
        settle(&request).await.map(drop)
    }

    /// Close the connection now: every later call returns
    /// [`StorageError::ClosedByOtherConnection`]. Writes already started
    /// still complete, and the browser orders them before any transaction
    /// another connection starts afterwards, so a tab that takes over reads
    /// all of them.
    pub fn close(&self) {
        self.closed.set(true);
        self.db.close();
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A transaction on `stores`; readwrite ones ask for `strict` durability.
    /// Damage found in record `key` (`None`: unreadable) of `ns`.
    fn problem(&self, ns: &Namespace, key: Option<&[u8]>, kind: ProblemKind) -> Problem {
        Problem {
            location: format!(
                "IndexedDB {:?} namespace {} record {}",
                self.name,
                hex(ns),
                key.map_or_else(|| "?".into(), hex)
            ),
            offset: 0,
            kind,
        }
    }

    /// Wait until every write begun before this call has finished, by this
    /// connection or any other: another tab's, even one whose page has gone
    /// (its last transaction may commit after the page is gone). A
    /// readwrite transaction over the same stores starts only after them,
    /// so this runs one that reads a count and writes nothing. What is read
    /// after it includes all of them.
    pub async fn settled(&self) -> Result<(), StorageError> {
        let tx = self.transaction(&[RECORDS, NAMESPACES], IdbTransactionMode::Readwrite)?;
        let outcome = outcome(&tx);
        let queued = store(&tx, RECORDS).and_then(|s| {
            s.count()
                .map(drop)
                .map_err(|e| from_js("waiting for earlier writes", e))
        });
        finish(&tx, outcome, queued).await
    }

    fn transaction(&self, stores: &[&str], mode: IdbTransactionMode) -> Result<IdbTransaction, StorageError> {
        if self.closed.get() {
            return Err(StorageError::ClosedByOtherConnection);
        }
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let tx = if mode == IdbTransactionMode::Readwrite {
            let options = Object::new();
            // Setting a property on a fresh plain object cannot fail.
            let _ = Reflect::set(&options, &"durability".into(), &"strict".into());
            self.db
                .unchecked_ref::<DatabaseWithOptions>()
                .transaction_with_options(&names, "readwrite", &options)
        } else {
            self.db.transaction_with_str_sequence_and_mode(&names, mode)
        };
        tx.map_err(|e| {
            if self.closed.get() {
                StorageError::ClosedByOtherConnection
            } else {
                from_js("starting a transaction", e)
            }
        })
    }
}

impl Drop for IndexedDbStorage {
    fn drop(&mut self) {
        // The handler's closure is freed with `self`: unhook it first.
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
    }
}

/// The `upgradeneeded` handler: create the stores of version 1. A failure
/// aborts the upgrade, so the open fails instead of returning a database
/// without its stores.
fn create_stores(request: &IdbOpenDbRequest) {
    let Ok(db) = request.result().and_then(JsCast::dyn_into::<IdbDatabase>) else {
        return;
    };
    let existing = db.object_store_names();
    for store in [RECORDS, NAMESPACES] {
        if !existing.contains(store) && db.create_object_store(store).is_err() {
            if let Some(tx) = request.transaction() {
                let _ = tx.abort();
            }
            return;
        }
    }
}

/// The `indexedDB` of this window or worker.
fn factory() -> Result<IdbFactory, StorageError> {
    Reflect::get(&js_sys::global(), &"indexedDB".into())
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or_else(|| StorageError::Browser {
            name: "IndexedDB".into(),
            message: "this browser context has no IndexedDB (some private modes disable it); \
                      use a normal window or another storage backend"
                .into(),
        })
}

/// Waits for `request` to succeed (giving its result) or fail (its error).
///
/// The handlers are attached now, not when the future is first polled, so
/// several requests can be queued and then awaited in turn. They are the
/// promise's own resolve/reject functions: no Rust closure to keep alive.
fn settle(request: &IdbRequest) -> impl Future<Output = Result<JsValue, StorageError>> + use<> {
    let settled = JsFuture::from(Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    }));
    let request = request.clone();
    async move {
        match settled.await {
            Ok(_) => request.result().map_err(|e| from_js("reading a request's result", e)),
            Err(_) => Err(match request.error() {
                Ok(Some(e)) => from_dom_exception(&e),
                _ => StorageError::Browser {
                    name: "UnknownError".into(),
                    message: "an IndexedDB request failed without saying why".into(),
                },
            }),
        }
    }
}

/// Settles on `tx`'s `complete` (Ok) or `abort` (Err) event. Create it as
/// soon as the transaction exists, so that no event is missed.
fn outcome(tx: &IdbTransaction) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    }))
}

/// Ends a readwrite transaction: commits what was queued, or, when
/// queueing failed, aborts it so that none of it is stored.
///
/// When the transaction aborted, its own error comes first: it is the
/// failed request that caused the abort (a full quota, say), while later
/// failures only echo it.
async fn finish(tx: &IdbTransaction, outcome: JsFuture, queued: Result<(), StorageError>) -> Result<(), StorageError> {
    if let Err(e) = queued {
        // Fails harmlessly when a failed request already aborted it.
        let _ = tx.abort();
        let _ = outcome.await;
        return Err(tx.error().map_or(e, |d| from_dom_exception(&d)));
    }
    match outcome.await {
        Ok(_) => Ok(()),
        Err(_) => Err(match tx.error() {
            Some(d) => from_dom_exception(&d),
            None => StorageError::Browser {
                name: "AbortError".into(),
                message: "the transaction was aborted; nothing of it was stored".into(),
            },
        }),
    }
}

/// Map a `DOMException` from IndexedDB: `QuotaExceededError` becomes
/// [`StorageError::QuotaExceeded`], anything else
/// [`StorageError::Browser`] with its name and message.
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

/// Map a value thrown by a browser call made while `doing` something.
fn from_js(doing: &str, e: JsValue) -> StorageError {
    match e.dyn_into::<DomException>() {
        Ok(d) => from_dom_exception(&d),
        Err(other) => StorageError::Browser {
            name: doing.to_owned(),
            message: match other.dyn_ref::<js_sys::Error>() {
                Some(error) => error.message().into(),
                None => other.as_string().unwrap_or_else(|| format!("{other:?}")),
            },
        },
    }
}

fn store(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore, StorageError> {
    tx.object_store(name).map_err(|e| from_js("opening an object store", e))
}

fn bytes(b: &[u8]) -> JsValue {
    // A copy in JS memory, not a view into the wasm heap.
    Uint8Array::from(b).into()
}

fn record_key(ns: &Namespace, key: &[u8]) -> JsValue {
    let mut k = Vec::with_capacity(ns.len() + key.len());
    k.extend_from_slice(ns);
    k.extend_from_slice(key);
    bytes(&k)
}

/// Every record key of namespace `ns`: keys are at most [`MAX_KEY_LEN`]
/// bytes, so `ns ‖ 0xFF…` one byte longer is above all of them.
fn namespace_range(ns: &Namespace) -> Result<IdbKeyRange, StorageError> {
    let mut upper = ns.to_vec();
    upper.extend(std::iter::repeat_n(0xFF, MAX_KEY_LEN + 1));
    IdbKeyRange::bound(&bytes(ns), &bytes(&upper)).map_err(|e| from_js("building a key range", e))
}

/// Bytes of a binary key (read back as an `ArrayBuffer`) or of a stored
/// `Uint8Array`; `None` for anything else.
fn to_vec(v: &JsValue) -> Option<Vec<u8>> {
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Some(a.to_vec());
    }
    v.dyn_ref::<ArrayBuffer>().map(|b| Uint8Array::new(b).to_vec())
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

fn as_array(v: JsValue, what: &str) -> Result<Array, StorageError> {
    v.dyn_into().map_err(|_| StorageError::Browser {
        name: what.to_owned(),
        message: "IndexedDB returned something other than an array".into(),
    })
}

/// Queue `ops` and the matching namespace-index update on `tx`. Requests
/// run in the order queued; their outcome is the transaction's.
async fn queue_write(tx: &IdbTransaction, ns: &Namespace, ops: &[WriteOp]) -> Result<(), StorageError> {
    let records = store(tx, RECORDS)?;
    let mut ends_on_put: HashMap<&[u8], bool> = HashMap::new();
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                records
                    .put_with_key(&seal_value(value), &record_key(ns, key))
                    .map_err(|e| from_js("storing a record", e))?;
                ends_on_put.insert(key, true);
            }
            WriteOp::Delete { key } => {
                records
                    .delete(&record_key(ns, key))
                    .map_err(|e| from_js("deleting a record", e))?;
                ends_on_put.insert(key, false);
            }
        }
    }
    // A key whose last op is a put keeps the namespace alive; otherwise
    // count what the deletes left (the count runs after them).
    let holds_records = if ends_on_put.values().any(|&put| put) {
        true
    } else {
        let request = records
            .count_with_key(&namespace_range(ns)?.into())
            .map_err(|e| from_js("counting records", e))?;
        settle(&request).await?.as_f64().is_none_or(|n| n > 0.0)
    };
    let namespaces = store(tx, NAMESPACES)?;
    if holds_records {
        namespaces.put_with_key(&JsValue::TRUE, &bytes(ns))
    } else {
        namespaces.delete(&bytes(ns))
    }
    .map_err(|e| from_js("updating the namespace index", e))?;
    Ok(())
}

#[async_trait::async_trait(?Send)]
impl Storage for IndexedDbStorage {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        check_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.transaction(&[RECORDS, NAMESPACES], IdbTransactionMode::Readwrite)?;
        let outcome = outcome(&tx);
        let queued = queue_write(&tx, ns, &ops).await;
        finish(&tx, outcome, queued).await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let tx = self.transaction(&[RECORDS], IdbTransactionMode::Readonly)?;
        let records = store(&tx, RECORDS)?;
        let range = namespace_range(ns)?;
        // Both in one transaction: they see the same records, in key order.
        let keys = settle(
            &records
                .get_all_keys_with_key(&range)
                .map_err(|e| from_js("reading record keys", e))?,
        );
        let values = settle(
            &records
                .get_all_with_key(&range)
                .map_err(|e| from_js("reading records", e))?,
        );
        let keys = as_array(keys.await?, "reading record keys")?;
        let values = as_array(values.await?, "reading records")?;

        let mut loaded = Loaded::default();
        for (i, raw_key) in (0u32..).zip(keys.iter()) {
            let raw_key = to_vec(&raw_key);
            let record = raw_key.as_deref().and_then(|k| k.get(ns.len()..));
            let problem = |kind| self.problem(ns, record, kind);
            let key: Option<RecordKey> = raw_key
                .as_deref()
                .and_then(|k| k.strip_prefix(ns.as_slice()))
                .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()))
                .map(<[u8]>::to_vec);
            // `get` past the end gives `undefined`, reported below.
            let (Some(key), Some(stored)) = (key, to_vec(&values.get(i))) else {
                loaded.problems.push(problem(ProblemKind::BadFrame));
                continue;
            };
            match open_value(&stored) {
                Some(value) => loaded.records.push((key, value.to_vec())),
                None => loaded.problems.push(problem(ProblemKind::BadChecksum)),
            }
        }
        Ok(loaded)
    }

    /// One `get` of `key` per namespace, all in one transaction: the
    /// other records are not read. A damaged value is reported (and is
    /// `None`, so the caller reads that namespace whole); damage elsewhere
    /// in a namespace shows when it is loaded.
    async fn gather(&self, key: &[u8]) -> Result<Vec<Gathered>, StorageError> {
        let namespaces = self.namespaces().await?;
        let tx = self.transaction(&[RECORDS], IdbTransactionMode::Readonly)?;
        let records = store(&tx, RECORDS)?;
        // Every request queued before the first wait keeps the transaction
        // alive until the last one settles.
        let mut pending = Vec::with_capacity(namespaces.len());
        for ns in namespaces {
            let request = records
                .get(&record_key(&ns, key))
                .map_err(|e| from_js("reading an index entry", e))?;
            pending.push((ns, settle(&request)));
        }
        let mut out = Vec::with_capacity(pending.len());
        for (ns, request) in pending {
            let found = request.await?;
            let mut gathered = Gathered {
                ns,
                value: None,
                problems: Vec::new(),
            };
            if !found.is_undefined() {
                match to_vec(&found).as_deref().and_then(open_value) {
                    Some(value) => gathered.value = Some(value.to_vec()),
                    None => gathered
                        .problems
                        .push(self.problem(&ns, Some(key), ProblemKind::BadChecksum)),
                }
            }
            out.push(gathered);
        }
        Ok(out)
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let tx = self.transaction(&[NAMESPACES], IdbTransactionMode::Readonly)?;
        let request = store(&tx, NAMESPACES)?
            .get_all_keys()
            .map_err(|e| from_js("listing namespaces", e))?;
        let keys = as_array(settle(&request).await?, "listing namespaces")?;
        let mut out: Vec<Namespace> = keys
            .iter()
            .filter_map(|k| to_vec(&k).and_then(|v| Namespace::try_from(v.as_slice()).ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        let tx = self.transaction(&[RECORDS, NAMESPACES], IdbTransactionMode::Readwrite)?;
        let outcome = outcome(&tx);
        let queued = (|| {
            store(&tx, RECORDS)?
                .delete(&namespace_range(ns)?.into())
                .map_err(|e| from_js("deleting records", e))?;
            store(&tx, NAMESPACES)?
                .delete(&bytes(ns))
                .map_err(|e| from_js("updating the namespace index", e))?;
            Ok(())
        })();
        finish(&tx, outcome, queued).await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
