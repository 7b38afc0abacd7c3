//! The relay as an operator runs it: configuration mistakes, its HTTP
//! endpoint, static files, and its memory per idle connection.

use std::process::Command;
use std::time::Duration;

use synkro::net::NetConfig;
use synkro_tests::{Relay, bin};

use crate::TIMEOUT;

fn relay(args: &[&str]) -> std::process::Output {
    Command::new(bin("synkro-relay"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run synkro-relay")
}

#[test]
fn configuration_mistakes_exit_2_with_a_clear_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_string_lossy().into_owned();
    let out = relay(&["--data-dir", &data, "--listen", "tcp/4001"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"), "{out:?}");

    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "data_dir = \"/tmp/x\"\nmax_circuits = \"many\"\n")?;
    let out = relay(&["--config", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_circuits"), "{out:?}");

    // A port already taken is a runtime failure (1), named in the message.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let out = relay(&[
        "--data-dir",
        &data,
        "--listen",
        &format!("/ip4/127.0.0.1/tcp/{port}"),
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&port.to_string()),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn health_metrics_and_static_files_over_http() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let web = tempfile::tempdir()?;
    std::fs::write(web.path().join("index.html"), "<h1>synkro demo</h1>")?;
    let mut relay = Relay::start(dir.path(), &["--web-root", &web.path().to_string_lossy()])?;
    let (status, health) = relay.get("/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&health)?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], true);
    assert_eq!(health["documents"], 0);

    let (status, metrics) = relay.get("/metrics")?;
    assert_eq!(status, 200);
    for name in [
        "synkro_documents",
        "synkro_rejected_total",
        "synkro_relay_info",
        "libp2p_",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
    // Web apps find the relay's dialable addresses here.
    let (status, bootstrap) = relay.get("/bootstrap")?;
    assert_eq!(status, 200);
    let bootstrap: serde_json::Value = serde_json::from_str(&bootstrap)?;
    let mut listed: Vec<String> = bootstrap["addresses"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut printed = relay.process.listening();
    listed.sort();
    printed.sort();
    assert_eq!(listed, printed, "/bootstrap lists what the relay printed");
    assert!(
        listed
            .iter()
            .all(|a| a.ends_with(&format!("/p2p/{}", bootstrap["peer_id"].as_str().unwrap_or("?"))))
    );

    assert_eq!(relay.get("/")?, (200, "<h1>synkro demo</h1>".to_owned()));
    assert_eq!(relay.get("/missing.js")?.0, 404);
    Ok(())
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_the_relay_little_memory() -> anyhow::Result<()> {
    const PEERS: usize = 100;
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr: synkro::net::Multiaddr = relay.addr("/tcp/").parse()?;
    // Warm up: the first connection pays for lazily built state.
    let mut peers = Vec::new();
    let first = synkro::Repo::in_memory().await?;
    let net = first.connect(NetConfig::default()).await?;
    net.dial(addr.clone()).await?;
    peers.push((first, net));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = relay.rss_bytes()?;
    for _ in 1..PEERS {
        let repo = synkro::Repo::in_memory().await?;
        let net = repo.connect(NetConfig::default()).await?;
        tokio::time::timeout(TIMEOUT, net.dial(addr.clone())).await??;
        peers.push((repo, net));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = relay.rss_bytes()?;
    let (_, health) = relay.get("/health")?;
    let health: serde_json::Value = serde_json::from_str(&health)?;
    assert_eq!(health["sessions"], PEERS, "{health}");
    eprintln!(
        "relay RSS: {:.1} MiB with 1 connection, {:.1} MiB with {PEERS}: {:.1} KiB per idle connection (with its sync session)",
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / 1024.0 / (PEERS - 1) as f64
    );
    for (_, net) in peers {
        net.shutdown().await;
    }
    Ok(())
}
