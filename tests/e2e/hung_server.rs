//! Scenario 5: Prometheus A hangs (SIGSTOP: its socket accepts, nothing answers). The
//! cycles go on with the right values, later cycles send A nothing, and after SIGCONT a
//! successful probe brings A back into use.

use std::time::Instant;

use harness::catalog;
use harness::sandbox::{Host, Sandbox, Server, WAIT_LIMIT};
use harness::wait::Wait;

use crate::agents::{Histogram, HostAgent, start_per_host, wait_for_hosts};
use crate::expect::Expected;

/// Snapshots during which a hung A must receive no query.
const SKIPPING_CYCLES: usize = 3;
const CYCLE: &str = "tidb_host_agent_cycle_duration_seconds";

#[tokio::test]
async fn a_hung_server_costs_one_timeout_and_is_used_again_after_a_probe() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let agents = start_per_host(&sb, |spec| spec);
    wait_for_hosts(&sb, &agents, |_, healthy| healthy, "every host healthy").await;
    let a = sb.server(Server::A).url();
    // .1 prefers A because it is local, .10 because it comes first; .2 prefers B.
    let prefer_a: Vec<&HostAgent> = agents.iter().filter(|g| g.host != Host::Two).collect();
    let mut cycles_before = Vec::new();
    for agent in &agents {
        cycles_before.push(Histogram::read(&agent.metrics().await, CYCLE, &[]));
    }

    sb.server(Server::A).pause();
    let prometheus_down = catalog::prometheus_key();
    let a_down = |host, healthy: Expected| match host {
        Host::One => healthy.firing(&prometheus_down),
        _ => healthy,
    };
    wait_for_hosts(
        &sb,
        &agents,
        a_down,
        "A hung: Prometheus_is_down on .1 only",
    )
    .await;

    // Later cycles do not wait on A: they do not even ask it.
    let mut sent = Vec::new();
    for agent in &prefer_a {
        sent.push(agent.queries_to(&a).await);
    }
    for agent in &prefer_a {
        agent.next_snapshots(SKIPPING_CYCLES).await;
    }
    for (agent, before) in prefer_a.iter().zip(&sent) {
        assert_eq!(
            agent.queries_to(&a).await,
            *before,
            "{}: queried the hung server A in later cycles",
            agent.name
        );
    }
    for (agent, before) in agents.iter().zip(&cycles_before) {
        let cycles = Histogram::read(&agent.metrics().await, CYCLE, &[]).since(before);
        eprintln!(
            "{} while A hangs (query timeout 2 s): {} cycles, mean {:.0} ms, every cycle <= {} s (bucket)",
            agent.name,
            cycles.count,
            cycles.mean() * 1000.0,
            cycles.max_bound()
        );
    }

    sb.server(Server::A).resume();
    wait_for_hosts(&sb, &agents, |_, healthy| healthy, "A answers again").await;
    // A is used again, once a probe has succeeded.
    let deadline = Instant::now() + WAIT_LIMIT;
    for (agent, before) in prefer_a.iter().zip(&sent) {
        let what = format!("{}: a query to A, which answers probes again", agent.name);
        let log = || agent.log_tail();
        Wait::new(deadline.saturating_duration_since(Instant::now()), &what)
            .every(std::time::Duration::from_millis(100))
            .on_timeout(&log)
            .until_async(|| async { (agent.queries_to(&a).await > *before).then_some(()) })
            .await;
    }
}
