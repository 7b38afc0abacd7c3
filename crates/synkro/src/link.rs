//! An in-process transport: two repos in one process, connected by
//! channels. It speaks the same frames a network transport carries, so
//! everything above it is exercised for real.

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{AbortHandle, Abortable};

use crate::rt::Spawner;
use crate::{Error, Repo, SessionId};

/// A live in-process connection between two repos; dropping it (or
/// [`close`](Link::close)) disconnects them.
pub struct Link {
    a: (Repo, SessionId),
    b: (Repo, SessionId),
    tasks: Vec<(AbortHandle, oneshot::Receiver<()>)>,
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
    let (tx_ab, rx_ab) = mpsc::unbounded();
    let (tx_ba, rx_ba) = mpsc::unbounded();
    // A side that drops the other closes its frames; the other side's
    // pump then ends and detaches: nothing more to hang up.
    let at_a = a.attach_peer(b.member_id(), tx_ab, None)?;
    let at_b = b.attach_peer(a.member_id(), tx_ba, None)?;
    let tasks = vec![
        pump(rx_ab, (a.clone(), at_a), (b.clone(), at_b)),
        pump(rx_ba, (b.clone(), at_b), (a.clone(), at_a)),
    ];
    Ok(Link {
        a: (a.clone(), at_a),
        b: (b.clone(), at_b),
        tasks,
    })
}

/// Carry frames `sender` → `to`, each side with its session id for the
/// other; a frame counts as transmitted once delivered.
fn pump(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    (sender, sender_session): (Repo, SessionId),
    (to, to_session): (Repo, SessionId),
) -> (AbortHandle, oneshot::Receiver<()>) {
    let (abort, registration) = AbortHandle::new_pair();
    let (done_tx, done) = oneshot::channel();
    let task = async move {
        while let Some(frame) = rx.next().await {
            if to.deliver(to_session, std::slice::from_ref(&frame)).await.is_err() {
                break;
            }
            if sender.transmitted(sender_session, frame.len()).is_err() {
                break;
            }
        }
        // The sender side went away (closed link or a Disconnect effect).
        to.detach_peer(to_session);
    };
    Spawner::current().spawn(async move {
        let _ = Abortable::new(task, registration).await;
        let _ = done_tx.send(());
    });
    (abort, done)
}

impl Link {
    /// Disconnect both sides and wait until they have noticed.
    pub async fn close(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        let ((a, at_a), (b, at_b)) = (&self.a, &self.b);
        a.detach_peer(*at_a);
        b.detach_peer(*at_b);
        for (_, done) in self.tasks.drain(..) {
            let _ = done.await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for (abort, _) in &self.tasks {
            abort.abort();
        }
    }
}
