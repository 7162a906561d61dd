//! Rules share queries (`[prometheus] rules_per_query`): a host asks Prometheus a few
//! times a cycle, each rule keeps its own value, and a rule Prometheus rejects costs only
//! its own key.

use std::collections::BTreeSet;

use harness::catalog;
use harness::sandbox::{Host, Sandbox, Server};

use crate::agents::{AgentSpec, Histogram, HostAgent, wait_until};
use crate::expect::{self, Reading, State};

const CYCLE: &str = "tidb_host_agent_cycle_duration_seconds";
const QUERY: &str = "tidb_host_agent_query_duration_seconds";
/// Cycles the query count is taken over.
const COUNTED_CYCLES: usize = 6;

/// A user rule file for the tikv component: one rule that the sandbox's Prometheus (2.42)
/// rejects, as it has no `mad_over_time` (promql-parser knows it, so the agent loads it),
/// and one that is true wherever TiKV's fake runs.
const USER_RULES: &str = r#"
groups:
  - name: batch-test
    rules:
      - alert: Unknown_function
        expr: mad_over_time(tikv_gcworker_gc_tasks_vec[5m]) > 1e300
        labels: { component: tikv, level: warning }
      - alert: Gc_counter_present
        expr: tikv_gcworker_gc_tasks_vec{task="gc"} >= 0
        labels: { component: tikv, level: warning }
"#;

fn every_component(sb: &Sandbox) -> BTreeSet<String> {
    Host::ALL
        .iter()
        .flat_map(|h| expect::components(sb, *h))
        .collect()
}

/// Queries per cycle over the next [`COUNTED_CYCLES`] cycles, from the self-metrics.
/// Both reads follow a fresh snapshot, so they fall between two cycles (a cycle takes
/// milliseconds of each second) and count whole cycles only.
async fn queries_per_cycle(agent: &HostAgent, server: &str) -> f64 {
    let labels = [("server", server)];
    agent.next_snapshots(1).await;
    let before = agent.metrics().await;
    agent.next_snapshots(COUNTED_CYCLES).await;
    let after = agent.metrics().await;
    let cycles = Histogram::read(&after, CYCLE, &[]).since(&Histogram::read(&before, CYCLE, &[]));
    let queries =
        Histogram::read(&after, QUERY, &labels).since(&Histogram::read(&before, QUERY, &labels));
    assert!(cycles.count >= 1.0, "{}: no cycle counted", agent.name);
    queries.count / cycles.count
}

#[tokio::test]
async fn rules_share_queries_and_keep_their_own_values() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let components = every_component(&sb);
    let names: Vec<&str> = components.iter().map(String::as_str).collect();
    let all_rules = |spec: AgentSpec| spec.components(&names).cluster_reporter(true);
    let batched = all_rules(AgentSpec::new(&sb, Host::One).named("batched")).start();
    let single = all_rules(AgentSpec::new(&sb, Host::One).named("single"))
        .rules_per_query(1)
        .start();
    // A TiKV down on .1: some rules of each kind are true, so the split answer is seen.
    sb.fake(sb.addr(Host::One, 20180)).stop().await;
    let expected =
        expect::healthy_for(&components, true).firing(&catalog::key("TiKV_server_is_down"));
    wait_until(
        &[(&batched, expected.clone()), (&single, expected)],
        "TiKV_server_is_down on both agents, every other key 0",
    )
    .await;

    // Every rule once a cycle, all on A (local to .1): the batched agent in
    // ceil(host rules / 8) + ceil(cluster rules / 8) queries, the other one per rule.
    let rules = catalog::catalog()
        .iter()
        .filter(|r| r.scope != "computed")
        .collect::<Vec<_>>();
    let host = rules.iter().filter(|r| r.scope == "host").count();
    let cluster = rules.len() - host;
    let a = sb.server(Server::A).url();
    let per_cycle = queries_per_cycle(&batched, &a).await;
    let expected_batched = host.div_ceil(8) + cluster.div_ceil(8);
    assert!(
        (per_cycle - expected_batched as f64).abs() < 0.5,
        "batched: {per_cycle} queries a cycle, not {expected_batched}"
    );
    let per_cycle = queries_per_cycle(&single, &a).await;
    assert!(
        (per_cycle - rules.len() as f64).abs() < 0.5,
        "rules_per_query = 1: {per_cycle} queries a cycle, not {}",
        rules.len()
    );
}

#[tokio::test]
async fn a_rule_prometheus_rejects_costs_only_its_own_key() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let components = expect::components(&sb, Host::One);
    assert!(components.contains("tikv"), "the test needs TiKV on .1");
    let agent = AgentSpec::new(&sb, Host::One)
        .rules_file(USER_RULES)
        .start();
    let mut expected = expect::healthy(&sb, Host::One);
    expected.0.insert(
        "TiDB.tikv.Unknown_function".to_string(),
        Reading {
            value: 0,
            state: State::Unknown,
        },
    );
    expected.0.insert(
        "TiDB.tikv.Gc_counter_present".to_string(),
        Reading {
            value: 1,
            state: State::Firing,
        },
    );
    // From the first cycle on, the one in which the batch is rejected and split.
    let first = agent.next_after(None).await;
    assert_eq!(
        first.readings,
        expected.0,
        "first snapshot\n{}",
        agent.log_tail()
    );
    // From the third cycle on, the key unknown that long degrades the agent.
    let degraded = expected.with(&catalog::degraded_key(), 1, State::Firing);
    wait_until(
        &[(&agent, degraded)],
        "the rejected rule unknown, its batch-mates answered, the agent degraded",
    )
    .await;
    // A few more cycles: the batch is split once, and the rule error logged once.
    agent.next_snapshots(3).await;
    let log = agent.log();
    assert_eq!(
        log.matches("they are sent one by one from now on").count(),
        1,
        "{}",
        agent.log_tail()
    );
    let errors = log
        .lines()
        .filter(|l| l.contains("rule error") && l.contains("TiDB.tikv.Unknown_function"))
        .count();
    assert_eq!(errors, 1, "{}", agent.log_tail());
}
