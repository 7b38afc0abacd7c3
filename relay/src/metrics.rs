//! What the relay exports at `/metrics`, next to libp2p's own metrics
//! (connections, relay server, identify, ping) in the same registry.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use synkro::Repo;
use synkro::net::{NetCounts, Network, Traffic};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

const SENT: Direction = Direction { direction: "sent" };
const RECEIVED: Direction = Direction { direction: "received" };

/// The relay's own metrics, all prefixed `synkro_`, read from the repo and
/// the network when scraped. The counters come from counts kept where the
/// events happen, not from the event streams, which a busy relay can fall
/// behind on (a burst of connections, a flood of forged chunks).
#[derive(Clone)]
pub struct Metrics {
    documents: Gauge,
    documents_loaded: Gauge,
    memory_estimate: Gauge,
    stored_bytes: Gauge,
    sessions: Gauge,
    connections: Gauge,
    sync_messages: Family<Direction, Counter>,
    sync_bytes: Family<Direction, Counter>,
    seen: Arc<Mutex<Seen>>,
    /// Chunks and access ops refused (forged, unauthorised, over quota).
    rejected: Counter,
    /// Peers disconnected for malformed or oversized frames.
    misbehaving_peers: Counter,
    /// Sync sessions opened.
    sessions_opened: Counter,
    /// The STUN responder's counts.
    pub stun: crate::stun::StunMetrics,
    /// The HTTP endpoint's counts.
    pub http: crate::http::HttpMetrics,
    /// In a cluster: NATS JetStream's part.
    cluster: Option<ClusterMetrics>,
}

/// A cluster relay's metrics (`synkro_cluster_*`).
#[derive(Clone)]
struct ClusterMetrics {
    store: synkro_cluster::NatsStorage,
    published: Counter,
    publish_failures: Counter,
    heard: Counter,
    follow_lag: Gauge,
    conflicts: Counter,
    seen: Arc<Mutex<synkro_cluster::CountsNow>>,
}

impl Metrics {
    /// Register every metric in `registry` under `synkro_`.
    pub fn register(registry: &mut Registry, store: bool) -> Self {
        let r = registry.sub_registry_with_prefix("synkro");
        let m = Self {
            documents: Gauge::default(),
            documents_loaded: Gauge::default(),
            memory_estimate: Gauge::default(),
            stored_bytes: Gauge::default(),
            sessions: Gauge::default(),
            connections: Gauge::default(),
            sync_messages: Family::default(),
            sync_bytes: Family::default(),
            seen: Arc::default(),
            rejected: Counter::default(),
            misbehaving_peers: Counter::default(),
            sessions_opened: Counter::default(),
            stun: crate::stun::StunMetrics::default(),
            http: crate::http::HttpMetrics::default(),
            cluster: None,
        };
        r.register(
            "relay",
            "Version and mode of this relay",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("store", if store { "true" } else { "false" }),
            ]),
        );
        r.register("documents", "Documents stored", m.documents.clone());
        r.register(
            "documents_loaded",
            "Documents in memory (the others are read from disk when needed)",
            m.documents_loaded.clone(),
        );
        r.register(
            "memory_estimate_bytes",
            "Estimated bytes the documents in memory take, held against --memory-budget-mib",
            m.memory_estimate.clone(),
        );
        r.register(
            "stored_bytes",
            "Sealed bytes stored (chunks and access ops)",
            m.stored_bytes.clone(),
        );
        r.register("sessions", "Open sync sessions", m.sessions.clone());
        r.register("connections", "Open libp2p connections", m.connections.clone());
        r.register(
            "sync_messages",
            "Sync frames exchanged with peers",
            m.sync_messages.clone(),
        );
        r.register(
            "sync_bytes",
            "Bytes of sync frames exchanged with peers",
            m.sync_bytes.clone(),
        );
        r.register(
            "rejected",
            "Chunks and access ops refused: bad signature, not a writer, over quota",
            m.rejected.clone(),
        );
        r.register(
            "misbehaving_peers",
            "Peers disconnected for malformed or oversized frames",
            m.misbehaving_peers.clone(),
        );
        r.register("sessions_opened", "Sync sessions opened", m.sessions_opened.clone());
        r.register(
            "stun_answered",
            "STUN binding requests answered",
            m.stun.answered.clone(),
        );
        r.register(
            "stun_dropped",
            "UDP datagrams on the STUN port that were not binding requests",
            m.stun.dropped.clone(),
        );
        r.register(
            "http_connections",
            "Open connections to this HTTP endpoint",
            m.http.open.clone(),
        );
        r.register(
            "http_connections_refused",
            "Connections to this HTTP endpoint closed at once because max_http_connections were open",
            m.http.refused.clone(),
        );
        m
    }

    /// A relay of a cluster also exports JetStream's side: publishes (and
    /// their latency, as a histogram), failures, the other relays' writes
    /// heard, and how far behind them it follows.
    pub fn register_cluster(&mut self, registry: &mut Registry, store: &synkro_cluster::NatsStorage) {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        let r = registry.sub_registry_with_prefix("synkro_cluster");
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let observed = latency.clone();
        store.observe_publishes(move |d| observed.observe(d.as_secs_f64()));
        r.register(
            "publish_seconds",
            "From publishing a write to JetStream's acknowledgement (a majority of replicas hold it)",
            latency,
        );
        let m = ClusterMetrics {
            store: store.clone(),
            published: Counter::default(),
            publish_failures: Counter::default(),
            heard: Counter::default(),
            follow_lag: Gauge::default(),
            conflicts: Counter::default(),
            seen: Arc::default(),
        };
        r.register("published", "Writes JetStream acknowledged", m.published.clone());
        r.register(
            "publish_failures",
            "Writes JetStream did not confirm (kept and retried: not acknowledged to peers meanwhile)",
            m.publish_failures.clone(),
        );
        r.register(
            "heard",
            "Writes of the other relays handed to this one",
            m.heard.clone(),
        );
        r.register(
            "follow_lag",
            "Messages of the stream not yet delivered to this relay's follower",
            m.follow_lag.clone(),
        );
        r.register(
            "write_conflicts",
            "Writes another relay's write to the same document came before (stored, marked for a full read at start)",
            m.conflicts.clone(),
        );
        self.cluster = Some(m);
    }

    /// Bring the gauges and traffic counters up to date (before a scrape).
    pub fn refresh(&self, repo: &Repo, net: &Network) {
        let stats = repo.stats();
        self.documents.set(saturating_i64(stats.documents));
        self.documents_loaded.set(saturating_i64(stats.loaded));
        self.memory_estimate.set(saturating_i64(stats.memory_estimate));
        self.stored_bytes.set(saturating_i64(stats.stored_bytes));
        self.sessions.set(saturating_i64(stats.peers));
        self.connections.set(saturating_i64(net.connections().len()));
        let now = Seen {
            traffic: net.total_traffic(),
            counts: net.counts(),
            rejected: stats.rejected,
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (t, then) = (&now.traffic, &seen.traffic);
        let grow = |c: &Counter, now: u64, then: u64| {
            c.inc_by(now.saturating_sub(then));
        };
        grow(
            &self.sync_messages.get_or_create(&SENT),
            t.messages_sent,
            then.messages_sent,
        );
        grow(
            &self.sync_messages.get_or_create(&RECEIVED),
            t.messages_received,
            then.messages_received,
        );
        grow(&self.sync_bytes.get_or_create(&SENT), t.bytes_sent, then.bytes_sent);
        grow(
            &self.sync_bytes.get_or_create(&RECEIVED),
            t.bytes_received,
            then.bytes_received,
        );
        grow(&self.rejected, now.rejected, seen.rejected);
        grow(&self.misbehaving_peers, now.counts.misbehaved, seen.counts.misbehaved);
        grow(
            &self.sessions_opened,
            now.counts.sessions_opened,
            seen.counts.sessions_opened,
        );
        *seen = now;
        if let Some(c) = &self.cluster {
            let now = c.store.counts();
            let mut seen = c.seen.lock().unwrap_or_else(PoisonError::into_inner);
            grow(&c.published, now.published, seen.published);
            grow(&c.publish_failures, now.publish_failures, seen.publish_failures);
            grow(&c.heard, now.heard, seen.heard);
            grow(&c.conflicts, now.conflicts, seen.conflicts);
            c.follow_lag.set(i64::try_from(now.follow_lag).unwrap_or(i64::MAX));
            *seen = now;
        }
    }
}

/// The running totals at the last scrape: counters grow by the difference.
#[derive(Default)]
struct Seen {
    traffic: Traffic,
    counts: NetCounts,
    rejected: u64,
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
