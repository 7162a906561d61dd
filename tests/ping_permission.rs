//! No ICMP permission (SPEC §13): an unprivileged user, without CAP_NET_RAW, in a fresh
//! network namespace whose `ping_group_range` is closed. The daemon's ping task must
//! log the one clear error once, publish no ping keys and stay out of the way until
//! shutdown.
//!
//! The test re-runs this test binary under `unshare -n` and `setpriv`; the ignored
//! child test is what runs inside. Needs root to build that sandbox (CI runs as root);
//! otherwise it is skipped with a loud message.

// A failing test panics; that is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

mod ping_task;

use harness::privilege::{as_nobody, skip_unless_root};
use ping_task::PingTask;

use tidb_host_agent::config::PingConfig;
use tidb_host_agent::ping::prober::{
    Family, NO_PERMISSION_MESSAGE, Prober, ProberError, SocketKind,
};
use tidb_host_agent::ping::round::{self, RoundSettings};
use tidb_host_agent::ping::target::Target;

const CHILD_TEST: &str = "child_without_icmp_permission";
const CHILD_DONE: &str = "child finished: no ping keys, task idle until shutdown";

/// Runs one ignored test of this binary as nobody; returns (stdout, stderr).
fn run_child(group_range: &str, test: &str) -> (String, String) {
    let me = std::env::current_exe().expect("the test binary's path");
    let me = me.to_str().expect("a UTF-8 path");
    let output = as_nobody(
        group_range,
        me,
        &[
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .output()
    .expect("unshare, ip and setpriv run (util-linux, iproute2)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child {test} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains(CHILD_DONE), "the child test ran: {stdout}");
    (stdout, stderr)
}

#[test]
fn without_permission_the_task_logs_one_clear_error_and_publishes_nothing() {
    if skip_unless_root("ping_permission") {
        return;
    }
    let (_, stderr) = run_child("1 0", CHILD_TEST);
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CAP_NET_RAW"))
        .collect();
    assert_eq!(logged.len(), 1, "logged once: {stderr}");
    assert!(
        logged[0].ends_with(&format!("ERROR {NO_PERMISSION_MESSAGE}")),
        "the exact message at level ERROR: {}",
        logged[0]
    );
}

/// Runs only inside the sandbox above.
#[test]
#[ignore = "run by without_permission_the_task_logs_one_clear_error_and_publishes_nothing"]
fn child_without_icmp_permission() {
    // Plain format on stderr: "LEVEL message", no time, no colour.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut prober = Prober::new(1 << 20);
        assert!(matches!(
            prober.open(Family::V4),
            Err(ProberError::NoPermission)
        ));

        let config = PingConfig {
            enabled: true,
            targets: vec!["127.0.0.1".into()],
            every: "1s".parse().expect("a duration"),
            ..PingConfig::default()
        };
        let ping = PingTask::start(config, Duration::from_secs(10)).await;
        assert!(ping.entries.is_empty(), "no ping keys");
        ping.stop().await;
    });
    println!("{CHILD_DONE}");
}

#[test]
fn an_unprivileged_user_in_ping_group_range_pings_with_datagram_sockets() {
    if skip_unless_root("ping_permission (datagram)") {
        return;
    }
    run_child("0 2147483647", "child_with_ping_group_range");
}

/// Runs only inside the sandbox above.
#[test]
#[ignore = "run by an_unprivileged_user_in_ping_group_range_pings_with_datagram_sockets"]
fn child_with_ping_group_range() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut prober = Prober::new(1 << 20);
        let sockets = prober.open(Family::V4).expect("ping_group_range allows us");
        assert!(sockets.iter().all(|s| s.kind == SocketKind::Datagram));
        let settings = RoundSettings {
            count: 3,
            interval: Duration::from_millis(10),
            payload_bytes: 16,
            timeout: Duration::from_secs(1),
            concurrency: 4,
        };
        let targets = (1..=4)
            .map(|i| Target::from_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))))
            .collect();
        let round = round::run(&prober, targets, &settings).await;
        for target in &round.targets {
            assert_eq!(target.received(), 3, "{target:?}");
        }
    });
    println!("{CHILD_DONE}");
}
