//! [`DocHandle`]: one document of a [`Repo`].

use crate::json::{self, DocPath};
use crate::repo::HostCall;
use crate::{Error, Events, RecvError, Repo};
use serde_json::Value as Json;
use synkro_core::automerge::{self, AutoCommit};
use synkro_core::{DocId, DocInfo, Event, InviteToken, MemberId, Role};

/// A handle to one document. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), synkro::Error> {
/// use synkro::{Repo, automerge::{ROOT, ObjType, transaction::Transactable}};
/// let repo = Repo::in_memory().await?;
/// let doc = repo.create().await?;
/// let mut changes = doc.subscribe();
/// doc.change(|d| {
///     let todos = d.put_object(ROOT, "todos", ObjType::List)?;
///     d.insert(&todos, 0, "buy milk")
/// })?;
/// let patches = changes.recv().await.unwrap();
/// assert!(!patches.is_empty());
/// assert_eq!(doc.to_json()?, serde_json::json!({"todos": ["buy milk"]}));
/// # Ok(()) }
/// ```
///
/// While a handle (or a clone of it) lives, its document stays in memory;
/// once the last is dropped it may be unloaded under the repo's memory
/// budget ([`NodeConfig::memory_budget`](synkro_core::NodeConfig::memory_budget)),
/// and [`Repo::find`](crate::Repo::find) loads it again.
#[derive(Debug)]
pub struct DocHandle {
    pub(crate) repo: Repo,
    pub(crate) id: DocId,
}

impl Clone for DocHandle {
    fn clone(&self) -> Self {
        Self::new(self.repo.clone(), self.id)
    }
}

impl Drop for DocHandle {
    fn drop(&mut self) {
        self.repo.inner.call(|n, _| n.unpin(&self.id));
    }
}

/// Patches of one document's changes, from [`DocHandle::subscribe`].
pub struct DocChanges {
    doc: DocId,
    rx: Events<Event>,
}

impl DocChanges {
    /// The next change's Automerge patches (local or remote). `None` once
    /// the repo is gone. If this receiver falls far behind, skipped changes
    /// are reported as one empty patch list: re-read the document then.
    pub async fn recv(&mut self) -> Option<Vec<automerge::Patch>> {
        loop {
            match self.rx.recv().await {
                Ok(Event::DocChanged { doc, patches, .. }) if doc == self.doc => return Some(patches),
                Ok(_) => {}
                Err(RecvError::Overflowed(_)) => return Some(Vec::new()),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl DocChanges {
    /// The next change's patches if one is waiting, without waiting
    /// (`Ok(None)` if none is). `Err(Lagged)` if this receiver fell so far
    /// behind that changes were skipped: re-read the whole document then.
    pub fn try_recv(&mut self) -> Result<Option<Vec<automerge::Patch>>, Lagged> {
        loop {
            match self.rx.try_recv() {
                Ok(Event::DocChanged { doc, patches, .. }) if doc == self.doc => return Ok(Some(patches)),
                Ok(_) => {}
                Err(async_broadcast::TryRecvError::Overflowed(_)) => return Err(Lagged),
                Err(_) => return Ok(None),
            }
        }
    }
}

/// Changes were skipped because a [`DocChanges`] receiver fell behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged;

/// Ephemeral messages of one document, from [`DocHandle::ephemeral`].
pub struct EphemeralMessages {
    doc: DocId,
    rx: Events<Event>,
}

impl EphemeralMessages {
    /// The next message and its (verified) author. `None` once the repo is
    /// gone. Messages missed while this receiver lagged far behind are
    /// skipped: presence is only worth its latest value.
    pub async fn recv(&mut self) -> Option<(MemberId, Vec<u8>)> {
        loop {
            match self.rx.recv().await {
                Ok(Event::Ephemeral { doc, from, data }) if doc == self.doc => return Some((from, data)),
                Ok(_) | Err(RecvError::Overflowed(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl DocHandle {
    pub(crate) fn new(repo: Repo, id: DocId) -> Self {
        repo.inner.node().pin(&id);
        Self { repo, id }
    }

    /// The document id.
    pub fn id(&self) -> DocId {
        self.id
    }

    /// Read the document.
    pub fn read<T>(&self, f: impl FnOnce(&AutoCommit) -> T) -> Result<T, Error> {
        Ok(self.repo.inner.node().read(&self.id, f)?)
    }

    /// The document's heads (its latest changes' hashes): two replicas with
    /// equal heads hold the same document.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), synkro::Error> {
    /// let repo = synkro::Repo::in_memory().await?;
    /// let doc = repo.create().await?;
    /// let before = doc.heads()?;
    /// doc.set("title", &serde_json::json!("Plans"))?;
    /// assert_ne!(doc.heads()?, before);
    /// # Ok(()) }
    /// ```
    pub fn heads(&self) -> Result<Vec<automerge::ChangeHash>, Error> {
        Ok(self.repo.inner.node().heads(&self.id)?)
    }

    /// Change the document. Applied at once; sealed, stored and sent at
    /// once too, unless the document was sealed less than a flush window
    /// ago: then a window later, with the edits made meanwhile (or at
    /// [`flush`](Self::flush)). If `f` fails,
    /// nothing it did is kept.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, automerge::AutomergeError>,
    ) -> Result<T, Error> {
        self.change_with(None, f)
    }

    /// [`change`](Self::change), with a message kept in the document's
    /// history (see [`history`](Self::history)). Every change is stamped
    /// with this device's clock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), synkro::Error> {
    /// use synkro::automerge::{ROOT, transaction::Transactable};
    /// let repo = synkro::Repo::in_memory().await?;
    /// let doc = repo.create().await?;
    /// doc.change_with(Some("Name the trip"), |d| d.put(ROOT, "title", "Lisbon"))?;
    /// let last = doc.history()?.pop().unwrap();
    /// assert_eq!(last.message.as_deref(), Some("Name the trip"));
    /// assert_eq!(last.author, Some(repo.member_id()));
    /// assert!(last.time > 0);
    /// # Ok(()) }
    /// ```
    pub fn change_with<T>(
        &self,
        message: Option<&str>,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, automerge::AutomergeError>,
    ) -> Result<T, Error> {
        let _edit = tracing::debug_span!("edit", doc = %self.id).entered();
        let time = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let stamped = |d: &mut AutoCommit| {
            let out = f(d)?;
            if automerge::transaction::Transactable::pending_ops(d) > 0 {
                let mut options = automerge::transaction::CommitOptions::default().with_time(time);
                if let Some(m) = message {
                    options = options.with_message(m);
                }
                d.commit_with(options);
            }
            Ok(out)
        };
        Ok(self.repo.inner.call_checked(|n, _| n.change(&self.id, stamped))??)
    }

    /// Every change of the document, oldest first: hash, the actor (one
    /// per device and document) that made it, time and message.
    pub fn history(&self) -> Result<Vec<synkro_core::ChangeInfo>, Error> {
        Ok(self.repo.inner.call_checked(|n, _| n.history(&self.id))??)
    }

    /// The document in Automerge's own save format, history included:
    /// what `Automerge.load()` (JS) or `AutoCommit::load` opens. Plain,
    /// unencrypted bytes: they leave synkro's access control.
    pub fn export_automerge(&self) -> Result<Vec<u8>, Error> {
        Ok(self.repo.inner.call_checked(|n, _| n.export_automerge(&self.id))??)
    }

    /// Seal pending edits now and wait until they are durable locally.
    pub async fn flush(&self) -> Result<(), Error> {
        self.repo.inner.call_checked(|n, rng| n.flush(rng, &self.id))??;
        self.repo.inner.durable(self.id).await
    }

    /// Wait until `peer` (a relay, say) has acknowledged storing everything
    /// this device holds of the document, pending edits included (they are
    /// sealed first). The acknowledgement is sent only after the peer's
    /// write is durable.
    pub async fn wait_durable_on(&self, peer: MemberId, timeout: std::time::Duration) -> Result<(), Error> {
        let doc = self.id;
        let done = |n: &synkro_core::Node| match n.refusal(&peer, &doc) {
            Some(reason) if !reason.is_transient() => Err(Error::Refused {
                peer,
                doc,
                reason: reason.clone(),
            }),
            _ => Ok(n.durable_on(&peer, &doc)),
        };
        if self.repo.wait_until(timeout, done).await? {
            return Ok(());
        }
        Err(Error::NotSynced {
            peer,
            unsynced: 1,
            pending: 0,
        })
    }

    /// Send `data` (presence, a cursor, "typing…"; at most
    /// [`MAX_EPHEMERAL_LEN`](synkro_core::MAX_EPHEMERAL_LEN) bytes) to the
    /// members of this document connected now, directly or through a relay.
    /// Sealed and signed like edits, but never stored: whoever is offline
    /// misses it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), synkro::Error> {
    /// use synkro::{Repo, Role};
    /// let (alice, bob) = (Repo::in_memory().await?, Repo::in_memory().await?);
    /// let doc = alice.create().await?;
    /// let bobs = bob.join(&doc.share(Role::Read).await?).await?;
    /// let mut presence = bobs.ephemeral();
    /// let _link = synkro::link::connect(&alice, &bob).await?;
    /// while bobs.get("").is_err() {
    ///     tokio::time::sleep(std::time::Duration::from_millis(5)).await; // joined: wait for the keys
    /// }
    /// doc.send_ephemeral(br#"{"cursor": 3}"#).await?;
    /// let (from, data) = presence.recv().await.unwrap();
    /// assert_eq!((from, data.as_slice()), (alice.member_id(), &br#"{"cursor": 3}"#[..]));
    /// # Ok(()) }
    /// ```
    pub async fn send_ephemeral(&self, data: &[u8]) -> Result<(), Error> {
        // A guest tab's go out through the tab holding the connections.
        #[cfg(target_arch = "wasm32")]
        if let Some(tabs) = self.repo.inner.guest_tabs() {
            tabs.send_presence(self.id, data);
            return Ok(());
        }
        self.repo
            .inner
            .call_checked(|n, rng| n.send_ephemeral(rng, &self.id, data))??;
        Ok(())
    }

    /// Follow this document's ephemeral messages from other members.
    pub fn ephemeral(&self) -> EphemeralMessages {
        EphemeralMessages {
            doc: self.id,
            rx: self.repo.doc_events(self.id),
        }
    }

    /// Follow this document's changes.
    pub fn subscribe(&self) -> DocChanges {
        DocChanges {
            doc: self.id,
            rx: self.repo.doc_events(self.id),
        }
    }

    /// The whole document as JSON.
    pub fn to_json(&self) -> Result<Json, Error> {
        self.read(json::whole)
    }

    /// The JSON value at a slash path like `meta/title` (`None` if absent).
    pub fn get(&self, path: &str) -> Result<Option<Json>, Error> {
        let path = DocPath::parse(path)?;
        self.read(|d| json::get(d, &path))?
    }

    /// Set a slash path to a JSON value, creating missing maps on the way.
    pub fn set(&self, path: &str, value: &Json) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::set(d, &path, value))
    }

    /// Insert a JSON value into the list at `path` before `index`.
    pub fn insert(&self, path: &str, index: usize, value: &Json) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::insert(d, &path, index, value))
    }

    /// Make `path` a collaborative text holding `text` (see [`splice_text`](Self::splice_text)).
    pub fn set_text(&self, path: &str, text: &str) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::set_text(d, &path, text))
    }

    /// Edit the text at `path`: delete `delete` characters at `index` and
    /// insert `insert`. Concurrent edits merge character by character.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), synkro::Error> {
    /// let doc = synkro::Repo::in_memory().await?.create().await?;
    /// doc.set_text("note", "hello")?;
    /// doc.splice_text("note", 0, 1, "H")?;
    /// assert_eq!(doc.get("note")?, Some(serde_json::json!("Hello")));
    /// # Ok(()) }
    /// ```
    pub fn splice_text(&self, path: &str, index: usize, delete: usize, insert: &str) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::splice_text(d, &path, index, delete, insert))
    }

    /// Add `by` to the counter at `path` (created at 0 if absent).
    pub fn increment(&self, path: &str, by: i64) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::increment(d, &path, by))
    }

    /// Remove what a slash path names.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let path = DocPath::parse(path)?;
        self.json_change(|d| json::delete(d, &path))
    }

    fn json_change(&self, f: impl FnOnce(&mut AutoCommit) -> Result<(), Error>) -> Result<(), Error> {
        let mut outcome = Ok(());
        // Run inside `change` so a failed path leaves no partial edit.
        let r = self.change(|d| match f(d) {
            Ok(()) => Ok(()),
            Err(e) => {
                outcome = Err(e);
                Err(automerge::AutomergeError::Fail)
            }
        });
        outcome?;
        r
    }

    /// Members, roles, version vector and size.
    pub fn info(&self) -> Result<DocInfo, Error> {
        Ok(self.repo.inner.node().info(&self.id)?)
    }

    /// Set this device's local name for the document.
    pub async fn set_name(&self, name: Option<String>) -> Result<(), Error> {
        if let Some(answer) = self.repo.at_host(|| HostCall::SetName(self.id, name.clone())).await {
            return answer.map(drop);
        }
        self.repo
            .inner
            .call_checked(|n, rng| n.set_name(rng, &self.id, name))??;
        self.repo.inner.durable(self.id).await
    }

    /// Create an invitation with `role` (admins only).
    pub async fn share(&self, role: Role) -> Result<InviteToken, Error> {
        if let Some(answer) = self.repo.at_host(|| HostCall::Share(self.id, role)).await {
            return answer?
                .parse()
                .map_err(|e| Error::at_host(format!("answered with no invitation: {e}")));
        }
        let token = self.repo.inner.call_checked(|n, rng| n.share(rng, &self.id, role))??;
        self.repo.inner.durable(self.id).await?;
        Ok(token)
    }

    /// Give `member` a role that needs no key, e.g. [`Role::Replicate`] for a relay.
    pub async fn grant_replica(&self, member: MemberId) -> Result<(), Error> {
        self.repo
            .inner
            .call_checked(|n, rng| n.grant(rng, &self.id, member, None, Role::Replicate))??;
        self.repo.inner.durable(self.id).await
    }

    /// Remove a member and rotate the document key (admins only).
    pub async fn revoke(&self, member: MemberId) -> Result<(), Error> {
        if let Some(answer) = self.repo.at_host(|| HostCall::Revoke(self.id, member)).await {
            return answer.map(drop);
        }
        self.repo
            .inner
            .call_checked(|n, rng| n.revoke(rng, &self.id, member))??;
        self.repo.inner.durable(self.id).await
    }

    /// An encrypted backup of the document (see [`Repo::import`]).
    pub async fn export(&self, passphrase: &[u8]) -> Result<Vec<u8>, Error> {
        let backup = self
            .repo
            .inner
            .call_checked(|n, rng| n.export(rng, &self.id, passphrase))??;
        self.repo.inner.durable(self.id).await?;
        Ok(backup)
    }
}
