//! `synkro-relay`: the small self-hosted node that gives synkro peers NAT
//! traversal (circuit relay v2, DCUtR, AutoNAT), bootstrap (rendezvous)
//! and blind store-and-forward: a `replicate` member of the documents
//! shared with it, which verifies and stores sealed chunks and serves them
//! to members, without the keys to read them.
//!
//! Exit codes: 0 after a graceful stop (SIGINT, SIGTERM), 2 for a bad
//! configuration, 1 for anything else.

mod config;
mod http;
mod metrics;
mod server;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Args, RelayConfig};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match RelayConfig::resolve(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synkro-relay: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synkro-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synkro-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
