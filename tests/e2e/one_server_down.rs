//! Scenario 3: Prometheus A stops. Its host reports `Prometheus_is_down`, the others do not,
//! and a fault that happens afterwards is still seen through B.

use harness::catalog;
use harness::sandbox::{Host, Sandbox, Server};

use crate::agents::{start_per_host, wait_for_hosts};
use crate::expect::Expected;

#[tokio::test]
async fn a_stopped_server_is_reported_by_its_host_and_b_answers_for_it() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let agents = start_per_host(&sb, |spec| spec);
    wait_for_hosts(&sb, &agents, |_, healthy| healthy, "every host healthy").await;

    let prometheus_down = catalog::prometheus_key();
    sb.server(Server::A).stop().await;
    let a_down = |host, healthy: Expected| match host {
        Host::One => healthy.firing(&prometheus_down),
        _ => healthy,
    };
    wait_for_hosts(&sb, &agents, a_down, "Prometheus_is_down on .1 only").await;

    let tikv_down = catalog::key("TiKV_server_is_down");
    sb.fake(sb.addr(Host::One, 20180)).stop().await;
    wait_for_hosts(
        &sb,
        &agents,
        |host, healthy| match host {
            Host::One => a_down(host, healthy).firing(&tikv_down),
            _ => healthy,
        },
        "the tikv on .1 down, seen through B",
    )
    .await;
}
