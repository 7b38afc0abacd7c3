//! A repo's home in a browser: documents in the IndexedDB database
//! `synkro/<name>`, the device key in `synkro/<name>/device`, and a Web
//! Lock so that one tab at a time writes to them. Another tab may ask the
//! one holding it to hand it over, on the BroadcastChannel `synkro/<name>`:
//! the holder seals what is pending, closes its database and releases the
//! lock ([`Repo::close`](crate::Repo::close)), then the asker opens it.
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

use futures::channel::oneshot;
use getrandom::SysRng;
use js_sys::{Array, Function, Object, Promise, Reflect};
use rand_core::UnwrapErr;
use synkro_core::DeviceIdentity;
use synkro_storage::{IndexedDbStorage, Loaded, Namespace, Storage, StorageError, WriteOp};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::Error;

const DEVICE_NS: [u8; 32] = [0; 32];
const IDENTITY_KEY: &[u8] = b"identity";

/// How to open a browser home ([`Repo::open_browser`](crate::Repo::open_browser)).
#[derive(Clone, Debug, Default)]
pub struct BrowserOpen {
    /// Ask a tab that has the repo open to hand it over (it seals what is
    /// pending and closes), waiting up to 10 s.
    pub take_over: bool,
    /// Take the lock that this page's crashed instance of the module still
    /// holds (it can never release it).
    pub after_crash: bool,
    /// The repo's settings (memory budget, flush window, ...).
    pub config: crate::RepoConfig,
}

/// Held while the repo is open; released by [`WriterLock::release`] or when
/// the page goes away.
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

/// Take the exclusive Web Lock `name`: at once (`wait_ms` = 0) or within
/// `wait_ms`, or by stealing it from its holder (`steal`: only for this
/// page's own crashed instance, which can never release it). `None` when
/// another tab holds it. Browsers without Web Locks get a lock that guards
/// nothing.
async fn lock(name: &str, wait_ms: u32, steal: bool) -> Result<Option<WriterLock>, JsValue> {
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
    if steal {
        Reflect::set(&options, &"steal".into(), &JsValue::TRUE)?;
    } else if wait_ms == 0 {
        Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE)?;
    } else {
        let abort_signal = Reflect::get(&js_sys::global(), &"AbortSignal".into())?;
        let timeout: Function = Reflect::get(&abort_signal, &"timeout".into())?.dyn_into()?;
        let signal = timeout.call1(&abort_signal, &wait_ms.into())?;
        Reflect::set(&options, &"signal".into(), &signal)?;
    }
    let pending = request.call3(&locks, &name.into(), &options, &callback)?;
    // Timed out (or refused): the request's promise rejects, the callback
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

/// The BroadcastChannel `name`, or `None` where there is none.
fn channel(name: &str) -> Option<JsValue> {
    let ctor: Function = Reflect::get(&js_sys::global(), &"BroadcastChannel".into())
        .ok()?
        .dyn_into()
        .ok()?;
    Reflect::construct(&ctor, &Array::of1(&name.into())).ok()
}

fn call(target: &JsValue, method: &str, args: &[JsValue]) {
    if let Ok(f) = Reflect::get(target, &method.into()).and_then(JsCast::dyn_into::<Function>) {
        let _ = f.apply(target, &args.iter().collect::<Array>());
    }
}

const RELEASE: &str = "synkro:release";

/// Listens, while the repo is open here, for another tab asking for it.
pub(crate) struct HandoffListener {
    channel: Option<JsValue>,
    _on_message: Option<Closure<dyn FnMut(JsValue)>>,
}

impl HandoffListener {
    /// Call `on_request` when another tab asks for the repo `name`.
    pub fn new(name: &str, mut on_request: impl FnMut() + 'static) -> Self {
        let Some(channel) = channel(&format!("synkro/{name}")) else {
            return HandoffListener {
                channel: None,
                _on_message: None,
            };
        };
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let data = Reflect::get(&event, &"data".into()).ok().and_then(|d| d.as_string());
            if data.as_deref() == Some(RELEASE) {
                on_request();
            }
        });
        let _ = Reflect::set(&channel, &"onmessage".into(), on_message.as_ref());
        HandoffListener {
            channel: Some(channel),
            _on_message: Some(on_message),
        }
    }
}

impl Drop for HandoffListener {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            let _ = Reflect::set(channel, &"onmessage".into(), &JsValue::NULL);
            call(channel, "close", &[]);
        }
    }
}

/// Ask the tab holding the repo `name` to hand it over.
fn ask_to_release(name: &str) {
    if let Some(channel) = channel(&format!("synkro/{name}")) {
        call(&channel, "postMessage", &[RELEASE.into()]);
        call(&channel, "close", &[]);
    }
}

/// How long a tab taking over waits for the holder to let go.
const TAKE_OVER_WAIT_MS: u32 = 10_000;

/// An open browser home: the lock, the document store (closed at
/// hand-over) and the listener for other tabs asking for it.
pub(crate) struct BrowserHome {
    lock: WriterLock,
    docs: Arc<IndexedDbStorage>,
    _handoff: HandoffListener,
}

impl BrowserHome {
    /// Close the store and let the next tab in.
    pub fn close(mut self) {
        self.docs.close();
        self.lock.release();
    }
}

/// The storage, identity and home of the repo `name`; `on_request` runs
/// when another tab asks for it.
// The facade takes `Arc<dyn Storage>` on every target; a page has one thread.
#[allow(clippy::arc_with_non_send_sync)]
pub(crate) async fn open(
    name: &str,
    options: &BrowserOpen,
    on_request: impl FnMut() + 'static,
) -> Result<(Arc<dyn Storage>, DeviceIdentity, BrowserHome), Error> {
    if name.is_empty() || name.len() > 200 {
        return Err(Error::InvalidName(format!(
            "the repo name must be 1 to 200 characters, not {}",
            name.len()
        )));
    }
    let base = format!("synkro/{name}");
    let js = |e: JsValue| {
        let message = Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .or_else(|| e.as_string())
            .unwrap_or_else(|| "the Web Lock request failed".into());
        Error::Storage(StorageError::Browser {
            name: "WebLock".into(),
            message,
        })
    };
    let mut held = lock(&base, 0, options.after_crash).await.map_err(js)?;
    if held.is_none() && options.take_over {
        ask_to_release(name);
        held = lock(&base, TAKE_OVER_WAIT_MS, false).await.map_err(js)?;
    }
    let lock = held.ok_or_else(|| Error::OpenElsewhere {
        name: name.to_owned(),
        asked: options.take_over,
    })?;
    let device = IndexedDbStorage::open(&format!("{base}/device")).await?;
    let identity = device_identity(&device, name).await?;
    let docs = Arc::new(IndexedDbStorage::open(&base).await?);
    let home = BrowserHome {
        lock,
        docs: docs.clone(),
        _handoff: HandoffListener::new(name, on_request),
    };
    Ok((Arc::new(Fenced(docs)), identity, home))
}

/// This browser's device key for the repo `name`, created on first use. A
/// damaged key is an error, never silently replaced: it is the only key to
/// the documents.
async fn device_identity(device: &IndexedDbStorage, name: &str) -> Result<DeviceIdentity, Error> {
    let damaged = |reason: String| Error::Identity {
        path: format!("IndexedDB synkro/{name}/device").into(),
        reason: format!("{reason}; it is not replaced, to keep access to your documents"),
    };
    let loaded = device.load(&DEVICE_NS).await?;
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

/// A store that refuses every write once the instance has crashed.
struct Fenced(Arc<IndexedDbStorage>);

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
        self.0.write(ns, ops).await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        self.0.load(ns).await
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        self.0.namespaces().await
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        if crashed() {
            return Err(refused());
        }
        self.0.remove(ns).await
    }
}
