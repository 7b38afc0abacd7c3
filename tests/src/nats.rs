//! `nats-server` processes with JetStream on loopback: one server, or a
//! cluster of several, each with its store in a temporary directory.
//! Every server is killed when the handle drops, and its store is then
//! scanned for plaintext canaries, as relays' data directories are.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::CANARY_PREFIX;

/// One server of a [`Nats`] cluster.
struct Server {
    name: String,
    client_port: u16,
    http_port: u16,
    cluster_port: u16,
    store: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of `nats-server` processes on 127.0.0.1.
pub struct Nats {
    servers: Vec<Server>,
    /// A configuration file every server reads, if any.
    config: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// A free port below the ephemeral range, never handed out twice by this
/// process: a server that is killed and restarted keeps its ports, and
/// another test's server must not take them meanwhile (nor may a port from
/// `bind(…:0)`, which comes from the ephemeral range, above these).
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 30;
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..1000 {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port < 32_000 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port for nats-server below 32000")
}

impl Nats {
    /// Start `n` servers (1: a lone server; more: one cluster whose members
    /// route to each other) and wait until JetStream answers on each.
    pub fn start(n: usize) -> anyhow::Result<Nats> {
        Self::start_with(n, "")
    }

    /// [`start`](Self::start) with lines of server configuration, e.g.
    /// `max_payload: 4096`.
    pub fn start_with(n: usize, config: &str) -> anyhow::Result<Nats> {
        let dir = tempfile::tempdir()?;
        let config = match config.is_empty() {
            true => None,
            false => {
                let path = dir.path().join("nats.conf");
                std::fs::write(&path, config)?;
                Some(path)
            }
        };
        let mut servers = Vec::new();
        for i in 0..n {
            servers.push(Server {
                name: format!("n{}", i + 1),
                client_port: free_port()?,
                http_port: free_port()?,
                cluster_port: free_port()?,
                store: dir.path().join(format!("n{}", i + 1)),
                child: None,
            });
        }
        let mut nats = Nats {
            servers,
            config,
            _dir: dir,
        };
        for i in 0..n {
            nats.spawn(i)?;
        }
        for i in 0..n {
            nats.wait_ready(i, Duration::from_secs(30))?;
        }
        nats.wait_routed(Duration::from_secs(30))?;
        Ok(nats)
    }

    /// Wait until every server has a route to every other. Healthy is not
    /// enough: a client that connects before the routes are up is told of
    /// fewer servers, and a relay then makes its stream with fewer replicas.
    fn wait_routed(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let others = self.servers.len().saturating_sub(1) as u64;
        for (i, server) in self.servers.iter().enumerate() {
            loop {
                let routes = crate::http_get(&self.monitor(i), "/routez")
                    .ok()
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .and_then(|v| v["num_routes"].as_u64());
                if routes.is_some_and(|r| r >= others) {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "nats-server {} has {routes:?} routes of {others} after {timeout:?}",
                        server.name
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let routes: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.cluster_port))
            .collect();
        let clustered = self.servers.len() > 1;
        let s = &mut self.servers[i];
        let mut cmd = Command::new("nats-server");
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &s.client_port.to_string()])
            .args(["-m", &s.http_port.to_string(), "-n", &s.name, "-js", "-sd"])
            .arg(&s.store);
        if clustered {
            cmd.args(["--cluster_name", "synkro-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", s.cluster_port)])
                .args(["--routes", &routes.join(",")]);
        }
        if std::env::var_os("SYNKRO_NATS_LOG").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd
            .spawn()
            .context("cannot start nats-server; install it with scripts/setup.sh (Debian: apt install nats-server)")?;
        s.child = Some(child);
        Ok(())
    }

    /// Wait until server `i` says it is healthy (JetStream included).
    pub fn wait_ready(&self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let host = format!("127.0.0.1:{}", self.servers[i].http_port);
        loop {
            if let Ok((200, _)) = crate::http_get(&host, "/healthz") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("nats-server {} not healthy after {timeout:?}", self.servers[i].name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every server's client URL, comma-separated: what `--cluster` takes.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s monitoring endpoint (`ip:port`: `/healthz`, `/jsz`).
    pub fn monitor(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.servers[i].http_port)
    }

    /// Server `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(Child::id)
    }

    /// How many servers the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether it has no server at all.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Server `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Kill server `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start server `i` again on its ports and store, and wait until it is
    /// healthy (caught up with the cluster).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_ready(i, Duration::from_secs(30))
    }

    /// Stream `name` as server `i`'s monitoring reports it (`/jsz`: its
    /// `config` and `state`).
    pub fn stream(&self, i: usize, name: &str) -> anyhow::Result<serde_json::Value> {
        let (_, body) = crate::http_get(&self.monitor(i), "/jsz?streams=true&config=true&accounts=true")?;
        let jsz: serde_json::Value = serde_json::from_str(&body)?;
        let streams = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten());
        for s in streams {
            if s["name"] == name {
                return Ok(s.clone());
            }
        }
        bail!("no stream {name} on NATS server {i}")
    }

    /// Every server's store directory.
    pub fn stores(&self) -> Vec<PathBuf> {
        self.servers.iter().map(|s| s.store.clone()).collect()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            return;
        }
        for store in self.stores() {
            let found = crate::files_containing(&store, CANARY_PREFIX.as_bytes()).unwrap_or_default();
            assert!(found.is_empty(), "NATS stored plaintext: a canary is in {found:?}");
        }
    }
}
