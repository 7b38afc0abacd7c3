//! [`Inner`], the state a repo's handles and its driver share: calls into
//! the node (loading documents they need first), waiting for it to settle,
//! and the effects that leave it (events, sends, hang-ups, storage failures).

use std::sync::MutexGuard;

use synkro_core::CoreError;
use synkro_storage::{Loaded, StorageError};

use super::*;

impl Inner {
    pub(crate) fn node(&self) -> MutexGuard<'_, Node> {
        relock(self.node.lock())
    }

    /// Run a node call; its events go to the app now, its other effects to
    /// the driver, which is woken.
    pub(crate) fn call<T>(&self, f: impl FnOnce(&mut Node, &mut Rng) -> T) -> T {
        let out = {
            let _core = tracing::debug_span!("core").entered();
            let mut node = self.node();
            let out = f(&mut node, &mut UnwrapErr(SysRng));
            self.drain(&mut node);
            out
        };
        self.input(Input::Wake);
        out
    }

    /// [`call_checked`](Self::call_checked) for a call that needs a
    /// document in memory: it is loaded and the call made again.
    pub(crate) async fn call_loaded<T>(
        &self,
        f: impl Fn(&mut Node, &mut Rng) -> Result<T, CoreError>,
    ) -> Result<T, Error> {
        loop {
            match self.call_checked(&f)? {
                Err(CoreError::NotLoaded(doc)) => self.ensure_loaded(&doc).await?,
                other => return Ok(other?),
            }
        }
    }

    /// Make sure `doc`, if held, is in memory: read its records and load
    /// them (a no-op if it is loaded already or meanwhile).
    pub(crate) async fn ensure_loaded(&self, doc: &DocId) -> Result<(), Error> {
        {
            let node = self.node();
            if node.is_loaded(doc) || !node.has_doc(doc) {
                return Ok(());
            }
        }
        let loaded = self.storage.load(&doc.0).await;
        self.finish_load(*doc, loaded)
    }

    /// Hand what storage read of `doc` to the node (or tell it the read
    /// failed), then run what waited for it.
    pub(crate) fn finish_load(&self, doc: DocId, loaded: Result<Loaded, StorageError>) -> Result<(), Error> {
        let _span = tracing::debug_span!("load", %doc).entered();
        match loaded {
            Ok(loaded) => {
                let problems = self.call(|n, rng| load_into(n, rng, doc, loaded))?;
                for p in &problems {
                    warn!(%doc, problem = %p.problem, "a document loaded with damage skipped");
                }
                relock(self.problems.lock()).extend(problems);
                Ok(())
            }
            Err(e) => {
                warn!(%doc, error = %e, "a document could not be read");
                self.call(|n, _| n.load_failed(&doc));
                Err(e.into())
            }
        }
    }

    /// [`call`](Self::call), refused once storage has failed.
    pub(crate) fn call_checked<T>(&self, f: impl FnOnce(&mut Node, &mut Rng) -> T) -> Result<T, Error> {
        self.check()?;
        Ok(self.call(f))
    }

    /// [`call`](Self::call), refused once the repo is closed only: for
    /// sessions, which a repo whose storage failed still serves.
    pub(crate) fn call_open<T>(&self, f: impl FnOnce(&mut Node, &mut Rng) -> T) -> Result<T, Error> {
        self.check_open()?;
        Ok(self.call(f))
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.is_closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check(&self) -> Result<(), Error> {
        self.check_open()?;
        match relock(self.failed.lock()).clone() {
            Some(reason) => Err(Error::Failed(reason)),
            None => Ok(()),
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        relock(self.failed.lock()).is_some()
    }

    /// Queue `node`'s effects (events go out at once).
    pub(crate) fn drain(&self, node: &mut Node) {
        let mut deferred = relock(self.deferred.lock());
        crate::driver::drain_effects(node, |e| self.emit(e), |d, c| self.for_host(d, c), &mut deferred);
    }

    /// A guest's edits, to the host tab at once (a guest's flush hands
    /// them over before it returns).
    fn for_host(&self, doc: DocId, changes: Vec<Vec<u8>>) {
        #[cfg(target_arch = "wasm32")]
        if let Some(tabs) = self.guest_tabs() {
            return tabs.send_edits(doc, changes);
        }
        tracing::warn!(%doc, changes = changes.len(), "a guest's edits have no host to go to; they stay in memory only");
    }

    /// This tab's link to the others, if it is a guest of a browser repo.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn guest_tabs(&self) -> Option<std::rc::Rc<crate::home::tabs::Tabs>> {
        match relock(self.home.lock()).as_ref() {
            Some(super::Home::Browser(h)) if h.tabs.role() == crate::home::tabs::TabRole::Guest => Some(h.tabs.clone()),
            _ => None,
        }
    }

    pub(crate) fn take_deferred(&self) -> Vec<Effect> {
        std::mem::take(&mut *relock(self.deferred.lock()))
    }

    pub(crate) fn input(&self, input: Input) {
        let _ = self.driver.unbounded_send(input);
    }

    /// Relays that get the `replicate` role on what this device administers.
    pub(crate) fn add_replicas(&self, relays: impl IntoIterator<Item = MemberId>) {
        let mut replicas = relock(self.replicas.lock());
        for relay in relays {
            if !replicas.contains(&relay) {
                replicas.push(relay);
            }
        }
    }

    /// Is `peer` one of [`add_replicas`](Self::add_replicas)'s relays?
    pub(crate) fn is_replica(&self, peer: &MemberId) -> bool {
        relock(self.replicas.lock()).contains(peer)
    }

    /// Wait until `done` holds for the node (re-checked after each round of
    /// the driver), or storage fails.
    pub(crate) async fn settle(&self, done: impl Fn(&Node) -> Result<bool, Error>) -> Result<(), Error> {
        self.settle_with(Self::check, done).await
    }

    /// [`settle`](Self::settle) for sessions: ends early only if the repo closes.
    pub(crate) async fn settle_open(&self, done: impl Fn(&Node) -> Result<bool, Error>) -> Result<(), Error> {
        self.settle_with(Self::check_open, done).await
    }

    async fn settle_with(
        &self,
        check: impl Fn(&Self) -> Result<(), Error>,
        done: impl Fn(&Node) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        loop {
            check(self)?;
            if done(&self.node())? {
                return Ok(());
            }
            let listener = self.changed.listen();
            check(self)?;
            if done(&self.node())? {
                return Ok(());
            }
            listener.await;
        }
    }

    /// Wait until everything held of `doc` is durable; [`Error::StorageFull`]
    /// at once if a write of it waits for room.
    pub(crate) async fn durable(&self, doc: DocId) -> Result<(), Error> {
        let settled = |n: &Node| stored(n, &doc, false);
        self.settle(settled).await?;
        // A guest tab's edits are durable once the host has stored them, or,
        // if this tab became the host meanwhile, once it has stored them.
        #[cfg(target_arch = "wasm32")]
        if let Some(tabs) = self.guest_tabs()
            && tabs.until_stored(doc).await
        {
            self.settle(settled).await?;
        }
        Ok(())
    }

    /// Wait until every edit of `doc` is sealed (no flush window left to
    /// close) and durable; [`Error::StorageFull`] as [`durable`](Self::durable).
    #[cfg(target_arch = "wasm32")]
    pub(crate) async fn sealed_and_durable(&self, doc: DocId) -> Result<(), Error> {
        self.settle(|n| stored(n, &doc, true)).await
    }

    /// Publish an event to the repo's followers and, for a change or a
    /// presence message, to its document's.
    pub(crate) fn emit(&self, event: Event) {
        if let Event::DocChanged { doc, .. } | Event::Ephemeral { doc, .. } = &event {
            self.doc_events.send(doc, || event.clone());
        }
        self.events.send(event);
    }

    /// Hand `message` to `session`'s transport.
    pub(crate) fn send(&self, session: SessionId, message: Vec<u8>) {
        if let Some(io) = relock(self.sessions.lock()).get(&session) {
            let _ = io.frames.unbounded_send(message);
        }
    }

    /// The node dropped `session`: close its frames and hang up on its peer.
    pub(crate) fn hang_up(&self, session: SessionId) {
        if let Some(io) = relock(self.sessions.lock()).remove(&session)
            && let Some(hang_up) = io.hang_up
        {
            hang_up();
        }
    }

    /// A write of `doc` failed: what the node holds is no longer what is on
    /// disk, so the repo stops accepting changes rather than acknowledge
    /// them to peers.
    pub(crate) fn storage_failed(&self, doc: DocId, e: synkro_storage::StorageError) {
        warn!(%doc, error = %e, "storage write failed; repo stops accepting changes");
        *relock(self.failed.lock()) = Some(Arc::new(e));
        self.changed.notify(usize::MAX);
    }
}

/// Load `doc` from its records into `node`: the damage storage skipped and
/// the records that failed verification, as problems.
pub(super) fn load_into(node: &mut Node, rng: &mut Rng, doc: DocId, loaded: Loaded) -> Result<Vec<LoadProblem>, Error> {
    let mut problems = storage_problems(doc, &loaded.problems);
    let report = node.load_doc(rng, doc, loaded.records)?;
    for p in report.problems {
        warn!(%doc, problem = %p, "record failed verification and was skipped");
        problems.push(LoadProblem { doc, problem: p });
    }
    Ok(problems)
}

/// Damage storage found and skipped in `doc`'s records, logged.
pub(super) fn storage_problems(doc: DocId, found: &[synkro_storage::Problem]) -> Vec<LoadProblem> {
    found
        .iter()
        .map(|p| {
            warn!(%doc, problem = %p, "damaged storage skipped");
            LoadProblem {
                doc,
                problem: p.to_string(),
            }
        })
        .collect()
}

/// Whether everything of `doc` is durable (and, with `sealed`, no edit
/// waits to be sealed); [`Error::StorageFull`] if a write of it waits for room.
fn stored(n: &Node, doc: &DocId, sealed: bool) -> Result<bool, Error> {
    if n.write_failed(doc) {
        return Err(Error::StorageFull);
    }
    Ok(n.is_durable(doc) && !(sealed && n.is_dirty(doc)))
}
