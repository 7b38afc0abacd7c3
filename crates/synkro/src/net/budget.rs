//! The bytes of received frames a network holds before the repo has
//! handled them, over all its sessions ([`NetConfig::max_inbound_bytes`]).
//! A session takes room for a frame before reading it and gives it back
//! once the repo has handled the frame; while there is none, it waits, and
//! its peer's writes wait with it.
//!
//! [`NetConfig::max_inbound_bytes`]: synkro_net::NetConfig::max_inbound_bytes

use std::sync::{Arc, Mutex};

use crate::rt::relock;

pub(crate) struct Budget {
    total: usize,
    free: Mutex<usize>,
    freed: event_listener::Event,
}

/// Room for one frame, given back when dropped.
pub(crate) struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// `total` bytes, at least one frame's worth.
    pub fn new(total: usize) -> Arc<Self> {
        let total = total.max(synkro_net::MAX_FRAME_LEN);
        Arc::new(Self {
            total,
            free: Mutex::new(total),
            freed: event_listener::Event::new(),
        })
    }

    /// Wait for room for `bytes`.
    pub async fn acquire(self: &Arc<Self>, bytes: usize) -> Permit {
        let bytes = bytes.min(self.total);
        loop {
            if let Some(p) = self.try_acquire(bytes) {
                return p;
            }
            let listener = self.freed.listen();
            if let Some(p) = self.try_acquire(bytes) {
                return p;
            }
            listener.await;
        }
    }

    fn try_acquire(self: &Arc<Self>, bytes: usize) -> Option<Permit> {
        let mut free = relock(self.free.lock());
        (*free >= bytes).then(|| {
            *free -= bytes;
            Permit {
                budget: self.clone(),
                bytes,
            }
        })
    }

    /// Bytes not taken now.
    #[cfg(test)]
    fn free(&self) -> usize {
        *relock(self.free.lock())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *relock(self.budget.free.lock()) += self.bytes;
        self.budget.freed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn a_reader_waits_for_room_and_gets_it_back() {
        let frame = synkro_net::MAX_FRAME_LEN;
        let budget = Budget::new(2 * frame);
        let a = budget.acquire(frame).now_or_never().expect("room");
        let b = budget.acquire(frame).now_or_never().expect("room");
        assert_eq!(budget.free(), 0);
        let mut waiting = Box::pin(budget.acquire(1));
        assert!(waiting.as_mut().now_or_never().is_none(), "no room: it waits");
        drop(a);
        let c = waiting.now_or_never().expect("room again");
        drop((b, c));
        assert_eq!(budget.free(), 2 * frame);
        // A frame larger than the whole budget still gets in, alone.
        let small = Budget::new(0);
        let all = small.acquire(usize::MAX).now_or_never().expect("the whole budget");
        drop(all);
        assert_eq!(small.free(), frame);
    }
}
