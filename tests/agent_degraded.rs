//! `Agent_degraded` (issue 17) with the real binary: every Prometheus refuses connections,
//! so tikv's keys are unknown every cycle, and one file sink writes into a directory that
//! does not exist. The key reads 1, and the published snapshot, `status --json` and the
//! `status` table name the unknown keys and the failing sink; once the directory exists
//! the sink is no longer named, while the keys still are.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use harness::agent::{Agent, base_config, parse_plain};
use harness::block::free_port;
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");
const DEGRADED: &str = "TiDB.agent.Agent_degraded";
const LIMIT: Duration = Duration::from_secs(30);

fn status(agent: &Agent, args: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("status")
        .arg("--snapshot")
        .arg(agent.path("published.json"))
        .args(args)
        .env_remove("TIDB_HOST_AGENT_SNAPSHOT")
        .output()
        .expect("run status")
}

/// `status --json`, once the daemon published a snapshot.
fn published(agent: &Agent) -> Option<serde_json::Value> {
    let out = status(agent, &["--json"]);
    serde_json::from_slice(&out.stdout).ok()
}

fn value_of(doc: &serde_json::Value, key: &str) -> Option<u64> {
    doc["values"].as_array()?.iter().find(|v| v["key"] == key)?["value"].as_u64()
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unknown_keys_and_a_failing_sink_are_named() {
    let port = free_port(Ipv4Addr::LOCALHOST);
    let config = base_config(
        "200ms",
        port,
        r#"
[[output]]
kind = "file"
format = "plain"
path = "{dir}/alerts.txt"

[[output]]
kind = "file"
format = "plain"
path = "{dir}/missing/alerts.txt"
"#,
    )
    .replace(
        "[agent]\n",
        "[agent]\nsnapshot_file = \"{dir}/published.json\"\n",
    );
    let agent = Agent::start(AGENT, &config);
    let failing = format!("file:{}", agent.path("missing/alerts.txt").display());

    let doc = Wait::new(LIMIT, "Agent_degraded = 1 with both causes").blocking(|| {
        let doc = published(&agent)?;
        let both = value_of(&doc, DEGRADED) == Some(1)
            && !strings(&doc["degraded"]["unknown_keys"]).is_empty()
            && !strings(&doc["degraded"]["failing_sinks"]).is_empty();
        both.then_some(doc)
    });
    // The unknown keys are exactly the keys in state unknown: tikv's.
    let mut unknown: Vec<String> = doc["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "unknown")
        .map(|v| v["key"].as_str().unwrap().to_owned())
        .collect();
    unknown.sort();
    assert!(
        !unknown.is_empty() && unknown.iter().all(|k| k.starts_with("TiDB.tikv.")),
        "{unknown:?}"
    );
    assert_eq!(strings(&doc["degraded"]["unknown_keys"]), unknown);
    assert_eq!(
        strings(&doc["degraded"]["failing_sinks"]),
        [failing.as_str()]
    );

    // The table names both, and exits 1 (a key is 1).
    let out = status(&agent, &[]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with(DEGRADED))
        .unwrap_or_else(|| panic!("no {DEGRADED} in:\n{table}"));
    assert!(
        line.contains(&format!("last write failed: {failing}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("unknown for 3+ cycles: {}", unknown.join(", "))),
        "{line}"
    );
    // The other sinks carry the key like any other.
    let plain = std::fs::read_to_string(agent.path("alerts.txt")).expect("alerts.txt");
    assert!(
        parse_plain(&plain)
            .iter()
            .any(|(k, v)| k == DEGRADED && *v == 1),
        "{plain}"
    );

    // The directory appears: the sink writes again and is no longer named.
    std::fs::create_dir(agent.path("missing")).expect("mkdir");
    let doc = Wait::new(LIMIT, "the sink recovered").blocking(|| {
        let doc = published(&agent)?;
        strings(&doc["degraded"]["failing_sinks"])
            .is_empty()
            .then_some(doc)
    });
    assert_eq!(value_of(&doc, DEGRADED), Some(1));
    assert_eq!(strings(&doc["degraded"]["unknown_keys"]), unknown);
    assert!(agent.path("missing/alerts.txt").exists());
}
