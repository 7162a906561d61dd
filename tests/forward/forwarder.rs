//! The forwarder in this process (`forward::Forwarder`) and its configs: what the forward tests
//! need of the agent's own types.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::recorder::fixture;
use tidb_host_agent::config::{self, AlertmanagerConfig, ExecForward, ForwardConfig, ServerConfig};
use tidb_host_agent::forward::{self, ForwardError};
use tidb_host_agent::metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// The poll interval of the forwarders under test; `QUIET` spans many polls.
pub const POLL: config::Duration = config::Duration::from_millis(150);

/// `forward::Forwarder` built and run in this process, stopped through its shutdown token.
pub struct Forwarder {
    pub metrics: Arc<Metrics>,
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), ForwardError>>>,
}

impl Forwarder {
    pub fn start(config: AlertmanagerConfig, state_dir: &Path) -> Forwarder {
        init_logging();
        let token = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let forwarder = match forward::Forwarder::build(&config, state_dir) {
            Ok(Some(forwarder)) => forwarder,
            Ok(None) => panic!("forwarding is off in this config"),
            Err(problems) => panic!("{problems:?}"),
        };
        let handle = tokio::spawn(forwarder.run(Arc::clone(&metrics), token.clone()));
        Forwarder {
            metrics,
            token,
            handle: Some(handle),
        }
    }

    /// Cancels and checks that the task confirms its shutdown, cleanly.
    pub async fn stop(mut self) {
        self.token.cancel();
        let handle = self.handle.take().expect("running");
        let result = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the forwarder stops within 10 s of its shutdown signal")
            .expect("the forwarder task did not panic");
        result.expect("the forwarder ends without error");
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("tidb_host_agent=debug")),
        )
        .with_test_writer()
        .try_init();
}

/// A forwarding config with fast polls and retries.
pub fn forward_config(servers: &[String], forwards: Vec<ForwardConfig>) -> AlertmanagerConfig {
    AlertmanagerConfig {
        servers: servers.iter().map(ServerConfig::from_url).collect(),
        poll_interval: POLL,
        timeout: config::Duration::from_secs(2),
        retry_initial: config::Duration::from_millis(100),
        retry_max: config::Duration::from_millis(400),
        forwards,
        ..AlertmanagerConfig::default()
    }
}

pub fn exec_target(name: &str, command: &[&str]) -> ForwardConfig {
    ForwardConfig::Exec(ExecForward {
        name: Some(name.into()),
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout: config::Duration::from_secs(10),
    })
}

/// An exec target that records each delivery under `out` with `record.sh`; the
/// recorded arguments are the status, the alert name and the startsAt.
pub fn recording_target(name: &str, out: &Path) -> ForwardConfig {
    std::fs::create_dir_all(out).expect("recorder dir");
    exec_target(
        name,
        &[
            "/bin/sh",
            &fixture("record.sh"),
            &out.display().to_string(),
            "{{ status }}",
            "{{ alertname }}",
            "{{ startsAt }}",
        ],
    )
}

/// The value of the self-metric sample starting with `prefix` (name and labels).
pub fn metric(metrics: &tidb_host_agent::metrics::Metrics, prefix: &str) -> Option<f64> {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
