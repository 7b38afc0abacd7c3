//! [`NetError`]: what can go wrong in the network layer. Failures of
//! libp2p keep their error as the source.

use std::sync::Arc;

use thiserror::Error;

/// An underlying error, shared: one failed dial may answer several callers.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// `e` as a [`Cause`].
pub(crate) fn cause(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
    Arc::new(e)
}

/// Errors of the network layer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// The address cannot be used as given.
    #[error("bad address {addr}: {reason}")]
    InvalidAddress {
        /// The address.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The transport's error.
        source: Cause,
    },
    /// Dialing failed.
    #[error("cannot reach {addr}: {source}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        source: Cause,
    },
    /// The peer did not answer in time.
    #[error("{addr} did not answer within {seconds} s; is it running and reachable?")]
    Timeout {
        /// The address.
        addr: String,
        /// The time waited.
        seconds: u64,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS configuration: {0}; give a PEM certificate chain and its PEM private key")]
    Tls(String),
    /// The WebRTC certificate could not be used.
    #[error("WebRTC certificate: {0}; delete the file to have a new one generated")]
    WebrtcCertificate(String),
    /// The transport stack could not be built.
    #[error("network setup failed: {0}")]
    Setup(#[source] Cause),
    /// What was asked cannot work here.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The network has stopped.
    #[error("the network has shut down")]
    Closed,
}
