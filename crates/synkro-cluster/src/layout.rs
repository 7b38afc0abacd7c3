//! The stream that holds every document's log, created on first use.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::{self as js};
use tracing::info;

use crate::{ClusterConfig, ClusterError};

/// How long JetStream remembers a `Nats-Msg-Id` to drop a retried publish.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The replication factor to ask for: the setting, else 3 or the number of
/// servers in the cluster, whichever is smaller.
pub(crate) fn replicas(client: &async_nats::Client, config: &ClusterConfig) -> usize {
    if let Some(r) = config.replicas {
        return r.max(1);
    }
    let info = client.server_info();
    let servers = match info.cluster {
        // `connect_urls` lists the client URLs of the cluster's servers.
        Some(_) => info.connect_urls.len().max(1),
        None => 1,
    };
    servers.min(3)
}

pub(crate) async fn open_stream(
    js: &js::Context,
    client: &async_nats::Client,
    config: &ClusterConfig,
) -> Result<Stream, ClusterError> {
    let replicas = replicas(client, config);
    let wanted = Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.*", config.subject_prefix)],
        // Documents are kept until removed: no age or size eviction.
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        storage: StorageType::File,
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        allow_rollup: true,
        deny_delete: true,
        ..Default::default()
    };
    match js.get_stream(&config.stream).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| ClusterError::JetStream(e.to_string()))?;
            let have = info.config.num_replicas;
            if config.replicas.is_some() && have != replicas {
                let mut changed = info.config.clone();
                changed.num_replicas = replicas;
                js.update_stream(changed).await.map_err(|e| {
                    ClusterError::JetStream(format!("cannot set the stream to {replicas} replicas: {e}"))
                })?;
                info!(stream = %config.stream, from = have, to = replicas, "stream replication factor changed");
            }
            Ok(stream)
        }
        Err(_) => js
            .create_stream(wanted)
            .await
            .map_err(|e| ClusterError::JetStream(format!("cannot create stream {}: {e}", config.stream))),
    }
}
