//! Time as the core sees it: only what the runtime tells it.
//!
//! The core never reads a clock. Each runtime counts time from an epoch of
//! its own choosing (when it started, say) and passes "now" in as an
//! [`Instant`]; the simulation passes its virtual time the same way.

use core::ops::Add;
use core::time::Duration;

/// A point in time: the time since the runtime's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The runtime's epoch.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_epoch` after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Self(since_epoch)
    }

    /// The instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// Time since the epoch.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates instead of overflowing: a deadline that far away never comes.
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_order_add_and_subtract() {
        let t = Instant::from_millis(1500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_millis(2000));
        assert!(Instant::ZERO < t);
        assert_eq!(t.saturating_duration_since(Instant::from_millis(2000)), Duration::ZERO);
        assert_eq!(
            Instant::from_duration(Duration::MAX) + Duration::from_secs(1),
            Instant::from_duration(Duration::MAX)
        );
    }
}
