//! Lost echoes (issue 5): a test host in its own network namespace, reached over a veth
//! pair whose /30 (from 198.18.0.0/15, the benchmarking range) exists only inside that
//! pair. The host answers first, proving the path works; then it ignores every echo
//! (`net.ipv4.icmp_echo_ignore_all=1`) and the daemon's ping task must count every
//! echo lost, write each one to the record, and set `Ping_packet_loss` to 1.
//!
//! Needs root (CI runs as root); otherwise it is skipped with a loud message.

// A failing test panics; that is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

mod ping_task;

use harness::privilege::skip_unless_root;
use harness::recorder::json_lines;
use ping_task::PingTask;
use tidb_host_agent::config::PingConfig;
use tidb_host_agent::ping::outcome::EchoResult;
use tidb_host_agent::ping::prober::{Family, Prober};
use tidb_host_agent::ping::record::RecordLine;
use tidb_host_agent::ping::round::{self, RoundSettings};
use tidb_host_agent::ping::target::Target;
use tidb_host_agent::snapshot::AlertState;

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (is iproute2 installed?)"));
    assert!(status.success(), "{args:?} failed: {status}");
}

/// A namespace with one veth end; removed on drop, also when the test fails.
struct TestHost {
    namespace: String,
    host_link: String,
    /// The namespace's address.
    address: String,
}

impl TestHost {
    fn create() -> Self {
        let pid = std::process::id();
        let (a, k) = (pid % 256, (pid / 256) % 64 * 4);
        let host = Self {
            namespace: format!("tha-ping-{pid}"),
            host_link: format!("thp{pid}a"),
            address: format!("198.18.{a}.{}", k + 2),
        };
        let peer = format!("thp{pid}b");
        let ns = host.namespace.as_str();
        // Set the guard up first, so that a failure half-way still cleans up.
        run(&["ip", "netns", "add", ns]);
        run(&[
            "ip",
            "link",
            "add",
            &host.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        run(&["ip", "link", "set", &peer, "netns", ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("198.18.{a}.{}/30", k + 1),
            "dev",
            &host.host_link,
        ]);
        run(&["ip", "link", "set", &host.host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", ns];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", host.address),
            "dev",
            &peer,
        ]);
        inside(&["ip", "link", "set", &peer, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        host.ignore_echoes(false);
        host
    }

    fn ignore_echoes(&self, ignore: bool) {
        let value = if ignore { "1" } else { "0" };
        run(&[
            "ip",
            "netns",
            "exec",
            &self.namespace,
            "sh",
            "-c",
            &format!("echo {value} > /proc/sys/net/ipv4/icmp_echo_ignore_all"),
        ]);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it our end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignoring_host_loses_every_echo_into_the_record_and_the_loss_key() {
    if skip_unless_root("ping_netns") {
        return;
    }
    let host = TestHost::create();
    let target = Target {
        name: host.address.clone(),
        address: host.address.parse().expect("an IPv4 address"),
    };

    // The path works: the host answers while it does not ignore echoes.
    let mut prober = Prober::new(1 << 20);
    prober.open(Family::V4).expect("root may open ICMP sockets");
    let settings = RoundSettings {
        count: 3,
        interval: Duration::from_millis(40),
        payload_bytes: 16,
        timeout: Duration::from_secs(1),
        concurrency: 1,
    };
    let answered = round::run(&prober, vec![target.clone()], &settings).await;
    assert_eq!(answered.targets[0].received(), 3, "{answered:?}");

    host.ignore_echoes(true);
    let ignored = round::run(&prober, vec![target], &settings).await;
    assert!(
        ignored.targets[0]
            .echoes
            .iter()
            .all(|e| e.result == EchoResult::Lost),
        "every echo times out: {ignored:?}"
    );

    // The daemon's task: one round, its record and its keys.
    let dir = tempfile::tempdir().expect("temp dir");
    let record_file = dir.path().join("slow-ping.jsonl");
    let config = PingConfig {
        enabled: true,
        targets: vec![host.address.clone()],
        every: "1h".parse().expect("a duration"),
        count: 4,
        timeout: "300ms".parse().expect("a duration"),
        per_target_keys: true,
        record_file: record_file.clone(),
        ..PingConfig::default()
    };
    let ping = PingTask::start(config, Duration::from_secs(30)).await;
    let entries = ping.entries.clone();
    ping.stop().await;

    let suffix = host.address.replace('.', "_");
    let values: Vec<(String, u8, AlertState)> = entries
        .iter()
        .map(|e| (e.key.clone(), e.value, e.state))
        .collect();
    assert_eq!(
        values,
        [
            (
                "TiDB.ping.Ping_latency_over_threshold".to_string(),
                0,
                AlertState::Ok
            ),
            (
                "TiDB.ping.Ping_packet_loss".to_string(),
                1,
                AlertState::Firing
            ),
            (
                format!("TiDB.ping.Ping_latency_over_threshold_{suffix}"),
                0,
                AlertState::Ok
            ),
            (
                format!("TiDB.ping.Ping_packet_loss_{suffix}"),
                1,
                AlertState::Firing
            ),
        ]
    );
    assert!(entries.iter().all(|e| e.since.is_some()));

    let lines = json_lines::<RecordLine>(&record_file);
    let seqs: Vec<u16> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3], "one line per lost echo: {lines:?}");
    for line in &lines {
        assert_eq!(line.target, host.address);
        assert_eq!(line.address.to_string(), host.address);
        assert_eq!(line.rtt_ms, None);
        assert_eq!(line.threshold_ms, 1000.0);
        assert_eq!(line.error, None, "a plain timeout, not a send error");
    }
}
