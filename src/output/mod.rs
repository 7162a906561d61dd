//! Snapshot sinks (SPEC §8): one file per sink, one dispatch point here.
//!
//! Every sink runs as its own task and watches the latest snapshot, so a slow or
//! failing sink never delays a cycle or another sink: the cycle only stores the
//! newest snapshot, and a sink that falls behind skips to it.

pub mod format;

mod failure_log;
mod file;
mod http;
mod stdout;
mod unix;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use failure_log::{FailureLog, SinkHealth};

use crate::config::{AgentConfig, FileOutput, FormatKind, OutputConfig};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use format::FormatOptions;

/// A snapshot as every sink receives it; `None` until the first cycle.
pub type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

/// The configured sinks, fed with each new snapshot.
pub struct Outputs {
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    /// The sinks whose last write failed.
    health: SinkHealth,
    /// Cancels these sinks only (on reload), or follows the daemon's shutdown.
    stop: CancellationToken,
}

impl Outputs {
    /// Starts one task per sink on `tracker`. Sinks stop on `shutdown` after
    /// finishing any write in progress.
    pub fn start(
        configs: &[OutputConfig],
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Self {
        let (latest, _) = watch::channel(None);
        let stop = shutdown.child_token();
        let health = SinkHealth::default();
        for (i, config) in configs.iter().enumerate() {
            let log = FailureLog::new(sink_name(i, config), health.clone());
            let rx = latest.subscribe();
            let options = FormatOptions {
                endpoint: config.endpoint().map(str::to_owned),
            };
            let format = config.format();
            let stop = stop.clone();
            let metrics = metrics.clone();
            match config.clone() {
                OutputConfig::File(c) => {
                    tracker.spawn(file::run(log, c, format, options, rx, metrics, stop));
                }
                OutputConfig::Unix(c) => {
                    tracker.spawn(unix::run(log, c, format, options, rx, metrics, stop));
                }
                OutputConfig::Http(c) => {
                    tracker.spawn(http::run(log, c, format, options, rx, metrics, stop));
                }
                OutputConfig::Stdout(c) => {
                    tracker.spawn(stdout::run(log, c, format, options, rx, metrics, stop));
                }
            }
        }
        Self {
            latest,
            health,
            stop,
        }
    }

    /// The sinks whose last write failed, by name.
    pub fn failing(&self) -> Vec<String> {
        self.health.failing()
    }

    /// Hands `snapshot` to every sink without waiting for any of them.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.latest.send_replace(Some(snapshot));
    }

    /// Stops these sinks (used when a reload replaces them).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// The sink of the published snapshot (`[agent] snapshot_file`), if any: the `json`
/// format, readable by every user, so that `status` and a monitoring agent running as
/// another user (Zabbix's) can read it. It holds keys and series labels, no secret.
pub fn published(agent: &AgentConfig) -> Option<OutputConfig> {
    agent.snapshot_path().map(|path| {
        OutputConfig::File(FileOutput {
            path,
            mode: 0o644,
            format: Some(FormatKind::Json),
            endpoint: None,
        })
    })
}

/// A sink whose configuration cannot run.
#[derive(Debug, thiserror::Error)]
#[error(
    "output[{index}] ({sink}): header `{header}` cannot be sent: use a valid HTTP header name and a value without control characters"
)]
pub struct OutputError {
    pub index: usize,
    pub sink: String,
    pub header: String,
}

/// Every problem that would stop a sink from running, found before any sink starts.
pub fn check(configs: &[OutputConfig]) -> Vec<OutputError> {
    configs
        .iter()
        .enumerate()
        .filter_map(|(index, config)| {
            let OutputConfig::Http(http) = config else {
                return None;
            };
            http::headers(http).err().map(|header| OutputError {
                index,
                sink: sink_name(index, config),
                header,
            })
        })
        .collect()
}

/// A sink's name in logs and metrics: `file:/path`, `unix:/path`, `http:URL`, `stdout`.
fn sink_name(index: usize, config: &OutputConfig) -> String {
    match config {
        OutputConfig::File(c) => format!("file:{}", c.path.display()),
        OutputConfig::Unix(c) => format!("unix:{}", c.path.display()),
        // Without user info or query string: they often carry a token.
        OutputConfig::Http(c) => format!("http:{}", crate::config::redacted_url(&c.url)),
        OutputConfig::Stdout(_) => format!("stdout[{index}]"),
    }
}

/// Waits for the next snapshot; `None` when the sink should stop.
async fn next(rx: &mut Latest, stop: &CancellationToken) -> Option<Arc<Snapshot>> {
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            changed = rx.changed() => {
                if changed.is_err() {
                    return None;
                }
                if let Some(s) = rx.borrow_and_update().clone() {
                    return Some(s);
                }
            }
        }
    }
}
