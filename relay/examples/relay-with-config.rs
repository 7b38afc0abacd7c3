//! Run a relay from a TOML configuration inside your own program (the
//! `synkro-relay` binary does the same from flags, environment variables and
//! `--config FILE`), store a document on it from a device, and read its
//! `/health`.
//!
//! `cargo run -p synkro-relay --example relay-with-config`

use std::time::Duration;

use serde_json::json;
use synkro::net::NetConfig;
use synkro_relay::{Args, Relay, RelayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config_file = dir.path().join("relay.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"
data_dir = "{}"
listen = ["/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
no_stun = true
max_documents = 1000
max_connections = 256
max_memory_mib = 512
"#,
            dir.path().join("data").display()
        ),
    )?;
    let config = RelayConfig::resolve(Args {
        config: Some(config_file),
        ..Args::default()
    })?;
    let relay = Relay::start(config).await?;
    let addr = relay.listening().await?.remove(0);
    println!("relay at {addr}, /health at http://{}/health", relay.http_addr());
    let health = format!("http://{}/health", relay.http_addr());

    // It serves until `stop` fires.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.run_until(async {
        let _ = stop_rx.await;
        Ok(())
    }));

    let device = synkro::Repo::in_memory().await?;
    let net = device
        .connect(NetConfig {
            relays: vec![addr.clone()],
            mdns: false,
            ..NetConfig::default()
        })
        .await?;
    let relay_id = net.dial(addr).await?;
    let doc = device.create().await?;
    doc.set("title", &json!("kept by the relay, readable only by members"))?;
    doc.wait_durable_on(relay_id, Duration::from_secs(20)).await?;
    println!("{} is stored on the relay (sealed)", doc.id());

    println!("{health}: {}", ureq::get(&health).call()?.body_mut().read_to_string()?);

    net.shutdown().await;
    let _ = stop_tx.send(());
    running.await??;
    Ok(())
}
