//! The self-metrics listener (`[metrics] listen`, `/metrics`). It outlives reloads, and
//! is moved only when a reload changes `[metrics] listen`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MetricsConfig;
use crate::metrics::Metrics;

pub struct MetricsListener {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetricsListener {
    pub fn start(
        config: &MetricsConfig,
        metrics: &Arc<Metrics>,
        root: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Self {
        let stop = root.child_token();
        let listen = config.listen.as_deref().and_then(|l| l.parse().ok());
        let task = listen.map(|listen| {
            let (m, stop) = (metrics.clone(), stop.clone());
            tracker.spawn(async move {
                if let Err(e) = serve(listen, m, stop).await {
                    tracing::error!(%listen, "cannot serve self-metrics: {e}");
                }
            })
        });
        Self { stop, task }
    }

    /// Stops listening, and returns once the port is free again.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The bounds of the self-metrics listener. Prometheus scrapes it once per interval,
/// one connection per server of the pair: 64 leaves room for ad-hoc curls, and the three
/// listeners' caps together stay under the common 1024 soft file limit.
pub const LISTENER_LIMITS: crate::listener::Limits = crate::listener::Limits {
    max_clients: 64,
    header_timeout: Duration::from_secs(10),
    max_age: Duration::from_secs(60),
};

/// Serves `/metrics` on `listen` until `shutdown`, within [`LISTENER_LIMITS`].
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving self-metrics on /metrics");
    let encoder = Arc::clone(&metrics);
    let handler = move |request: Request<hyper::body::Incoming>| {
        let metrics = Arc::clone(&encoder);
        async move { answer(&request, &metrics) }
    };
    crate::listener::serve(
        "metrics",
        listener,
        LISTENER_LIMITS,
        handler,
        metrics,
        shutdown,
    )
    .await;
    Ok(())
}

/// The body is never read: hyper closes a connection whose request body was left unread,
/// so a client trickling a body gets its answer and is cut off.
fn answer(request: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let response = if request.uri().path() == "/metrics" {
        Response::builder()
            .header(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(metrics.encode())))
    } else {
        Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"see /metrics\n")))
    };
    response.unwrap_or_default()
}
