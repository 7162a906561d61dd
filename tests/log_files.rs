//! `[log] keep` (issue 15): the daemon's daily log files are pruned at start, and each
//! event stays one line in the file too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic in a test is a failed test.

use std::time::Duration;

use harness::agent::{Agent, base_config};
use harness::block::free_port;
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

#[test]
fn the_daemon_keeps_only_keep_daily_files() {
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let mut agent = Agent::prepare(
        AGENT,
        &base_config(
            "1s",
            port,
            r#"
[log]
directory = "{dir}/logs"
file_prefix = "agent.log"
keep = 3

[[output]]
kind = "file"
format = "plain"
path = "{dir}/alerts.txt"
"#,
        ),
        false,
    );
    let logs = agent.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for day in 1..=9 {
        std::fs::write(logs.join(format!("agent.log.2026-11-0{day}")), "old\n").unwrap();
    }
    std::fs::write(logs.join("operator-notes.txt"), "not a log file\n").unwrap();
    agent.spawn(false);
    Wait::new(Duration::from_secs(60), "the first snapshot")
        .blocking(|| agent.path("alerts.txt").exists().then_some(()));
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "3 log files and the notes: {names:?}");
    assert!(names.contains(&"operator-notes.txt".to_string()));
    let today = names
        .iter()
        .filter(|n| n.starts_with("agent.log."))
        .max()
        .unwrap();
    Wait::new(Duration::from_secs(60), "today's log file to be written").blocking(|| {
        let text = std::fs::read_to_string(logs.join(today)).ok()?;
        text.contains("agent configured").then_some(())
    });
}
