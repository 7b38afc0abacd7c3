//! synkro's relays as a cluster: documents kept in NATS JetStream instead
//! of one relay's disk, so that any relay of the cluster can serve them and
//! a relay can die without taking the only copy with it.
//!
//! The relays stay blind: what they keep in JetStream is what they would
//! keep on disk, sealed chunks and signed access-log ops, checked before
//! they are published. The layout (stream, subjects, retention, replicas) is
//! described in `docs/cluster.md`.
//!
//! ```no_run
//! use synkro_cluster::{Cluster, ClusterConfig};
//!
//! # async fn run() -> Result<(), synkro_cluster::ClusterError> {
//! let cluster = Cluster::connect(ClusterConfig::new(["nats://127.0.0.1:4222"])).await?;
//! // Every relay of the cluster is the same member: the first one makes
//! // the key, the others read it.
//! let key = cluster.shared_secret("relay-identity", || vec![7; 64]).await?;
//! // `storage` implements `synkro_storage::Storage`: hand it to a repo.
//! let storage = cluster.storage().await?;
//! # drop((key, storage));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod known;
mod layout;
mod log;
mod store;

use std::path::PathBuf;
use std::time::Duration;

pub use store::{CountsNow, Health, NatsStorage, StreamHealth, Watch, Written};

/// Where the cluster is and how documents are laid out in it.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS servers, e.g. `nats://10.0.0.1:4222`; `tls://` for TLS. Any one
    /// reachable server is enough; the client learns the others. A user and
    /// password (`nats://relay:secret@host:4222`) or a token
    /// (`nats://token@host:4222`) in a URL authenticate the relay, when no
    /// credentials file is given; logs and errors show them as `***`.
    pub servers: Vec<String>,
    /// Replication factor of the stream; `None`: 3, or fewer when the
    /// cluster has fewer JetStream servers (1 for a single server).
    pub replicas: Option<usize>,
    /// JetStream stream name (default `SYNKRO_DOCS`).
    pub stream: String,
    /// Subject prefix; each document's log is `<prefix>.<hex id>`
    /// (default `synkro.docs`).
    pub subject_prefix: String,
    /// A NATS credentials file (`.creds`: JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the servers' TLS certificates;
    /// given, TLS is required.
    pub ca: Option<PathBuf>,
    /// How long to wait for the first connection.
    pub connect_timeout: Duration,
    /// The client's name, as NATS monitoring shows it.
    pub client_name: String,
}

impl ClusterConfig {
    /// Settings for these servers, everything else by default.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        ClusterConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            replicas: None,
            stream: "SYNKRO_DOCS".into(),
            subject_prefix: "synkro.docs".into(),
            credentials: None,
            ca: None,
            connect_timeout: Duration::from_secs(5),
            client_name: "synkro-relay".into(),
        }
    }
}

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A server address does not parse.
    #[error("invalid NATS server address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials file could not be read.
    #[error("cannot read the NATS credentials file {}: {source}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What the OS or the parser said.
        source: std::io::Error,
    },
    /// No server could be reached.
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        reason: String,
    },
    /// The server has no JetStream, or the stream could not be created or
    /// opened as asked.
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// A connection to the cluster.
pub struct Cluster {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    config: ClusterConfig,
}

/// Stream of the cluster's own settings (not documents).
const SETTINGS_STREAM: &str = "SYNKRO_RELAYS";

impl Cluster {
    /// Connect to one of `config.servers` (then to the others as needed).
    pub async fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let client = connect(&config).await?;
        let js = async_nats::jetstream::new(client.clone());
        Ok(Cluster { client, js, config })
    }

    /// The documents' store, creating its stream on first use.
    pub async fn storage(&self) -> Result<NatsStorage, ClusterError> {
        NatsStorage::open(self.client.clone(), &self.config).await
    }

    /// The value of `name` among the cluster's settings (stream
    /// `SYNKRO_RELAYS`, subject `synkro.relays.<name>`), which `make`
    /// creates when no relay has yet: every relay gets the same bytes.
    pub async fn shared_secret(&self, name: &str, make: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        use async_nats::jetstream::context::PublishErrorKind;
        use async_nats::jetstream::stream::{Config, DiscardPolicy, LastRawMessageErrorKind, StorageType};
        let failed =
            |e: &dyn std::fmt::Display| ClusterError::JetStream(format!("settings stream {SETTINGS_STREAM}: {e}"));
        let stream = match self.js.get_stream(SETTINGS_STREAM).await {
            Ok(s) => s,
            Err(_) => self
                .js
                .create_stream(Config {
                    name: SETTINGS_STREAM.into(),
                    subjects: vec!["synkro.relays.*".into()],
                    max_messages_per_subject: 1,
                    discard: DiscardPolicy::New,
                    storage: StorageType::File,
                    num_replicas: layout::replicas(&self.client, &self.config),
                    deny_delete: true,
                    deny_purge: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(&e))?,
        };
        let subject = format!("synkro.relays.{name}");
        let read = async || match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Ok(Some(m.payload.to_vec())),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed(&e)),
        };
        if let Some(v) = read().await? {
            return Ok(v);
        }
        // Stored only if the subject is still empty: of relays starting
        // together, one wins and the others read its bytes.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, make().into())
            .await
            .map_err(|e| failed(&e))?;
        match ack.await {
            Ok(_) => {}
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
            Err(e) => return Err(failed(&e)),
        }
        read()
            .await?
            .ok_or_else(|| failed(&format!("{name} vanished right after it was made")))
    }

    /// Whether the client is connected to a server now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// A connected client, as the settings say.
async fn connect(config: &ClusterConfig) -> Result<async_nats::Client, ClusterError> {
    let mut addrs = Vec::new();
    for s in &config.servers {
        let addr = s.parse::<async_nats::ServerAddr>().map_err(|e| ClusterError::Address {
            address: shown(std::slice::from_ref(s)),
            reason: e.to_string(),
        })?;
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(ClusterError::Address {
            address: String::new(),
            reason: "no server given".into(),
        });
    }
    let mut options = match &config.credentials {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| ClusterError::Credentials {
                path: path.clone(),
                source,
            })?,
        None => match addrs.iter().find_map(|a| a.username().map(|u| (u, a.password()))) {
            Some((user, Some(pass))) => {
                async_nats::ConnectOptions::with_user_and_password(decoded(user), decoded(pass))
            }
            Some((token, None)) => async_nats::ConnectOptions::with_token(decoded(token)),
            None => async_nats::ConnectOptions::new(),
        },
    };
    if let Some(ca) = &config.ca {
        // A process with both of rustls's providers compiled in (other
        // crates bring aws-lc-rs) has no default: name the one NATS's
        // client is built with. Another one already chosen stays.
        let _ = async_nats::rustls::crypto::ring::default_provider().install_default();
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let options = options
        .name(&config.client_name)
        .connection_timeout(config.connect_timeout)
        // After the first connection, reconnect for as long as it takes:
        // meanwhile writes fail as "unavailable" and are retried.
        .max_reconnects(None);
    options.connect(addrs).await.map_err(|e| {
        use async_nats::ConnectErrorKind as Kind;
        let hint = match e.kind() {
            Kind::Authentication | Kind::AuthorizationViolation => {
                "check the user, password, token or credentials file"
            }
            Kind::Tls => "check the CA (--cluster-ca) and the server's certificate",
            _ => "is nats-server running with JetStream, `-js`?",
        };
        ClusterError::Connect {
            servers: shown(&config.servers),
            reason: format!("{e} ({hint})"),
        }
    })
}

/// Servers as logs may show them: any user, password or token in a URL
/// replaced by `***`.
pub fn shown(servers: &[String]) -> String {
    let hide = |url: &str| match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && !url[scheme + 3..at].contains('/') => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    };
    servers.iter().map(|s| hide(s)).collect::<Vec<_>>().join(",")
}

/// A URL's user part as it was meant (`%40` is `@`).
fn decoded(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn secrets_in_server_urls_are_not_shown() {
        let servers = [
            "tls://relay:p%40ss@10.0.0.1:4222".to_owned(),
            "nats://s3cr3t-token@10.0.0.2:4222".to_owned(),
            "nats://10.0.0.3:4222".to_owned(),
            "10.0.0.4:4222".to_owned(),
        ];
        assert_eq!(
            shown(&servers),
            "tls://***@10.0.0.1:4222,nats://***@10.0.0.2:4222,nats://10.0.0.3:4222,10.0.0.4:4222"
        );
    }
}
