//! The relay's settings: command-line flags, `SYNKRO_RELAY_*` environment
//! variables and an optional TOML file, in that order of precedence, over
//! built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use synkro::net::{Multiaddr, ServerConfig};

/// Command line of `synkro-relay`. Every flag also reads an environment
/// variable (shown in `--help`), and every flag but `--config` a key of the
/// TOML file (`data_dir`, `listen`, `max_circuit_duration = "1h"`, ...).
#[derive(Debug, Default, Parser)]
#[command(
    name = "synkro-relay",
    version,
    about = "The synkro relay: NAT traversal, bootstrap and blind store-and-forward of end-to-end encrypted documents",
    long_about = "The synkro relay: NAT traversal (circuit relay v2, DCUtR, AutoNAT), bootstrap (rendezvous) and blind \
store-and-forward of end-to-end encrypted documents. It stores sealed chunks for documents that grant it the \
`replicate` role and serves them to members; it cannot read them.\n\nOn start it prints `listening <multiaddr>` \
once per address and `http <ip:port>`; give peers a `listening` address."
)]
pub struct Args {
    /// TOML file with any of the settings below; flags and environment win.
    #[arg(long, env = "SYNKRO_RELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the identity key, WebRTC certificate and stored documents live
    /// [default: the platform's data directory, e.g. ~/.local/share/synkro-relay].
    #[arg(long, env = "SYNKRO_RELAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, repeatable or comma-separated; port 0 picks a free port
    /// [default: TCP 4001, QUIC 4001, WebSocket 4002, WebRTC-direct 4003 on 0.0.0.0].
    #[arg(long, env = "SYNKRO_RELAY_LISTEN", value_name = "MULTIADDR", value_delimiter = ',')]
    pub listen: Vec<Multiaddr>,
    /// Public address to announce, e.g. /dns4/relay.example.org/tcp/4001 behind NAT or a load balancer.
    #[arg(
        long,
        env = "SYNKRO_RELAY_EXTERNAL_ADDRESS",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub external_address: Vec<Multiaddr>,
    /// Address of the HTTP endpoint for /health and /metrics [default: 127.0.0.1:8080].
    #[arg(long, env = "SYNKRO_RELAY_HTTP", value_name = "IP:PORT")]
    pub http: Option<SocketAddr>,
    /// Close an HTTP connection whose request headers are not complete this
    /// long after it opened or after its last response, e.g. 5s [default: 10s].
    #[arg(long, env = "SYNKRO_RELAY_HTTP_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Option<Duration>,
    /// Close an HTTP connection on which nothing is read or written for this
    /// long: between requests, or while the client does not read its
    /// response; keep-alive lasts the shorter of this and the header timeout [default: 30s].
    #[arg(long, env = "SYNKRO_RELAY_HTTP_IDLE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Option<Duration>,
    /// HTTP connections open at once, apart from libp2p's; more are closed
    /// as soon as they are accepted [default: 256].
    #[arg(long, env = "SYNKRO_RELAY_MAX_HTTP_CONNECTIONS", value_name = "N")]
    pub max_http_connections: Option<usize>,
    /// PEM certificate chain for /tls/ws listeners.
    #[arg(long, env = "SYNKRO_RELAY_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for /tls/ws listeners.
    #[arg(long, env = "SYNKRO_RELAY_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Only relay connections; store and serve no documents.
    #[arg(long, env = "SYNKRO_RELAY_NO_STORE")]
    pub no_store: bool,
    /// Most documents peers may make this relay store [default: unlimited].
    #[arg(long, env = "SYNKRO_RELAY_MAX_DOCUMENTS", value_name = "N")]
    pub max_documents: Option<usize>,
    /// Established connections at once [default: 4096].
    #[arg(long, env = "SYNKRO_RELAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Connections per IP address [default: 256].
    #[arg(long, env = "SYNKRO_RELAY_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<u32>,
    /// Circuits relayed at once [default: 256].
    #[arg(long, env = "SYNKRO_RELAY_MAX_CIRCUITS", value_name = "N")]
    pub max_circuits: Option<usize>,
    /// Longest life of one circuit, e.g. 30m [default: 1h].
    #[arg(long, env = "SYNKRO_RELAY_MAX_CIRCUIT_DURATION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_circuit_duration: Option<Duration>,
    /// Most bytes one circuit carries each way, in MiB [default: 64].
    #[arg(long, env = "SYNKRO_RELAY_MAX_CIRCUIT_MIB", value_name = "MIB")]
    pub max_circuit_mib: Option<u64>,
    /// Refuse new connections above this resident memory, in MiB [default: 1024].
    #[arg(long, env = "SYNKRO_RELAY_MAX_MEMORY_MIB", value_name = "MIB")]
    pub max_memory_mib: Option<usize>,
    /// Received frames held at once before they are handled, over all
    /// peers, in MiB; a peer waits while they are used up [default: 64].
    #[arg(long, env = "SYNKRO_RELAY_MAX_INBOUND_MIB", value_name = "MIB")]
    pub max_inbound_mib: Option<usize>,
    /// Documents kept in memory, in MiB (an estimate): above it the least
    /// recently used idle ones are dropped and read from disk again when a
    /// member needs them [default: 256].
    #[arg(long, env = "SYNKRO_RELAY_MEMORY_BUDGET_MIB", value_name = "MIB")]
    pub memory_budget_mib: Option<usize>,
    /// Serve the files of this directory over HTTP at / (e.g. the built web demo).
    #[arg(long, env = "SYNKRO_RELAY_WEB_ROOT", value_name = "DIR")]
    pub web_root: Option<PathBuf>,
    /// UDP address to answer STUN binding requests on, for browsers' direct
    /// WebRTC connections; port 0 picks a free port [default: 0.0.0.0:3478].
    #[arg(long, env = "SYNKRO_RELAY_STUN", value_name = "IP:PORT")]
    pub stun: Option<SocketAddr>,
    /// Do not answer STUN.
    #[arg(long, env = "SYNKRO_RELAY_NO_STUN", conflicts_with = "stun")]
    pub no_stun: bool,
    /// Keep documents in a NATS JetStream cluster instead of the data
    /// directory: NATS servers, comma-separated, e.g.
    /// nats://10.0.0.1:4222,nats://10.0.0.2:4222 (tls:// for TLS).
    #[arg(long, env = "SYNKRO_RELAY_CLUSTER", value_name = "URL", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// Replication factor of the documents' stream in the cluster
    /// [default: 3, or the number of NATS servers if fewer].
    #[arg(long, env = "SYNKRO_RELAY_CLUSTER_REPLICAS", value_name = "N")]
    pub cluster_replicas: Option<usize>,
    /// NATS credentials file (.creds) for the cluster.
    #[arg(long, env = "SYNKRO_RELAY_CLUSTER_CREDS", value_name = "FILE")]
    pub cluster_creds: Option<PathBuf>,
    /// CA certificate (PEM) the NATS servers' TLS certificates are checked
    /// against; given, TLS is required.
    #[arg(long, env = "SYNKRO_RELAY_CLUSTER_CA", value_name = "FILE")]
    pub cluster_ca: Option<PathBuf>,
    /// JetStream stream holding the documents [default: SYNKRO_DOCS].
    #[arg(long, env = "SYNKRO_RELAY_CLUSTER_STREAM", value_name = "NAME")]
    pub cluster_stream: Option<String>,
}

/// The TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    external_address: Vec<String>,
    http: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde")]
    http_header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    http_idle_timeout: Option<Duration>,
    max_http_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    no_store: Option<bool>,
    max_documents: Option<usize>,
    max_connections: Option<u32>,
    max_connections_per_ip: Option<u32>,
    max_circuits: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    max_circuit_duration: Option<Duration>,
    max_circuit_mib: Option<u64>,
    max_memory_mib: Option<usize>,
    max_inbound_mib: Option<usize>,
    memory_budget_mib: Option<usize>,
    web_root: Option<PathBuf>,
    stun: Option<SocketAddr>,
    no_stun: Option<bool>,
    #[serde(default)]
    cluster: Vec<String>,
    cluster_replicas: Option<usize>,
    cluster_creds: Option<PathBuf>,
    cluster_ca: Option<PathBuf>,
    cluster_stream: Option<String>,
}

/// Settings after merging flags, environment, file and defaults.
#[derive(Debug)]
pub struct RelayConfig {
    /// Identity, certificate and documents.
    pub data_dir: PathBuf,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Announced public addresses.
    pub external_addrs: Vec<Multiaddr>,
    /// HTTP endpoint.
    pub http: SocketAddr,
    /// How long an HTTP client may take to send request headers.
    pub http_header_timeout: Duration,
    /// How long an HTTP connection may sit with nothing read or written.
    pub http_idle_timeout: Duration,
    /// HTTP connections open at once (each holds a file handle).
    pub max_http_connections: usize,
    /// Certificate chain and key files for `/tls/ws`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Store and serve documents (the blind `replicate` member).
    pub store: bool,
    /// Document quota.
    pub max_documents: usize,
    /// Limits of the relay server.
    pub server: ServerConfig,
    /// Bytes of received frames held at once before they are handled.
    pub max_inbound_bytes: usize,
    /// Estimated bytes of documents kept in memory.
    pub memory_budget: usize,
    /// Static files served at `/`.
    pub web_root: Option<PathBuf>,
    /// Where STUN is answered (`None`: not at all).
    pub stun: Option<SocketAddr>,
    /// The NATS JetStream cluster holding the documents (`None`: the data
    /// directory does).
    pub cluster: Option<synkro_cluster::ClusterConfig>,
}

/// The listeners of a relay started without `--listen`.
pub const DEFAULT_LISTEN: [&str; 4] = [
    "/ip4/0.0.0.0/tcp/4001",
    "/ip4/0.0.0.0/udp/4001/quic-v1",
    "/ip4/0.0.0.0/tcp/4002/ws",
    "/ip4/0.0.0.0/udp/4003/webrtc-direct",
];

/// Where a relay answers STUN unless told otherwise.
pub const DEFAULT_STUN: &str = "0.0.0.0:3478";

/// The HTTP endpoint of a relay started without `--http`: loopback only,
/// because metrics are for the operator.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// Long enough for a slow honest client on a bad link, short enough that a
/// connection that never finishes its request soon gives its handle back.
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A scraper's or load balancer's keep-alive survives between polls, a
/// stalled client does not hold its connection for long.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Plenty for operators' tools, and a small, fixed share of the relay's
/// file handles, which libp2p needs for peers.
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 256;

impl RelayConfig {
    /// Merge `args` (flags and environment, already parsed) over the TOML
    /// file they name, if any, over the defaults.
    pub fn resolve(args: Args) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = if !args.listen.is_empty() {
            args.listen
        } else if !file.listen.is_empty() {
            parse_addrs(&file.listen, "listen")?
        } else {
            DEFAULT_LISTEN
                .iter()
                .map(|a| a.parse().expect("valid default address"))
                .collect()
        };
        let external_addrs = if !args.external_address.is_empty() {
            args.external_address
        } else {
            parse_addrs(&file.external_address, "external_address")?
        };
        let data_dir = match args.data_dir.or(file.data_dir) {
            Some(dir) => dir,
            None => directories::ProjectDirs::from("", "", "synkro-relay")
                .map(|d| d.data_dir().to_owned())
                .context("no data directory: pass --data-dir")?,
        };
        let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        };
        let http_header_timeout = args
            .http_header_timeout
            .or(file.http_header_timeout)
            .unwrap_or(DEFAULT_HTTP_HEADER_TIMEOUT);
        let http_idle_timeout = args
            .http_idle_timeout
            .or(file.http_idle_timeout)
            .unwrap_or(DEFAULT_HTTP_IDLE_TIMEOUT);
        let max_http_connections = args
            .max_http_connections
            .or(file.max_http_connections)
            .unwrap_or(DEFAULT_MAX_HTTP_CONNECTIONS);
        anyhow::ensure!(
            !http_header_timeout.is_zero() && !http_idle_timeout.is_zero(),
            "http_header_timeout and http_idle_timeout must be longer than 0s"
        );
        anyhow::ensure!(
            (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&max_http_connections),
            "max_http_connections must be at least 1 (the endpoint serves /health)"
        );
        let defaults = ServerConfig::default();
        let server = ServerConfig {
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            max_connections_per_ip: args
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(defaults.max_connections_per_ip),
            max_circuits: args.max_circuits.or(file.max_circuits).unwrap_or(defaults.max_circuits),
            max_circuit_duration: args
                .max_circuit_duration
                .or(file.max_circuit_duration)
                .unwrap_or(defaults.max_circuit_duration),
            max_circuit_bytes: args
                .max_circuit_mib
                .or(file.max_circuit_mib)
                .map_or(defaults.max_circuit_bytes, |m| m << 20),
            max_memory_bytes: args
                .max_memory_mib
                .or(file.max_memory_mib)
                .map_or(defaults.max_memory_bytes, |m| m << 20),
            ..defaults
        };
        let servers = if args.cluster.is_empty() {
            file.cluster
        } else {
            args.cluster
        };
        let cluster = match servers.is_empty() {
            true => None,
            false => {
                let mut c = synkro_cluster::ClusterConfig::new(servers);
                c.replicas = args.cluster_replicas.or(file.cluster_replicas);
                anyhow::ensure!(
                    c.replicas.is_none_or(|r| (1..=5).contains(&r)),
                    "cluster_replicas must be 1 to 5 (JetStream's limit)"
                );
                c.credentials = args.cluster_creds.or(file.cluster_creds);
                c.ca = args.cluster_ca.or(file.cluster_ca);
                if let Some(stream) = args.cluster_stream.or(file.cluster_stream) {
                    c.stream = stream;
                }
                Some(c)
            }
        };
        Ok(Self {
            cluster,
            data_dir,
            listen,
            external_addrs,
            http: match args.http.or(file.http) {
                Some(a) => a,
                None => DEFAULT_HTTP.parse().expect("valid default address"),
            },
            http_header_timeout,
            http_idle_timeout,
            max_http_connections,
            tls,
            store: !(args.no_store || file.no_store.unwrap_or(false)),
            max_documents: args.max_documents.or(file.max_documents).unwrap_or(usize::MAX),
            server,
            max_inbound_bytes: args
                .max_inbound_mib
                .or(file.max_inbound_mib)
                .map_or(synkro::net::NetConfig::default().max_inbound_bytes, |m| m << 20),
            memory_budget: args
                .memory_budget_mib
                .or(file.memory_budget_mib)
                .map_or(synkro::NodeConfig::default().memory_budget, |m| {
                    m.saturating_mul(1 << 20)
                }),
            web_root: args.web_root.or(file.web_root),
            stun: if args.no_stun || file.no_stun.unwrap_or(false) {
                None
            } else {
                Some(match args.stun.or(file.stun) {
                    Some(a) => a,
                    None => DEFAULT_STUN.parse().expect("valid default address"),
                })
            },
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid relay configuration", path.display()))
}

fn parse_addrs(values: &[String], key: &str) -> anyhow::Result<Vec<Multiaddr>> {
    values
        .iter()
        .map(|v| v.parse().with_context(|| format!("{key}: {v:?} is not a multiaddr")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(argv: &[&str], file: Option<&str>) -> anyhow::Result<RelayConfig> {
        let dir = tempfile::tempdir()?;
        let mut full = vec!["synkro-relay"];
        let path = dir.path().join("relay.toml");
        let path_text = path.to_string_lossy().into_owned();
        if let Some(text) = file {
            std::fs::write(&path, text)?;
            full.extend(["--config", &path_text]);
        }
        full.extend(argv);
        RelayConfig::resolve(Args::try_parse_from(full)?)
    }

    #[test]
    fn defaults_listen_on_every_transport() -> anyhow::Result<()> {
        let c = resolve(&["--data-dir", "/tmp/r"], None)?;
        let listen: Vec<String> = c.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, DEFAULT_LISTEN);
        assert_eq!(c.http.to_string(), DEFAULT_HTTP);
        assert!(c.store);
        assert_eq!(c.server.max_circuit_bytes, 64 << 20);
        assert_eq!(c.stun.map(|a| a.to_string()).as_deref(), Some(DEFAULT_STUN));
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
        assert_eq!(c.http_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.max_http_connections, 256);
        let c = resolve(&["--data-dir", "/tmp/r", "--no-stun"], None)?;
        assert_eq!(c.stun, None);
        let c = resolve(&["--data-dir", "/tmp/r"], Some("stun = \"127.0.0.1:0\""))?;
        assert_eq!(c.stun.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:0"));
        assert!(c.cluster.is_none(), "local files unless told");
        Ok(())
    }

    #[test]
    fn a_cluster_is_named_by_flag_or_file() -> anyhow::Result<()> {
        let file = r#"
            cluster = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
            cluster_replicas = 3
            cluster_stream = "DOCS"
        "#;
        let c = resolve(&["--data-dir", "/tmp/r"], Some(file))?;
        let cluster = c.cluster.context("cluster")?;
        assert_eq!(cluster.servers.len(), 2);
        assert_eq!(cluster.replicas, Some(3));
        assert_eq!(cluster.stream, "DOCS");
        let c = resolve(
            &[
                "--data-dir",
                "/tmp/r",
                "--cluster",
                "nats://127.0.0.1:1,nats://127.0.0.1:2",
            ],
            Some(file),
        )?;
        let cluster = c.cluster.context("cluster")?;
        assert_eq!(
            cluster.servers,
            ["nats://127.0.0.1:1", "nats://127.0.0.1:2"],
            "the flag wins"
        );
        let bad = resolve(
            &[
                "--data-dir",
                "/tmp/r",
                "--cluster",
                "nats://a:1",
                "--cluster-replicas",
                "7",
            ],
            None,
        )
        .expect_err("too many replicas");
        assert!(format!("{bad:#}").contains("cluster_replicas"), "{bad:#}");
        Ok(())
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() -> anyhow::Result<()> {
        let file = r#"
            data_dir = "/var/lib/synkro-relay"
            listen = ["/ip4/127.0.0.1/tcp/7000"]
            http = "127.0.0.1:9000"
            max_circuit_duration = "30m"
            max_circuit_mib = 8
            no_store = true
            http_header_timeout = "2s"
            http_idle_timeout = "1m"
            max_http_connections = 64
        "#;
        let c = resolve(
            &["--http", "127.0.0.1:9100", "--max-http-connections", "32"],
            Some(file),
        )?;
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/synkro-relay"));
        assert_eq!(c.listen, vec!["/ip4/127.0.0.1/tcp/7000".parse::<Multiaddr>()?]);
        assert_eq!(c.http.port(), 9100, "the flag wins");
        assert_eq!(c.server.max_circuit_duration, Duration::from_secs(30 * 60));
        assert_eq!(c.server.max_circuit_bytes, 8 << 20);
        assert!(!c.store);
        assert_eq!(c.http_header_timeout, Duration::from_secs(2));
        assert_eq!(c.http_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_http_connections, 32, "the flag wins");
        let c = resolve(
            &["--http-header-timeout", "500ms", "--http-idle-timeout", "5s"],
            Some(file),
        )?;
        assert_eq!(c.http_header_timeout, Duration::from_millis(500));
        assert_eq!(c.http_idle_timeout, Duration::from_secs(5));
        assert_eq!(c.max_http_connections, 64);
        Ok(())
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        let unknown = resolve(&[], Some("lissten = []")).expect_err("unknown key");
        assert!(format!("{unknown:#}").contains("lissten"), "{unknown:#}");
        let bad = resolve(&[], Some(r#"listen = ["tcp/4001"]"#)).expect_err("bad address");
        assert!(format!("{bad:#}").contains("not a multiaddr"), "{bad:#}");
        assert!(resolve(&["--listen", "4001"], None).is_err());
        assert!(resolve(&["--tls-cert", "c.pem"], None).is_err(), "needs the key too");
        let none = resolve(&["--data-dir", "/tmp/r", "--max-http-connections", "0"], None).expect_err("no room");
        assert!(format!("{none:#}").contains("max_http_connections"), "{none:#}");
        let zero = resolve(&["--data-dir", "/tmp/r"], Some(r#"http_header_timeout = "0s""#)).expect_err("zero");
        assert!(format!("{zero:#}").contains("http_header_timeout"), "{zero:#}");
        let bad = resolve(&["--data-dir", "/tmp/r"], Some("http_idle_timeout = 30")).expect_err("no unit");
        assert!(format!("{bad:#}").contains("http_idle_timeout"), "{bad:#}");
        assert!(
            resolve(&["--http-header-timeout", "10"], None).is_err(),
            "a duration needs a unit"
        );
    }

    #[test]
    fn the_example_file_is_valid() -> anyhow::Result<()> {
        let c = resolve(&[], Some(include_str!("../relay.example.toml")))?;
        assert!(c.store);
        assert_eq!(c.listen.len(), 4);
        Ok(())
    }
}
