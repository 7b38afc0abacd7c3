//! The runtime services the facade uses: spawning tasks, sleeping, and the
//! clock. Natively they come from tokio; on `wasm32` from the browser's
//! event loop (wasm-bindgen-futures, futures-timer, web-time). Nothing
//! else in this crate names a runtime, so the same `Repo` runs in both.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{LockResult, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::{Either, select};
pub(crate) use web_time::Instant;

/// Spawns the repo's background tasks (flush timers, session pumps).
#[derive(Clone, Debug)]
pub(crate) struct Spawner {
    #[cfg(not(target_arch = "wasm32"))]
    handle: tokio::runtime::Handle,
}

impl Spawner {
    /// The runtime the caller runs on. Natively this must be called from
    /// inside a tokio runtime, which later spawns may come from outside of.
    pub fn current() -> Self {
        Self {
            #[cfg(not(target_arch = "wasm32"))]
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// Run `task` in the background.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Run `task` in the background (on the page's or worker's event loop).
    #[cfg(target_arch = "wasm32")]
    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        wasm_bindgen_futures::spawn_local(task);
    }
}

/// The guard of a lock, even if a panic elsewhere poisoned it. Every lock
/// of this crate holds plain data that stays consistent for our purposes
/// (maps of channels, counters, flags); the node itself is only mutated
/// through its own non-panicking API.
pub(crate) fn relock<T>(r: LockResult<MutexGuard<'_, T>>) -> MutexGuard<'_, T> {
    r.unwrap_or_else(PoisonError::into_inner)
}

/// Wait for `d`.
pub(crate) async fn sleep(d: Duration) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep(d).await;
    #[cfg(target_arch = "wasm32")]
    futures_timer::Delay::new(d).await;
}

/// `f`'s output, or `None` if `d` passes first.
pub(crate) async fn timeout<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    match select(pin!(f), pin!(sleep(d))).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

/// A broadcast channel that never blocks its sender: receivers that fall
/// behind lose the oldest messages and are told how many
/// ([`RecvError::Overflowed`](async_broadcast::RecvError::Overflowed)).
pub(crate) struct Broadcast<T> {
    tx: async_broadcast::Sender<T>,
    // Keeps the channel open while nobody listens.
    keep: async_broadcast::InactiveReceiver<T>,
}

impl<T: Clone> Broadcast<T> {
    pub fn new(capacity: usize) -> Self {
        let (mut tx, rx) = async_broadcast::broadcast(capacity);
        tx.set_overflow(true);
        tx.set_await_active(false);
        Self {
            tx,
            keep: rx.deactivate(),
        }
    }

    /// Deliver to every current receiver (dropped if there is none).
    pub fn send(&self, message: T) {
        let _ = self.tx.try_broadcast(message);
    }

    /// A receiver of everything sent from now on.
    pub fn subscribe(&self) -> async_broadcast::Receiver<T> {
        self.keep.activate_cloned()
    }

    fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }
}

/// [`Broadcast`] channels by topic (a document): a message wakes only its
/// topic's receivers, not every receiver of every topic. A topic's channel
/// is made by its first subscription and dropped once nobody listens (at
/// the next message to it or the next subscription to any).
pub(crate) struct Topics<K, T> {
    channels: Mutex<HashMap<K, Broadcast<T>>>,
    capacity: usize,
}

impl<K: Eq + Hash, T: Clone> Topics<K, T> {
    /// Channels of `capacity` messages each (a receiver further behind
    /// loses the oldest).
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Deliver `message()` to `topic`'s receivers; not even made if it has none.
    pub fn send(&self, topic: &K, message: impl FnOnce() -> T) {
        let mut channels = relock(self.channels.lock());
        match channels.get(topic) {
            Some(channel) if channel.listened() => channel.send(message()),
            Some(_) => {
                channels.remove(topic);
            }
            None => {}
        }
    }

    /// A receiver of everything sent to `topic` from now on.
    pub fn subscribe(&self, topic: K) -> async_broadcast::Receiver<T> {
        let mut channels = relock(self.channels.lock());
        // Topics nobody follows any more and nothing was sent to since.
        channels.retain(|_, c| c.listened());
        channels
            .entry(topic)
            .or_insert_with(|| Broadcast::new(self.capacity))
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::Topics;

    #[test]
    fn a_topic_reaches_only_its_followers_and_goes_once_unfollowed() {
        let topics = Topics::<u8, u32>::new(4);
        let mut one = topics.subscribe(1);
        let mut two = topics.subscribe(2);
        topics.send(&1, || 10);
        topics.send(&3, || unreachable!("nobody follows topic 3"));
        assert_eq!(one.try_recv(), Ok(10));
        assert!(two.try_recv().is_err());

        drop(one);
        topics.send(&1, || unreachable!("nobody follows topic 1 any more"));
        assert!(!topics.channels.lock().unwrap().contains_key(&1));
        drop(two);
        let _three = topics.subscribe(3);
        let left: Vec<u8> = topics.channels.lock().unwrap().keys().copied().collect();
        assert_eq!(left, [3]);
    }
}
