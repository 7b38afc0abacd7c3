//! The node's timers. A call that starts one (an edit starts its document's
//! flush window) only notes its delay; the next
//! [`Node::handle_timeout`](super::Node::handle_timeout) arms it from the
//! `now` the runtime passes, and fires it once due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::effect::SessionId;
use crate::ids::DocId;
use crate::time::Instant;

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Seal a document's pending edits (its flush window closed).
    Flush(DocId),
    /// End a session whose peer has not said `Hello` yet.
    Hello(SessionId),
    /// Retry the writes that failed for lack of space.
    RetryWrites,
    /// Unload idle documents if those in memory are over the budget.
    Evict,
}

/// Pending timers, each at most once.
#[derive(Default)]
pub(super) struct Timers {
    /// Started, waiting for a `now` to count from.
    unarmed: BTreeMap<Timer, Duration>,
    /// Armed: (deadline, timer), earliest first.
    armed: BTreeSet<(Instant, Timer)>,
    deadlines: BTreeMap<Timer, Instant>,
}

impl Timers {
    /// Start `timer` to fire `after` from the next `now`, unless it runs already.
    pub fn start(&mut self, timer: Timer, after: Duration) {
        if !self.deadlines.contains_key(&timer) {
            self.unarmed.entry(timer).or_insert(after);
        }
    }

    /// Stop `timer` if it runs.
    pub fn stop(&mut self, timer: Timer) {
        self.unarmed.remove(&timer);
        if let Some(at) = self.deadlines.remove(&timer) {
            self.armed.remove(&(at, timer));
        }
    }

    /// Count the timers started since the last call from `now`, and take
    /// those due at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Timer> {
        for (timer, after) in std::mem::take(&mut self.unarmed) {
            let at = now + after;
            self.armed.insert((at, timer));
            self.deadlines.insert(timer, at);
        }
        let mut due = Vec::new();
        while let Some(&(at, timer)) = self.armed.first()
            && at <= now
        {
            self.armed.pop_first();
            self.deadlines.remove(&timer);
            due.push(timer);
        }
        due
    }

    /// When the next armed timer is due; `None` if none is armed. Timers
    /// started but not armed yet are armed by the next
    /// [`expire`](Self::expire), which the runtime calls after every input.
    pub fn next(&self) -> Option<Instant> {
        self.armed.first().map(|(at, _)| *at)
    }

    /// Is there a timer waiting to be armed?
    pub fn unarmed(&self) -> bool {
        !self.unarmed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_is_armed_from_the_next_now_and_fires_once() {
        let doc = DocId([1; 32]);
        let mut t = Timers::default();
        t.start(Timer::Flush(doc), Duration::from_millis(50));
        assert_eq!(t.next(), None);
        assert!(t.expire(Instant::from_millis(100)).is_empty());
        assert_eq!(t.next(), Some(Instant::from_millis(150)));
        // Starting it again while it runs does not move it.
        t.start(Timer::Flush(doc), Duration::from_millis(50));
        assert!(t.expire(Instant::from_millis(120)).is_empty());
        assert_eq!(t.expire(Instant::from_millis(150)), vec![Timer::Flush(doc)]);
        assert_eq!(t.next(), None);
        t.start(Timer::Flush(doc), Duration::ZERO);
        t.stop(Timer::Flush(doc));
        assert!(t.expire(Instant::from_millis(200)).is_empty());
        assert!(!t.unarmed());
    }
}
