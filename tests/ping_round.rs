//! Ping rounds against loopback (issue 5): all of 127.0.0.0/8 answers on Linux, so 254
//! targets need no setup. Through the library: prober, round, keys and record.

// A failing test panics; that is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use harness::recorder::json_lines;
use tidb_host_agent::ping::keys::{self, KeyRules};
use tidb_host_agent::ping::outcome::{EchoResult, RoundOutcome};
use tidb_host_agent::ping::prober::{Family, Prober};
use tidb_host_agent::ping::record::{self, Record, RecordLine};
use tidb_host_agent::ping::round::{self, RoundSettings};
use tidb_host_agent::ping::target::Target;

fn loopback_targets(n: u8) -> Vec<Target> {
    (1..=n)
        .map(|i| Target::from_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))))
        .collect()
}

fn settings(count: u16) -> RoundSettings {
    RoundSettings {
        count,
        interval: Duration::from_millis(40),
        payload_bytes: 16,
        timeout: Duration::from_secs(1),
        concurrency: 256,
    }
}

async fn loopback_round(targets: u8, count: u16) -> RoundOutcome {
    let mut prober = Prober::new(4 << 20);
    prober
        .open(Family::V4)
        .expect("tests run as root or with ping_group_range open");
    round::run(&prober, loopback_targets(targets), &settings(count)).await
}

fn key_name(component: &str, alert: &str) -> String {
    format!("TiDB.{component}.{alert}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loopback_echo_is_answered_and_the_stats_agree() {
    let round = loopback_round(254, 10).await;

    assert_eq!(round.targets.len(), 254);
    for (i, target) in round.targets.iter().enumerate() {
        let expected = IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8 + 1));
        assert_eq!(target.target.address, expected, "targets keep their order");
        let seqs: Vec<u16> = target.echoes.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "{expected}");
        assert_eq!(target.sent(), 10, "{expected}");
        assert_eq!(target.received(), 10, "{expected}: {:?}", target.echoes);
        assert!(target.received() <= target.sent());
        assert_eq!(target.loss_percent(), 0.0);
        let s = target
            .rtt_summary()
            .expect("answered echoes have a summary");
        assert!(s.min <= s.avg && s.avg <= s.max, "{expected}: {s:?}");
        let rtts: Vec<Duration> = target.echoes.iter().filter_map(|e| e.rtt()).collect();
        assert_eq!(Some(&s.min), rtts.iter().min());
        assert_eq!(Some(&s.max), rtts.iter().max());
        assert!(target.is_reachable());
    }

    let rules = KeyRules {
        latency_threshold: Duration::from_secs(1),
        loss_threshold_percent: 0.0,
        per_target_keys: false,
    };
    let entries = keys::entries(&round, &rules, &key_name);
    let values: Vec<(&str, u8)> = entries.iter().map(|e| (e.key.as_str(), e.value)).collect();
    assert_eq!(
        values,
        [
            ("TiDB.ping.Ping_latency_over_threshold", 0),
            ("TiDB.ping.Ping_packet_loss", 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_below_loopback_rtt_records_every_echo_and_one_second_none() {
    let round = loopback_round(20, 5).await;
    assert!(
        round.targets.iter().all(|t| t.received() == 5),
        "loopback answers every echo: {round:?}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let record = Record::new(dir.path().join("slow.jsonl"), 10 << 20, 2);

    let tiny = Duration::from_micros(1);
    record
        .append(&record::lines(&round, tiny))
        .expect("record is writable");
    let lines = json_lines::<RecordLine>(record.path());
    assert_eq!(lines.len(), 20 * 5, "every echo took longer than 1µs");
    for (line, (target, echo)) in lines.iter().zip(
        round
            .targets
            .iter()
            .flat_map(|t| t.echoes.iter().map(move |e| (t, e))),
    ) {
        assert_eq!(line.address, target.target.address);
        assert_eq!(line.target, target.target.name);
        assert_eq!(line.seq, echo.seq);
        assert_eq!(line.threshold_ms, 0.001);
        let rtt = match echo.result {
            EchoResult::Reply(rtt) => rtt,
            _ => unreachable!("all answered"),
        };
        assert_eq!(line.rtt_ms, Some((rtt.as_secs_f64() * 1e6).round() / 1e3));
        assert_eq!(line.time, echo.sent_at);
    }
    let slow = KeyRules {
        latency_threshold: tiny,
        loss_threshold_percent: 0.0,
        per_target_keys: true,
    };
    let entries = keys::entries(&round, &slow, &key_name);
    assert_eq!(entries.len(), 2 + 2 * 20);
    for entry in &entries {
        let expected = u8::from(entry.key.contains("latency"));
        assert_eq!(entry.value, expected, "{}", entry.key);
    }
    assert!(
        entries
            .iter()
            .any(|e| e.key == "TiDB.ping.Ping_latency_over_threshold_127_0_0_20" && e.value == 1)
    );

    let before = lines.len();
    record
        .append(&record::lines(&round, Duration::from_secs(1)))
        .expect("record is writable");
    assert_eq!(
        json_lines::<RecordLine>(record.path()).len(),
        before,
        "1s marks none"
    );
    assert!(
        round
            .targets
            .iter()
            .all(|t| t.over_threshold(Duration::from_secs(1)) == 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_answers_on_every_socket() {
    let has_ipv6_loopback = std::fs::read_to_string("/proc/net/if_inet6")
        .is_ok_and(|t| t.contains("00000000000000000000000000000001"));
    if !has_ipv6_loopback {
        eprintln!("\n*** SKIPPED ipv6 loopback: this host has no ::1 ***\n");
        return;
    }
    let mut prober = Prober::new(1 << 20);
    prober
        .open(Family::V6)
        .expect("tests run as root or with ping_group_range open");
    // Each round draws new identifiers, and so lands on one socket or another.
    for _ in 0..8 {
        let round = round::run(
            &prober,
            vec![Target::from_address("::1".parse().unwrap())],
            &settings(3),
        )
        .await;
        assert_eq!(round.targets[0].received(), 3, "{round:?}");
    }
}

/// Waits (at most 30 s) for the task to publish entries that `ready` accepts.
async fn published(
    rx: &mut tokio::sync::watch::Receiver<Vec<tidb_host_agent::snapshot::Entry>>,
    ready: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let wait = async {
        loop {
            let keys: Vec<String> = rx
                .borrow_and_update()
                .iter()
                .map(|e| e.key.clone())
                .collect();
            if ready(&keys) {
                return keys;
            }
            rx.changed().await.expect("the task keeps the sender");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the expected keys within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_follows_the_targets_discovered_in_prometheus() {
    use std::sync::Arc;
    use tidb_host_agent::config::PingConfig;
    use tidb_host_agent::metrics::Metrics;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = PingConfig {
        enabled: true,
        targets: vec!["127.0.0.1".into()],
        targets_from_prometheus: true,
        every: "100ms".parse().unwrap(),
        count: 2,
        interval: "10ms".parse().unwrap(),
        per_target_keys: true,
        record_file: dir.path().join("slow.jsonl"),
        ..PingConfig::default()
    };
    let (discovered_tx, discovered_rx) = watch::channel(vec!["127.0.0.2".to_string()]);
    let (entries_tx, mut entries_rx) = watch::channel(Vec::new());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(tidb_host_agent::ping::task::run(
        config,
        key_name,
        discovered_rx,
        entries_tx,
        Arc::new(Metrics::new()),
        shutdown.clone(),
    ));

    let has = |keys: &[String], suffix: &str| {
        keys.iter()
            .any(|k| k == &format!("TiDB.ping.Ping_packet_loss_{suffix}"))
    };
    let keys = published(&mut entries_rx, |k| has(k, "127_0_0_2")).await;
    assert!(
        has(&keys, "127_0_0_1"),
        "the configured target stays: {keys:?}"
    );

    discovered_tx.send_replace(vec!["127.0.0.3".to_string(), "127.0.0.1".to_string()]);
    let keys = published(&mut entries_rx, |k| has(k, "127_0_0_3")).await;
    assert!(
        !has(&keys, "127_0_0_2"),
        "a target no longer seen is dropped: {keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("_127_0_0_1")).count(),
        2,
        "a discovered target that is also configured is pinged once: {keys:?}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the task stops on shutdown")
        .expect("the task does not panic");
}
