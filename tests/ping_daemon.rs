//! The ping keys in the daemon's snapshot (SPEC §7, §13), with the real binary.
//!
//! - With ICMP permission, both keys (and the per-target ones) join every snapshot.
//! - Without it (nobody, no CAP_NET_RAW, `ping_group_range` closed), the daemon logs the
//!   one clear error once and keeps producing its other keys.
//!
//! Prometheus is not the subject: the configured server refuses connections, so the
//! snapshot holds `Prometheus_is_down = 1` and the fixed component's keys at 0.

// A failing test panics; that is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::agent::{base_config, parse_plain};
use harness::block::free_port;
use harness::http::http_get;
use harness::privilege::{as_nobody, skip_unless_root};
use harness::process::ChildProcess;
use harness::wait::Wait;
use tidb_host_agent::ping::prober::NO_PERMISSION_MESSAGE;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

fn config(dir: &Path, metrics_port: u16) -> String {
    let ping = r#"
[ping]
enabled = true
targets = ["127.0.0.1", "127.0.0.2"]
every = "200ms"
count = 3
interval = "10ms"
per_target_keys = true
record_file = "{dir}/slow-ping.jsonl"

[[output]]
kind = "file"
format = "plain"
path = "{dir}/snapshot.txt"
"#;
    base_config("100ms", metrics_port, ping).replace("{dir}", &dir.display().to_string())
}

/// The agent, with its log at the config's level (no `TIDB_HOST_AGENT_LOG`).
fn start(mut command: Command, log: &Path) -> ChildProcess {
    command
        .env_remove("TIDB_HOST_AGENT_CONFIG")
        .env_remove("TIDB_HOST_AGENT_LOG");
    ChildProcess::spawn("the agent", command, log)
}

/// Polls the snapshot file until `ready` accepts it, at most 30 s.
fn wait_for_snapshot(path: &Path, ready: impl Fn(&[(String, u8)]) -> bool) -> Vec<(String, u8)> {
    Wait::new(Duration::from_secs(30), "such a snapshot")
        .every(Duration::from_millis(20))
        .blocking(|| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let keys = parse_plain(&text);
            if ready(&keys) {
                Ok(keys)
            } else {
                Err(format!("\n{text}"))
            }
        })
}

fn value(keys: &[(String, u8)], key: &str) -> Option<u8> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

#[test]
fn the_ping_keys_join_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    let port = free_port(Ipv4Addr::LOCALHOST);
    std::fs::write(&config_path, config(dir.path(), port)).unwrap();
    let mut command = Command::new(AGENT);
    command.arg("-c").arg(&config_path).arg("run");
    let _agent = start(command, &dir.path().join("agent.log"));

    let keys = wait_for_snapshot(&dir.path().join("snapshot.txt"), |keys| {
        value(keys, "TiDB.ping.Ping_packet_loss").is_some()
    });
    let ping: Vec<(&str, u8)> = keys
        .iter()
        .filter(|(k, _)| k.starts_with("TiDB.ping."))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        ping,
        [
            ("TiDB.ping.Ping_latency_over_threshold", 0),
            ("TiDB.ping.Ping_latency_over_threshold_127_0_0_1", 0),
            ("TiDB.ping.Ping_latency_over_threshold_127_0_0_2", 0),
            ("TiDB.ping.Ping_packet_loss", 0),
            ("TiDB.ping.Ping_packet_loss_127_0_0_1", 0),
            ("TiDB.ping.Ping_packet_loss_127_0_0_2", 0),
        ]
    );
    assert_eq!(value(&keys, "TiDB.prometheus.Prometheus_is_down"), Some(1));

    // Each target's RTT and loss of the last round, as self-metrics.
    let gauges = Wait::new(Duration::from_secs(30), "the ping metrics")
        .every(Duration::from_millis(20))
        .blocking(|| {
            let body = http_get(&format!("127.0.0.1:{port}"), "/metrics").unwrap_or_default();
            let gauges: Vec<(String, f64)> = body
                .lines()
                .filter(|l| l.starts_with("tidb_host_agent_ping_"))
                .filter_map(|l| {
                    let (name, v) = l.rsplit_once(' ')?;
                    Some((name.to_string(), v.parse().ok()?))
                })
                .collect();
            if gauges.len() == 4 {
                Ok(gauges)
            } else {
                Err(body)
            }
        });
    for target in ["127.0.0.1", "127.0.0.2"] {
        let gauge = |name: &str| {
            gauges
                .iter()
                .find(|(n, _)| n == &format!("tidb_host_agent_{name}{{target=\"{target}\"}}"))
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{name} for {target}: {gauges:?}"))
        };
        assert_eq!(gauge("ping_loss_ratio"), 0.0);
        let rtt = gauge("ping_rtt_avg_seconds");
        assert!(rtt > 0.0 && rtt < 1.0, "{target}: {rtt}");
    }
}

#[test]
fn without_icmp_permission_the_daemon_logs_once_and_keeps_its_other_keys() {
    if skip_unless_root("ping_daemon without permission") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // nobody writes its state, snapshot and log here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        config(dir.path(), free_port(Ipv4Addr::LOCALHOST)),
    )
    .unwrap();
    let command = as_nobody("1 0", AGENT, &["-c", config_path.to_str().unwrap(), "run"]);
    let log = dir.path().join("agent.log");
    let _agent = start(command, &log);

    let snapshot = dir.path().join("snapshot.txt");
    let keys = wait_for_snapshot(&snapshot, |keys| {
        value(keys, "TiDB.prometheus.Prometheus_is_down") == Some(1)
    });
    assert!(
        keys.iter().any(|(k, _)| k.starts_with("TiDB.tikv.")),
        "the component's keys are there: {keys:?}"
    );
    assert!(
        keys.iter().all(|(k, _)| !k.starts_with("TiDB.ping.")),
        "no ping keys without permission: {keys:?}"
    );
    // Let a few more cycles (and would-be ping rounds) pass: the snapshot is rewritten.
    let first = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    let modified = || std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    Wait::new(Duration::from_secs(30), "the daemon to cycle on")
        .every(Duration::from_millis(20))
        .blocking(|| (modified() != first).then_some(()));
    let keys = wait_for_snapshot(&snapshot, |keys| !keys.is_empty());
    assert!(keys.iter().any(|(k, _)| k.starts_with("TiDB.tikv.")));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("CAP_NET_RAW")).collect();
    assert_eq!(lines.len(), 1, "logged once:\n{text}");
    assert!(
        lines[0].contains("ERROR") && lines[0].ends_with(NO_PERMISSION_MESSAGE),
        "the exact message at level ERROR: {}",
        lines[0]
    );
}
