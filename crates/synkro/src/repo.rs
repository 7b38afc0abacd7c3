//! [`Repo`]: the runtime around one `synkro_core::Node`.

use std::collections::{HashMap, HashSet};
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc;
use getrandom::SysRng;
use rand_core::UnwrapErr;
use synkro_core::{DeviceIdentity, DocId, Effect, Event, InviteToken, MemberId, Node, NodeConfig, Role, SyncStatus};
use synkro_storage::{MemoryStorage, Storage, WriteOp};
use tracing::{debug, info, warn};

use crate::Error;
use crate::doc::DocHandle;
#[cfg(not(target_arch = "wasm32"))]
use crate::home::Home;
use crate::rt::{self, Broadcast, Spawner, Topics, relock};

pub(crate) type Rng = UnwrapErr<SysRng>;

/// Where a session's outgoing frames go (see [`Repo::attach_peer`]).
pub type FrameSender = mpsc::UnboundedSender<Vec<u8>>;

/// A subscription to events ([`Repo::events`], [`Network::events`](crate::net::Network::events)).
/// `recv().await` gives the next one; a receiver that falls more than 1024
/// behind gets [`RecvError::Overflowed`](crate::RecvError::Overflowed) with
/// the number it missed, then the newest.
pub type Events<T> = async_broadcast::Receiver<T>;

/// What [`Repo::stats`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepoStats {
    /// Documents held.
    pub documents: usize,
    /// Sealed bytes held (access ops and chunks).
    pub stored_bytes: usize,
    /// Peers with an open sync session.
    pub peers: usize,
    /// Times data from a peer was refused (each an [`Event::Rejected`],
    /// counted even when a slow reader of [`Repo::events`] missed it).
    pub rejected: u64,
}

/// One sync session of a [`Repo`] with a peer, from [`Repo::attach_peer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

/// Something [`Repo::open`] found damaged and skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    /// The document it belongs to.
    pub doc: DocId,
    /// What was wrong, and where.
    pub problem: String,
}

/// Settings for [`Repo::open_with`].
#[derive(Clone, Debug)]
pub struct RepoConfig {
    /// How long edits gather before they are sealed into one chunk.
    pub flush_window: Duration,
    /// Core tunables (compaction).
    pub node: NodeConfig,
}

impl Default for RepoConfig {
    fn default() -> Self {
        Self {
            flush_window: Duration::from_millis(50),
            node: NodeConfig::default(),
        }
    }
}

/// Events kept per document for a follower that falls behind; one further
/// behind gets an empty patch list and re-reads the document.
const DOC_EVENTS: usize = 128;

pub(crate) struct Inner {
    node: Mutex<Node>,
    /// Serialises node calls that produce IO, so effects run in the order
    /// the node emitted them (a `Send` never overtakes its `Persist`).
    pump: async_lock::Mutex<()>,
    storage: Arc<dyn Storage>,
    events: Broadcast<Event>,
    /// The same events of one document ([`DocHandle::subscribe`] and
    /// [`DocHandle::ephemeral`]), so an app following many documents does
    /// not wake every follower for each change.
    doc_events: Topics<DocId, Event>,
    /// Open sessions: the latest attachment per peer and where its frames go.
    peers: Mutex<HashMap<MemberId, (SessionId, FrameSender)>>,
    next_session: std::sync::atomic::AtomicU64,
    /// Relays that get the `replicate` role on every document we create.
    replicas: Mutex<Vec<MemberId>>,
    scheduled: Mutex<HashSet<DocId>>,
    /// Effects drained by calls that do no IO themselves; run by the next pump.
    deferred: Mutex<Vec<Effect>>,
    failed: Mutex<Option<String>>,
    config: RepoConfig,
    problems: Vec<LoadProblem>,
    spawner: Spawner,
    #[cfg(not(target_arch = "wasm32"))]
    _home: Option<Home>,
}

/// A local-first repository of encrypted Automerge documents.
///
/// Every edit is applied in memory at once, sealed into a signed, encrypted
/// chunk after a short flush window, and written durably before it is sent
/// to any peer. Cloning a `Repo` gives another handle to the same repo.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), synkro::Error> {
/// use synkro::Repo;
/// let home = tempfile::tempdir().unwrap();
/// let repo = Repo::open(home.path()).await?;
/// let doc = repo.create().await?;
/// doc.set("meta/title", &serde_json::json!("Groceries"))?;
/// doc.flush().await?; // sealed and durable
/// drop((doc, repo));
///
/// let repo = Repo::open(home.path()).await?; // e.g. after a restart
/// let doc = repo.find(&repo.list()[0])?;
/// assert_eq!(doc.get("meta/title")?, Some(serde_json::json!("Groceries")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Repo {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.member_id())
    }
}

impl Repo {
    /// Open (or create) the repo in directory `home`: device identity in
    /// `identity.key` (mode 0600), documents under `docs/`. One process at
    /// a time may hold a home.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn open(home: impl AsRef<Path>) -> Result<Repo, Error> {
        Self::open_home(home.as_ref(), RepoConfig::default()).await
    }

    /// [`open`](Self::open) with settings.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn open_home(home: &Path, config: RepoConfig) -> Result<Repo, Error> {
        // A repo dropped a moment ago (in this process, or in one that is
        // exiting) may hold the lock while its last tasks wind down: wait
        // briefly before calling the home in use.
        const GRACE: Duration = Duration::from_secs(2);
        let deadline = std::time::Instant::now() + GRACE;
        let home = loop {
            match Home::open(home) {
                Err(Error::HomeInUse(_)) if std::time::Instant::now() < deadline => {
                    crate::rt::sleep(Duration::from_millis(20)).await;
                }
                other => break other?,
            }
        };
        let identity = home.identity()?;
        let storage = Arc::new(home.storage()?);
        let repo = Self::start(storage, identity, config).await?;
        Ok(repo.with_home(home))
    }

    /// A repo over any storage backend with a given identity.
    pub async fn open_with(
        storage: Arc<dyn Storage>,
        identity: DeviceIdentity,
        config: RepoConfig,
    ) -> Result<Repo, Error> {
        Self::start(storage, identity, config).await
    }

    /// A throwaway repo in memory with a fresh identity (tests, demos).
    pub async fn in_memory() -> Result<Repo, Error> {
        let identity = DeviceIdentity::generate(&mut UnwrapErr(SysRng));
        Self::open_with(Arc::new(MemoryStorage::new()), identity, RepoConfig::default()).await
    }

    // In browsers everything runs on one thread; Arc keeps one type for both.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    async fn start(storage: Arc<dyn Storage>, identity: DeviceIdentity, config: RepoConfig) -> Result<Repo, Error> {
        if crate::UNSEALED {
            tracing::warn!("built with insecure-unsealed-benchmark: chunks are neither encrypted nor signed");
        }
        let mut node = Node::new(identity, config.node.clone());
        let mut rng = UnwrapErr(SysRng);
        let mut problems = Vec::new();
        for ns in storage.namespaces().await? {
            let loaded = storage.load(&ns).await?;
            let doc = DocId(ns);
            for p in &loaded.problems {
                warn!(%doc, problem = %p, "damaged storage skipped");
                problems.push(LoadProblem {
                    doc,
                    problem: p.to_string(),
                });
            }
            let report = node.load_doc(&mut rng, doc, loaded.records)?;
            for p in report.problems {
                warn!(%doc, problem = %p, "record failed verification and was skipped");
                problems.push(LoadProblem { doc, problem: p });
            }
        }
        // Loading may repair what it read (a chunk stored over the size
        // limit is folded into a new snapshot): those writes run first.
        let mut repairs = Vec::new();
        while let Some(effect) = node.poll_effect() {
            repairs.push(effect);
        }
        info!(member = %node.member_id(), docs = node.docs().len(), "repo open");
        let inner = Inner {
            node: Mutex::new(node),
            pump: async_lock::Mutex::new(()),
            storage,
            events: Broadcast::new(1024),
            doc_events: Topics::new(DOC_EVENTS),
            peers: Mutex::new(HashMap::new()),
            next_session: std::sync::atomic::AtomicU64::new(0),
            replicas: Mutex::new(Vec::new()),
            scheduled: Mutex::new(HashSet::new()),
            deferred: Mutex::new(repairs),
            failed: Mutex::new(None),
            config,
            problems,
            spawner: Spawner::current(),
            #[cfg(not(target_arch = "wasm32"))]
            _home: None,
        };
        let repo = Repo { inner: Arc::new(inner) };
        repo.inner.run(|_, _| ()).await?;
        Ok(repo)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn with_home(self, home: Home) -> Repo {
        let mut inner = Arc::into_inner(self.inner).expect("a repo being opened has no other handle yet");
        inner._home = Some(home);
        Repo { inner: Arc::new(inner) }
    }

    /// Damage found and skipped while opening: torn or corrupt storage
    /// records and records that failed verification. Everything else loaded.
    pub fn load_problems(&self) -> &[LoadProblem] {
        &self.inner.problems
    }

    /// This device's member id.
    pub fn member_id(&self) -> MemberId {
        self.inner.node().member_id()
    }

    /// Documents in the repo.
    pub fn list(&self) -> Vec<DocId> {
        self.inner.node().docs()
    }

    /// Create a document owned by this device (relays given to
    /// [`replicate_to`](Self::replicate_to) get the `replicate` role on it).
    pub async fn create(&self) -> Result<DocHandle, Error> {
        let replicas = relock(self.inner.replicas.lock()).clone();
        let doc = self
            .inner
            .run(|n, rng| {
                let doc = n.create_doc(rng)?;
                for r in replicas {
                    n.grant(rng, &doc, r, None, Role::Replicate)?;
                }
                Ok::<_, synkro_core::CoreError>(doc)
            })
            .await??;
        Ok(DocHandle::new(self.clone(), doc))
    }

    /// Let `relay` store and serve (never read) every document this device
    /// administers, now and when it creates more: grants it the `replicate`
    /// role where it has none and was not revoked. Returns how many
    /// documents were granted now.
    pub async fn replicate_to(&self, relay: MemberId) -> Result<usize, Error> {
        {
            let mut replicas = relock(self.inner.replicas.lock());
            if !replicas.contains(&relay) {
                replicas.push(relay);
            }
        }
        let granted = self.inner.run(|n, rng| n.replicate_to(rng, relay)).await??;
        if !granted.is_empty() {
            info!(%relay, docs = granted.len(), "relay may now replicate");
        }
        Ok(granted.len())
    }

    /// A handle to a document in the repo.
    pub fn find(&self, doc: &DocId) -> Result<DocHandle, Error> {
        if self.inner.node().has_doc(doc) {
            Ok(DocHandle::new(self.clone(), *doc))
        } else {
            Err(Error::UnknownDocument(*doc))
        }
    }

    /// Join a document with an invitation token. Its content arrives from
    /// the first peer or relay that has it.
    pub async fn join(&self, token: &InviteToken) -> Result<DocHandle, Error> {
        let doc = self.inner.run(|n, rng| n.join(rng, token)).await??;
        Ok(DocHandle::new(self.clone(), doc))
    }

    /// Restore a backup made by [`DocHandle::export`].
    pub async fn import(&self, backup: &[u8], passphrase: &[u8]) -> Result<DocHandle, Error> {
        let doc = self.inner.run(|n, rng| n.import(rng, backup, passphrase)).await??;
        Ok(DocHandle::new(self.clone(), doc))
    }

    /// Every event of every document.
    pub fn events(&self) -> Events<Event> {
        self.inner.events.subscribe()
    }

    /// `doc`'s changes and presence messages only (its handles' followers).
    pub(crate) fn doc_events(&self, doc: DocId) -> Events<Event> {
        self.inner.doc_events.subscribe(doc)
    }

    /// Seal and store every pending edit now.
    pub async fn flush_all(&self) -> Result<(), Error> {
        self.inner.run(|n, rng| n.flush_all(rng)).await??;
        Ok(())
    }

    /// Peers with an open session.
    pub fn peers(&self) -> Vec<MemberId> {
        self.inner.node().peers()
    }

    /// Counts for dashboards and metrics.
    pub fn stats(&self) -> RepoStats {
        let node = self.inner.node();
        RepoStats {
            documents: node.docs().len(),
            stored_bytes: node.stored_bytes(),
            peers: node.peers().len(),
            rejected: node.rejected(),
        }
    }

    /// Where each document stands with `peer`, from its acknowledgements.
    pub fn sync_status(&self, peer: &MemberId) -> SyncStatus {
        self.inner.node().sync_status(peer)
    }

    /// Wait until `peer` is connected and has told us what it holds, has
    /// durably acknowledged everything this repo holds of every document
    /// the two share, we hold everything it reported, and every joined
    /// document has arrived. Pending edits are sealed first.
    pub async fn wait_synced(&self, peer: MemberId, timeout: Duration) -> Result<(), Error> {
        let done = |n: &Node| {
            let status = n.sync_status(&peer);
            if let Some((doc, reason)) = status.refused.into_iter().find(|(_, r)| !r.is_transient()) {
                return Err(Error::Refused { peer, doc, reason });
            }
            Ok(n.greeted(&peer) && status.unsynced.is_empty() && status.pending.is_empty())
        };
        if self.wait_until(timeout, done).await? {
            return Ok(());
        }
        let status = self.sync_status(&peer);
        Err(Error::NotSynced {
            peer,
            unsynced: status.unsynced.len(),
            pending: status.pending.len(),
        })
    }

    /// Seal pending edits and wait until `done` holds, re-checking after
    /// every event (and every 200 ms, since edits made meanwhile need a
    /// flush). False if `timeout` passed first; `done`'s error at once.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Node) -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        let mut events = self.events();
        let deadline = rt::Instant::now() + timeout;
        loop {
            self.flush_all().await?;
            if done(&self.inner.node())? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(rt::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let _ = rt::timeout(left.min(Duration::from_millis(200)), events.recv()).await;
        }
    }

    /// Start a sync session with `peer` (already authenticated by the
    /// transport); frames for it go to `outgoing`. A new session with the
    /// same peer replaces the old one. Transports call this, and pass the
    /// returned id to [`detach_peer`](Self::detach_peer).
    pub async fn attach_peer(&self, peer: MemberId, outgoing: FrameSender) -> Result<SessionId, Error> {
        let id = SessionId(
            self.inner
                .next_session
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        self.inner.peers_lock().insert(peer, (id, outgoing));
        self.inner.run(|n, _| n.peer_connected(peer)).await?;
        debug!(%peer, "peer attached");
        Ok(id)
    }

    /// Hand a frame received from `peer` to the repo. Transports call this.
    pub async fn deliver(&self, peer: MemberId, frame: &[u8]) -> Result<(), Error> {
        self.inner.run(|n, rng| n.handle_message(rng, peer, frame)).await
    }

    /// Hand several frames received from `peer` to the repo at once, in
    /// order: what they make the repo store is written together (one round
    /// of fsyncs rather than one per frame). Transports call this when
    /// frames queue up.
    pub async fn deliver_many(&self, peer: MemberId, frames: &[Vec<u8>]) -> Result<(), Error> {
        self.inner
            .run(|n, rng| {
                for frame in frames {
                    n.handle_message(rng, peer, frame);
                }
            })
            .await
    }

    /// Report that `bytes` of frames queued for `peer` have been handed to
    /// the connection, so the repo may send more of a large transfer (it
    /// keeps at most [`NodeConfig::send_window`] bytes waiting per peer).
    /// Transports call this after each frame they write.
    ///
    /// [`NodeConfig::send_window`]: synkro_core::NodeConfig::send_window
    pub async fn transmitted(&self, peer: MemberId, bytes: usize) -> Result<(), Error> {
        self.inner.run(|n, _| n.transmitted(&peer, bytes)).await
    }

    /// Was session `id` with `peer` replaced by a newer one? Its outgoing
    /// frames end either way; only a session the repo dropped (the peer sent
    /// something forged) should hang up the connection. Transports call this.
    pub fn was_replaced(&self, peer: MemberId, id: SessionId) -> bool {
        self.inner
            .peers_lock()
            .get(&peer)
            .is_some_and(|(current, _)| *current != id)
    }

    /// End session `id` with `peer` (nothing happens if a newer session
    /// replaced it). Transports call this.
    pub async fn detach_peer(&self, peer: MemberId, id: SessionId) {
        {
            let mut peers = self.inner.peers_lock();
            if peers.get(&peer).is_none_or(|(current, _)| *current != id) {
                return;
            }
            peers.remove(&peer);
        }
        // A failed repo still forgets the peer.
        let _ = self.inner.run(|n, _| n.peer_disconnected(&peer)).await;
    }

    pub(crate) fn schedule_flush(&self, doc: DocId) {
        if !self.inner.scheduled_lock().insert(doc) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let window = self.inner.config.flush_window;
        self.inner.spawner.spawn(async move {
            rt::sleep(window).await;
            let Some(inner) = weak.upgrade() else { return };
            inner.scheduled_lock().remove(&doc);
            if let Err(e) = inner
                .run(|n, rng| n.flush(rng, &doc))
                .await
                .and_then(|r| r.map_err(Error::from))
            {
                warn!(%doc, error = %e, "flush failed");
            }
        });
    }
}

/// A node's `Persist` effect as storage operations.
fn write_ops(puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) -> impl Iterator<Item = WriteOp> {
    puts.into_iter()
        .map(|(key, value)| WriteOp::Put { key, value })
        .chain(deletes.into_iter().map(|key| WriteOp::Delete { key }))
}

impl Inner {
    pub(crate) fn node(&self) -> MutexGuard<'_, Node> {
        relock(self.node.lock())
    }
    fn peers_lock(&self) -> MutexGuard<'_, HashMap<MemberId, (SessionId, FrameSender)>> {
        relock(self.peers.lock())
    }
    fn scheduled_lock(&self) -> MutexGuard<'_, HashSet<DocId>> {
        relock(self.scheduled.lock())
    }

    /// Publish an event to the repo's followers and, for a change or a
    /// presence message, to its document's.
    fn emit(&self, event: Event) {
        if let Event::DocChanged { doc, .. } | Event::Ephemeral { doc, .. } = &event {
            self.doc_events.send(doc, || event.clone());
        }
        self.events.send(event);
    }

    /// Run a node call that emits no IO (reads, in-memory edits): its events
    /// are delivered now, anything else waits for the next pump.
    pub(crate) fn run_sync<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut node = self.node();
        let out = f(&mut node);
        let mut deferred = Vec::new();
        while let Some(e) = node.poll_effect() {
            match e {
                Effect::Event(ev) => self.emit(ev),
                other => deferred.push(other),
            }
        }
        drop(node);
        if !deferred.is_empty() {
            relock(self.deferred.lock()).extend(deferred);
        }
        out
    }

    /// Run a node call and carry out its effects, in order.
    pub(crate) async fn run<T>(&self, f: impl FnOnce(&mut Node, &mut Rng) -> T) -> Result<T, Error> {
        let _pump = self.pump.lock().await;
        if let Some(reason) = relock(self.failed.lock()).clone() {
            return Err(Error::Failed(reason));
        }
        let mut effects: Vec<Effect> = std::mem::take(&mut *relock(self.deferred.lock()));
        let out = {
            let mut node = self.node();
            let out = f(&mut node, &mut UnwrapErr(SysRng));
            while let Some(e) = node.poll_effect() {
                effects.push(e);
            }
            out
        };
        let mut effects = effects.into_iter().peekable();
        while let Some(effect) = effects.next() {
            let Effect::Persist { doc, puts, deletes } = effect else {
                self.execute(effect).await?;
                continue;
            };
            // Writes in a row (a batch of frames touching many documents)
            // go to storage together: one document's in order, different
            // documents at once, so their fsyncs overlap. Whatever follows
            // (a Send, an acknowledgement) still waits for all of them.
            let mut by_doc: Vec<(DocId, Vec<WriteOp>)> = Vec::new();
            let mut add = |doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>| {
                let ops = write_ops(puts, deletes);
                match by_doc.iter_mut().find(|(d, _)| *d == doc) {
                    Some((_, all)) => all.extend(ops),
                    None => by_doc.push((doc, ops.collect())),
                }
            };
            add(doc, puts, deletes);
            while let Some(Effect::Persist { .. }) = effects.peek() {
                if let Some(Effect::Persist { doc, puts, deletes }) = effects.next() {
                    add(doc, puts, deletes);
                }
            }
            let writes = by_doc.into_iter().map(|(doc, ops)| self.persist(doc, ops));
            for r in futures::future::join_all(writes).await {
                r?;
            }
        }
        Ok(out)
    }

    async fn persist(&self, doc: DocId, ops: Vec<WriteOp>) -> Result<(), Error> {
        if let Err(e) = self.storage.write(&doc.0, ops).await {
            // What the node holds is no longer what is on disk:
            // refuse further work rather than acknowledge it to peers.
            let reason = e.to_string();
            warn!(%doc, error = %reason, "storage write failed; repo stops accepting changes");
            *relock(self.failed.lock()) = Some(reason);
            return Err(e.into());
        }
        Ok(())
    }

    async fn execute(&self, effect: Effect) -> Result<(), Error> {
        match effect {
            Effect::Persist { doc, puts, deletes } => {
                self.persist(doc, write_ops(puts, deletes).collect()).await?;
            }
            Effect::Send { peer, message } => {
                if let Some((_, tx)) = self.peers_lock().get(&peer) {
                    let _ = tx.unbounded_send(message);
                }
            }
            Effect::Disconnect { peer, reason } => {
                warn!(%peer, %reason, "disconnecting peer");
                self.peers_lock().remove(&peer);
            }
            Effect::Event(ev) => self.emit(ev),
        }
        Ok(())
    }
}
