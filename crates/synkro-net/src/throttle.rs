//! Warnings that a flood cannot turn into a flood of log lines.

use std::time::Duration;

use web_time::Instant;

/// Counts occurrences of something worth a warning (a refused connection)
/// and says when to log: at most one line per interval, covering every
/// occurrence since the previous line.
///
/// ```
/// use std::time::Duration;
/// use synkro_net::Throttle;
///
/// let mut refused = Throttle::new(Duration::from_secs(10));
/// assert_eq!(refused.hit(), Some(1)); // the first one is logged at once
/// assert_eq!(refused.hit(), None); // the next ones wait for the interval
/// assert_eq!(refused.hit(), None);
/// ```
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last_line: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_line: None,
            unlogged: 0,
        }
    }

    /// Count one occurrence; `Some(n)` when a line is due now, `n` being how
    /// many occurrences it covers.
    pub fn hit(&mut self) -> Option<u64> {
        self.unlogged += 1;
        if self.last_line.is_some_and(|t| t.elapsed() < self.interval) {
            return None;
        }
        self.last_line = Some(Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_covers_everything_since_the_last() {
        let mut t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.hit(), Some(3));
        assert_eq!(t.hit(), None);
    }
}
