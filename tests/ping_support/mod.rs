//! Helpers shared by the ping tests: root detection and the sandboxes they run in.

#![allow(dead_code)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tidb_host_agent::config::PingConfig;
use tidb_host_agent::metrics::Metrics;
use tidb_host_agent::ping::task;
use tidb_host_agent::snapshot::Entry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Tests that build namespaces need root; CI runs as root.
pub fn is_root() -> bool {
    // /proc/self/status: "Uid: real effective saved fs".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Prints a loud skip notice and returns true when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!(
        "\n*** SKIPPED {test}: needs root to build its network namespace (CI runs as root) ***\n"
    );
    true
}

/// Runs the `setup` shell commands, then `wrapper program args…`, in a fresh network
/// namespace of its own: nothing the program sends can leave it.
pub fn in_new_netns(setup: &[&str], wrapper: &str, program: &str, args: &[&str]) -> Command {
    let mut script: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
    script.push(format!("exec {wrapper} \"$0\" \"$@\"").replace("exec  ", "exec "));
    let mut command = Command::new("unshare");
    command.args(["-n", "--", "sh", "-c", &script.join(" && "), program]);
    command.args(args);
    command
}

/// Runs `program args…` as nobody, without CAP_NET_RAW (not even in the bounding set),
/// in a new network namespace (loopback up) whose `ping_group_range` is `group_range`.
pub fn as_nobody(group_range: &str, program: &str, args: &[&str]) -> Command {
    in_new_netns(
        &[
            "ip link set lo up",
            &format!("echo '{group_range}' > /proc/sys/net/ipv4/ping_group_range"),
        ],
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-net_raw",
        program,
        args,
    )
}

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

    pub fn is_running(&self) -> bool {
        !self.running.is_finished()
    }

    /// Cancels the task and waits (up to 5 s) for it to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.running)
            .await
            .expect("the task stops on shutdown")
            .expect("the task does not panic");
    }
}
