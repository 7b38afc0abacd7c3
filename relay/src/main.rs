//! The `synkro-relay` binary (see the library's docs for what a relay does).
//!
//! Exit codes: 0 after a graceful stop (SIGINT, SIGTERM), 2 for a bad
//! configuration, 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use synkro_relay::{Args, RelayConfig};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    return_large_buffers_to_the_system();
    let config = match RelayConfig::resolve(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synkro-relay: {e:#}");
            return ExitCode::from(2);
        }
    };
    raise_descriptor_limit(config.server.max_connections, config.max_http_connections);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synkro-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(synkro_relay::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synkro-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every connection holds a descriptor (and each storage operation briefly
/// one more); the usual soft limit of 1,024 is below the default connection
/// cap. Raise it to the hard limit, and say so if even that is too low.
fn raise_descriptor_limit(max_connections: u32, max_http_connections: usize) {
    #[cfg(unix)]
    {
        // Peers, HTTP clients, and room for storage files and the rest.
        let wanted = u64::from(max_connections) + max_http_connections as u64 + 256;
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(got) if got < wanted => tracing::warn!(
                open_files = got,
                max_connections,
                "the open-file limit is below what the connection cap needs; raise the hard limit (ulimit -Hn) or lower --max-connections"
            ),
            Ok(got) => tracing::debug!(open_files = got, "open-file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
}

/// Large buffers (a peer's frames, up to 16 MiB, decoded lists) come and go
/// with bursts. glibc serves them from mmap, but after the first is freed
/// it raises its mmap threshold to that size and serves the next ones from
/// its heaps, which it rarely gives back: after 16 strangers' maximal
/// `Hello`s the relay kept 2.5 times its memory. A fixed threshold keeps
/// every allocation over 128 KiB in its own mapping, returned when freed,
/// and two arenas keep small allocations from spreading over one heap per
/// thread, and what is free inside them is trimmed every 5 s. (Measured
/// against mimalloc: see docs/benchmarks.md.)
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called at the start
    // of main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // What is freed inside the heaps (a burst's small allocations between
    // live ones) is handed back every few seconds.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                // SAFETY: malloc_trim is thread-safe and only returns free memory.
                unsafe { libc::malloc_trim(0) };
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot start the memory trimmer"));
}
