//! The one task per repo that drives its [`Node`]: it tells the node the
//! time, carries out what the node asks (writes, sends, disconnects,
//! events) and sleeps until the node's next timer or the next input.
//!
//! App calls and sessions enter the node directly, under its lock, for as
//! long as the call takes; their effects are queued (events go out at
//! once) and the driver is woken to carry them out. No lock is held across
//! a storage write: each document's writes run in their own task, in order,
//! and their completion comes back to the driver as an input. The node
//! itself holds back the messages that must wait for a write, so sends and
//! acknowledgements of other documents never wait for an unrelated fsync.
//!
//! A write that fails for lack of room (a full disk, a browser's quota) or
//! because a networked store did not confirm it (a NATS outage) is kept,
//! with every write queued after it, and written again when the node asks
//! ([`Effect::RetryWrites`]); meanwhile the node refuses data from peers.
//! Any other failure stops writing for good.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{Either, select};
use synkro_core::{DocId, Effect, Instant, Node, WriteFailure, WriteId};
use synkro_storage::WriteOp;
use tracing::warn;

use crate::repo::{Inner, Rng};
use crate::rt::{self, Spawner};

/// Pauses between attempts to read a document from a store that did not
/// answer: 0.25 s, doubling, the last 8 s (about 16 s in all).
const LOAD_RETRY_FIRST: Duration = Duration::from_millis(250);
const LOAD_RETRY_LAST: Duration = Duration::from_secs(8);

/// Most documents read from storage at once. A peer that needs 100,000
/// documents asks for them all in one go; read all at once, they would all
/// be in memory before the node could unload any.
const MAX_LOADS: usize = 16;

/// What wakes the driver.
pub(crate) enum Input {
    /// A node call queued effects.
    Wake,
    /// A document's writes finished (all of them, or none: then they come
    /// back, to be kept if there may be room later).
    Written {
        doc: DocId,
        result: Result<Vec<WriteId>, (synkro_storage::StorageError, Queue)>,
    },
    /// A document's load is over (read, or given up).
    Loaded,
}

/// The time as the node counts it: since the driver started.
#[derive(Clone, Copy)]
pub(crate) struct Clock(rt::Instant);

impl Clock {
    pub fn start() -> Self {
        Self(rt::Instant::now())
    }

    pub fn now(&self) -> Instant {
        Instant::from_duration(self.0.elapsed())
    }

    /// How long until `at` (zero if it has passed).
    fn until(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.now())
    }
}

/// A document's writes waiting, in order.
pub(crate) type Queue = VecDeque<(WriteId, Vec<WriteOp>)>;

/// The storage work of the driver: writes queued per document and which
/// documents have a write running; documents waiting to be read.
#[derive(Default)]
struct Io {
    queued: HashMap<DocId, Queue>,
    running: HashMap<DocId, ()>,
    /// A write failed for lack of room: nothing is written until the node
    /// asks to retry.
    full: bool,
    /// Documents the node asked to load, waiting for one of the
    /// [`MAX_LOADS`] readers.
    loads: VecDeque<DocId>,
    /// Loads under way.
    loading: usize,
}

/// Run until the repo is gone (every handle dropped closes the inbox).
pub(crate) async fn drive(inner: Weak<Inner>, mut inbox: mpsc::UnboundedReceiver<Input>, spawner: Spawner) {
    let mut io = Io::default();
    let mut rng: Rng = rand_core::UnwrapErr(getrandom::SysRng);
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let (effects, next) = {
                let _core = tracing::debug_span!("core", step = "timers").entered();
                let mut node = inner.node();
                node.handle_timeout(&mut rng, inner.clock.now());
                inner.drain(&mut node);
                (inner.take_deferred(), node.poll_timeout())
            };
            // Writes are queued first and started after: a round's writes
            // of one document (a join's claim and local state, the records
            // of several messages) become one storage write and one sync.
            let mut to_write = Vec::new();
            for effect in effects {
                if let Some(doc) = execute(&inner, &mut io, &spawner, effect) {
                    to_write.push(doc);
                }
            }
            for doc in to_write {
                start_writer(&inner, &mut io, &spawner, doc);
            }
            inner.changed.notify(usize::MAX);
            next
        };
        let input = match next {
            Some(at) => {
                let wait = inner.upgrade().map_or(Duration::ZERO, |i| i.clock.until(at));
                match select(inbox.next(), Box::pin(rt::sleep(wait))).await {
                    Either::Left((input, _)) => input,
                    Either::Right(((), _)) => Some(Input::Wake),
                }
            }
            None => inbox.next().await,
        };
        let Some(input) = input else { return };
        let Some(inner) = inner.upgrade() else { return };
        on_input(&inner, &mut io, &spawner, input);
        // Take whatever else is waiting before the next round.
        while let Ok(input) = inbox.try_recv() {
            on_input(&inner, &mut io, &spawner, input);
        }
    }
}

fn on_input(inner: &Arc<Inner>, io: &mut Io, spawner: &Spawner, input: Input) {
    match input {
        Input::Wake => {}
        Input::Loaded => {
            io.loading -= 1;
            start_loads(inner, io, spawner);
        }
        Input::Written { doc, result } => {
            io.running.remove(&doc);
            let _core = tracing::debug_span!("core", step = "persisted").entered();
            let mut node = inner.node();
            match result {
                Ok(writes) => {
                    for w in writes {
                        node.persisted(w);
                    }
                }
                Err((e, failed)) if e.is_transient() => {
                    warn!(%doc, error = %e, "storage did not take the write; it is kept and retried");
                    io.full = true;
                    let queue = io.queued.entry(doc).or_default();
                    for (w, ops) in failed.into_iter().rev() {
                        queue.push_front((w, ops));
                    }
                    // Those queued meanwhile wait too.
                    for (w, _) in queue.iter() {
                        node.persist_failed(*w, WriteFailure::Full);
                    }
                }
                Err((e, failed)) => {
                    for (w, _) in failed {
                        node.persist_failed(w, WriteFailure::Failed);
                    }
                    inner.storage_failed(doc, e);
                }
            }
            inner.drain(&mut node);
            drop(node);
            start_writer(inner, io, spawner, doc);
        }
    }
}

/// Carries out `effect`; a write is only queued, and its document returned
/// for the caller to start writing.
fn execute(inner: &Arc<Inner>, io: &mut Io, spawner: &Spawner, effect: Effect) -> Option<DocId> {
    match effect {
        Effect::Persist {
            write,
            doc,
            puts,
            deletes,
        } => {
            let ops = puts
                .into_iter()
                .map(|(key, value)| WriteOp::Put { key, value })
                .chain(deletes.into_iter().map(|key| WriteOp::Delete { key }))
                .collect();
            io.queued.entry(doc).or_default().push_back((write, ops));
            if io.full {
                // Behind a write that failed for lack of room: it would too.
                let mut node = inner.node();
                node.persist_failed(write, WriteFailure::Full);
                inner.drain(&mut node);
            }
            return Some(doc);
        }
        Effect::RetryWrites => {
            io.full = false;
            let docs: Vec<DocId> = io.queued.keys().copied().collect();
            for doc in docs {
                start_writer(inner, io, spawner, doc);
            }
        }
        Effect::Send { session, message, .. } => inner.send(session, message),
        Effect::Disconnect { session, peer, reason } => {
            warn!(%peer, %reason, "disconnecting peer");
            inner.hang_up(session);
        }
        Effect::Event(event) => inner.emit(event),
        // Handed over as the node is drained (see `drain_effects`).
        Effect::ForHost { .. } => {}
        Effect::Load { doc } => {
            io.loads.push_back(doc);
            start_loads(inner, io, spawner);
        }
    }
    None
}

/// Start reading queued documents while fewer than [`MAX_LOADS`] are read.
fn start_loads(inner: &Arc<Inner>, io: &mut Io, spawner: &Spawner) {
    while io.loading < MAX_LOADS
        && let Some(doc) = io.loads.pop_front()
    {
        io.loading += 1;
        let weak = Arc::downgrade(inner);
        spawner.spawn(async move {
            // A store that did not answer (a cluster electing a leader)
            // is asked again a few times before the load counts as failed.
            let mut pause = LOAD_RETRY_FIRST;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let loaded = inner.storage.load(&doc.0).await;
                match loaded {
                    Err(e) if e.is_transient() && pause <= LOAD_RETRY_LAST => {
                        warn!(%doc, error = %e, "a document could not be read yet; trying again");
                    }
                    loaded => {
                        // A failure is logged and told to the node; nothing else to do here.
                        drop(inner.finish_load(doc, loaded));
                        return inner.input(Input::Loaded);
                    }
                }
                drop(inner);
                rt::sleep(pause).await;
                pause *= 2;
            }
        });
    }
}

/// Start writing `doc`'s queued writes, unless a write of it runs already:
/// one storage write for all that queued up meanwhile, reported at once.
fn start_writer(inner: &Arc<Inner>, io: &mut Io, spawner: &Spawner, doc: DocId) {
    if io.running.contains_key(&doc) || io.full || inner.has_failed() {
        return;
    }
    let Some(queue) = io.queued.remove(&doc).filter(|q| !q.is_empty()) else {
        return;
    };
    io.running.insert(doc, ());
    // Kept until the write succeeds: a full disk's writes are retried.
    let ops: Vec<WriteOp> = queue.iter().flat_map(|(_, ops)| ops.iter().cloned()).collect();
    let inner = inner.clone();
    let span = tracing::debug_span!("write", %doc, writes = queue.len(), ops = ops.len());
    spawner.spawn(tracing::Instrument::instrument(
        async move {
            let result = match inner.storage.write(&doc.0, ops).await {
                Ok(()) => Ok(queue.into_iter().map(|(w, _)| w).collect()),
                Err(e) => Err((e, queue)),
            };
            inner.input(Input::Written { doc, result });
        },
        span,
    ));
}

/// Drain `node`'s effects: events go to the app and a guest's edits to
/// the host now, the rest to the driver.
pub(crate) fn drain_effects(
    node: &mut Node,
    mut emit: impl FnMut(synkro_core::Event),
    mut for_host: impl FnMut(DocId, Vec<Vec<u8>>),
    deferred: &mut Vec<Effect>,
) {
    while let Some(e) = node.poll_effect() {
        match e {
            Effect::Event(ev) => emit(ev),
            Effect::ForHost { doc, changes } => for_host(doc, changes),
            other => deferred.push(other),
        }
    }
}
