//! `[log] keep` (issue 15): the daemon's daily log files are pruned at start, and each
//! event stays one line in the file too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic in a test is a failed test.

mod support;

use std::time::Duration;

use support::{Agent, base_config, free_port, wait_for};

#[test]
fn the_daemon_keeps_only_keep_daily_files() {
    let port = free_port("127.0.0.1");
    let mut agent = Agent::prepare(
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
    wait_for(Duration::from_secs(60), "the first snapshot", || {
        agent.path("alerts.txt").exists().then_some(())
    });
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
    wait_for(
        Duration::from_secs(60),
        "today's log file to be written",
        || {
            let text = std::fs::read_to_string(logs.join(today)).ok()?;
            text.contains("agent configured").then_some(())
        },
    );
}
