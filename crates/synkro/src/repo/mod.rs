//! [`Repo`]: the runtime around one `synkro_core::Node`.

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use getrandom::SysRng;
use rand_core::UnwrapErr;
use synkro_core::{
    DeviceIdentity, DocId, DocInfo, Effect, Event, INDEX_RECORD, InviteToken, MemberId, Node, NodeConfig, Role,
    SessionId, StorageState, SyncStatus,
};
use synkro_storage::{BlobStore, MemoryBlobs, MemoryStorage, Storage};
use tracing::{debug, info, warn};

use crate::Error;
use crate::doc::DocHandle;
use crate::driver::{Clock, Input, drive};
use crate::home;
use crate::rt::{self, Broadcast, Spawner, Topics, relock};

mod inner;
use inner::{load_into, storage_problems};

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
    /// Documents in memory now (the others load on first use).
    pub loaded: usize,
    /// Roughly the bytes the documents in memory take, as held against
    /// the memory budget ([`synkro_core::NodeConfig::memory_budget`]).
    pub memory_estimate: usize,
    /// Sealed bytes held (access ops and chunks).
    pub stored_bytes: usize,
    /// Peers with an open sync session.
    pub peers: usize,
    /// Times data from a peer was refused (each an [`Event::Rejected`],
    /// counted even when a slow reader of [`Repo::events`] missed it).
    pub rejected: u64,
}

/// Something [`Repo::open`] found damaged and skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadProblem {
    /// The document it belongs to.
    pub doc: DocId,
    /// What was wrong, and where.
    pub problem: String,
}

/// Settings for [`Repo::open_with`].
#[derive(Clone, Debug, Default)]
pub struct RepoConfig {
    /// Core tunables: the flush window (the most often a document's edits
    /// are sealed), compaction, the send window.
    pub node: NodeConfig,
}

/// Events kept per document for a follower that falls behind; one further
/// behind gets an empty patch list and re-reads the document.
const DOC_EVENTS: usize = 128;

/// A session's IO: where its frames go, and how to hang up on its peer.
struct SessionIo {
    peer: MemberId,
    frames: FrameSender,
    hang_up: Option<HangUp>,
}

/// Closes the transport of a session whose peer misbehaved.
pub type HangUp = Box<dyn Fn() + Send + Sync>;

pub(crate) struct Inner {
    node: Mutex<Node>,
    /// Effects of node calls for the driver, in order (events go out at once).
    deferred: Mutex<Vec<Effect>>,
    /// The driver's inbox.
    driver: mpsc::UnboundedSender<Input>,
    /// Notified after each round of the driver (writes done, messages
    /// handled): what [`Repo::wait_until`] and durability waits re-check on.
    pub(crate) changed: event_listener::Event,
    pub(crate) clock: Clock,
    pub(crate) storage: Arc<dyn Storage>,
    /// Chunks and manifests of attached files.
    pub(crate) blobs: Arc<dyn BlobStore>,
    events: Broadcast<Event>,
    /// The same events of one document ([`DocHandle::subscribe`] and
    /// [`DocHandle::ephemeral`]), so an app following many documents does
    /// not wake every follower for each change.
    doc_events: Topics<DocId, Event>,
    /// IO handles of open sessions (the node is the truth about who is
    /// connected; this only routes its sends).
    sessions: Mutex<HashMap<SessionId, SessionIo>>,
    /// Relays that get the `replicate` role on every document we create.
    replicas: Mutex<Vec<MemberId>>,
    failed: Mutex<Option<Arc<synkro_storage::StorageError>>>,
    /// Damage found so far: at opening, and in documents loaded since.
    problems: Mutex<Vec<LoadProblem>>,
    /// Where the repo lives (its lock, on disk or in a browser), until closed.
    pub(crate) home: Mutex<Option<Home>>,
    closed: Broadcast<CloseReason>,
    is_closed: std::sync::atomic::AtomicBool,
}

/// The platform's home of a repo, held while it is open.
pub(crate) enum Home {
    /// A directory, locked.
    #[cfg(not(target_arch = "wasm32"))]
    Native(home::Home),
    /// IndexedDB and a Web Lock.
    #[cfg(target_arch = "wasm32")]
    Browser(home::BrowserHome),
}

impl Home {
    fn close(self) {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Home::Native(home) => drop(home),
            #[cfg(target_arch = "wasm32")]
            Home::Browser(home) => home.close(),
        }
    }
}

/// Why a repo closed ([`Repo::closes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Repo::close`] was called.
    Closed,
}

/// What a guest tab asks the host tab to do (see [`Repo::open_browser`]).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) enum HostCall {
    Create,
    ImportAutomerge(Vec<u8>),
    Join(String),
    Restore(Vec<u8>, Vec<u8>),
    Share(DocId, Role),
    Revoke(DocId, MemberId),
    SetName(DocId, Option<String>),
}

/// A local-first repository of encrypted Automerge documents.
///
/// Every edit is applied in memory at once, sealed into a signed, encrypted
/// chunk at once (while edits come fast, one chunk per short flush window),
/// and written durably before it is sent
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
/// let doc = repo.find(&repo.list()[0]).await?;
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
    pub async fn open_home(dir: &Path, config: RepoConfig) -> Result<Repo, Error> {
        let home = Self::lock_home(dir).await?;
        let identity = home.identity()?;
        let storage = Arc::new(home.storage()?);
        let blobs = Arc::new(home.blobs()?);
        Self::start(storage, blobs, identity, config, Some(Home::Native(home))).await
    }

    /// A home in `dir` (one process at a time) whose documents live in
    /// `storage` and whose member identity is `identity`, instead of
    /// `dir/docs` and `dir/identity.key`: the relays of a cluster share one
    /// identity and keep documents in NATS JetStream
    /// (`synkro_cluster::Cluster`).
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn open_home_on(
        dir: &Path,
        storage: Arc<dyn Storage>,
        identity: DeviceIdentity,
        config: RepoConfig,
    ) -> Result<Repo, Error> {
        let home = Self::lock_home(dir).await?;
        // A cluster keeps nothing of its documents on a relay's disk; its
        // blobs belong in the cluster too (a relay attaches none itself).
        let blobs = Arc::new(MemoryBlobs::new());
        Self::start(storage, blobs, identity, config, Some(Home::Native(home))).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn lock_home(dir: &Path) -> Result<home::Home, Error> {
        // A repo dropped a moment ago (in this process, or in one that is
        // exiting) may hold the lock while its last tasks wind down: wait
        // briefly before calling the home in use.
        const GRACE: Duration = Duration::from_secs(2);
        let deadline = std::time::Instant::now() + GRACE;
        loop {
            match home::Home::open(dir) {
                Err(Error::HomeInUse(_)) if std::time::Instant::now() < deadline => {
                    crate::rt::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Open (or create) the repo `name` of this browser profile: documents
    /// in IndexedDB (`synkro/<name>`), the device key beside them. Every tab
    /// of the origin opens it at once: one, the host, writes it and holds
    /// the connections; the others are guests that see every change live
    /// and hand their edits to the host (see [`home::tabs`](crate::home)).
    /// When the host goes away, a guest becomes the host in place
    /// ([`is_guest`](Self::is_guest) turns false; connect it then).
    #[cfg(target_arch = "wasm32")]
    pub async fn open_browser(name: &str, mut options: home::browser::BrowserOpen) -> Result<Repo, Error> {
        let (storage, identity, home) = home::browser::open(name, &options).await?;
        let tabs = home.tabs.clone();
        options.config.node.guest = tabs.role() == home::tabs::TabRole::Guest;
        // Blobs stay in memory in a browser until they have an IndexedDB store.
        let blobs = Arc::new(MemoryBlobs::new());
        let repo = Self::start(
            storage,
            blobs,
            identity,
            options.config.clone(),
            Some(Home::Browser(home)),
        )
        .await?;
        tabs.attach(&repo.inner);
        Ok(repo)
    }

    /// Is this a guest tab's repo (another tab of the browser holds it)?
    pub fn is_guest(&self) -> bool {
        self.inner.node().is_guest()
    }

    /// Whether the repo was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// On a guest tab, `call` carried out by the host tab (its answer);
    /// `None` anywhere else.
    #[cfg_attr(not(target_arch = "wasm32"), allow(unused_variables))]
    pub(crate) async fn at_host(&self, call: impl FnOnce() -> HostCall) -> Option<Result<String, Error>> {
        #[cfg(target_arch = "wasm32")]
        if let Some(tabs) = self.inner.guest_tabs() {
            return Some(tabs.ask(call()).await);
        }
        None
    }

    /// The document a host's answer names, once it is here.
    async fn doc_answered(&self, answer: Result<String, Error>) -> Result<DocHandle, Error> {
        let id: DocId = answer?
            .parse()
            .map_err(|e| Error::at_host(format!("answered with no document id: {e}")))?;
        self.find(&id).await
    }

    /// A repo over any storage backend with a given identity.
    pub async fn open_with(
        storage: Arc<dyn Storage>,
        identity: DeviceIdentity,
        config: RepoConfig,
    ) -> Result<Repo, Error> {
        Self::start(storage, Arc::new(MemoryBlobs::new()), identity, config, None).await
    }

    /// A throwaway repo in memory with a fresh identity (tests, demos).
    pub async fn in_memory() -> Result<Repo, Error> {
        Self::in_memory_with(RepoConfig::default()).await
    }

    /// [`in_memory`](Self::in_memory) with settings.
    pub async fn in_memory_with(config: RepoConfig) -> Result<Repo, Error> {
        let identity = DeviceIdentity::generate(&mut UnwrapErr(SysRng));
        Self::open_with(Arc::new(MemoryStorage::new()), identity, config).await
    }

    // In browsers everything runs on one thread; Arc keeps one type for both.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    async fn start(
        storage: Arc<dyn Storage>,
        blobs: Arc<dyn BlobStore>,
        identity: DeviceIdentity,
        config: RepoConfig,
        home: Option<Home>,
    ) -> Result<Repo, Error> {
        if crate::UNSEALED {
            tracing::warn!("built with insecure-unsealed-benchmark: chunks are neither encrypted nor signed");
        }
        let mut node = Node::new(identity, config.node.clone());
        let mut rng = UnwrapErr(SysRng);
        let mut problems = Vec::new();
        // The index, not the documents: each loads when something needs it.
        // One without an intact entry (a home written before the index, or
        // damage) is loaded now, which writes its entry from its records.
        let mut seen = HashMap::new();
        let mut unindexed = Vec::new();
        let entries = storage.gather(INDEX_RECORD).await?.into_iter().filter_map(|gathered| {
            let doc = DocId(gathered.ns);
            if !gathered.problems.is_empty() {
                problems.extend(storage_problems(doc, &gathered.problems));
                seen.insert(doc, gathered.problems);
            }
            match gathered.value {
                Some(entry) => Some((doc, entry)),
                None => {
                    unindexed.push(doc);
                    None
                }
            }
        });
        let damaged = node.add_indexed(entries);
        for (doc, e) in damaged {
            warn!(%doc, error = %e, "damaged index entry; rebuilding it from the records");
            problems.push(LoadProblem {
                doc,
                problem: format!("damaged index entry, rebuilt from the records: {e}"),
            });
            unindexed.push(doc);
        }
        for doc in unindexed {
            let mut loaded = storage.load(&doc.0).await?;
            // Reported above already if the read found the same.
            if let Some(seen) = seen.get(&doc) {
                loaded.problems.retain(|p| !seen.contains(p));
            }
            problems.extend(load_into(&mut node, &mut rng, doc, loaded)?);
        }
        info!(
            member = %node.member_id(),
            docs = node.doc_count(),
            loaded = node.loaded_docs(),
            "repo open"
        );
        let (driver, inbox) = mpsc::unbounded();
        let inner = Arc::new(Inner {
            node: Mutex::new(node),
            deferred: Mutex::new(Vec::new()),
            driver,
            changed: event_listener::Event::new(),
            clock: Clock::start(),
            storage,
            blobs,
            events: Broadcast::new(1024),
            doc_events: Topics::new(DOC_EVENTS),
            sessions: Mutex::new(HashMap::new()),
            replicas: Mutex::new(Vec::new()),
            failed: Mutex::new(None),
            problems: Mutex::new(problems),
            home: Mutex::new(home),
            closed: Broadcast::new(4),
            is_closed: std::sync::atomic::AtomicBool::new(false),
        });
        let spawner = Spawner::current();
        spawner.spawn(drive(Arc::downgrade(&inner), inbox, spawner.clone()));
        let repo = Repo { inner };
        // Loading may have queued repairs (a chunk stored over the size
        // limit is folded into a new snapshot): they are durable first.
        repo.inner.call(|_, _| ());
        repo.inner.settle(|n| Ok(n.all_durable())).await?;
        Ok(repo)
    }

    /// Seal and store everything pending, then close: the home is released
    /// (another process or tab may open it), and every later change fails
    /// with [`Error::Closed`]. Reads of what is in memory still work.
    pub async fn close(&self) -> Result<(), Error> {
        let reason = CloseReason::Closed;
        let flushed = self.flush_all().await;
        if self.inner.is_closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        // Before the home is let go: the next opening may be another process.
        if let Err(e) = self.inner.storage.checkpoint().await {
            warn!(error = %e, "the index snapshot was not written; the next opening reads every document");
        }
        let home = relock(self.inner.home.lock()).take();
        if let Some(home) = home {
            home.close();
        }
        info!(?reason, "repo closed");
        self.inner.closed.send(reason);
        flushed
    }

    /// Follow the repo's closing: one [`CloseReason`] when it closes.
    pub fn closes(&self) -> Events<CloseReason> {
        self.inner.closed.subscribe()
    }

    /// Damage found and skipped so far: torn or corrupt storage records
    /// and records that failed verification, at opening and in documents
    /// loaded since. Everything else loaded. Documents are read on first
    /// use, so damage in one not used yet shows once it loads (after a
    /// crash, opening reads every log and finds it at once).
    pub fn load_problems(&self) -> Vec<LoadProblem> {
        relock(self.inner.problems.lock()).clone()
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
        if let Some(answer) = self.at_host(|| HostCall::Create).await {
            return self.doc_answered(answer).await;
        }
        self.create_owned(|n, rng| n.create_doc(rng)).await
    }

    /// A document `make` creates, with the `replicate` role granted to the
    /// relays given to [`replicate_to`](Self::replicate_to), once durable.
    async fn create_owned(
        &self,
        make: impl FnOnce(&mut Node, &mut Rng) -> Result<DocId, synkro_core::CoreError>,
    ) -> Result<DocHandle, Error> {
        let replicas = relock(self.inner.replicas.lock()).clone();
        let doc = self.inner.call_checked(|n, rng| {
            let doc = make(n, rng)?;
            for r in replicas {
                n.grant(rng, &doc, r, None, Role::Replicate)?;
            }
            Ok::<_, synkro_core::CoreError>(doc)
        })??;
        let handle = DocHandle::new(self.clone(), doc);
        self.inner.durable(doc).await?;
        Ok(handle)
    }

    /// Make a new document from Automerge's save format (`Automerge.save()`
    /// in JS, `AutoCommit::save` in Rust, an automerge-repo export), with
    /// its content and history; from then on it is a synkro document like
    /// any other, encrypted and owned by this device. Nothing is created
    /// if the bytes are not a whole Automerge document.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), synkro::Error> {
    /// use synkro::automerge::{AutoCommit, ROOT, transaction::Transactable};
    /// let mut plain = AutoCommit::new();
    /// plain.put(ROOT, "title", "Plans").unwrap();
    /// let repo = synkro::Repo::in_memory().await?;
    /// let doc = repo.import_automerge(&plain.save()).await?;
    /// assert_eq!(doc.get("title")?, Some(serde_json::json!("Plans")));
    /// // And out again, history included.
    /// let mut back = AutoCommit::load(&doc.export_automerge()?).unwrap();
    /// assert_eq!(back.get_heads(), plain.get_heads());
    /// # Ok(()) }
    /// ```
    pub async fn import_automerge(&self, bytes: &[u8]) -> Result<DocHandle, Error> {
        if let Some(answer) = self.at_host(|| HostCall::ImportAutomerge(bytes.to_vec())).await {
            return self.doc_answered(answer).await;
        }
        self.create_owned(|n, rng| n.import_automerge(rng, bytes)).await
    }

    /// Let `relay` store and serve (never read) every document this device
    /// administers, now and when it creates more: grants it the `replicate`
    /// role where it has none and was not revoked. Returns how many
    /// documents were granted now.
    pub async fn replicate_to(&self, relay: MemberId) -> Result<usize, Error> {
        self.inner.add_replicas([relay]);
        let granted = self.inner.call_loaded(|n, rng| n.replicate_to(rng, relay)).await?;
        for doc in &granted {
            self.inner.durable(*doc).await?;
        }
        if !granted.is_empty() {
            info!(%relay, docs = granted.len(), "relay may now replicate");
        }
        Ok(granted.len())
    }

    /// A handle to a document in the repo, loaded from storage first if it
    /// is not in memory yet.
    pub async fn find(&self, doc: &DocId) -> Result<DocHandle, Error> {
        if !self.inner.node().has_doc(doc) {
            return Err(Error::UnknownDocument(*doc));
        }
        // Pinned first, so it stays once loaded.
        let handle = DocHandle::new(self.clone(), *doc);
        self.inner.ensure_loaded(doc).await?;
        Ok(handle)
    }

    /// Facts about a document, from its index entry when it is not in memory.
    pub fn info(&self, doc: &DocId) -> Result<DocInfo, Error> {
        Ok(self.inner.node().info(doc)?)
    }

    /// Join a document with an invitation token. Its content arrives from
    /// the first peer or relay that has it.
    pub async fn join(&self, token: &InviteToken) -> Result<DocHandle, Error> {
        if let Some(answer) = self.at_host(|| HostCall::Join(token.to_string())).await {
            return self.doc_answered(answer).await;
        }
        let doc = self.inner.call_loaded(|n, rng| n.join(rng, token)).await?;
        let handle = DocHandle::new(self.clone(), doc);
        self.inner.durable(doc).await?;
        Ok(handle)
    }

    /// Restore a backup made by [`DocHandle::export`].
    pub async fn import(&self, backup: &[u8], passphrase: &[u8]) -> Result<DocHandle, Error> {
        if let Some(answer) = self
            .at_host(|| HostCall::Restore(backup.to_vec(), passphrase.to_vec()))
            .await
        {
            return self.doc_answered(answer).await;
        }
        let doc = self
            .inner
            .call_loaded(|n, rng| n.import(rng, backup, passphrase))
            .await?;
        let handle = DocHandle::new(self.clone(), doc);
        self.inner.durable(doc).await?;
        Ok(handle)
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
        self.inner.call_checked(|n, rng| n.flush_all(rng))??;
        self.inner
            .settle(|n| match n.storage_state() {
                StorageState::Full if !n.all_durable() => Err(Error::StorageFull),
                _ => Ok(n.all_durable()),
            })
            .await
    }

    /// Whether this repo can store what it receives: [`StorageState::Full`]
    /// while the disk (or quota) is full, until a retry succeeds
    /// ([`Event::Storage`] tells each change).
    pub fn storage_state(&self) -> StorageState {
        self.inner.node().storage_state()
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
            loaded: node.loaded_docs(),
            memory_estimate: node.memory_estimate(),
            stored_bytes: node.stored_bytes(),
            peers: node.peers().len(),
            rejected: node.rejected(),
        }
    }

    /// Where each document stands with `peer`, from its acknowledgements.
    pub fn sync_status(&self, peer: &MemberId) -> SyncStatus {
        self.inner.node().sync_status(peer)
    }

    /// Is `peer` connected, and has it told us what it holds (its `Hello`)?
    /// Until then [`sync_status`](Self::sync_status) cannot know what is
    /// left to exchange with it.
    pub fn greeted(&self, peer: &MemberId) -> bool {
        self.inner.node().greeted(peer)
    }

    /// Wait until `peer` is connected and has told us what it holds, has
    /// durably acknowledged everything this repo holds of every document
    /// the two share, we hold everything it reported, and every joined
    /// document has arrived. Pending edits are sealed first. Fails at once
    /// with [`Error::Refused`] if the peer refused data for a reason
    /// waiting will not change.
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

    /// Seal pending edits, then wait until `done` holds, re-checking after
    /// every round of the driver (a message handled, a write done, a timer
    /// fired). False if `timeout` passed first; `done`'s error at once.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Node) -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        self.flush_all().await?;
        match rt::timeout(timeout, self.inner.settle(&done)).await {
            Some(settled) => settled.map(|()| true),
            None => done(&self.inner.node()),
        }
    }

    /// Start a sync session with `peer` (already authenticated by the
    /// transport); frames for it go to `outgoing`. A new session with the
    /// same peer replaces the old one (whose frames end). If the repo drops
    /// the peer (it sent something forged), it calls `hang_up` and ends the
    /// session's frames. Transports call this, and pass the returned id to
    /// [`deliver`](Self::deliver), [`transmitted`](Self::transmitted) and
    /// [`detach_peer`](Self::detach_peer).
    pub fn attach_peer(
        &self,
        peer: MemberId,
        outgoing: FrameSender,
        hang_up: Option<HangUp>,
    ) -> Result<SessionId, Error> {
        // A repo whose storage failed still serves what it holds.
        let id = self.inner.call_open(|n, _| {
            let id = n.peer_connected(peer);
            // Registered before the driver can see the session's first frame.
            let mut sessions = relock(self.inner.sessions.lock());
            sessions.retain(|_, io| io.peer != peer);
            sessions.insert(
                id,
                SessionIo {
                    peer,
                    frames: outgoing,
                    hang_up,
                },
            );
            id
        })?;
        debug!(%peer, "peer attached");
        Ok(id)
    }

    /// Hand frames received on `session` to the repo, in order. Returns
    /// once what they made the repo store is durable, so a sender faster
    /// than the disk is slowed down rather than buffered. Transports call
    /// this (with several frames when they queue up: one round of writes).
    pub async fn deliver(&self, session: SessionId, frames: &[Vec<u8>]) -> Result<(), Error> {
        // A repo whose storage failed still serves what it holds (the node
        // refuses new data itself).
        let last = self.inner.call_open(|n, rng| {
            let before = n.last_write();
            for frame in frames {
                n.handle_message(rng, session, frame);
            }
            n.last_write().filter(|w| Some(*w) != before)
        })?;
        match last {
            // A write that failed waits for room on the node's own time.
            Some(w) => self.inner.settle_open(|n| Ok(n.settled_through(w))).await,
            None => Ok(()),
        }
    }

    /// Report that `bytes` of frames queued for `session` have been handed
    /// to the connection, so the repo may send more of a large transfer (it
    /// keeps at most [`NodeConfig::send_window`] bytes waiting per peer).
    /// Transports call this after each frame they write.
    ///
    /// [`NodeConfig::send_window`]: synkro_core::NodeConfig::send_window
    pub fn transmitted(&self, session: SessionId, bytes: usize) -> Result<(), Error> {
        self.inner.call_open(|n, _| n.transmitted(session, bytes))
    }

    /// `session` is over (its transport closed). Nothing happens if the
    /// repo ended it itself or a newer session replaced it. Transports call this.
    pub fn detach_peer(&self, session: SessionId) {
        relock(self.inner.sessions.lock()).remove(&session);
        // A failed repo still forgets the peer.
        self.inner.call(|n, _| n.peer_disconnected(session));
    }

    /// Another repo sharing this one's storage (a relay of the same
    /// cluster) wrote `puts` to `doc`'s records: take them as a peer's, and
    /// forward them to the peers in session, without writing them again.
    /// The cluster's watcher calls this.
    pub fn stored_elsewhere(&self, doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), Error> {
        self.inner.call_open(|n, rng| n.stored_elsewhere(rng, doc, puts))
    }
}
