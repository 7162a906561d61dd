//! Scenario 4: both servers stop. Every host reports `Prometheus_is_down`, the other keys
//! follow `on_no_data` (`hold` and `zero` side by side), and when the servers come back
//! every value returns to the truth.

use harness::catalog;
use harness::sandbox::{Host, Sandbox, Server};

use crate::agents::{AgentSpec, HostAgent, wait_until};
use crate::expect::{self, Expected};

#[tokio::test]
async fn with_no_server_every_host_reports_it_and_keys_follow_on_no_data() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let start = |on_no_data| -> Vec<HostAgent> {
        Host::ALL
            .iter()
            .map(|h| {
                AgentSpec::new(&sb, *h)
                    .named(on_no_data)
                    .on_no_data(on_no_data)
                    .start()
            })
            .collect()
    };
    let hold = start("hold");
    let zero = start("zero");
    let all: Vec<&HostAgent> = hold.iter().chain(zero.iter()).collect();

    // A fault first, so that a held 1 differs from a zeroed one.
    let tikv_down = catalog::key("TiKV_server_is_down");
    let truth = |host| {
        let healthy = expect::healthy(&sb, host);
        match host {
            Host::Ten => healthy.firing(&tikv_down),
            _ => healthy,
        }
    };
    let each = |f: &dyn Fn(&HostAgent) -> Expected| -> Vec<(&HostAgent, Expected)> {
        all.iter().map(|a| (*a, f(a))).collect()
    };
    sb.fake(sb.addr(Host::Ten, 20180)).stop().await;
    wait_until(&each(&|a| truth(a.host)), "the tikv on .10 down").await;

    let prometheus_down = catalog::prometheus_key();
    futures::join!(sb.server(Server::A).stop(), sb.server(Server::B).stop());
    let no_server = |a: &HostAgent| {
        let (zero_to, one_to) = if a.name.ends_with("hold") {
            (0, 1)
        } else {
            (0, 0)
        };
        truth(a.host)
            .unknown(zero_to, one_to)
            .firing(&prometheus_down)
    };
    wait_until(&each(&no_server), "no server: on_no_data values").await;
    for agent in hold.iter().chain(zero.iter()) {
        // No crash: the agents are still writing (wait_until saw fresh snapshots).
        assert!(agent.log().contains("Prometheus is down"), "{}", agent.name);
    }

    futures::join!(sb.server(Server::A).start(), sb.server(Server::B).start());
    sb.wait_until_ready().await;
    wait_until(&each(&|a| truth(a.host)), "the truth again").await;
    for agent in hold.into_iter().chain(zero) {
        let mut agent = agent;
        agent.assert_alive();
    }
}
