//! `synkro-relay`: the small self-hosted node that gives synkro peers NAT
//! traversal (circuit relay v2, DCUtR, AutoNAT), bootstrap (rendezvous)
//! and blind store-and-forward: a `replicate` member of the documents
//! shared with it, which verifies and stores sealed chunks and serves them
//! to members, without the keys to read them.
//!
//! The binary is a thin `main` over this library; [`Relay`] runs one in
//! any tokio program (see `examples/relay-with-config.rs`).

mod config;
mod health;
mod http;
mod metrics;
mod server;
mod stun;

pub use config::{Args, RelayConfig};
pub use server::{Relay, run};
