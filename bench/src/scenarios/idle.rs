//! Scenario 5: what an idle connection costs the relay.

use serde_json::json;

use crate::{AMR, Bench, fresh_relay_with, ours, peer};

pub(crate) async fn idle(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.sizes.idle_connections;
    eprintln!("footprint: {n} idle connections");
    // All from 127.0.0.1: lift the per-IP cap (256 by default) above them.
    let per_ip = (n + 16).to_string();
    let (relay, addr, _dir) = fresh_relay_with(&["--max-connections-per-ip", &per_ip])?;
    let ours = ours::idle(&relay, &addr, n).await?;
    let server = peer::Server::start()?;
    let theirs = peer::run(&server, "idle", json!({ "connections": n }), None)?;
    b.row(
        "5 footprint",
        format!("relay / server RSS per idle connection ({n})"),
        ours,
        AMR,
        peer::num(&theirs, "per_connection_bytes"),
        "B",
        true,
    );
    b.row(
        "5 footprint",
        "relay RSS per idle connection",
        ours,
        "target 64 KiB",
        64.0 * 1024.0,
        "B",
        true,
    );
    Ok(())
}
