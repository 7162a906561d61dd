//! The self-metrics listener. It outlives reloads, and is moved only when a reload
//! changes `[metrics] listen`.

use std::sync::Arc;

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
                if let Err(e) = crate::metrics::serve(listen, m, stop).await {
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
