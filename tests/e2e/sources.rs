//! Issue 16: keys read from the pair's own `ALERTS` (`[rules] source = "auto"`) against a
//! sandbox pair that loads TiDB's rule files (tests/data/upstream, `for:` shortened to 0s).
//! An `auto` agent, an `evaluate` agent and an `auto` agent that selects the host by its
//! exact `instance` values (`[host] matcher = "instances"`) on every host give the same keys
//! and values, healthy and under the faults; a rule the pair does not load, and one whose expression
//! differs, are evaluated; `check --connect` says so per key; and a host whose keys all
//! come from `ALERTS` sends one request per cycle, read from Prometheus' own counters.

use std::process::Command;

use harness::catalog;
use harness::http::http_get;
use harness::sandbox::{Host, Sandbox, SandboxOptions, Server, WAIT_LIMIT};
use harness::wait::Wait;

use crate::agents::{AgentSpec, HostAgent, sample, start_per_host, wait_until};
use crate::expect::{self, Expected, Reading, State};

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

/// Two tikv rules the pair does not have as the agent has them: one it does not load, one
/// it loads under the same alertname with another expression (its `TiDB_server_is_down`
/// watches the tidb group). Both fire when a tikv is down, so a value read from `ALERTS`
/// instead of evaluated would show.
const USER_RULES: &str = "groups:
- name: agent-only
  rules:
  - alert: Agent_only_tikv_down
    expr: probe_success{group=\"tikv\"} == 0
    labels:
      component: tikv
      level: critical
  - alert: TiDB_server_is_down
    expr: probe_success{group=\"tikv\"} == 0
    labels:
      component: tikv
      level: critical
";
const NOT_LOADED: &str = "TiDB.tikv.Agent_only_tikv_down";
const DIFFERS: &str = "TiDB.tikv.TiDB_server_is_down";

async fn sandbox_with_upstream_rules() -> Sandbox {
    let sb = Sandbox::start_with(SandboxOptions {
        upstream_rules: true,
        ..SandboxOptions::default()
    })
    .await;
    sb.wait_until_ready().await;
    sb
}

/// What `host` reports: the catalog's keys, the user rules' keys on tikv hosts, and with
/// `tikv_down_on_ten` the tikv of 127.N.1.10 down (127.N.1.1 is its string prefix).
fn truth(sb: &Sandbox, host: Host, tikv_down_on_ten: bool) -> Expected {
    let mut expected = expect::healthy(sb, host);
    let down = tikv_down_on_ten && host == Host::Ten;
    if expect::components(sb, host).contains("tikv") {
        for key in [NOT_LOADED, DIFFERS] {
            let reading = match down {
                true => Reading {
                    value: 1,
                    state: State::Firing,
                },
                false => Reading {
                    value: 0,
                    state: State::Ok,
                },
            };
            expected.0.insert(key.to_string(), reading);
        }
    }
    if down {
        expected = expected.firing(&catalog::key("TiKV_server_is_down"));
    }
    expected
}

#[tokio::test]
async fn auto_and_evaluate_give_the_same_values_through_the_faults() {
    let sb = sandbox_with_upstream_rules().await;
    let evaluate = start_per_host(&sb, |s| s.named("evaluate").rules_file(USER_RULES));
    let auto = start_per_host(&sb, |s| {
        s.named("auto").source("auto").rules_file(USER_RULES)
    });
    let exact = start_per_host(&sb, |s| {
        s.named("exact")
            .source("auto")
            .matcher("instances")
            .rules_file(USER_RULES)
    });
    let all: Vec<&HostAgent> = evaluate.iter().chain(&auto).chain(&exact).collect();
    let each = |f: &dyn Fn(Host) -> Expected| -> Vec<(&HostAgent, Expected)> {
        all.iter().map(|a| (*a, f(a.host))).collect()
    };
    wait_until(&each(&|h| truth(&sb, h, false)), "every host healthy").await;
    assert_exact_values(&sb, &exact);

    // What the auto agents decided, per key, as check --connect shows it.
    let report = check_connect(auto.first().expect("an auto agent"));
    let source_of = |key: &str| -> String {
        let block = report
            .split_once(&format!("\n{key}: "))
            .unwrap_or_else(|| panic!("no {key} in:\n{report}"))
            .1;
        block
            .lines()
            .find_map(|l| l.strip_prefix("  source: "))
            .unwrap_or_else(|| panic!("no source for {key} in:\n{report}"))
            .to_string()
    };
    assert_eq!(
        source_of(&catalog::key("TiKV_server_is_down")),
        "alerts (auto: the pair evaluates it with the same expression)",
        "{report}"
    );
    assert!(
        source_of(NOT_LOADED).starts_with("evaluate (auto: ")
            && source_of(NOT_LOADED).ends_with(" does not load it)"),
        "{report}"
    );
    assert!(
        source_of(DIFFERS).ends_with(" loads it with a different expression)"),
        "{report}"
    );
    assert!(
        source_of(&catalog::key("TiKV_approximate_region_size"))
            .starts_with("evaluate (its expression aggregates the host label away"),
        "{report}"
    );

    sb.fake(sb.addr(Host::Ten, 20180)).stop().await;
    wait_until(
        &each(&|h| truth(&sb, h, true)),
        "the tikv on .10 down, on .10 only",
    )
    .await;

    let prometheus_down = catalog::prometheus_key();
    sb.server(Server::A).stop().await;
    let a_down = |h: Host| match h {
        Host::One => truth(&sb, h, true).firing(&prometheus_down),
        _ => truth(&sb, h, true),
    };
    wait_until(&each(&a_down), "A down: seen through B").await;

    sb.server(Server::B).stop().await;
    let none = |h: Host| truth(&sb, h, true).unknown(0, 1).firing(&prometheus_down);
    wait_until(&each(&none), "no server: values held").await;

    futures::join!(sb.server(Server::A).start(), sb.server(Server::B).start());
    sb.fake(sb.addr(Host::Ten, 20180)).start().await;
    sb.wait_until_ready().await;
    wait_until(&each(&|h| truth(&sb, h, false)), "every host healthy again").await;
    for agent in evaluate.into_iter().chain(auto).chain(exact) {
        let mut agent = agent;
        agent.assert_alive();
    }
}

/// Each `instances` agent runs with the exact values of its own host: its tikv's on
/// 127.N.1.10 among them, and none of 127.N.1.10's on 127.N.1.1, whose address is its
/// string prefix.
fn assert_exact_values(sb: &Sandbox, exact: &[HostAgent]) {
    for agent in exact {
        let log = agent.log();
        let line = log
            .lines()
            .find(|l| l.contains("host matcher: the "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no exact values in its log:\n{log}",
                    agent.host.last_octet()
                )
            });
        let own = format!("\"{}:", sb.ip(agent.host));
        assert!(line.contains(&own), "{line}");
        if agent.host == Host::Ten {
            assert!(
                line.contains(&format!("{}\"", sb.addr(Host::Ten, 20180))),
                "{line}"
            );
        }
        if agent.host == Host::One {
            let ten = format!("\"{}:", sb.ip(Host::Ten));
            assert!(!line.contains(&ten), "{line}");
            // check --connect reads the same values.
            let report = check_connect(agent);
            let said = report
                .lines()
                .find(|l| l.starts_with("host matcher: "))
                .unwrap_or_else(|| panic!("no host matcher in:\n{report}"));
            assert!(said.contains(" exact values ("), "{said}");
            assert!(said.contains(&format!("{}:", sb.ip(Host::One))), "{said}");
            assert!(!said.contains(&format!("{}:", sb.ip(Host::Ten))), "{said}");
        }
    }
}

/// `check --connect` on `agent`'s configuration.
fn check_connect(agent: &HostAgent) -> String {
    let output = Command::new(AGENT)
        .args(["check", "--connect", "-c"])
        .arg(agent.config_path())
        .output()
        .expect("run check --connect");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "check --connect failed: {}\n{text}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    format!("\n{text}")
}

/// Every request `server` served, by handler, summed over codes.
fn total(sb: &Sandbox, server: Server, handler: &str) -> f64 {
    let text = http_get(&sb.server(server).addr().to_string(), "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("prometheus_http_requests_total{"))
        .filter(|l| l.contains(&format!("handler=\"{handler}\"")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>()
}

/// On 127.N.1.1, whose keys (pd and blackbox_exporter, not a cluster reporter) all come
/// from `ALERTS` under `auto`: one query a cycle to A (local, so preferred), and no
/// readiness probe of A; B, remote and not asked while A answers, gets nothing.
#[tokio::test]
async fn auto_on_a_host_read_from_alerts_sends_one_request_per_cycle() {
    requests_per_cycle(&["pd", "blackbox_exporter"], None).await;
}

/// A TiKV host has rules the pair cannot give per host (their alerts carry no
/// instance): they are evaluated in a batch that the `ALERTS` query joins, so the host
/// still sends one request a cycle.
#[tokio::test]
async fn auto_on_a_host_with_evaluated_rules_sends_one_request_per_cycle() {
    requests_per_cycle(
        &["pd", "tikv", "blackbox_exporter"],
        Some("TiKV_approximate_region_size"),
    )
    .await;
}

async fn requests_per_cycle(components: &[&str], evaluated: Option<&str>) {
    let sb = sandbox_with_upstream_rules().await;
    let agent = AgentSpec::new(&sb, Host::One)
        .named("auto")
        .source("auto")
        .components(components)
        .cluster_reporter(false)
        .start();
    let a_url = sb.server(Server::A).url();
    let log = || agent.log();
    let tail = || agent.log_tail();
    Wait::new(WAIT_LIMIT, "the auto agent has read A's rules")
        .every(std::time::Duration::from_millis(100))
        .on_timeout(&tail)
        .until(|| {
            log()
                .lines()
                .any(|l| l.contains("evaluation::sources") && l.contains(&a_url))
                .then_some(())
        })
        .await;
    // The cycle after the one that read the rules uses them.
    agent.next_snapshots(2).await;

    let cycles = |text: &str| {
        sample(text, "tidb_host_agent_cycle_duration_seconds_count", &[]).unwrap_or(0.0)
    };
    let count = |sb: &Sandbox| {
        (
            total(sb, Server::A, "/api/v1/query"),
            total(sb, Server::A, "/-/ready"),
            total(sb, Server::B, "/api/v1/query"),
            total(sb, Server::B, "/-/ready"),
        )
    };
    // The agent's own count of its requests, which an operator reads on its /metrics.
    let sent = |text: &str, server: &str, endpoint: &str| {
        sample(
            text,
            "tidb_host_agent_prometheus_requests_total",
            &[("server", server), ("endpoint", endpoint)],
        )
        .unwrap_or(0.0)
    };
    let b_url = sb.server(Server::B).url();
    let m0 = agent.metrics().await;
    let before = count(&sb);
    agent.next_snapshots(6).await;
    let after = count(&sb);
    let m1 = agent.metrics().await;
    let n = cycles(&m1) - cycles(&m0);
    let own =
        |server: &str, endpoint: &str| sent(&m1, server, endpoint) - sent(&m0, server, endpoint);
    let (a_query, a_ready, b_query, b_ready) = (
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
    );
    eprintln!(
        "{n} cycles: A {a_query} queries, {a_ready} ready probes; B {b_query} queries, \
         {b_ready} ready probes"
    );
    assert!(n >= 6.0, "{n} cycles");
    // A cycle may straddle either reading: one either way.
    assert!(
        (a_query - n).abs() <= 1.0,
        "{a_query} queries to A in {n} cycles"
    );
    assert_eq!(a_ready, 0.0, "A answered, so it needs no probe");
    assert_eq!(b_query, 0.0, "B is not asked under failover");
    assert_eq!(
        b_ready, 0.0,
        "B is remote and A answered, so B needs no probe"
    );
    let own_a_queries = own(&a_url, "/api/v1/query");
    assert!(
        own_a_queries >= 1.0 && (own_a_queries - a_query).abs() <= 1.0,
        "the agent counted {own_a_queries} queries to A, A served {a_query}"
    );
    for endpoint in ["/-/ready", "/-/healthy", "/api/v1/query", "/api/v1/rules"] {
        assert_eq!(
            own(&b_url, endpoint),
            0.0,
            "the agent counted {endpoint} to B"
        );
    }
    assert_eq!(
        own(&a_url, "/-/ready"),
        0.0,
        "the agent counted probes of A"
    );
    let values = agent.latest().expect("a snapshot");
    // A key evaluated (its alert carries no instance) went out in the same request.
    if let Some(alert) = evaluated {
        assert!(
            values.reading(&catalog::key(alert)).is_some(),
            "{alert} is in the snapshot"
        );
    }
    assert_eq!(
        values.reading(&catalog::key("PD_server_is_down")),
        Some(Reading {
            value: 0,
            state: State::Ok
        })
    );
}
