//! Scenario 2: a TiKV stops on 127.N.1.10:20180. Only that host reports it, although
//! 127.N.1.1:20180 is its string prefix, and the key survives a restart of the agent.

use harness::catalog;
use harness::sandbox::{Host, Sandbox};

use crate::agents::{start_per_host, wait_for_hosts};
use crate::expect::{self, State};

#[tokio::test]
async fn a_stopped_tikv_is_reported_by_its_host_only_and_across_agent_restarts() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let mut agents = start_per_host(&sb, |spec| spec);
    wait_for_hosts(&sb, &agents, |_, healthy| healthy, "every host healthy").await;

    let tikv_down = catalog::key("TiKV_server_is_down");
    let on_ten = |host, healthy: expect::Expected| match host {
        Host::Ten => healthy.firing(&tikv_down),
        _ => healthy,
    };
    sb.fake(sb.addr(Host::Ten, 20180)).stop().await;
    wait_for_hosts(&sb, &agents, on_ten, "TiKV_server_is_down on .10 only").await;

    let ten = agents
        .iter_mut()
        .find(|a| a.host == Host::Ten)
        .expect("agent on .10");
    let before = ten.stamp();
    ten.restart();
    // The very first snapshot of the new process already has the key, at 1.
    let first = ten.next_after(before).await;
    assert_eq!(
        first.reading(&tikv_down).map(|r| (r.value, r.state)),
        Some((1, State::Firing)),
        "{}: first snapshot after the restart: {:?}",
        ten.name,
        first.readings
    );
    wait_for_hosts(&sb, &agents, on_ten, "the key still 1 after the restart").await;

    sb.fake(sb.addr(Host::Ten, 20180)).start().await;
    wait_for_hosts(
        &sb,
        &agents,
        |_, healthy| healthy,
        "every host healthy again",
    )
    .await;
}
