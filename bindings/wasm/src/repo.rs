//! `Repo`: the documents of this browser profile (or of memory), and the
//! relays they sync through.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Uint8Array};
use serde_json::json;
use synkro::MemberId;
use synkro::home::browser::BrowserOpen;
use synkro::net::{IcePolicy, Multiaddr, NetConfig, Network, PeerEvent, WebrtcConfig, peer_id_of};
use wasm_bindgen::prelude::*;

use crate::doc::{DocHandle, until_unsubscribed};
use crate::error::{Code, JsResult, from_synkro, invalid, js_error};
use crate::value::to_js;

/// A member id from JS.
pub(crate) fn parse_member(text: &str) -> JsResult<MemberId> {
    text.parse()
        .map_err(|e| invalid(format!("{text:?} is not a member id: {e}")))
}

/// A local-first repository of encrypted documents.
#[wasm_bindgen]
pub struct Repo {
    state: Rc<State>,
}

struct State {
    inner: synkro::Repo,
    net: RefCell<Option<Network>>,
    closed: Cell<bool>,
    on_close: RefCell<Vec<Option<Function>>>,
}

impl State {
    /// The repo closed: disconnect, then tell the `onClose` listeners.
    async fn closed(&self) {
        if self.closed.replace(true) {
            return;
        }
        let net = self.net.borrow_mut().take();
        if let Some(net) = net {
            net.shutdown().await;
        }
        let event = to_js(&json!({ "reason": "closed" }));
        let listeners: Vec<Function> = self.on_close.borrow().iter().flatten().cloned().collect();
        for listener in listeners {
            let _ = listener.call1(&JsValue::NULL, &event);
        }
    }
}

#[wasm_bindgen]
impl Repo {
    /// Open a repo. `options.storage` is `"indexeddb"` (documents survive
    /// reloads; `options.name` picks the repo, default `"default"`; every
    /// tab of the origin shares it: one writes it and holds the
    /// connections, the others see every change live and hand it their
    /// edits) or `"memory"` (gone with the page).
    /// `options.memoryBudget` (bytes, default 256 MiB) bounds the documents
    /// kept in memory: idle ones without a live handle are unloaded past it
    /// and load again on their next use.
    pub async fn open(
        #[wasm_bindgen(
            unchecked_param_type = "{ storage?: 'indexeddb' | 'memory'; name?: string; memoryBudget?: number }"
        )]
        options: JsValue,
    ) -> JsResult<Repo> {
        crate::crash::install();
        let get = |key: &str| option(&options, key);
        let storage = match get("storage") {
            None => "indexeddb".to_owned(),
            Some(v) => v
                .as_string()
                .ok_or_else(|| invalid("options.storage must be a string"))?,
        };
        let name = match get("name") {
            None => "default".to_owned(),
            Some(v) => v.as_string().ok_or_else(|| invalid("options.name must be a string"))?,
        };
        // Set by the wrapper when it reopens the repo after this page's
        // previous instance of the module crashed holding its lock.
        let after_crash = get("__afterCrash").is_some_and(|v| v.is_truthy());
        let mut config = synkro::RepoConfig::default();
        if let Some(v) = get("memoryBudget") {
            config.node.memory_budget = v
                .as_f64()
                .filter(|b| b.fract() == 0.0 && *b >= 0.0 && *b <= usize::MAX as f64)
                .map(|b| b as usize)
                .ok_or_else(|| invalid("options.memoryBudget must be a whole number of bytes"))?;
        }
        let inner = match storage.as_str() {
            "memory" => synkro::Repo::in_memory_with(config).await,
            "indexeddb" => {
                let options = BrowserOpen { after_crash, config };
                synkro::Repo::open_browser(&name, options).await
            }
            other => {
                return Err(invalid(format!(
                    "storage must be \"memory\" or \"indexeddb\", got {other:?}"
                )));
            }
        }
        .map_err(from_synkro)?;
        let mut closes = inner.closes();
        let state = Rc::new(State {
            inner,
            net: RefCell::new(None),
            closed: Cell::new(false),
            on_close: RefCell::new(Vec::new()),
        });
        // Closed by `close()`, from JS or from Rust.
        let weak: Weak<State> = Rc::downgrade(&state);
        wasm_bindgen_futures::spawn_local(async move {
            if closes.recv().await.is_ok()
                && let Some(state) = weak.upgrade()
            {
                state.closed().await;
            }
        });
        Ok(Repo { state })
    }

    /// Call `listener({reason})` once the repo is closed (`"closed"`, by
    /// `close()`). Returns a function that removes the listener.
    #[wasm_bindgen(js_name = "onClose")]
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on_close(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: CloseEvent) => void")] listener: Function,
    ) -> Function {
        let index = {
            let mut listeners = self.state.on_close.borrow_mut();
            listeners.push(Some(listener));
            listeners.len() - 1
        };
        let weak = Rc::downgrade(&self.state);
        Closure::once_into_js(move || {
            if let Some(state) = weak.upgrade()
                && let Some(slot) = state.on_close.borrow_mut().get_mut(index)
            {
                *slot = None;
            }
        })
        .unchecked_into()
    }

    /// Whether the repo was closed (here, or handed over to another tab).
    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.state.closed.get()
    }

    /// Whether another tab holds this repo: it writes storage and holds
    /// the connections, and this tab hands it its edits.
    #[wasm_bindgen(getter, js_name = "isGuest")]
    pub fn is_guest(&self) -> bool {
        self.state.inner.is_guest()
    }

    /// Damage found and skipped when the repo was opened (corrupt records),
    /// as messages; everything else loaded.
    #[wasm_bindgen(js_name = "loadProblems")]
    pub fn load_problems(&self) -> Vec<String> {
        self.state
            .inner
            .load_problems()
            .iter()
            .map(|p| format!("{}: {}", p.doc, p.problem))
            .collect()
    }

    /// This device's member id.
    #[wasm_bindgen(getter, js_name = "memberId")]
    pub fn member_id(&self) -> String {
        self.state.inner.member_id().to_string()
    }

    /// Create a document owned by this device.
    pub async fn create(&self) -> JsResult<DocHandle> {
        let inner = self.state.inner.create().await.map_err(from_synkro)?;
        Ok(DocHandle::new(inner))
    }

    /// The document with this id, loaded from storage if it is not in memory.
    pub async fn find(&self, id: String) -> JsResult<DocHandle> {
        let doc = id
            .parse()
            .map_err(|e| invalid(format!("{id:?} is not a document id: {e}")))?;
        let inner = self.state.inner.find(&doc).await.map_err(from_synkro)?;
        Ok(DocHandle::new(inner))
    }

    /// Counts: documents held, loaded now, their memory estimate (bytes),
    /// sealed bytes stored, peers connected, data refused.
    #[wasm_bindgen(unchecked_return_type = "RepoStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.state.inner.stats();
        crate::value::to_js(&serde_json::json!({
            "documents": s.documents,
            "loaded": s.loaded,
            "memoryEstimate": s.memory_estimate,
            "storedBytes": s.stored_bytes,
            "peers": s.peers,
            "rejected": s.rejected,
        }))
    }

    /// Ids of every document here.
    pub fn list(&self) -> Vec<String> {
        self.state.inner.list().iter().map(ToString::to_string).collect()
    }

    /// Join a document with an invitation token; its content arrives from a
    /// relay or peer that has it.
    pub async fn join(&self, token: &str) -> JsResult<DocHandle> {
        let token = token
            .trim()
            .parse()
            .map_err(|e| invalid(format!("not an invitation token: {e}")))?;
        let inner = self.state.inner.join(&token).await.map_err(from_synkro)?;
        Ok(DocHandle::new(inner))
    }

    /// A new document from Automerge's save format (`Automerge.save()`),
    /// content and history; encrypted and owned by this device from now on.
    #[wasm_bindgen(js_name = "importAutomerge")]
    pub async fn import_automerge(&self, bytes: Uint8Array) -> JsResult<DocHandle> {
        let inner = self
            .state
            .inner
            .import_automerge(&bytes.to_vec())
            .await
            .map_err(from_synkro)?;
        Ok(DocHandle::new(inner))
    }

    /// Restore a document from `doc.export(passphrase)`.
    pub async fn import(&self, backup: Uint8Array, passphrase: &str) -> JsResult<DocHandle> {
        let inner = self
            .state
            .inner
            .import(&backup.to_vec(), passphrase.as_bytes())
            .await
            .map_err(from_synkro)?;
        Ok(DocHandle::new(inner))
    }

    /// Sync through these relays (multiaddrs ending in `/p2p/<id>`, over
    /// `/ws` or `/webrtc-direct`): stay connected, reconnect with backoff,
    /// and let them store every document this device administers. Resolves
    /// with the relays' member ids once each is reached.
    ///
    /// Other members' browsers are met through the relays; then a direct
    /// WebRTC connection is tried, and sync moves to it when it comes up
    /// (see `connection(peer)`). `options` (read at the first `connect`):
    /// `direct: false` stays on relay circuits; `iceServers` (URLs; default:
    /// STUN on each relay's host, port 3478); `icePolicy: "relay"` uses only
    /// TURN servers (with none, no direct path forms).
    pub async fn connect(
        &self,
        relays: Vec<String>,
        #[wasm_bindgen(
            unchecked_param_type = "{ direct?: boolean; iceServers?: string[]; icePolicy?: 'all' | 'relay' } | undefined"
        )]
        options: JsValue,
    ) -> JsResult<Vec<String>> {
        let addrs = relays
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .map_err(|e| invalid(format!("{a:?} is not a multiaddr: {e}")))
            })
            .collect::<JsResult<Vec<_>>>()?;
        let direct_webrtc = direct_options(&options)?;
        let existing = self.state.net.borrow().clone();
        let net = match existing {
            Some(net) => net,
            None => {
                let net = self
                    .state
                    .inner
                    .connect(NetConfig {
                        relays: addrs.clone(),
                        reachable_via_relays: true,
                        direct_webrtc,
                        ..NetConfig::default()
                    })
                    .await
                    .map_err(from_synkro)?;
                *self.state.net.borrow_mut() = Some(net.clone());
                net
            }
        };
        let mut reached = Vec::new();
        for addr in addrs {
            let member = net
                .dial(addr)
                .await
                .map_err(|e| js_error(Code::Network, e.to_string()))?;
            reached.push(member.to_string());
        }
        Ok(reached)
    }

    /// How this device reaches `peer` (a member id) now: `"direct"` (a
    /// direct connection, e.g. browser-to-browser WebRTC), `"relayed"`
    /// (only through a relay circuit) or `"offline"`.
    #[wasm_bindgen(unchecked_return_type = "'direct' | 'relayed' | 'offline'")]
    pub fn connection(&self, peer: &str) -> JsResult<String> {
        let member = parse_member(peer)?;
        let Some(peer_id) = peer_id_of(&member) else {
            return Err(invalid(format!("{peer:?} is not a member id")));
        };
        let net = self.state.net.borrow().clone();
        let found = net.and_then(|n| n.connections().into_iter().find(|c| c.peer == peer_id));
        Ok(match found {
            None => "offline",
            Some(c) if c.relayed => "relayed",
            Some(_) => "direct",
        }
        .to_owned())
    }

    /// Call `listener(event)` for connection events: `{type: "connected" |
    /// "disconnected" | "session-opened" | "session-closed" | "reachable" |
    /// "path", peer, relayed}` ("path": a direct connection replaced the
    /// relay circuit, or dropped and the circuit is back). Returns a function that stops it. Call `connect` first.
    #[wasm_bindgen(js_name = "onNetwork")]
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on_network(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: NetworkEvent) => void")] listener: Function,
    ) -> JsResult<Function> {
        let net = self
            .state
            .net
            .borrow()
            .clone()
            .ok_or_else(|| invalid("not connected: call repo.connect(relays) first"))?;
        Ok(forward(net.events(), listener, |event| {
            Some(match event {
                PeerEvent::Connected { peer, relayed } => {
                    json!({ "type": "connected", "peer": peer.to_string(), "relayed": relayed })
                }
                PeerEvent::Disconnected { peer } => json!({ "type": "disconnected", "peer": peer.to_string() }),
                PeerEvent::SessionOpened { peer, relayed } => {
                    json!({ "type": "session-opened", "peer": peer.to_string(), "relayed": relayed })
                }
                PeerEvent::SessionClosed { peer } => json!({ "type": "session-closed", "peer": peer.to_string() }),
                PeerEvent::Reachable { relay } => json!({ "type": "reachable", "peer": relay.to_string() }),
                PeerEvent::PathChanged { peer, relayed } => {
                    json!({ "type": "path", "peer": peer.to_string(), "relayed": relayed })
                }
                _ => return None,
            })
        }))
    }

    /// Call `listener(event)` when a document arrives (`{type: "doc-added",
    /// doc}`, e.g. after `join`), its members, roles or keys change
    /// (`{type: "access-changed", doc}`), or a relay or peer refuses data of
    /// it (`{type: "peer-refused", peer, doc, reason, message}`), or local
    /// storage fills up or has room again (`{type: "storage", state}`, see
    /// `storageState`). Returns a function that stops it.
    #[wasm_bindgen(js_name = "onEvent")]
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on_event(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: RepoEvent) => void")] listener: Function,
    ) -> Function {
        forward(self.state.inner.events(), listener, |event| match event {
            synkro::Event::DocAdded { doc } => Some(json!({ "type": "doc-added", "doc": doc.to_string() })),
            synkro::Event::AccessChanged { doc } => Some(json!({ "type": "access-changed", "doc": doc.to_string() })),
            synkro::Event::Storage(state) => Some(json!({ "type": "storage", "state": storage_state_name(state) })),
            synkro::Event::PeerRefused { peer, doc, reason } => {
                let mut event = refusal_json(&doc, &reason);
                event["type"] = json!("peer-refused");
                event["peer"] = json!(peer.to_string());
                Some(event)
            }
            _ => None,
        })
    }

    /// Whether this repo can store: `"ok"`; `"full"` when the browser's
    /// storage quota refused a write (edits are kept in memory, data from
    /// peers is refused meanwhile, and the writes are retried every 2 s
    /// until there is room); `"failed"` when storage failed for good.
    /// `onEvent` reports each change as `{type: "storage", state}`.
    #[wasm_bindgen(js_name = "storageState")]
    #[wasm_bindgen(unchecked_return_type = "StorageState")]
    pub fn storage_state(&self) -> String {
        storage_state_name(self.state.inner.storage_state()).to_owned()
    }

    /// Where this repo stands with `peer` (a relay's member id): how many
    /// documents are in sync, still to send or receive, and pending.
    #[wasm_bindgen(js_name = "syncStatus")]
    #[wasm_bindgen(unchecked_return_type = "SyncStatus")]
    pub fn sync_status(&self, peer: &str) -> JsResult<JsValue> {
        let s = self.state.inner.sync_status(&parse_member(peer)?);
        let refused: Vec<serde_json::Value> = s
            .refused
            .iter()
            .map(|(doc, reason)| refusal_json(doc, reason))
            .collect();
        Ok(to_js(&json!({
            "synced": s.synced.len(),
            "unsynced": s.unsynced.len(),
            "pending": s.pending.len(),
            "refused": refused,
            "complete": s.is_complete(),
            "connected": self.state.inner.peers().contains(&parse_member(peer)?),
        })))
    }

    /// Stop syncing (work offline): close every connection. Edits keep
    /// being saved locally; `connect` again to catch up.
    pub async fn disconnect(&self) {
        let net = self.state.net.borrow_mut().take();
        if let Some(net) = net {
            net.shutdown().await;
        }
    }

    /// Seal and store every pending edit, disconnect, and let another tab
    /// open this repo.
    pub async fn close(&self) -> JsResult<()> {
        let closed = self.state.inner.close().await;
        self.state.closed().await;
        closed.map_err(from_synkro)
    }
}

/// A storage state as JS sees it.
fn storage_state_name(state: synkro::StorageState) -> &'static str {
    match state {
        synkro::StorageState::Ok => "ok",
        synkro::StorageState::Full => "full",
        synkro::StorageState::Failed => "failed",
    }
}

/// A refusal as JS sees it: `{doc, reason, message}`, `reason` one of
/// `too-large`, `not-allowed`, `invalid`, `document-limit`, `storage-full`,
/// `storage-failed`.
fn refusal_json(doc: &synkro::DocId, reason: &synkro::Refusal) -> serde_json::Value {
    use synkro::Refusal as R;
    let kind = match reason {
        R::TooLarge { .. } => "too-large",
        R::NotAllowed => "not-allowed",
        R::DocumentLimit { .. } => "document-limit",
        R::StorageFull => "storage-full",
        R::StorageFailed => "storage-failed",
        _ => "invalid",
    };
    json!({ "doc": doc.to_string(), "reason": kind, "message": reason.to_string() })
}

/// Call `listener` with each event `to_json` turns into a JS object, until
/// the returned function is called or the events end.
fn forward<T: Clone + 'static>(
    mut events: synkro::Events<T>,
    listener: Function,
    to_json: impl Fn(T) -> Option<serde_json::Value> + 'static,
) -> Function {
    until_unsubscribed(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(synkro::RecvError::Overflowed(_)) => continue,
                Err(synkro::RecvError::Closed) => return,
            };
            if let Some(js) = to_json(event) {
                let _ = listener.call1(&JsValue::NULL, &to_js(&js));
            }
        }
    })
}

/// `options[key]`, unless it is missing or `undefined`.
fn option(options: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(options, &key.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

/// `connect`'s options for direct browser-to-browser WebRTC.
fn direct_options(options: &JsValue) -> JsResult<Option<WebrtcConfig>> {
    if options.is_undefined() || options.is_null() {
        return Ok(Some(WebrtcConfig::default()));
    }
    if !options.is_object() {
        return Err(invalid("connect: options must be an object"));
    }
    let get = |key: &str| option(options, key);
    if let Some(v) = get("direct")
        && !v.as_bool().ok_or_else(|| invalid("options.direct must be a boolean"))?
    {
        return Ok(None);
    }
    let mut config = WebrtcConfig::default();
    if let Some(v) = get("iceServers") {
        let list: js_sys::Array = v
            .dyn_into()
            .map_err(|_| invalid("options.iceServers must be an array of URL strings"))?;
        for url in list.iter() {
            let url = url
                .as_string()
                .ok_or_else(|| invalid("options.iceServers must be an array of URL strings"))?;
            config.ice_servers.push(url);
        }
    }
    if let Some(v) = get("icePolicy") {
        config.ice_policy = match v.as_string().as_deref() {
            Some("all") => IcePolicy::All,
            Some("relay") => IcePolicy::RelayOnly,
            _ => return Err(invalid("options.icePolicy must be \"all\" or \"relay\"")),
        };
    }
    Ok(Some(config))
}
