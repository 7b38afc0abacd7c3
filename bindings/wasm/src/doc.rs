//! `DocHandle`: one document, read as plain JS values and changed by path.

use std::cell::RefCell;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable};
use js_sys::{Array, Function, Uint8Array, WeakMap};
use wasm_bindgen::prelude::*;

use crate::error::{JsResult, from_synkro, invalid};
use crate::snapshot::Cx;
use crate::value::{from_js, index, safe_integer, to_js};
use crate::{ops, patch, repo::parse_member};

/// One document of a repo.
#[wasm_bindgen]
pub struct DocHandle {
    pub(crate) inner: synkro::DocHandle,
    /// The changes not yet taken by `takePatches` (from the first
    /// `materialize` on).
    changes: RefCell<Option<synkro::DocChanges>>,
}

impl DocHandle {
    pub(crate) fn new(inner: synkro::DocHandle) -> Self {
        Self {
            inner,
            changes: RefCell::new(None),
        }
    }
}

/// Run `task` until the returned function is called.
pub(crate) fn until_unsubscribed(task: impl std::future::Future<Output = ()> + 'static) -> Function {
    let (abort, registration) = AbortHandle::new_pair();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = Abortable::new(task, registration).await;
    });
    Closure::once_into_js(move || abort.abort()).unchecked_into()
}

fn call(cb: &Function, arg: &JsValue) {
    if let Err(e) = cb.call1(&JsValue::NULL, arg) {
        // A throwing listener must not stop the others or the repo.
        web_sys_console_error(&e);
    }
}

fn web_sys_console_error(e: &JsValue) {
    let console = js_sys::Reflect::get(&js_sys::global(), &"console".into()).ok();
    if let Some(error) = console.and_then(|c| js_sys::Reflect::get(&c, &"error".into()).ok())
        && let Ok(f) = error.dyn_into::<Function>()
    {
        let _ = f.call2(&JsValue::NULL, &"synkro: a listener threw".into(), e);
    }
}

#[wasm_bindgen]
impl DocHandle {
    /// Panic inside a change of this document, as a bug in a dependency
    /// would: at once, or in a task of the repo (`inTask`). For the tests
    /// of the panic fence; the instance is lost and the wrapper reloads.
    #[wasm_bindgen(js_name = "__panicForTests")]
    pub fn panic_for_tests(&self, message: String, #[wasm_bindgen(js_name = "inTask")] in_task: bool) {
        let inner = self.inner.clone();
        let crash = move || {
            let _ = inner.change(|_| -> Result<(), synkro::automerge::AutomergeError> { panic!("{message}") });
        };
        if in_task {
            wasm_bindgen_futures::spawn_local(async move { crash() });
        } else {
            crash();
        }
    }

    /// The document id (share it with the invitation, or `repo.find(id)`).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The whole document as a plain JS object (a snapshot; it does not
    /// change when the document does: read it again after `change` events).
    #[wasm_bindgen(unchecked_return_type = "Json")]
    pub fn value(&self) -> JsResult<JsValue> {
        Ok(to_js(&self.inner.to_json().map_err(from_synkro)?))
    }

    /// The value at a slash path like `"todos/0/title"` (`undefined` if absent).
    #[wasm_bindgen(unchecked_return_type = "Json | undefined")]
    pub fn get(&self, path: &str) -> JsResult<JsValue> {
        Ok(match self.inner.get(path).map_err(from_synkro)? {
            Some(v) => to_js(&v),
            None => JsValue::UNDEFINED,
        })
    }

    /// Set a path to a JSON-compatible value, creating maps on the way.
    pub fn set(&self, path: &str, #[wasm_bindgen(unchecked_param_type = "Json")] value: JsValue) -> JsResult<()> {
        let value = from_js(value, "value")?;
        self.inner.set(path, &value).map_err(from_synkro)
    }

    /// Remove what a path names.
    pub fn delete(&self, path: &str) -> JsResult<()> {
        self.inner.delete(path).map_err(from_synkro)
    }

    /// Insert into the list at `path` before `index` (`index` = length appends).
    pub fn insert(
        &self,
        path: &str,
        #[wasm_bindgen(js_name = "index")] index_: f64,
        #[wasm_bindgen(unchecked_param_type = "Json")] value: JsValue,
    ) -> JsResult<()> {
        let value = from_js(value, "value")?;
        self.inner
            .insert(path, index(index_, "index")?, &value)
            .map_err(from_synkro)
    }

    /// Make `path` a collaborative text holding `text`.
    #[wasm_bindgen(js_name = "setText")]
    pub fn set_text(&self, path: &str, text: &str) -> JsResult<()> {
        self.inner.set_text(path, text).map_err(from_synkro)
    }

    /// In the text at `path`, delete `deleteCount` characters at `index`
    /// and insert `text`. Indexes count Unicode code points.
    pub fn splice(
        &self,
        path: &str,
        #[wasm_bindgen(js_name = "index")] index_: f64,
        #[wasm_bindgen(js_name = "deleteCount")] delete_count: f64,
        text: &str,
    ) -> JsResult<()> {
        self.inner
            .splice_text(path, index(index_, "index")?, index(delete_count, "deleteCount")?, text)
            .map_err(from_synkro)
    }

    /// Add `by` (an integer) to the counter at `path`, created at 0.
    pub fn increment(&self, path: &str, by: f64) -> JsResult<()> {
        let by = safe_integer(by).ok_or_else(|| invalid(format!("increment must be a safe integer, got {by}")))?;
        self.inner.increment(path, by).map_err(from_synkro)
    }

    /// The whole document as frozen JS values (see `snapshot.rs`); from
    /// now on `takePatches` returns every change after this one.
    #[wasm_bindgen(js_name = "materialize")]
    pub fn materialize(&self, ids: WeakMap, counter: Function) -> JsResult<JsValue> {
        *self.changes.borrow_mut() = Some(self.inner.subscribe());
        let cx = Cx::new(ids, counter);
        self.inner.read(|d| cx.root(d, None)).map_err(from_synkro)
    }

    /// The patches of every change since `materialize` or the last call,
    /// in order; `null` if some were skipped (materialize again).
    #[wasm_bindgen(js_name = "takePatches")]
    pub fn take_patches(&self, ids: WeakMap, counter: Function) -> JsValue {
        let mut changes = self.changes.borrow_mut();
        let Some(rx) = changes.as_mut() else {
            return JsValue::NULL;
        };
        let cx = Cx::new(ids, counter);
        let out = Array::new();
        loop {
            match rx.try_recv() {
                Ok(Some(patches)) => {
                    for p in &patches {
                        out.push(&cx.patch(p));
                    }
                }
                Ok(None) => return out.into(),
                Err(synkro::Lagged) => return JsValue::NULL,
            }
        }
    }

    /// Call `listener()` (no arguments) after each change, local or remote,
    /// until the returned function is called: a cue to `takePatches`.
    pub fn watch(&self, listener: Function) -> Function {
        let mut changes = self.inner.subscribe();
        until_unsubscribed(async move {
            while changes.recv().await.is_some() {
                call(&listener, &JsValue::UNDEFINED);
            }
        })
    }

    /// Apply a draft's operations (`ops.rs`) as one change, with `message`
    /// in its history. Nothing is applied if one fails.
    #[wasm_bindgen(js_name = "applyOps")]
    pub fn apply_ops(&self, ops: Array, message: Option<String>) -> JsResult<()> {
        let mut failure = None;
        let r = self.inner.change_with(message.as_deref(), |d| {
            ops::apply(d, &ops).map_err(|e| {
                failure = Some(e);
                synkro::automerge::AutomergeError::Fail
            })
        });
        if let Some(e) = failure {
            return Err(invalid(e));
        }
        r.map_err(from_synkro)
    }

    /// The document's heads: hex hashes of its latest changes.
    pub fn heads(&self) -> JsResult<Vec<String>> {
        Ok(self
            .inner
            .heads()
            .map_err(from_synkro)?
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// The document as it was at `heads` (frozen JS values).
    pub fn view(&self, heads: Vec<String>, ids: WeakMap, counter: Function) -> JsResult<JsValue> {
        let heads = parse_heads(&heads)?;
        let cx = Cx::new(ids, counter);
        let known = self
            .inner
            .read(|d| {
                heads
                    .iter()
                    .all(|h| synkro::automerge::ReadDoc::get_change_by_hash(d, h).is_some())
            })
            .map_err(from_synkro)?;
        if !known {
            return Err(invalid("these heads are not in this document (yet)"));
        }
        self.inner.read(|d| cx.root(d, Some(&heads))).map_err(from_synkro)
    }

    /// Every change, oldest first: `{hash, author, actor, seq, time, message, deps}`
    /// (`time` in milliseconds, as JS counts; 0 when unknown).
    #[wasm_bindgen(unchecked_return_type = "Change[]")]
    pub fn history(&self) -> JsResult<JsValue> {
        let list: Vec<serde_json::Value> = self
            .inner
            .history()
            .map_err(from_synkro)?
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "hash": c.hash.to_string(),
                    "author": c.author.map(|m| m.to_string()),
                    "actor": c.actor.to_hex_string(),
                    "seq": c.seq,
                    "time": c.time.saturating_mul(1000),
                    "message": c.message,
                    "deps": c.deps.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(crate::value::to_js(&serde_json::Value::Array(list)))
    }

    /// The document in Automerge's save format: `Automerge.load()` opens it.
    #[wasm_bindgen(js_name = "exportAutomerge")]
    pub fn export_automerge(&self) -> JsResult<Uint8Array> {
        let bytes = self.inner.export_automerge().map_err(from_synkro)?;
        Ok(Uint8Array::from(bytes.as_slice()))
    }

    /// Seal pending edits now and wait until they are stored.
    pub async fn flush(&self) -> JsResult<()> {
        self.inner.flush().await.map_err(from_synkro)
    }

    /// Call `listener(patches)` after every change, local or remote; returns
    /// a function that stops it. Patches are `{action, path, ...}` objects.
    #[wasm_bindgen(js_name = "onChange")]
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on_change(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(patches: Patch[]) => void")] listener: Function,
    ) -> Function {
        let mut changes = self.inner.subscribe();
        until_unsubscribed(async move {
            while let Some(patches) = changes.recv().await {
                let list: Array = patches.iter().map(|p| to_js(&patch::to_json(p))).collect();
                call(&listener, &list);
            }
        })
    }

    /// Send a JSON-compatible value (presence: a cursor, a name, a colour;
    /// at most 16 KiB encoded) to the members online now. Not stored.
    pub async fn broadcast(&self, #[wasm_bindgen(unchecked_param_type = "Json")] value: JsValue) -> JsResult<()> {
        let value = from_js(value, "presence value")?;
        let bytes = serde_json::to_vec(&value).map_err(|e| invalid(e.to_string()))?;
        self.inner.send_ephemeral(&bytes).await.map_err(from_synkro)
    }

    /// Call `listener({from, value})` for every presence message from
    /// another member; returns a function that stops it.
    #[wasm_bindgen(js_name = "onBroadcast")]
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on_broadcast(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(message: Broadcast) => void")] listener: Function,
    ) -> Function {
        let mut messages = self.inner.ephemeral();
        until_unsubscribed(async move {
            while let Some((from, data)) = messages.recv().await {
                // Members sign what they send, but may still send junk.
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(&data) else {
                    continue;
                };
                let msg = serde_json::json!({ "from": from.to_string(), "value": value });
                call(&listener, &to_js(&msg));
            }
        })
    }

    /// An invitation token for `role` (`"read"`, `"write"` or `"admin"`).
    /// It carries key material: send it privately (e.g. in a URL fragment).
    pub async fn share(
        &self,
        #[wasm_bindgen(unchecked_param_type = "'read' | 'write' | 'admin'")] role: &str,
    ) -> JsResult<String> {
        let role = match role {
            "read" | "write" | "admin" => role.parse().map_err(|_| invalid("bad role"))?,
            other => {
                return Err(invalid(format!(
                    "role must be \"read\", \"write\" or \"admin\", got {other:?}"
                )));
            }
        };
        Ok(self.inner.share(role).await.map_err(from_synkro)?.to_string())
    }

    /// Remove a member and rotate the key: they read nothing written after.
    pub async fn revoke(&self, member: &str) -> JsResult<()> {
        self.inner.revoke(parse_member(member)?).await.map_err(from_synkro)
    }

    /// Members and their roles: `[{member, role}]`, plus `me` and `myRole`.
    #[wasm_bindgen(unchecked_return_type = "DocInfo")]
    pub fn info(&self) -> JsResult<JsValue> {
        let info = self.inner.info().map_err(from_synkro)?;
        let members: Vec<serde_json::Value> = info
            .members
            .iter()
            .map(|(m, r)| serde_json::json!({ "member": m.to_string(), "role": r.to_string() }))
            .collect();
        Ok(to_js(&serde_json::json!({
            "id": info.doc.to_string(),
            "name": info.name,
            "myRole": info.my_role.map(|r| r.to_string()),
            "members": members,
            "readable": info.readable,
            "storedBytes": info.stored_bytes,
        })))
    }

    /// An encrypted backup, opened with `repo.import(bytes, passphrase)`.
    pub async fn export(&self, passphrase: &str) -> JsResult<Uint8Array> {
        if passphrase.is_empty() {
            return Err(invalid("the passphrase is empty"));
        }
        let bytes = self.inner.export(passphrase.as_bytes()).await.map_err(from_synkro)?;
        Ok(Uint8Array::from(bytes.as_slice()))
    }

    /// Wait until the relay `member` has stored everything of this document
    /// (`timeoutMs`, default 10 s).
    #[wasm_bindgen(js_name = "whenDurableOn")]
    pub async fn when_durable_on(
        &self,
        member: &str,
        #[wasm_bindgen(js_name = "timeoutMs")] timeout_ms: Option<f64>,
    ) -> JsResult<()> {
        let timeout =
            Duration::from_millis(timeout_ms.map_or(10_000, |t| index(t, "timeoutMs").unwrap_or(10_000)) as u64);
        self.inner
            .wait_durable_on(parse_member(member)?, timeout)
            .await
            .map_err(from_synkro)
    }
}

fn parse_heads(heads: &[String]) -> JsResult<Vec<synkro::automerge::ChangeHash>> {
    heads
        .iter()
        .map(|h| h.parse().map_err(|_| invalid(format!("{h:?} is not a change hash"))))
        .collect()
}
