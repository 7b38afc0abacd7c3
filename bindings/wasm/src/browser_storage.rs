//! A repo's storage in the browser: documents in the IndexedDB database
//! `synkro/<name>`, the device identity in `synkro/<name>/device`, and a
//! Web Lock so that one tab at a time writes to them.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use getrandom::SysRng;
use js_sys::{Function, Object, Promise, Reflect};
use rand_core::UnwrapErr;
use synkro_core::DeviceIdentity;
use synkro_storage::{IndexedDbStorage, Storage, StorageError, WriteOp};
use wasm_bindgen::prelude::*;

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

/// Take the exclusive Web Lock `name` without waiting. `None` when another
/// tab holds it. Browsers without Web Locks get a lock that guards nothing.
async fn try_lock(name: &str) -> JsResult<Option<WriterLock>> {
    let locks = Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"locks".into()))
        .ok()
        .filter(|l| !l.is_undefined() && !l.is_null());
    let Some(locks) = locks else {
        return Ok(Some(WriterLock { release: None }));
    };
    let request: Function = Reflect::get(&locks, &"request".into())?.dyn_into()?;
    let (granted_tx, granted_rx) = oneshot::channel::<bool>();
    let release: Rc<RefCell<Option<Function>>> = Rc::default();
    let holder = release.clone();
    let callback = Closure::once_into_js(move |lock: JsValue| -> Promise {
        if lock.is_null() {
            let _ = granted_tx.send(false);
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let _ = granted_tx.send(true);
        // The lock is held until this promise settles.
        Promise::new(&mut |resolve, _reject| {
            *holder.borrow_mut() = Some(resolve);
        })
    });
    let options = Object::new();
    Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE)?;
    request.call3(&locks, &name.into(), &options, &callback)?;
    let granted = granted_rx.await.unwrap_or(false);
    Ok(granted.then(|| WriterLock {
        release: release.borrow_mut().take(),
    }))
}

/// Open the repo `name`: its lock, its identity (created on first use) and
/// its document storage.
// The facade takes `Arc<dyn Storage>` on every target; a page has one thread.
#[allow(clippy::arc_with_non_send_sync)]
pub async fn open(name: &str) -> JsResult<(Arc<dyn Storage>, DeviceIdentity, WriterLock)> {
    if name.is_empty() || name.len() > 200 {
        return Err(js_error(
            Code::InvalidArgument,
            "the repo name must be 1 to 200 characters",
        ));
    }
    let base = format!("synkro/{name}");
    let lock = try_lock(&base).await?.ok_or_else(|| {
        js_error(
            Code::Storage,
            format!("the repo {name:?} is open in another tab or window; one tab at a time can use it (close the other, or open it with another name)"),
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
    let docs = IndexedDbStorage::open(&base).await.map_err(storage_error)?;
    Ok((Arc::new(docs), identity, lock))
}
