//! The operator's HTTP endpoint: `/health` (JSON), `/metrics` (Prometheus
//! text format), `/bootstrap` (where to dial this relay, for web apps) and,
//! optionally, static files at `/`.
//!
//! Whatever clients do, the endpoint holds at most
//! [`HttpLimits::max_connections`] sockets, so it can neither run the relay
//! out of file handles (which libp2p needs for honest peers) nor hoard
//! memory. Hyper closes a connection that has not sent complete request
//! headers within the header timeout; [`IdleTimeout`] closes one on which
//! nothing moves for the idle timeout. Connections beyond the cap are
//! accepted and closed at once: see [`serve`] for why.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use synkro::Repo;
use synkro::net::Network;
use synkro_net::Throttle;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower_http::services::ServeDir;
use tracing::{debug, warn};

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
    /// Process memory past which new connections are denied.
    pub memory_cap: usize,
    /// The cluster store, for a relay of a cluster.
    pub cluster: Option<synkro_cluster::NatsStorage>,
}

/// What the endpoint lets one client hold.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// From accepting a connection, or from the end of its last response,
    /// until its next request's headers are complete.
    pub header_timeout: Duration,
    /// Longest a connection may sit with nothing read or written.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
}

/// The endpoint's own counts, in the relay's registry.
#[derive(Clone, Debug, Default)]
pub struct HttpMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed at accept because `max_connections` were open.
    pub refused: Counter,
}

/// How often, at most, refused connections are logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serve until `shutdown` completes, then let open requests finish.
///
/// Over the cap, a connection is accepted and closed at once rather than
/// left in the kernel's accept queue: both keep the relay's file handles
/// bounded, but a queue full of an attacker's connections would make every
/// later client (a health check, a scrape) wait behind them a header
/// timeout each, while closing answers at once, keeps the queue empty and
/// lets the refusals be counted.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    web_root: Option<PathBuf>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let counts = status.metrics.http.clone();
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/bootstrap", get(bootstrap))
        .with_state(status);
    if let Some(root) = web_root {
        app = app.fallback_service(ServeDir::new(root).append_index_html_on_directories(true));
    }
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut refusals = Throttle::new(REFUSAL_LOG_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            counts.refused.inc();
            if let Some(refused) = refusals.hit() {
                warn!(
                    refused,
                    max_http_connections = limits.max_connections,
                    "HTTP connections refused: the endpoint is full (raise max_http_connections if these are honest clients)"
                );
            }
            continue;
        };
        let slot = Slot::taken(permit, &counts.open);
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let connection = graceful.watch(http.serve_connection(io, TowerToHyperService::new(app.clone())));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    // Stop accepting now; requests under way may finish, and every
    // connection's timeouts bound how long that takes.
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of `accept` that concern one connection are skipped; others
/// (out of file handles) are waited out, as `axum::serve` does, rather
/// than spun on.
async fn accept_failed(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {}
        _ => {
            warn!(error = %e, "the HTTP endpoint cannot accept connections; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// One of the `max_connections` places, held for the life of a connection.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn taken(permit: OwnedSemaphorePermit, open: &Gauge) -> Self {
        open.inc();
        Self {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A stream that fails with [`io::ErrorKind::TimedOut`] once nothing has
/// been read from or written to it for its limit while the server waits on
/// it: a keep-alive connection without a next request, a client that does
/// not read its response. Hyper then closes the connection.
struct IdleTimeout<S> {
    stream: S,
    limit: Duration,
    /// When a byte last moved. The timer is moved up to it only when it
    /// fires, so busy connections do not touch the timer wheel per read.
    moved: tokio::time::Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    /// Watch `stream`, starting now.
    fn new(stream: S, limit: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            stream,
            limit,
            moved: now,
            timer: Box::pin(tokio::time::sleep_until(now + limit)),
        }
    }

    fn moved(&mut self) {
        self.moved = tokio::time::Instant::now();
    }

    /// Called when the stream is not ready: ready with an error once it has
    /// been still for the limit, otherwise pending (with the timer armed).
    fn poll_still(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let due = self.moved + self.limit;
            if due <= tokio::time::Instant::now() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP connection idle for too long",
                ));
            }
            self.timer.as_mut().reset(due);
        }
    }

    /// What a write returns, noting whether bytes moved.
    fn wrote(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.moved();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.poll_still(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_still(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.poll_still(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.poll_still(cx).map(Err),
        }
    }
}

async fn health(State(s): State<Arc<Status>>) -> Json<Value> {
    let stats = s.repo.stats();
    let mut reasons = crate::health::reasons(&s.repo, s.memory_cap);
    let cluster = match &s.cluster {
        Some(store) => {
            let health = store.health().await;
            reasons.extend(crate::health::cluster_reasons(&health));
            crate::health::cluster_json(&health)
        }
        None => Value::Null,
    };
    Json(json!({
        "cluster": cluster,
        "status": if reasons.is_empty() { "ok" } else { "degraded" },
        "reasons": reasons,
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LIMIT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_connection_that_goes_quiet_times_out_one_that_talks_does_not() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut near = IdleTimeout::new(near, LIMIT);
        let mut buf = [0u8; 8];
        // Bytes that keep coming, each within the limit, keep it open.
        for _ in 0..5 {
            tokio::time::sleep(LIMIT / 2).await;
            far.write_all(b"x").await.expect("write");
            assert_eq!(near.read(&mut buf).await.expect("read"), 1);
        }
        // Then nothing: the read fails once the limit has passed.
        let quiet = near.read(&mut buf).await.expect_err("idle");
        assert_eq!(quiet.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_its_response_times_out() {
        let (near, _far) = tokio::io::duplex(64);
        let mut near = IdleTimeout::new(near, LIMIT);
        // The pipe holds 64 bytes; the rest waits for a reader that never comes.
        let stuck = near.write_all(&[0u8; 1024]).await.expect_err("stuck");
        assert_eq!(stuck.kind(), io::ErrorKind::TimedOut);
    }
}
