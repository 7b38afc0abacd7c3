//! The tabs of an origin share one browser repo. The tab holding the Web
//! Lock `synkro/<name>` is the *host*: it writes IndexedDB, seals every
//! edit, and holds the connections to relays and peers. Every other tab is
//! a *guest*: its node reads the same database and edits documents in
//! memory, but seals and writes nothing
//! ([`NodeConfig::guest`](synkro_core::NodeConfig::guest)). They talk on
//! the BroadcastChannel `synkro/<name>/tabs`:
//!
//! - `stored` (host → guests): the records of each write, once durable. A
//!   guest takes them as [`Node::stored_elsewhere`](synkro_core::Node::stored_elsewhere),
//!   so it sees every change (the host's, the network's, other guests')
//!   live, verified as any peer's.
//! - `edits` (guest → host): a guest's Automerge changes. The host applies
//!   them as this device's, seals and stores them, then answers `ack`. A
//!   guest keeps what is not acknowledged; `flush()` there waits for it.
//! - `call` / `answer`: what writes access or makes documents (create,
//!   join, import, restore, share, revoke, naming) is done by the host.
//! - `presence` (host → guests): presence messages from other members,
//!   which guests hear as their own; `presence-out` (guest → host): a
//!   guest's, which the host sends to the members online.
//! - `host`: a tab became the host.
//!
//! Failure cases, and what happens:
//! - **The host tab closes, reloads or crashes.** The browser releases its
//!   lock; the guest that asked first gets it and becomes the host in
//!   place (its repo, handles and listeners go on). First it reads its
//!   loaded documents again from IndexedDB, in case the old host died
//!   between a write and its `stored` (a seq the old host used must never
//!   be used again); then its node turns host
//!   ([`Node::become_host`](synkro_core::Node::become_host)) and seals the
//!   edits the old host never acknowledged. On `host`, every other guest
//!   sends its own again (twice is harmless: Automerge changes are
//!   idempotent), fails the calls still waiting (the app may retry), and
//!   reads its loaded documents again too. What was acknowledged was
//!   durable before the `ack`: nothing acknowledged is lost. The npm
//!   package then connects the new host to the relays the old one held.
//! - **A guest closes.** Its unacknowledged edits (handed over within a
//!   flush of the keystroke) go with it, as a host's unwritten edits would.
//! - **Two tabs open the repo at once, the first time.** One gets the lock
//!   and creates the device key; the other waits for the key instead of
//!   making its own.
//! - **A browser without BroadcastChannel or Web Locks.** Every tab is a
//!   host (the lock guards nothing), as before tabs were shared.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use synkro_core::{DocId, MemberId, Role};
use synkro_storage::WriteOp;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::browser::{LockMode, WriterLock, call, lock};
use crate::repo::{HostCall, Inner, Repo};
use crate::{Error, ErrorKind};

/// A guest's edits of one document, handed to the host.
pub(crate) type Edits = (DocId, Vec<Vec<u8>>);

/// This tab's part in the repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TabRole {
    /// Holds the lock: writes, seals, connects.
    Host,
    /// Reads, edits in memory, hands its edits to the host.
    Guest,
}

type Listener = Closure<dyn FnMut(JsValue)>;

const CLOSED_BEFORE_ANSWER: &str = "the repo closed before the tab holding it answered";

/// This tab's link to the others.
pub(crate) struct Tabs {
    name: String,
    /// This tab, in messages.
    me: String,
    role: Cell<TabRole>,
    /// The Web Lock, while this tab is the host.
    lock: RefCell<Option<WriterLock>>,
    /// The repo's store (set once it is open).
    pub(crate) store: RefCell<Option<std::sync::Arc<synkro_storage::IndexedDbStorage>>>,
    channel: Option<JsValue>,
    on_message: RefCell<Option<Listener>>,
    repo: RefCell<Option<std::sync::Weak<Inner>>>,
    /// Messages heard before the repo started.
    backlog: RefCell<Vec<JsValue>>,
    next: Cell<u64>,
    /// A guest's edits handed over and not acknowledged, by number.
    unacked: RefCell<BTreeMap<u64, Edits>>,
    acked: event_listener::Event,
    /// A guest's calls waiting for their answer, by number.
    calls: RefCell<HashMap<u64, oneshot::Sender<Result<String, Error>>>>,
    /// Aborts a guest's request for the lock.
    abort: Option<JsValue>,
}

impl Tabs {
    /// Join the tabs of the repo `name`: as host with the lock `held`, or
    /// as a guest that asks for the lock and becomes the host when it is
    /// granted.
    pub(crate) fn join(name: &str, held: Option<WriterLock>) -> Rc<Tabs> {
        let role = if held.is_some() { TabRole::Host } else { TabRole::Guest };
        let channel = new_channel(&format!("synkro/{name}/tabs"));
        let abort = (role == TabRole::Guest).then(|| construct("AbortController")).flatten();
        let tabs = Rc::new(Tabs {
            name: name.to_owned(),
            me: tab_id(),
            role: Cell::new(role),
            lock: RefCell::new(held),
            store: RefCell::new(None),
            channel,
            on_message: RefCell::new(None),
            repo: RefCell::new(None),
            backlog: RefCell::new(Vec::new()),
            next: Cell::new(0),
            unacked: RefCell::new(BTreeMap::new()),
            acked: event_listener::Event::new(),
            calls: RefCell::new(HashMap::new()),
            abort,
        });
        if let Some(channel) = &tabs.channel {
            let weak = Rc::downgrade(&tabs);
            let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let Some(tabs) = weak.upgrade() {
                    tabs.heard(field(&event, "data"));
                }
            });
            let _ = Reflect::set(channel, &"onmessage".into(), on_message.as_ref());
            *tabs.on_message.borrow_mut() = Some(on_message);
        }
        if role == TabRole::Guest {
            let signal = tabs
                .abort
                .as_ref()
                .map(|a| field(a, "signal"))
                .unwrap_or(JsValue::UNDEFINED);
            let weak = Rc::downgrade(&tabs);
            let name = format!("synkro/{name}");
            wasm_bindgen_futures::spawn_local(async move {
                let Ok(Some(mut lock)) = lock(&name, LockMode::Queue(signal)).await else {
                    return;
                };
                match weak.upgrade() {
                    Some(tabs) => tabs.promote(lock).await,
                    None => lock.release(),
                }
            });
        }
        tabs
    }

    pub(crate) fn role(&self) -> TabRole {
        self.role.get()
    }

    /// The repo started: take what was heard meanwhile; a host tells the
    /// guests it is here.
    pub(crate) fn attach(self: &Rc<Self>, inner: &std::sync::Arc<Inner>) {
        *self.repo.borrow_mut() = Some(std::sync::Arc::downgrade(inner));
        for message in std::mem::take(&mut *self.backlog.borrow_mut()) {
            self.heard(message);
        }
        if self.role() == TabRole::Host {
            self.post(&message("host", &[]));
        }
        // Presence reaches only the host's node: pass it on while host.
        let mut events = Repo { inner: inner.clone() }.events();
        let tabs = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(crate::RecvError::Overflowed(_)) => continue,
                    Err(crate::RecvError::Closed) => return,
                };
                let Some(tabs) = tabs.upgrade() else { return };
                if let synkro_core::Event::Ephemeral { doc, from, data } = event
                    && tabs.role() == TabRole::Host
                {
                    let fields = [
                        ("doc", bytes(&doc.0)),
                        ("from", from.to_string().into()),
                        ("data", bytes(&data)),
                    ];
                    tabs.post(&message("presence", &fields));
                }
            }
        });
    }

    /// Guest: a presence message for the members online, through the host.
    pub(crate) fn send_presence(&self, doc: DocId, data: &[u8]) {
        self.post(&message(
            "presence-out",
            &[("doc", bytes(&doc.0)), ("data", bytes(data))],
        ));
    }

    /// Leave: stop listening, stop asking for the lock, let it go.
    pub(crate) fn leave(&self) {
        if let Some(mut lock) = self.lock.borrow_mut().take() {
            lock.release();
        }
        if let Some(abort) = &self.abort {
            call(abort, "abort", &[]);
        }
        if let Some(channel) = &self.channel {
            let _ = Reflect::set(channel, &"onmessage".into(), &JsValue::NULL);
            call(channel, "close", &[]);
        }
        self.on_message.borrow_mut().take();
        for (_, tx) in self.calls.borrow_mut().drain() {
            let _ = tx.send(Err(Error::at_host(CLOSED_BEFORE_ANSWER)));
        }
    }

    fn repo(&self) -> Option<Repo> {
        let inner = self.repo.borrow().as_ref()?.upgrade()?;
        Some(Repo { inner })
    }

    fn post(&self, message: &JsValue) {
        post_on(&self.channel, message);
    }

    fn number(&self) -> u64 {
        let n = self.next.get() + 1;
        self.next.set(n);
        n
    }

    /// The message telling the guests that a host wrote `ops` to `ns`
    /// (its puts), to [`announce`](Self::announce) once the write is
    /// durable; `None` where no tab could hear it.
    pub(crate) fn stored_message(&self, ns: &[u8; 32], ops: &[WriteOp]) -> Option<JsValue> {
        if self.role() != TabRole::Host || self.channel.is_none() {
            return None;
        }
        let pairs: Array = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Put { key, value } => Some(Array::of2(&bytes(key), &bytes(value))),
                WriteOp::Delete { .. } => None,
            })
            .collect();
        Some(message("stored", &[("ns", bytes(ns)), ("puts", pairs.into())]))
    }

    /// Tell the other tabs (a [`stored_message`](Self::stored_message)).
    pub(crate) fn announce(&self, message: &JsValue) {
        self.post(message);
    }

    /// A guest's node sealed nothing but made these edits: to the host.
    pub(crate) fn send_edits(&self, doc: DocId, changes: Vec<Vec<u8>>) {
        let n = self.number();
        let list: Array = changes.iter().map(|c| bytes(c)).collect();
        self.post(&message(
            "edits",
            &[
                ("from", self.me.clone().into()),
                ("n", (n as f64).into()),
                ("doc", bytes(&doc.0)),
                ("changes", list.into()),
            ],
        ));
        self.unacked.borrow_mut().insert(n, (doc, changes));
    }

    /// Wait until the host has stored every edit of `doc` handed to it;
    /// true if this tab became the host meanwhile (the edits are its own
    /// to store now).
    pub(crate) async fn until_stored(&self, doc: DocId) -> bool {
        let done = || self.role() == TabRole::Host || !self.unacked.borrow().values().any(|(d, _)| *d == doc);
        loop {
            if done() {
                return self.role() == TabRole::Host;
            }
            let listener = self.acked.listen();
            if done() {
                return self.role() == TabRole::Host;
            }
            listener.await;
        }
    }

    /// Have the host do `call`; its answer (a document id, a token, or
    /// nothing).
    pub(crate) async fn ask(&self, call: HostCall) -> Result<String, Error> {
        let n = self.number();
        let mut fields: Vec<(&str, JsValue)> = vec![("from", self.me.clone().into()), ("n", (n as f64).into())];
        let op = match call {
            HostCall::Create => "create",
            HostCall::ImportAutomerge(b) => {
                fields.push(("bytes", bytes(&b)));
                "import"
            }
            HostCall::Join(token) => {
                fields.push(("text", token.into()));
                "join"
            }
            HostCall::Restore(b, passphrase) => {
                fields.push(("bytes", bytes(&b)));
                fields.push(("key", bytes(&passphrase)));
                "restore"
            }
            HostCall::Share(doc, role) => {
                fields.push(("doc", bytes(&doc.0)));
                fields.push(("text", role.to_string().into()));
                "share"
            }
            HostCall::Revoke(doc, member) => {
                fields.push(("doc", bytes(&doc.0)));
                fields.push(("text", member.to_string().into()));
                "revoke"
            }
            HostCall::SetName(doc, name) => {
                fields.push(("doc", bytes(&doc.0)));
                if let Some(name) = name {
                    fields.push(("text", name.into()));
                }
                "name"
            }
        };
        fields.push(("op", op.into()));
        let (tx, rx) = oneshot::channel();
        self.calls.borrow_mut().insert(n, tx);
        self.post(&message("call", &fields));
        rx.await.unwrap_or_else(|_| Err(Error::at_host(CLOSED_BEFORE_ANSWER)))
    }

    /// A message from another tab.
    fn heard(self: &Rc<Self>, data: JsValue) {
        if self.repo.borrow().is_none() {
            return self.backlog.borrow_mut().push(data);
        }
        let kind = field(&data, "t").as_string().unwrap_or_default();
        let host = self.role() == TabRole::Host;
        let to_me = || field(&data, "to").as_string().as_deref() == Some(self.me.as_str());
        match kind.as_str() {
            "stored" if !host => {
                let (Some(doc), Some(puts)) = (doc_of(&field(&data, "ns")), pairs_of(&field(&data, "puts"))) else {
                    return tracing::warn!("a malformed message from another tab was ignored");
                };
                if let Some(repo) = self.repo() {
                    let _ = repo.stored_elsewhere(doc, puts);
                }
            }
            "edits" if host => {
                let (Some(from), Some(n), Some(doc), Some(changes)) = (
                    field(&data, "from").as_string(),
                    field(&data, "n").as_f64(),
                    doc_of(&field(&data, "doc")),
                    list_of(&field(&data, "changes")),
                ) else {
                    return tracing::warn!("a malformed message from another tab was ignored");
                };
                self.take_edits((from, n), doc, changes);
            }
            "ack" if !host && to_me() => {
                let n = field(&data, "n").as_f64().unwrap_or(-1.0);
                if let Some(error) = field(&data, "error").as_string() {
                    tracing::warn!(%error, "the tab holding the repo could not store edits made here; they stay in this tab only");
                }
                self.unacked.borrow_mut().remove(&(n as u64));
                self.acked.notify(usize::MAX);
            }
            "answer" if !host && to_me() => {
                let n = field(&data, "n").as_f64().unwrap_or(-1.0) as u64;
                let answer = match field(&data, "error").as_string() {
                    Some(message) => Err(Error::AtHost {
                        kind: ErrorKind::from_name(&field(&data, "kind").as_string().unwrap_or_default()),
                        message,
                    }),
                    None => Ok(field(&data, "value").as_string().unwrap_or_default()),
                };
                if let Some(tx) = self.calls.borrow_mut().remove(&n) {
                    let _ = tx.send(answer);
                }
            }
            "call" if host => self.run_call(data),
            "presence-out" if host => {
                let (Some(doc), Some(bytes)) = (doc_of(&field(&data, "doc")), bytes_of(&field(&data, "data"))) else {
                    return;
                };
                if let Some(repo) = self.repo() {
                    let sent = repo.inner.call_checked(|n, rng| n.send_ephemeral(rng, &doc, &bytes));
                    if let Ok(Err(e)) = sent {
                        tracing::debug!(%doc, error = %e, "a guest tab's presence was not sent");
                    }
                }
            }
            "presence" if !host => {
                let from = field(&data, "from")
                    .as_string()
                    .and_then(|m| m.parse::<MemberId>().ok());
                let (Some(doc), Some(from), Some(bytes)) =
                    (doc_of(&field(&data, "doc")), from, bytes_of(&field(&data, "data")))
                else {
                    return;
                };
                if let Some(repo) = self.repo() {
                    repo.inner
                        .emit(synkro_core::Event::Ephemeral { doc, from, data: bytes });
                }
            }
            "host" if !host => self.new_host(),
            _ => {}
        }
    }

    /// Host: seal and store a guest's edits, then acknowledge.
    fn take_edits(&self, from: (String, f64), doc: DocId, changes: Vec<Vec<u8>>) {
        let Some(repo) = self.repo() else { return };
        let channel = self.channel.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = async {
                let _pinned = repo.find(&doc).await?;
                repo.inner
                    .call_checked(|node, _| node.take_from_guest(doc, changes))??;
                // Sealed with the host's own edits (a burst makes one
                // chunk per flush window), then stored.
                repo.inner.sealed_and_durable(doc).await
            }
            .await;
            if let Err(e) = &result {
                tracing::warn!(%doc, error = %e, "a guest tab's edits were not stored");
            }
            let (to, n) = from;
            let mut fields = vec![("to", JsValue::from(to)), ("n", n.into())];
            if let Err(e) = result {
                fields.push(("error", e.to_string().into()));
            }
            post_on(&channel, &message("ack", &fields));
        });
    }

    /// Host: do what a guest asked, and answer.
    fn run_call(&self, data: JsValue) {
        let Some(repo) = self.repo() else { return };
        let channel = self.channel.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = carry_out(&repo, &data).await;
            let mut fields = vec![("to", field(&data, "from")), ("n", field(&data, "n"))];
            match result {
                Ok(value) => fields.push(("value", value.into())),
                Err(e) => {
                    fields.push(("error", e.to_string().into()));
                    fields.push(("kind", e.kind().name().into()));
                }
            }
            post_on(&channel, &message("answer", &fields));
        });
    }

    /// Guest: a new host. Hand it every unacknowledged edit, give up the
    /// calls the old one never answered, and read the loaded documents
    /// again (the old host may have died between a write and telling it).
    fn new_host(&self) {
        for (_, tx) in self.calls.borrow_mut().drain() {
            let _ = tx.send(Err(Error::at_host(
                "the tab holding the repo closed before answering; try again",
            )));
        }
        let unacked = std::mem::take(&mut *self.unacked.borrow_mut());
        for (doc, changes) in unacked.into_values() {
            self.send_edits(doc, changes);
        }
        let Some(repo) = self.repo() else { return };
        let store = self.store.borrow().clone();
        wasm_bindgen_futures::spawn_local(async move { read_again(&repo, store.as_deref()).await });
    }

    /// Guest: the lock is ours. Catch up with the store, then turn host:
    /// seal the edits the old host never acknowledged, write, and tell the
    /// other guests.
    async fn promote(self: Rc<Self>, lock: WriterLock) {
        let Some(repo) = self.repo().filter(|r| !r.is_closed()) else {
            let mut lock = lock;
            return lock.release();
        };
        *self.lock.borrow_mut() = Some(lock);
        let store = self.store.borrow().clone();
        read_again(&repo, store.as_deref()).await;
        // Edits made meanwhile join `unacked` (a guest's flush hands them
        // over at once); from here to the end nothing else runs.
        let _ = repo.inner.call_checked(|n, rng| n.flush_all(rng));
        let unacked: Vec<Edits> = std::mem::take(&mut *self.unacked.borrow_mut()).into_values().collect();
        tracing::info!(repo = %self.name, edits = unacked.len(), "the tab holding the repo went away; this one holds it now");
        self.role.set(TabRole::Host);
        if let Some(abort) = &self.abort {
            call(abort, "abort", &[]);
        }
        let taken = repo.inner.call_checked(|n, rng| {
            n.become_host();
            for (doc, changes) in unacked {
                if let Err(e) = n.take_from_guest(doc, changes) {
                    tracing::warn!(%doc, error = %e, "edits made in this tab could not be sealed");
                }
            }
            n.flush_all(rng)
        });
        if let Ok(Err(e)) = taken {
            tracing::warn!(error = %e, "sealing this tab's edits after taking the repo over failed");
        }
        self.acked.notify(usize::MAX);
        self.post(&message("host", &[]));
    }
}

/// Take every record of each document in memory as if the host had just
/// written it: what a host that went away wrote without telling, including
/// a write it began just before it went (`store` waits for that first).
async fn read_again(repo: &Repo, store: Option<&synkro_storage::IndexedDbStorage>) {
    if let Some(store) = store
        && let Err(e) = store.settled().await
    {
        tracing::warn!(error = %e, "could not wait for the last writes of the tab that held the repo");
    }
    let loaded: Vec<DocId> = {
        let node = repo.inner.node();
        node.docs().into_iter().filter(|d| node.is_loaded(d)).collect()
    };
    for doc in loaded {
        match repo.inner.storage.load(&doc.0).await {
            Ok(l) => {
                let _ = repo.stored_elsewhere(doc, l.records);
            }
            Err(e) => tracing::warn!(%doc, error = %e, "could not read a document again after the host changed"),
        }
    }
}

/// Carry out a guest's call on the host's repo.
async fn carry_out(repo: &Repo, data: &JsValue) -> Result<String, Error> {
    // Each call is boxed, which keeps this a small function (with every
    // call inlined into one state machine it was 27 KB of wasm).
    use futures::FutureExt;
    let text = field(data, "text").as_string();
    let doc = doc_of(&field(data, "doc"));
    let raw = field(data, "bytes").dyn_into::<Uint8Array>().ok().map(|a| a.to_vec());
    let bad = |what: &str| Error::at_host(format!("a malformed {what} call from another tab"));
    let op = field(data, "op").as_string().unwrap_or_default();
    let handle = match op.as_str() {
        "create" => repo.create().boxed_local().await?,
        "import" => {
            let raw = raw.ok_or_else(|| bad("import"))?;
            repo.import_automerge(&raw).boxed_local().await?
        }
        "join" => {
            let token = text.ok_or_else(|| bad("join"))?;
            let token = token.parse().map_err(|e: synkro_core::CoreError| Error::Core(e))?;
            repo.join(&token).boxed_local().await?
        }
        "restore" => {
            let key = field(data, "key")
                .dyn_into::<Uint8Array>()
                .map_err(|_| bad("restore"))?
                .to_vec();
            let raw = raw.ok_or_else(|| bad("restore"))?;
            repo.import(&raw, &key).boxed_local().await?
        }
        _ => {
            let doc = repo.find(&doc.ok_or_else(|| bad(&op))?).boxed_local().await?;
            return match op.as_str() {
                "share" => {
                    let role: Role = text.and_then(|t| t.parse().ok()).ok_or_else(|| bad("share"))?;
                    Ok(doc.share(role).boxed_local().await?.to_string())
                }
                "revoke" => {
                    let member: MemberId = text.and_then(|t| t.parse().ok()).ok_or_else(|| bad("revoke"))?;
                    doc.revoke(member).boxed_local().await.map(|()| String::new())
                }
                "name" => doc.set_name(text).boxed_local().await.map(|()| String::new()),
                _ => Err(bad("unknown")),
            };
        }
    };
    Ok(handle.id().to_string())
}

/// Post `message` on `channel`, if there is one.
fn post_on(channel: &Option<JsValue>, message: &JsValue) {
    if let Some(channel) = channel {
        call(channel, "postMessage", std::slice::from_ref(message));
    }
}

/// `{t: kind, ...fields}`.
fn message(kind: &str, fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"t".into(), &kind.into());
    for (k, v) in fields {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o.into()
}

fn field(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

fn bytes_of(v: &JsValue) -> Option<Vec<u8>> {
    v.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
}

fn doc_of(v: &JsValue) -> Option<DocId> {
    Some(DocId(bytes_of(v)?.try_into().ok()?))
}

fn list_of(v: &JsValue) -> Option<Vec<Vec<u8>>> {
    v.dyn_ref::<Array>()?.iter().map(|x| bytes_of(&x)).collect()
}

fn pairs_of(v: &JsValue) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    v.dyn_ref::<Array>()?
        .iter()
        .map(|pair| {
            let pair = pair.dyn_into::<Array>().ok()?;
            Some((bytes_of(&pair.get(0))?, bytes_of(&pair.get(1))?))
        })
        .collect()
}

/// `new <class>()` of a global, if there is one.
fn construct(class: &str) -> Option<JsValue> {
    let ctor: Function = Reflect::get(&js_sys::global(), &class.into()).ok()?.dyn_into().ok()?;
    Reflect::construct(&ctor, &Array::new()).ok()
}

/// The BroadcastChannel `name`, or `None` where there is none.
fn new_channel(name: &str) -> Option<JsValue> {
    let ctor: Function = Reflect::get(&js_sys::global(), &"BroadcastChannel".into())
        .ok()?
        .dyn_into()
        .ok()?;
    Reflect::construct(&ctor, &Array::of1(&name.into())).ok()
}

/// A random name for this tab.
fn tab_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
