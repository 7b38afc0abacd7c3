//! What can go wrong setting up a browser-to-browser connection.

use std::time::Duration;

use crate::signaling::SignalError;

/// Why a browser-to-browser connection did not come up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The other peer sent something the protocol does not allow.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// Reading or writing the signaling stream failed.
    #[error("signaling stream: {0}")]
    Io(#[from] std::io::Error),
    /// The signaling stream could not be opened (e.g. the peer does not
    /// speak the protocol, or no connection to it exists).
    #[error("cannot open the signaling stream: {0}")]
    Open(String),
    /// The signaling stream ended before the connection was up.
    #[error("the signaling stream ended before the connection was up")]
    Ended,
    /// A browser API refused (e.g. a description it cannot parse).
    #[error("the browser refused: {0}")]
    Browser(String),
    /// ICE or DTLS failed: no direct path.
    #[error("no direct path to the peer (ICE or DTLS failed)")]
    Failed,
    /// Not connected within the configured time.
    #[error("no direct connection after {0:?}")]
    Timeout(Duration),
    /// The transport was used before `Handle::attach`.
    #[error("the transport is not attached to a swarm yet")]
    NotAttached,
}
