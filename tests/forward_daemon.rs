//! Forwarding through the real binary: `kill -9` while an event is pending, a flooded
//! Alertmanager, and the `alerts` command.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic in a test is a failed test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::agent::run_command;
use harness::alertmanager::{AlertmanagerPair, alert, routing_to_nothing};
use harness::block::Block;
use harness::process::{ChildProcess, Signal, process_gone};
use harness::recorder::{calls, fixture, hang_pids, statuses};
use harness::wait::{LIMIT, QUIET, Wait};
use serde_json::json;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_event_survives_kill_9_and_is_not_sent_twice() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let dir = tempfile::tempdir().unwrap();
    let (flaky_state, flaky_out, steady_out) = (
        dir.path().join("flaky"),
        dir.path().join("flaky-out"),
        dir.path().join("steady-out"),
    );
    for d in [&flaky_state, &flaky_out, &steady_out] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The flaky target fails for as long as this file exists.
    std::fs::write(flaky_state.join("fail"), b"").unwrap();
    let record = fixture("record.sh");
    let fail_then_record = fixture("fail_then_record.sh");
    let alertmanager = format!(
        r#"
[alertmanager]
servers = {servers}
poll_interval = "200ms"
retry_initial = "100ms"
retry_max = "300ms"

[[alertmanager.forward]]
kind = "exec"
name = "steady"
command = {steady}

[[alertmanager.forward]]
kind = "exec"
name = "flaky"
command = {flaky}
"#,
        servers = toml_array(&[&pair.a.url, &pair.b.url]),
        steady = toml_array(&[
            "/bin/sh",
            &record,
            &steady_out.display().to_string(),
            "{{ status }}",
            "{{ alertname }}"
        ]),
        flaky = toml_array(&[
            "/bin/sh",
            &fail_then_record,
            &flaky_state.display().to_string(),
            "0",
            &flaky_out.display().to_string(),
            "{{ status }}",
            "{{ alertname }}"
        ]),
    );
    let config = daemon_config(dir.path(), &block, &alertmanager);
    let check = Command::new(AGENT)
        .arg("-c")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    pair.post_both(&json!([alert("TiKV_server_is_down", &[])]))
        .await;
    let log = dir.path().join("agent.log");
    let mut daemon = start_daemon(&config, &log);
    Wait::new(
        LIMIT,
        "the steady target's delivery and two failed flaky attempts",
    )
    .until(|| {
        let attempts: u32 = std::fs::read_to_string(flaky_state.join("attempts"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (calls(&steady_out).len() == 1 && attempts >= 2).then_some(())
    })
    .await;
    kill_9(&mut daemon);

    // On disk: the event, with the steady target's success recorded.
    let spool = dir.path().join("state/spool");
    let pending: Vec<serde_json::Value> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".event"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(pending.len(), 1, "one pending event in {}", spool.display());
    assert_eq!(pending[0]["delivered"], json!(["steady"]));
    assert_eq!(
        pending[0]["event"]["labels"]["alertname"],
        "TiKV_server_is_down"
    );

    std::fs::remove_file(flaky_state.join("fail")).unwrap();
    let daemon = start_daemon(&config, &log);
    Wait::new(LIMIT, "the flaky target's delivery after the restart")
        .until(|| (!calls(&flaky_out).is_empty()).then_some(()))
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&flaky_out),
        [("firing".into(), "TiKV_server_is_down".into())]
    );
    assert_eq!(
        statuses(&steady_out),
        [("firing".into(), "TiKV_server_is_down".into())],
        "the target that had succeeded gets no second copy, and the restart re-fires nothing"
    );

    // Everything delivered, the alert still firing: another kill -9 and restart must
    // remember that it was sent.
    let mut daemon = daemon;
    kill_9(&mut daemon);
    let daemon = start_daemon(&config, &log);
    Wait::new(LIMIT, "the restarted agent to poll")
        .until(|| {
            let polls = daemon
                .log_text()
                .matches("alert forwarding started")
                .count();
            (polls == 3).then_some(())
        })
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(statuses(&steady_out).len(), 1, "{}", daemon.log_text());
    assert_eq!(statuses(&flaky_out).len(), 1);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_command_prints_templates_and_json() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let mut pd = alert("PD_server_is_down", &[("instance", "10.0.1.1:2379")]);
    pd["startsAt"] = json!("2026-03-01T10:00:00Z");
    pd["endsAt"] = json!("2099-01-01T00:00:00Z");
    pair.post_both(&json!([pd])).await;
    // Forwarding from these Alertmanagers to a command that does nothing.
    let forwarding_from = |servers: &[&str]| {
        format!(
            "[alertmanager]\nservers = {}\n[[alertmanager.forward]]\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n",
            toml_array(servers)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(
        dir.path(),
        &block,
        &forwarding_from(&[&pair.a.url, &pair.b.url]),
    );

    let alerts = |args: &[&str]| {
        let out = Command::new(AGENT)
            .arg("-c")
            .arg(&config)
            .arg("alerts")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = alerts(&[
        "--format",
        "{{ alertname }} on {{ labels.instance }} since {{ startsAt | strftime('%Y-%m-%d %H:%M') }} ({{ severity }})",
    ]);
    assert_eq!(
        text,
        "PD_server_is_down on 10.0.1.1:2379 since 2026-03-01 10:00 (critical)\n"
    );

    let json: Vec<serde_json::Value> = serde_json::from_str(&alerts(&["--json"])).unwrap();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["labels"]["instance"], "10.0.1.1:2379");
    assert_eq!(json[0]["startsAt"], "2026-03-01T10:00:00Z");
    assert_eq!(json[0]["state"], "active");
    assert_eq!(json[0]["servers"].as_array().unwrap().len(), 2);

    let both = Command::new(AGENT)
        .arg("-c")
        .arg(&config)
        .args(["alerts", "--json", "--format", "x"])
        .output()
        .unwrap();
    assert_eq!(
        both.status.code(),
        Some(2),
        "--format and --json exclude each other"
    );

    // `check --connect` asks every Alertmanager too: both of the pair answer, a third
    // that refuses connections is DOWN, and so is the config's Prometheus (exit 1).
    let refused = format!("http://{}:1", block.ip(9));
    let check_dir = tempfile::tempdir().unwrap();
    let check_config = daemon_config(
        check_dir.path(),
        &block,
        &forwarding_from(&[&pair.a.url, &pair.b.url, &refused]),
    );
    let check = Command::new(AGENT)
        .arg("-c")
        .arg(&check_config)
        .args(["check", "--connect"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    for url in [&pair.a.url, &pair.b.url] {
        let up = format!(
            "alertmanager {}: up (1 alerts match)",
            url.trim_end_matches('/')
        );
        assert!(stdout.lines().any(|l| l == up), "no `{up}` in:\n{stdout}");
    }
    let down = format!("DOWN: alertmanager {refused}: request failed");
    assert!(
        stdout.lines().any(|l| l.starts_with(&down)),
        "no `{down}…` in:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_attempt_in_flight_and_keeps_the_event() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let dir = tempfile::tempdir().unwrap();
    let hang_dir = dir.path().join("hang");
    std::fs::create_dir_all(&hang_dir).unwrap();
    let alertmanager = format!(
        "[alertmanager]\nservers = {}\npoll_interval = \"200ms\"\n[[alertmanager.forward]]\nkind = \"exec\"\nname = \"hanging\"\ntimeout = \"1h\"\ncommand = {}\n",
        toml_array(&[&pair.a.url, &pair.b.url]),
        toml_array(&[
            "/bin/sh",
            &fixture("hang.sh"),
            &hang_dir.display().to_string()
        ]),
    );
    let config = daemon_config(dir.path(), &block, &alertmanager);
    pair.post_both(&json!([alert("PD_server_is_down", &[])]))
        .await;
    let mut daemon = start_daemon(&config, &dir.path().join("agent.log"));
    let pid = Wait::new(LIMIT, "the attempt in flight")
        .until(|| hang_pids(&hang_dir).first().copied())
        .await;

    let status = terminate(&mut daemon, Duration::from_secs(5));
    let log = daemon.log_text();
    let status = status.unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM:\n{log}"));
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("alert forwarding stopped"), "{log}");
    Wait::new(LIMIT, "the attempt to be killed")
        .until(|| process_gone(pid).then_some(()))
        .await;
    let spooled = std::fs::read_dir(dir.path().join("state/spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".event"))
        .count();
    assert_eq!(
        spooled, 1,
        "the event waits in the spool for the next start"
    );
}

/// A config file for the real binary: Prometheus refuses at once (the subject is the
/// forwarding), a file sink, and `alertmanager` as given (TOML).
/// A flooded Alertmanager: the keys go on being written every interval, each bound is hit,
/// counted and logged once, and the spool never holds more than `max_events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_alertmanager_neither_delays_the_keys_nor_outgrows_its_bounds() {
    const ALERTS: usize = 3000;
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let dir = tempfile::tempdir().unwrap();
    let hang = dir.path().join("hang");
    std::fs::create_dir_all(&hang).unwrap();
    // A target that never finishes in time: every event stays spooled.
    let alertmanager = format!(
        r#"
[alertmanager]
servers = {servers}
poll_interval = "200ms"
max_alerts = 1000
max_events = 300

[[alertmanager.forward]]
kind = "exec"
name = "stuck"
command = {stuck}
timeout = "100ms"
"#,
        servers = toml_array(&[&pair.a.url]),
        stuck = toml_array(&["/bin/sh", &fixture("hang.sh"), &hang.display().to_string()]),
    );
    let config = daemon_config(dir.path(), &block, &alertmanager);
    let log = dir.path().join("agent.log");
    let mut daemon = start_daemon(&config, &log);
    let alerts: Vec<serde_json::Value> = (0..ALERTS)
        .map(|i| alert(&format!("Flood{i}"), &[("n", &i.to_string())]))
        .collect();
    for chunk in alerts.chunks(500) {
        pair.a.post(&json!(chunk)).await;
    }
    let snapshot = dir.path().join("state/snapshot.txt");
    let spool = dir.path().join("state/spool");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    Wait::new(LIMIT, "the spool to fill")
        .until(|| logged().contains("the forward spool is full").then_some(()))
        .await;
    // For 5 s: the keys file is rewritten at least every 3 intervals, and the spool
    // stays within max_events.
    let mut last = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    let mut last_seen = std::time::Instant::now();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let modified = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
        if modified != last {
            (last, last_seen) = (modified, std::time::Instant::now());
        }
        assert!(
            last_seen.elapsed() < Duration::from_secs(3),
            "the keys were not written for {:?}",
            last_seen.elapsed()
        );
        let spooled = std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".event"))
            })
            .count();
        assert!(
            spooled <= 300,
            "{spooled} events spooled, past max_events 300"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = logged();
    assert_eq!(
        text.matches("the forward spool is full").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("more alerts than alertmanager.max_alerts")
            .count(),
        1,
        "{text}"
    );
    assert!(daemon.try_exit().is_none(), "the agent exited:\n{text}");
    terminate(&mut daemon, Duration::from_secs(10)).expect("the agent stops");
    for pid in hang_pids(&hang) {
        assert!(
            process_gone(pid),
            "a stuck command ({pid}) outlived the agent"
        );
    }
}

fn daemon_config(dir: &Path, block: &Block, alertmanager: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        r#"
[agent]
interval = "1s"
state_dir = "{state}"

[host]
addresses = ["{host}"]
components = ["tikv"]
cluster_reporter = false

[prometheus]
# Nothing listens here.
servers = ["http://{host}:1"]
on_no_data = "zero"

[[output]]
kind = "file"
path = "{state}/snapshot.txt"

{alertmanager}
"#,
        state = dir.join("state").display(),
        host = block.ip(9),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// TOML for an array of strings.
fn toml_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The real daemon, logging at debug to `log`; SIGKILLed on drop.
fn start_daemon(config: &Path, log: &Path) -> ChildProcess {
    let command = run_command(AGENT, config, Some("tidb_host_agent=debug"));
    ChildProcess::spawn("the agent", command, log)
}

/// SIGKILL: no shutdown path runs.
fn kill_9(daemon: &mut ChildProcess) {
    let status = daemon.kill().expect("the agent was running");
    assert!(!status.success(), "killed, not exited: {status:?}");
}

/// SIGTERM, then the exit status; `None` when it did not exit within `limit`.
fn terminate(daemon: &mut ChildProcess, limit: Duration) -> Option<ExitStatus> {
    daemon.signal(Signal::TERM);
    daemon.wait_exit(limit)
}
