//! One edit's way through a repo: it enters the core once per step (the
//! edit; the flush window closing, which seals it; the write reported
//! durable), and no lock is held while storage writes, so other documents'
//! sends and acknowledgements never wait for an unrelated fsync.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use synkro::{DeviceIdentity, Repo, RepoConfig};
use synkro_storage::{Loaded, MemoryStorage, Namespace, Storage, StorageError, WriteOp};
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span's name and its parent's.
type Opened = (String, Option<String>);

/// Records every span opened.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Opened>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name().to_owned());
        if let Ok(mut spans) = self.0.lock() {
            spans.push((attrs.metadata().name().to_owned(), parent));
        }
    }
}

/// A memory store that, in the middle of every write, asks the repo for
/// its stats from another thread: if a lock of the repo were held across
/// the write, that call would wait for it.
struct Probe {
    store: MemoryStorage,
    repo: Arc<OnceLock<Repo>>,
    blocked: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Storage for Probe {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        if let Some(repo) = self.repo.get().cloned() {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(repo.stats());
            });
            if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                self.blocked
                    .lock()
                    .unwrap()
                    .push("the repo was locked during a write".into());
            }
        }
        self.store.write(ns, ops).await
    }
    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        self.store.load(ns).await
    }
    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        self.store.namespaces().await
    }
    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        self.store.remove(ns).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_edit_enters_the_core_once_per_step_and_no_lock_is_held_over_a_write() -> anyhow::Result<()> {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let cell = Arc::new(OnceLock::new());
    let blocked = Arc::new(Mutex::new(Vec::new()));
    let storage = Arc::new(Probe {
        store: MemoryStorage::new(),
        repo: cell.clone(),
        blocked: blocked.clone(),
    });
    let identity = DeviceIdentity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    let repo = Repo::open_with(storage, identity, RepoConfig::default()).await?;
    let _ = cell.set(repo.clone());
    let doc = repo.create().await?;
    doc.flush().await?;

    spans.0.lock().unwrap().clear();
    doc.set("title", &json!("one edit"))?;
    // The flush window closes on its own; the edit is sealed and written.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !doc.info().is_ok_and(|i| i.vv.get(&repo.member_id()) == 1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    doc.flush().await?; // durable, and nothing more to seal

    let spans = spans.0.lock().unwrap().clone();
    let core_under = |parent: &str| {
        spans
            .iter()
            .filter(|(n, p)| n == "core" && p.as_deref() == Some(parent))
            .count()
    };
    println!("spans of one edit: {spans:?}");
    assert_eq!(core_under("edit"), 1, "the edit enters the core once: {spans:?}");
    assert!(
        spans.iter().any(|(n, _)| n == "write"),
        "the edit was written: {spans:?}"
    );
    assert!(
        !spans.iter().any(|(n, p)| n == "core" && p.as_deref() == Some("write")),
        "the write does not enter the core: {spans:?}"
    );
    assert_eq!(*blocked.lock().unwrap(), Vec::<String>::new());
    Ok(())
}
