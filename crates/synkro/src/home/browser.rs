//! A repo's home in a browser: documents in the IndexedDB database
//! `synkro/<name>`, the device key in `synkro/<name>/device`, and the Web
//! Lock `synkro/<name>` held by the tab that writes them, the *host*. Every
//! other tab of the origin opens the same repo as a *guest* and waits for
//! the lock; see [`tabs`](super::tabs) for how they work together and what
//! happens when the host goes away.
//!
//! The crash fence of the browser build lives here too: wasm32 aborts on a
//! panic, and nothing in the dead instance's memory can be trusted again,
//! so once [`mark_crashed`] is called its storage refuses every write, and
//! nothing it still runs (a timer, a socket callback) can write over what a
//! fresh instance reads. The npm package marks the instance from its panic
//! hook and reopens the repo in a fresh one (`after_crash`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::oneshot;
use getrandom::SysRng;
use js_sys::{Array, Function, Object, Promise, Reflect};
use rand_core::UnwrapErr;
use synkro_core::DeviceIdentity;
use synkro_storage::{IndexedDbStorage, Loaded, Namespace, Storage, StorageError, WriteOp};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::tabs::{TabRole, Tabs};
use crate::Error;

const DEVICE_NS: [u8; 32] = [0; 32];
const IDENTITY_KEY: &[u8] = b"identity";

/// How to open a browser home ([`Repo::open_browser`](crate::Repo::open_browser)).
#[derive(Clone, Debug, Default)]
pub struct BrowserOpen {
    /// Take the lock that this page's crashed instance of the module still
    /// holds (it can never release it). Only for a page whose crashed
    /// instance was the host: a guest's dies with its lock request.
    pub after_crash: bool,
    /// The repo's settings (memory budget, flush window, ...).
    pub config: crate::RepoConfig,
}

/// Held while this tab is the host; released by [`WriterLock::release`] or
/// when the page goes away.
pub(crate) struct WriterLock {
    release: Option<Function>,
}

impl WriterLock {
    /// Let the next tab in.
    pub fn release(&mut self) {
        if let Some(f) = self.release.take() {
            let _ = f.call0(&JsValue::NULL);
        }
    }
}

/// How to ask for the lock.
pub(crate) enum LockMode {
    /// Now or never.
    IfAvailable,
    /// From this page's crashed instance, which can never release it.
    Steal,
    /// Whenever the holder lets go, unless `signal` aborts the request first.
    Queue(JsValue),
}

/// Take the exclusive Web Lock `name` as `mode` says. `None` when it was
/// not granted. Browsers without Web Locks get a lock that guards nothing.
pub(crate) async fn lock(name: &str, mode: LockMode) -> Result<Option<WriterLock>, JsValue> {
    let locks = Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"locks".into()))
        .ok()
        .filter(|l| !l.is_undefined() && !l.is_null());
    let Some(locks) = locks else {
        return Ok(Some(WriterLock { release: None }));
    };
    let request: Function = Reflect::get(&locks, &"request".into())?.dyn_into()?;
    let (granted_tx, granted_rx) = oneshot::channel::<bool>();
    let granted_tx = Rc::new(RefCell::new(Some(granted_tx)));
    let release: Rc<RefCell<Option<Function>>> = Rc::default();
    let holder = release.clone();
    let on_grant = granted_tx.clone();
    let callback = Closure::once_into_js(move |lock: JsValue| -> Promise {
        let granted = !lock.is_null();
        if let Some(tx) = on_grant.borrow_mut().take() {
            let _ = tx.send(granted);
        }
        if !granted {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        // The lock is held until this promise settles.
        Promise::new(&mut |resolve, _reject| {
            *holder.borrow_mut() = Some(resolve);
        })
    });
    let options = Object::new();
    match mode {
        LockMode::IfAvailable => Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE)?,
        LockMode::Steal => Reflect::set(&options, &"steal".into(), &JsValue::TRUE)?,
        LockMode::Queue(signal) => Reflect::set(&options, &"signal".into(), &signal)?,
    };
    let pending = request.call3(&locks, &name.into(), &options, &callback)?;
    // Aborted (or refused): the request's promise rejects, the callback
    // never runs.
    let on_reject = Closure::once_into_js(move |_: JsValue| {
        if let Some(tx) = granted_tx.borrow_mut().take() {
            let _ = tx.send(false);
        }
    });
    call(&pending, "catch", &[on_reject]);
    let granted = granted_rx.await.unwrap_or(false);
    Ok(granted.then(|| WriterLock {
        release: release.borrow_mut().take(),
    }))
}

pub(crate) fn call(target: &JsValue, method: &str, args: &[JsValue]) {
    if let Ok(f) = Reflect::get(target, &method.into()).and_then(JsCast::dyn_into::<Function>) {
        let _ = f.apply(target, &args.iter().collect::<Array>());
    }
}

/// An open browser home: the document store and the link to the other
/// tabs (which holds the lock while this tab is the host).
pub(crate) struct BrowserHome {
    docs: Arc<IndexedDbStorage>,
    pub(crate) tabs: Rc<Tabs>,
}

impl BrowserHome {
    /// Close the store, leave the other tabs, and let the next tab in.
    pub fn close(self) {
        self.docs.close();
        self.tabs.leave();
    }
}

/// The storage, identity and home of this tab in the repo `name`.
// The facade takes `Arc<dyn Storage>` on every target; a page has one thread.
#[allow(clippy::arc_with_non_send_sync)]
pub(crate) async fn open(
    name: &str,
    options: &BrowserOpen,
) -> Result<(Arc<dyn Storage>, DeviceIdentity, BrowserHome), Error> {
    if name.is_empty() || name.len() > 200 {
        return Err(Error::InvalidName(format!(
            "the repo name must be 1 to 200 characters, not {}",
            name.len()
        )));
    }
    let base = format!("synkro/{name}");
    let mode = if options.after_crash {
        LockMode::Steal
    } else {
        LockMode::IfAvailable
    };
    let held = lock(&base, mode).await.map_err(|e| {
        Error::Storage(StorageError::Browser {
            name: "WebLock".into(),
            message: js_message(&e, "the Web Lock request failed"),
        })
    })?;
    let role = if held.is_some() { TabRole::Host } else { TabRole::Guest };
    // Listening before anything is read: no write of the host falls
    // between what this tab reads and what it hears.
    let tabs = Tabs::join(name, held);
    let device = IndexedDbStorage::open(&format!("{base}/device")).await?;
    let identity = device_identity(&device, name, role).await?;
    let docs = Arc::new(IndexedDbStorage::open(&base).await?);
    *tabs.store.borrow_mut() = Some(docs.clone());
    let home = BrowserHome {
        docs: docs.clone(),
        tabs: tabs.clone(),
    };
    Ok((Arc::new(Fenced { docs, tabs }), identity, home))
}

/// A JS error's message.
pub(crate) fn js_message(e: &JsValue, otherwise: &str) -> String {
    Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| otherwise.into())
}

/// This browser's device key for the repo `name`, created on first use. A
/// damaged key is an error, never silently replaced: it is the only key to
/// the documents.
async fn device_identity(device: &IndexedDbStorage, name: &str, role: TabRole) -> Result<DeviceIdentity, Error> {
    let damaged = |reason: String| Error::Identity {
        path: format!("IndexedDB synkro/{name}/device").into(),
        reason: format!("{reason}; it is not replaced, to keep access to your documents"),
    };
    let mut loaded = device.load(&DEVICE_NS).await?;
    // Only the host creates the key: a guest opened at the same time as
    // the first host waits for it (up to 10 s).
    let mut waited = Duration::ZERO;
    while role == TabRole::Guest && loaded.records.is_empty() && loaded.problems.is_empty() {
        if waited >= Duration::from_secs(10) {
            return Err(damaged(
                "the tab holding the repo has not created the device key".into(),
            ));
        }
        crate::rt::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
        loaded = device.load(&DEVICE_NS).await?;
    }
    match loaded.records.iter().find(|(k, _)| k == IDENTITY_KEY) {
        Some((_, secret)) => DeviceIdentity::from_secret_bytes(secret).map_err(|e| damaged(e.to_string())),
        None if !loaded.problems.is_empty() => Err(damaged(loaded.problems[0].to_string())),
        None => {
            let identity = DeviceIdentity::generate(&mut UnwrapErr(SysRng));
            device
                .write(
                    &DEVICE_NS,
                    vec![WriteOp::Put {
                        key: IDENTITY_KEY.to_vec(),
                        value: identity.to_secret_bytes().to_vec(),
                    }],
                )
                .await?;
            Ok(identity)
        }
    }
}

static CRASHED: AtomicBool = AtomicBool::new(false);

/// Mark this instance dead (it panicked, or trapped): from now on every
/// browser home of it refuses to write. Touches nothing but one flag, so it
/// is safe to call into an instance that trapped.
pub fn mark_crashed() {
    CRASHED.store(true, Ordering::SeqCst);
}

/// Has this instance been marked dead?
pub fn crashed() -> bool {
    CRASHED.load(Ordering::SeqCst)
}

/// The repo's store as this tab may use it: every write refused once the
/// instance has crashed, and on a guest; a host's writes announced to the
/// other tabs once durable.
struct Fenced {
    docs: Arc<IndexedDbStorage>,
    tabs: Rc<Tabs>,
}

fn refused() -> StorageError {
    StorageError::Browser {
        name: "crashed".into(),
        message: "this instance of synkro crashed and a fresh one took over; it writes nothing more".into(),
    }
}

#[async_trait::async_trait(?Send)]
impl Storage for Fenced {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        if crashed() {
            return Err(refused());
        }
        if self.tabs.role() == TabRole::Guest {
            return Err(StorageError::Browser {
                name: "guest".into(),
                message: "another tab holds this repo and writes it".into(),
            });
        }
        // Copied into JS now, told once durable.
        let announcement = self.tabs.stored_message(ns, &ops);
        self.docs.write(ns, ops).await?;
        if let Some(message) = announcement {
            self.tabs.announce(&message);
        }
        Ok(())
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        self.docs.load(ns).await
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        self.docs.namespaces().await
    }

    async fn gather(&self, key: &[u8]) -> Result<Vec<synkro_storage::Gathered>, StorageError> {
        self.docs.gather(key).await
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        if crashed() || self.tabs.role() == TabRole::Guest {
            return Err(refused());
        }
        self.docs.remove(ns).await
    }
}
