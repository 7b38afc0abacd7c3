//! The operator's HTTP endpoint: `/health` (JSON), `/metrics` (Prometheus
//! text format), `/bootstrap` (where to dial this relay, for web apps) and,
//! optionally, static files at `/`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use synkro::Repo;
use synkro::net::Network;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

use crate::metrics::Metrics;

/// What the handlers read.
pub struct Status {
    /// The relay's repo (its stored documents).
    pub repo: Repo,
    /// Its libp2p node.
    pub net: Network,
    /// Its metrics, with libp2p's, in `registry`.
    pub metrics: Metrics,
    /// Every metric.
    pub registry: Registry,
    /// Whether it stores documents.
    pub store: bool,
    /// When it started.
    pub started: Instant,
}

/// Serve until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    web_root: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/bootstrap", get(bootstrap))
        .with_state(status);
    if let Some(root) = web_root {
        app = app.fallback_service(ServeDir::new(root).append_index_html_on_directories(true));
    }
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn health(State(s): State<Arc<Status>>) -> Json<Value> {
    let stats = s.repo.stats();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "peer_id": s.net.peer_id().to_string(),
        "store": s.store,
        "documents": stats.documents,
        "stored_bytes": stats.stored_bytes,
        "sessions": stats.peers,
        "connections": s.net.connections().len(),
        "uptime_secs": s.started.elapsed().as_secs(),
    }))
}

/// The relay's peer id and the addresses it listens on (each ending in
/// `/p2p/<peer id>`), so that a web app served from anywhere finds the
/// WebSocket and WebRTC-direct addresses it can dial. Public information,
/// so any origin may read it.
async fn bootstrap(State(s): State<Arc<Status>>) -> impl IntoResponse {
    let addresses: Vec<String> = s.net.listen_addrs().iter().map(ToString::to_string).collect();
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Json(json!({
            "peer_id": s.net.peer_id().to_string(),
            "addresses": addresses,
        })),
    )
}

async fn metrics(State(s): State<Arc<Status>>) -> impl IntoResponse {
    s.metrics.refresh(&s.repo, &s.net);
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
