//! Helpers shared by this crate's integration tests.

use std::time::{Duration, Instant};

/// Poll `done` until it holds, for at most 10 s (a bound, not a measurement).
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
