//! What this store's repo holds of each document's log, so that a write can
//! say whether the index entry it carries counts every write before it.
//!
//! Every write of a synkro repo carries the document's index entry, made
//! from what the repo holds, and a starting relay reads each document's
//! entry from its last message. Two relays writing one document at the same
//! moment would each count only their own chunk, and the later message's
//! entry would miss the other's. So a write is published on the condition
//! that the subject's last message is the last one the repo holds
//! (`Nats-Expected-Last-Subject-Sequence`). When another relay wrote in
//! between, the write is published anyway (its records are good) and marked
//! [`UNSURE`], and so is every further write until the repo has taken the
//! writes it lacked. A starting relay loads a document whose last message is
//! marked, which rebuilds its entry from the records.

use std::collections::HashMap;
use std::sync::Mutex;

use synkro_storage::Namespace;

/// Header on a message whose write may not count every earlier write.
pub(crate) const UNSURE: &str = "Synkro-Unsure";

/// Per document: the last sequence of its log the repo holds, and the
/// sequence up to which it lacks another store's writes, if it does.
#[derive(Default)]
pub(crate) struct Known(Mutex<HashMap<Namespace, Held>>);

#[derive(Clone, Copy, Default)]
struct Held {
    last: u64,
    lacking: Option<u64>,
}

impl Known {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Namespace, Held>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The sequence a write to `ns` expects to follow (0: a document the
    /// repo has not read, which is new unless another store wrote it), and
    /// whether the repo lacks some of the log.
    pub(crate) fn expect(&self, ns: &Namespace) -> (u64, bool) {
        self.with(|m| m.get(ns).map_or((0, false), |h| (h.last, h.lacking.is_some())))
    }

    /// The repo read the log whole, up to `last`. Another store's later
    /// writes taken meanwhile (the repo holds them once the load is done)
    /// stay counted.
    pub(crate) fn loaded(&self, ns: &Namespace, last: u64) {
        self.with(|m| {
            let held = m.entry(*ns).or_default();
            held.last = held.last.max(last);
            held.lacking = None;
        });
    }

    /// This store published `seq`; when another store's writes up to
    /// `lacking` came first without the repo holding them, it lacks those.
    pub(crate) fn wrote(&self, ns: &Namespace, seq: u64, lacking: Option<u64>) {
        self.with(|m| {
            let held = m.entry(*ns).or_default();
            held.last = seq;
            held.lacking = held.lacking.max(lacking);
        });
    }

    /// The repo took another store's write `seq` (every earlier one on the
    /// subject came before it, in order).
    pub(crate) fn taken(&self, ns: &Namespace, seq: u64) {
        self.with(|m| {
            if let Some(held) = m.get_mut(ns) {
                held.last = held.last.max(seq);
                if held.lacking.is_some_and(|l| l <= seq) {
                    held.lacking = None;
                }
            }
        });
    }

    /// The log was removed or rewritten by a delete.
    pub(crate) fn forget(&self, ns: &Namespace) {
        self.with(|m| m.remove(ns));
    }
}

#[cfg(test)]
mod tests {
    use super::Known;

    #[test]
    fn a_write_past_another_stores_lacks_it_until_taken() {
        let (known, ns) = (Known::default(), [1; 32]);
        assert_eq!(known.expect(&ns), (0, false), "never read: expected new");
        known.loaded(&ns, 5);
        known.wrote(&ns, 6, None);
        assert_eq!(known.expect(&ns), (6, false));
        // Another store wrote 7 and 8; ours landed at 9.
        known.wrote(&ns, 9, Some(8));
        assert_eq!(known.expect(&ns), (9, true));
        known.taken(&ns, 7);
        assert_eq!(known.expect(&ns), (9, true), "8 is still lacking");
        known.taken(&ns, 8);
        assert_eq!(known.expect(&ns), (9, false));
        known.taken(&ns, 10);
        assert_eq!(known.expect(&ns), (10, false));
        known.loaded(&ns, 8);
        assert_eq!(known.expect(&ns), (10, false), "taken during the load");
        known.forget(&ns);
        assert_eq!(known.expect(&ns), (0, false));
        known.taken(&ns, 11);
        assert_eq!(
            known.expect(&ns),
            (0, false),
            "a log the repo does not hold stays unknown"
        );
    }
}
