//! An in-process transport: two repos in one process, connected by
//! channels. It speaks the same frames a network transport carries, so
//! everything above it is exercised for real.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Repo};

/// A live in-process connection between two repos; dropping it (or
/// [`close`](Link::close)) disconnects them.
pub struct Link {
    a: Repo,
    b: Repo,
    tasks: Vec<JoinHandle<()>>,
}

/// Connect two repos in the same process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), synkro::Error> {
/// use synkro::{Repo, Role};
/// let (alice, bob) = (Repo::in_memory().await?, Repo::in_memory().await?);
/// let doc = alice.create().await?;
/// doc.set("greeting", &serde_json::json!("hello"))?;
/// let token = doc.share(Role::Read).await?;
/// let bobs = bob.join(&token).await?;
/// let _link = synkro::link::connect(&alice, &bob).await?;
/// while bobs.get("greeting").ok().flatten().is_none() {
///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
/// }
/// assert_eq!(bobs.get("greeting")?, Some(serde_json::json!("hello")));
/// # Ok(()) }
/// ```
pub async fn connect(a: &Repo, b: &Repo) -> Result<Link, Error> {
    let (tx_ab, rx_ab) = mpsc::unbounded_channel();
    let (tx_ba, rx_ba) = mpsc::unbounded_channel();
    let tasks = vec![pump(rx_ab, a.clone(), b.clone()), pump(rx_ba, b.clone(), a.clone())];
    a.attach_peer(b.member_id(), tx_ab).await?;
    b.attach_peer(a.member_id(), tx_ba).await?;
    Ok(Link {
        a: a.clone(),
        b: b.clone(),
        tasks,
    })
}

/// Carry frames `from` → `to`; a frame counts as transmitted once delivered.
fn pump(mut rx: mpsc::UnboundedReceiver<Vec<u8>>, sender: Repo, to: Repo) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (from, to_id) = (sender.member_id(), to.member_id());
        while let Some(frame) = rx.recv().await {
            if to.deliver(from, &frame).await.is_err() {
                break;
            }
            if sender.transmitted(to_id, frame.len()).await.is_err() {
                break;
            }
        }
        // The sender side went away (closed link or a Disconnect effect).
        to.detach_peer(from).await;
    })
}

impl Link {
    /// Disconnect both sides and wait until they have noticed.
    pub async fn close(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.a.detach_peer(self.b.member_id()).await;
        self.b.detach_peer(self.a.member_id()).await;
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
