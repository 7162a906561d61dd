//! Reload and start are all-or-nothing (SPEC §12, §15): a configuration that parses but
//! cannot run (a broken rule file, an unknown key in `disable`, a missing secret file, an
//! unreadable CA, a bad header name) is refused by `check` and `run` with exit 78, and a
//! SIGHUP with it leaves the running daemon writing its keys on the old configuration.

#![allow(clippy::expect_used)] // Test scaffolding: failing loudly is the point.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::agent::{Agent, PLAIN_FILE_OUTPUT, base_config, metric_sum, parse_plain};
use harness::block::free_port;
use harness::process::Signal;
use harness::wait::Wait;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

const OUTPUT: &str = PLAIN_FILE_OUTPUT;

/// A configuration that parses but cannot run, and a text its refusal must name.
struct Broken {
    what: &'static str,
    /// Files written into the agent's directory first.
    files: &'static [(&'static str, &'static str)],
    /// Replaces the base config's server list.
    servers: Option<&'static str>,
    /// Added to the base config.
    extra: &'static str,
    names: &'static str,
}

const BROKEN: &[Broken] = &[
    Broken {
        what: "a rule file that is not YAML",
        files: &[("bad-yaml.rules.yml", "groups: [\n  - name: x\n")],
        servers: None,
        extra: "[rules]\nfiles = [\"{dir}/bad-yaml.rules.yml\"]\n",
        names: "bad-yaml.rules.yml",
    },
    Broken {
        what: "a rule file with invalid PromQL",
        files: &[(
            "bad-promql.rules.yml",
            "groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: up{job=\n",
        )],
        servers: None,
        extra: "[rules]\nfiles = [\"{dir}/bad-promql.rules.yml\"]\n",
        names: "bad-promql.rules.yml",
    },
    Broken {
        what: "disable naming no rule",
        files: &[],
        servers: None,
        extra: "[rules]\ndisable = [\"TiDB.nonexistent.Key\"]\n",
        names: "TiDB.nonexistent.Key",
    },
    Broken {
        what: "a bearer_token_file that does not exist",
        files: &[],
        servers: Some(
            r#"servers = [{ url = "http://127.0.0.1:1", bearer_token_file = "{dir}/missing-token" }]"#,
        ),
        extra: "",
        names: "missing-token",
    },
    Broken {
        what: "a CA file that holds no certificate",
        files: &[("bad-ca.pem", "not a certificate\n")],
        servers: Some(
            r#"servers = [{ url = "https://127.0.0.1:1", ca_file = "{dir}/bad-ca.pem" }]"#,
        ),
        extra: "",
        names: "bad-ca.pem",
    },
    Broken {
        what: "a header name with a space",
        files: &[],
        servers: Some(
            r#"servers = [{ url = "http://127.0.0.1:1", headers = { "bad header" = "x" } }]"#,
        ),
        extra: "",
        names: "bad header",
    },
];

/// The base config, with `broken`'s changes, `{dir}` filled in.
fn config_text(port: u16, broken: Option<&Broken>, dir: &Path) -> String {
    let mut text = base_config("100ms", port, OUTPUT);
    if let Some(b) = broken {
        if let Some(servers) = b.servers {
            text = text.replace(r#"servers = ["http://127.0.0.1:1"]"#, servers);
        }
        text.push_str(b.extra);
        for (name, content) in b.files {
            std::fs::write(dir.join(name), content).expect("write a test file");
        }
    }
    text.replace("{dir}", &dir.display().to_string())
}

fn keys(file: &Path) -> Vec<String> {
    parse_plain(&std::fs::read_to_string(file).unwrap_or_default())
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Successful writes of the file sink, from the self-metrics.
fn writes(port: u16) -> f64 {
    metric_sum(
        port,
        "tidb_host_agent_output_writes_total",
        &[("result", "ok")],
    )
}

fn reload_metric(port: u16) -> f64 {
    metric_sum(port, "tidb_host_agent_config_last_reload_successful", &[])
}

#[test]
fn check_and_run_refuse_what_a_start_cannot_run_with_exit_78() {
    let dir = tempfile::tempdir().expect("temp dir");
    for broken in BROKEN {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            config_text(
                free_port(std::net::Ipv4Addr::LOCALHOST),
                Some(broken),
                dir.path(),
            ),
        )
        .expect("write config");
        for command in [&["check"][..], &["run"][..]] {
            let output = Command::new(AGENT)
                .env_remove("TIDB_HOST_AGENT_CONFIG")
                .arg("-c")
                .arg(&path)
                .args(command)
                .output()
                .expect("run the agent");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(78),
                "{} with {}: {stderr}",
                command[0],
                broken.what
            );
            assert!(
                stderr.contains(broken.names),
                "{} with {}: the error does not name `{}`: {stderr}",
                command[0],
                broken.what,
                broken.names
            );
        }
    }
}

#[test]
fn sighup_with_a_config_that_cannot_run_keeps_the_old_one_running() {
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let mut agent = Agent::start(AGENT, &base_config("100ms", port, OUTPUT));
    let dir = agent.dir.path().to_path_buf();
    let file = dir.join("alerts.txt");
    Wait::new(Duration::from_secs(20), "the first snapshot")
        .blocking(|| (!keys(&file).is_empty()).then_some(()));
    for (i, broken) in BROKEN.iter().enumerate() {
        std::fs::write(&agent.config, config_text(port, Some(broken), &dir)).expect("config");
        agent.signal(Signal::HUP);
        Wait::new(
            Duration::from_secs(10),
            &format!("the reload with {} to be refused", broken.what),
        )
        .blocking(|| (agent.log_text().matches("reload refused").count() > i).then_some(()));
        let log = agent.log_text();
        let refusal = &log[log.rfind("reload refused").expect("refused")..];
        assert!(
            refusal.contains(broken.names),
            "the refusal of {} does not name `{}`:\n{refusal}",
            broken.what,
            broken.names
        );
        assert!(reload_metric(port) == 0.0, "{}", reload_metric(port));
        // Alive, and still writing the old configuration's keys.
        assert!(
            agent.wait_exit(Duration::from_millis(10)).is_none(),
            "the daemon exited after a reload with {}",
            broken.what
        );
        let before = writes(port);
        Wait::new(Duration::from_secs(10), "new snapshots after the refusal")
            .blocking(|| (writes(port) >= before + 3.0).then_some(()));
        assert!(keys(&file).iter().all(|k| k.starts_with("TiDB.")));
    }
    // A valid configuration still applies after all of them.
    let changed = config_text(port, None, &dir).replace("[agent]", "[agent]\nproduct = \"Acme\"");
    std::fs::write(&agent.config, changed).expect("config");
    agent.signal(Signal::HUP);
    Wait::new(Duration::from_secs(10), "keys with the new product").blocking(|| {
        let k = keys(&file);
        (!k.is_empty() && k.iter().all(|k| k.starts_with("Acme."))).then_some(())
    });
    assert!(reload_metric(port) == 1.0, "{}", reload_metric(port));
}

#[test]
fn once_and_explain_need_no_output_section() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    let text = format!(
        "[agent]\nstate_dir = \"{}/state\"\n[host]\naddresses = [\"127.0.0.1\"]\ncomponents = [\"tikv\"]\ncluster_reporter = false\n[prometheus]\nservers = [\"http://127.0.0.1:1\"]\non_no_data = \"zero\"\n",
        dir.path().display()
    );
    std::fs::write(&path, text).expect("config");
    let run = |args: &[&str]| {
        Command::new(AGENT)
            .env_remove("TIDB_HOST_AGENT_CONFIG")
            .arg("-c")
            .arg(&path)
            .args(args)
            .output()
            .expect("run the agent")
    };
    let once = run(&["once", "--format", "plain"]);
    assert_eq!(
        once.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let values = parse_plain(&String::from_utf8_lossy(&once.stdout));
    assert!(
        values.contains(&("TiDB.prometheus.Prometheus_is_down".to_owned(), 1)),
        "{values:?}"
    );
    assert!(
        values
            .iter()
            .any(|(k, _)| k == "TiDB.tikv.TiKV_server_is_down"),
        "{values:?}"
    );
    let explain = run(&["explain"]);
    assert_eq!(
        explain.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(String::from_utf8_lossy(&explain.stdout).contains("\nTiDB.tikv.TiKV_server_is_down\n"));
    // The daemon still needs somewhere to write.
    let check = run(&["check"]);
    assert_eq!(check.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&check.stderr).contains("no [[output]] section"));
}
