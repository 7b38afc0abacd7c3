//! [`NetError`]: what can go wrong in the network layer.

use thiserror::Error;

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
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// The transport's error.
        reason: String,
    },
    /// Dialing failed.
    #[error("cannot reach {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
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
    Setup(String),
    /// The network has stopped.
    #[error("the network has shut down")]
    Closed,
}
