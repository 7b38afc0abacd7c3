//! Running the relay: its repo (the blind `replicate` member), its libp2p
//! node with the relay server, the HTTP endpoint, and a graceful stop.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use synkro::RecvError;
use synkro::net::{NetConfig, Network, PeerEvent, Registry, TlsConfig};
use synkro::{DeviceIdentity, DocId, Event, NodeConfig, Repo, RepoConfig};
use synkro_cluster::{Cluster, ClusterConfig, NatsStorage, Watch, Written};
use tracing::{info, warn};

use crate::config::RelayConfig;
use crate::http::{self, HttpLimits, Status};
use crate::metrics::Metrics;

/// The WebRTC-direct certificate, kept so `/certhash/…` in the relay's
/// addresses stays valid across restarts.
const WEBRTC_CERT_FILE: &str = "webrtc-cert.pem";

/// How long a starting relay keeps trying a cluster that is reachable but
/// does not answer (electing a leader after losing a server).
const CLUSTER_START_PATIENCE: Duration = Duration::from_secs(60);

/// The documents' store, the member identity every relay of the cluster
/// shares (made by the first relay to start), and the other relays' writes.
async fn cluster_backing(config: &ClusterConfig) -> anyhow::Result<(NatsStorage, DeviceIdentity, Watch)> {
    let cluster = Cluster::connect(config.clone()).await?;
    let parts = patiently(async || cluster_parts(&cluster).await, |_| true).await?;
    info!(servers = %synkro_cluster::shown(&config.servers), stream = %config.stream, "documents kept in NATS JetStream");
    Ok(parts)
}

/// Call `attempt` until it succeeds, fails in a way `retry` does not
/// forgive, or [`CLUSTER_START_PATIENCE`] has passed, pausing 0.25 s
/// doubling to 5 s in between: a cluster electing a leader answers within
/// seconds.
async fn patiently<T, E: std::fmt::Display>(
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + CLUSTER_START_PATIENCE;
    let mut pause = Duration::from_millis(250);
    loop {
        match attempt().await {
            Err(e) if retry(&e) && Instant::now() + pause < deadline => {
                warn!(error = %format!("{e:#}"), "the cluster does not answer yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            done => return done,
        }
    }
}

async fn cluster_parts(cluster: &Cluster) -> anyhow::Result<(NatsStorage, DeviceIdentity, Watch)> {
    let secret = cluster
        .shared_secret("relay-identity", || {
            DeviceIdentity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng))
                .to_secret_bytes()
                .to_vec()
        })
        .await?;
    let identity = DeviceIdentity::from_secret_bytes(&secret).context("the cluster's relay identity is damaged")?;
    let storage = cluster.storage().await?;
    // Watching starts before the repo reads: what other relays write
    // meanwhile is heard (twice at worst, which is harmless).
    let watch = storage.watch().await.context("cannot watch the cluster's writes")?;
    Ok((storage, identity, watch))
}

/// Hand what the other relays of the cluster write to the repo, which
/// forwards it to the members connected here.
async fn follow_cluster(repo: Repo, mut watch: Watch) {
    while let Some(written) = watch.next().await {
        match written {
            Ok(Written { ns, puts, seq }) => {
                if repo.stored_elsewhere(DocId(ns), puts).is_err() {
                    return; // The repo is closed.
                }
                watch.taken(&ns, seq);
            }
            Err(e) => warn!(error = %e, "cannot follow the other relays' writes"),
        }
    }
}

/// Run until SIGINT or SIGTERM, then flush and close every connection.
pub async fn run(config: RelayConfig) -> anyhow::Result<()> {
    Relay::start(config)
        .await?
        .run_until(async {
            let signal = stop_signal().await?;
            info!(signal, "stop requested");
            Ok(())
        })
        .await
}

/// A running relay: its repo (the blind `replicate` member), its libp2p
/// node with the relay server, its HTTP endpoint and its STUN responder.
pub struct Relay {
    repo: Repo,
    net: Network,
    http_addr: std::net::SocketAddr,
    stun: Option<tokio::task::JoinHandle<()>>,
    stop_http: tokio::sync::oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
    /// In a cluster: hands the other relays' writes to the repo.
    follow: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Open the data directory, start the node, the HTTP endpoint and STUN.
    pub async fn start(config: RelayConfig) -> anyhow::Result<Relay> {
        let started = Instant::now();
        let repo_config = RepoConfig {
            node: NodeConfig {
                max_docs: config.max_documents,
                memory_budget: config.memory_budget,
                ..NodeConfig::default()
            },
        };
        let (repo, watch) = match &config.cluster {
            Some(cluster) => {
                let (store, identity, watch) = cluster_backing(cluster).await?;
                let storage: Arc<dyn synkro::Storage> = Arc::new(store.clone());
                let open = async || {
                    Repo::open_home_on(&config.data_dir, storage.clone(), identity.clone(), repo_config.clone()).await
                };
                let transient = |e: &synkro::Error| matches!(e, synkro::Error::Storage(e) if e.is_transient());
                let repo = patiently(open, transient).await;
                (repo, Some((store, watch)))
            }
            None => (Repo::open_home(&config.data_dir, repo_config).await, None),
        };
        let repo = repo.with_context(|| format!("cannot open the data directory {}", config.data_dir.display()))?;
        let (cluster_store, follow) = match watch {
            Some((store, w)) => (Some(store), Some(tokio::spawn(follow_cluster(repo.clone(), w)))),
            None => (None, None),
        };
        for p in repo.load_problems() {
            warn!(doc = %p.doc, problem = %p.problem, "damaged record skipped at start");
        }
        let tls = match &config.tls {
            Some((cert, key)) => Some(TlsConfig {
                cert_chain_pem: std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?,
                key_pem: std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?,
            }),
            None => None,
        };
        let net_config = NetConfig {
            listen: config.listen.clone(),
            external_addrs: config.external_addrs.clone(),
            server: Some(config.server.clone()),
            accept_sync: config.store,
            tls,
            webrtc_certificate: Some(webrtc_certificate(&config.data_dir)?),
            max_inbound_bytes: config.max_inbound_bytes,
            ..NetConfig::default()
        };
        let mut registry = Registry::default();
        let net = repo.connect_with_metrics(net_config, &mut registry).await?;
        let mut metrics = Metrics::register(&mut registry, config.store);
        if let Some(store) = &cluster_store {
            metrics.register_cluster(&mut registry, store);
        }
        info!(
            peer_id = %net.peer_id(),
            store = config.store,
            data_dir = %config.data_dir.display(),
            limits = ?config.server,
            max_http_connections = config.max_http_connections,
            "relay started"
        );

        let stun = match config.stun {
            Some(addr) => start_stun(addr, &metrics).await,
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http))?;
        let http_addr = listener.local_addr()?;
        announce(&format!("http {http_addr}"));
        let status = Arc::new(Status {
            repo: repo.clone(),
            net: net.clone(),
            metrics: metrics.clone(),
            registry,
            store: config.store,
            started,
            memory_cap: config.server.max_memory_bytes,
            cluster: cluster_store,
        });
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = HttpLimits {
            header_timeout: config.http_header_timeout,
            idle_timeout: config.http_idle_timeout,
            max_connections: config.max_http_connections,
        };
        let http = tokio::spawn(http::serve(listener, status, config.web_root, limits, async {
            let _ = http_stopped.await;
        }));
        Ok(Relay {
            repo,
            net,
            http_addr,
            stun,
            stop_http,
            http,
            follow,
        })
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> synkro::net::PeerId {
        self.net.peer_id()
    }

    /// The addresses it listens on so far (each ending in `/p2p/<peer id>`);
    /// [`listening`](Self::listening) waits for the first.
    pub fn listen_addrs(&self) -> Vec<synkro::net::Multiaddr> {
        self.net.listen_addrs()
    }

    /// Wait until it listens on at least one address; its addresses.
    pub async fn listening(&self) -> anyhow::Result<Vec<synkro::net::Multiaddr>> {
        let mut events = self.net.events();
        loop {
            let addrs = self.net.listen_addrs();
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            match events.recv().await {
                Ok(_) | Err(RecvError::Overflowed(_)) => {}
                Err(RecvError::Closed) => anyhow::bail!("the network stopped before it listened"),
            }
        }
    }

    /// Where `/health` and `/metrics` are served.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http_addr
    }

    /// Serve until `stop` completes (or fails), printing one `listening
    /// <multiaddr>` line per address on stdout, then flush and close every
    /// connection.
    pub async fn run_until(self, stop: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
        let watched = watch(&self.repo, &self.net, stop).await;
        info!("stopping: flushing and closing connections");
        if let Some(stun) = self.stun {
            stun.abort();
        }
        let _ = self.stop_http.send(());
        self.repo.flush_all().await?;
        self.net.shutdown().await;
        if let Err(e) = self.http.await {
            warn!(error = %e, "HTTP task ended abnormally");
        }
        // Writes the index snapshot: the next start reads one file.
        self.repo.close().await?;
        if let Some(follow) = self.follow {
            follow.abort();
        }
        info!("stopped");
        watched
    }
}

/// Answer STUN on `addr`. A port already taken (another relay on this
/// host) costs browsers their server-reflexive candidates, not the relay
/// its start: warn and go on.
async fn start_stun(addr: std::net::SocketAddr, metrics: &Metrics) -> Option<tokio::task::JoinHandle<()>> {
    match tokio::net::UdpSocket::bind(addr).await {
        Ok(socket) => {
            if let Ok(bound) = socket.local_addr() {
                announce(&format!("stun {bound}"));
            }
            Some(tokio::spawn(crate::stun::serve(socket, metrics.stun.clone())))
        }
        Err(e) => {
            warn!(%addr, error = %e, "cannot answer STUN there; browsers get no server-reflexive candidates from this relay");
            None
        }
    }
}

/// One line on stdout, flushed, for scripts and tests to read.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Print listen addresses and log what happens, until `stop`.
async fn watch(
    repo: &Repo,
    net: &Network,
    stop: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut peer_events = net.events();
    let mut doc_events = repo.events();
    let mut printed = HashSet::new();
    let mut print = |addr: &synkro::net::Multiaddr| {
        if printed.insert(addr.clone()) {
            announce(&format!("listening {addr}"));
        }
    };
    for addr in net.listen_addrs() {
        print(&addr);
    }
    tokio::pin!(stop);
    loop {
        tokio::select! {
            stopped = &mut stop => return stopped,
            e = peer_events.recv() => match e {
                Ok(PeerEvent::Listening(addr)) => print(&addr),
                Ok(PeerEvent::SessionOpened { peer, relayed }) => info!(%peer, relayed, "sync session opened"),
                Ok(PeerEvent::SessionClosed { peer }) => info!(%peer, "sync session closed"),
                Ok(PeerEvent::Misbehaved { peer, reason }) => warn!(%peer, %reason, "peer disconnected for misbehaving"),
                Ok(_) => {}
                // Only log lines are missed: the metrics count at the source.
                Err(RecvError::Overflowed(n)) => warn!(missed = n, "network events lagged"),
                Err(RecvError::Closed) => anyhow::bail!("the network stopped"),
            },
            e = doc_events.recv() => match e {
                Ok(Event::Rejected { peer, doc, reason }) => warn!(peer = ?peer, %doc, %reason, "refused data"),
                Ok(Event::DocAdded { doc }) => info!(%doc, "storing a new document"),
                Ok(_) => {}
                // Rejections missed in a burst are still logged by the core.
                Err(RecvError::Overflowed(n)) => warn!(missed = n, "repo events lagged"),
                Err(RecvError::Closed) => anyhow::bail!("the repo stopped"),
            },
        }
    }
}

#[cfg(unix)]
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(not(unix))]
async fn stop_signal() -> anyhow::Result<&'static str> {
    tokio::signal::ctrl_c().await?;
    Ok("Ctrl-C")
}

/// Read the persisted WebRTC certificate, or create and persist one (0600).
fn webrtc_certificate(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(WEBRTC_CERT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => return Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let pem = synkro::net::generate_webrtc_certificate()?;
    let mut tmp = tempfile::NamedTempFile::new_in(data_dir)?;
    tmp.write_all(pem.as_bytes())?;
    tmp.as_file().sync_all()?;
    // NamedTempFile is created 0600 on unix; rename makes it appear whole.
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    info!(path = %path.display(), "created the WebRTC certificate");
    Ok(pem)
}
