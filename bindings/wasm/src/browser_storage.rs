//! A repo's storage in the browser: documents in the IndexedDB database
//! `synkro/<name>`, the device identity in `synkro/<name>/device`, and a
//! Web Lock so that one tab at a time writes to them. Another tab may ask
//! the one holding it to hand it over, on the BroadcastChannel
//! `synkro/<name>`: the holder seals what is pending, closes its database
//! and releases the lock, then the asker opens the repo.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use getrandom::SysRng;
use js_sys::{Array, Function, Object, Promise, Reflect};
use rand_core::UnwrapErr;
use synkro_core::DeviceIdentity;
use synkro_storage::{IndexedDbStorage, Storage, StorageError, WriteOp};
use wasm_bindgen::prelude::*;

use crate::crash::Fenced;
use crate::error::{Code, JsResult, js_error};

const DEVICE_NS: [u8; 32] = [0; 32];
const IDENTITY_KEY: &[u8] = b"identity";

fn storage_error(e: StorageError) -> JsValue {
    js_error(Code::Storage, e.to_string())
}

/// Held while the repo is open; released by [`WriterLock::release`] or when
/// the page goes away.
pub struct WriterLock {
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
async fn lock(name: &str, wait_ms: u32, steal: bool) -> JsResult<Option<WriterLock>> {
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
pub struct HandoffListener {
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

/// What [`open`] returns.
pub struct Opened {
    /// Documents, as the repo uses them: writes refused once this
    /// instance has crashed.
    pub storage: Arc<dyn Storage>,
    /// The same store, to close it when handing over.
    pub docs: Arc<IndexedDbStorage>,
    /// The device key.
    pub identity: DeviceIdentity,
    /// The Web Lock, held while open.
    pub lock: WriterLock,
}

/// Open the repo `name`: its lock, its identity (created on first use) and
/// its document storage.
// The facade takes `Arc<dyn Storage>` on every target; a page has one thread.
#[allow(clippy::arc_with_non_send_sync)]
/// With `take_over`, a tab holding the repo is asked to hand it over;
/// `after_crash` takes the lock this page's crashed instance still holds.
pub async fn open(name: &str, take_over: bool, after_crash: bool) -> JsResult<Opened> {
    if name.is_empty() || name.len() > 200 {
        return Err(js_error(
            Code::InvalidArgument,
            "the repo name must be 1 to 200 characters",
        ));
    }
    let base = format!("synkro/{name}");
    let mut held = lock(&base, 0, after_crash).await?;
    if held.is_none() && take_over {
        ask_to_release(name);
        held = lock(&base, TAKE_OVER_WAIT_MS, false).await?;
    }
    let lock = held.ok_or_else(|| {
        js_error(
            Code::Storage,
            if take_over {
                format!("the repo {name:?} is open in another tab or window, which did not hand it over within {} s", TAKE_OVER_WAIT_MS / 1000)
            } else {
                format!("the repo {name:?} is open in another tab or window; one tab at a time can use it (close the other, open it with {{ takeOver: true }}, or use another name)")
            },
        )
    })?;
    let device = IndexedDbStorage::open(&format!("{base}/device"))
        .await
        .map_err(storage_error)?;
    let loaded = device.load(&DEVICE_NS).await.map_err(storage_error)?;
    let identity = match loaded.records.iter().find(|(k, _)| k == IDENTITY_KEY) {
        Some((_, secret)) => DeviceIdentity::from_secret_bytes(secret).map_err(|e| {
            js_error(
                Code::Storage,
                format!("this browser's device key for {name:?} is damaged ({e}); it is not replaced, to keep access to your documents"),
            )
        })?,
        None if !loaded.problems.is_empty() => {
            return Err(js_error(
                Code::Storage,
                format!("this browser's device key for {name:?} is damaged: {}", loaded.problems[0]),
            ));
        }
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
                .await
                .map_err(storage_error)?;
            identity
        }
    };
    let docs = Arc::new(IndexedDbStorage::open(&base).await.map_err(storage_error)?);
    Ok(Opened {
        storage: Arc::new(Fenced(docs.clone())),
        docs,
        identity,
        lock,
    })
}
