//! The daemon's ping task in this process, for the ping tests that need its entries
//! (`ping_netns` and `ping_permission`).

use std::sync::Arc;
use std::time::Duration;

use tidb_host_agent::config::PingConfig;
use tidb_host_agent::metrics::Metrics;
use tidb_host_agent::ping::task;
use tidb_host_agent::snapshot::Entry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The daemon's ping task, started on a config with nothing discovered from Prometheus.
pub struct PingTask {
    /// What the task published first.
    pub entries: Vec<Entry>,
    running: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl PingTask {
    /// Starts the task and waits up to `within` for its first published entries.
    pub async fn start(config: PingConfig, within: Duration) -> Self {
        let (_discovered_tx, discovered_rx) = watch::channel(Vec::new());
        let (entries_tx, mut entries_rx) = watch::channel(Vec::new());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(task::run(
            config,
            |component: &str, alert: &str| format!("TiDB.{component}.{alert}"),
            discovered_rx,
            entries_tx,
            Arc::new(Metrics::new()),
            shutdown.clone(),
        ));
        tokio::time::timeout(within, entries_rx.changed())
            .await
            .unwrap_or_else(|_| panic!("the task publishes within {within:?}"))
            .expect("the task keeps the sender");
        let entries = entries_rx.borrow().clone();
        Self {
            entries,
            running,
            shutdown,
        }
    }

    /// Checks that the task still runs (it idles until shutdown, whatever it found), then
    /// cancels it and waits (up to 5 s) for it to return.
    pub async fn stop(self) {
        assert!(!self.running.is_finished(), "the task idles until shutdown");
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.running)
            .await
            .expect("the task stops on shutdown")
            .expect("the task does not panic");
    }
}
