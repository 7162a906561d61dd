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

pub use failure_log::FailureLog;

use crate::config::{OutputConfig, SinkKind};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use format::FormatOptions;

/// A snapshot as every sink receives it; `None` until the first cycle.
pub type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

/// The configured sinks, fed with each new snapshot.
pub struct Outputs {
    latest: watch::Sender<Option<Arc<Snapshot>>>,
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
        for (i, config) in configs.iter().enumerate() {
            let name = sink_name(i, config);
            let rx = latest.subscribe();
            let options = FormatOptions {
                endpoint: config.endpoint.clone(),
            };
            let config = config.clone();
            let stop = stop.clone();
            let metrics = metrics.clone();
            match config.kind {
                SinkKind::File => {
                    tracker.spawn(file::run(name, config, options, rx, metrics, stop));
                }
                SinkKind::Unix => {
                    tracker.spawn(unix::run(name, config, options, rx, metrics, stop));
                }
                SinkKind::Http => {
                    tracker.spawn(http::run(name, config, options, rx, metrics, stop));
                }
                SinkKind::Stdout => {
                    tracker.spawn(stdout::run(name, config, options, rx, metrics, stop));
                }
            }
        }
        Self { latest, stop }
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
            http::headers(config).err().map(|header| OutputError {
                index,
                sink: sink_name(index, config),
                header,
            })
        })
        .collect()
}

/// A sink's name in logs and metrics: `file:/path`, `unix:/path`, `http:URL`, `stdout`.
fn sink_name(index: usize, config: &OutputConfig) -> String {
    match config.kind {
        SinkKind::File => format!("file:{}", display_path(config)),
        SinkKind::Unix => format!("unix:{}", display_path(config)),
        // Without user info or query string: they often carry a token.
        SinkKind::Http => format!(
            "http:{}",
            crate::config::redacted_url(config.url.as_deref().unwrap_or("?"))
        ),
        SinkKind::Stdout => format!("stdout[{index}]"),
    }
}

fn display_path(config: &OutputConfig) -> String {
    config
        .path
        .as_ref()
        .map_or_else(|| "?".into(), |p| p.display().to_string())
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
