//! Scenario 7: the two servers disagree about one target (each scrapes its own view of the
//! tidb on .1). `any` says 1, `all` says 0, and `failover` follows the local server even
//! when it is configured second.

use harness::catalog;
use harness::sandbox::{Host, Sandbox, Server};

use crate::agents::{AgentSpec, HostAgent, wait_until};
use crate::expect::{self, Expected};

#[tokio::test]
async fn modes_any_all_and_failover_when_the_servers_disagree() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let (a, b) = (sb.server(Server::A).url(), sb.server(Server::B).url());
    let any = AgentSpec::new(&sb, Host::One)
        .named("any")
        .mode("any")
        .start();
    let all = AgentSpec::new(&sb, Host::One)
        .named("all")
        .mode("all")
        .start();
    let failover = AgentSpec::new(&sb, Host::One)
        .named("failover-b-first")
        .servers(vec![b.clone(), a.clone()])
        .start();
    let others: Vec<HostAgent> = [Host::Two, Host::Ten]
        .iter()
        .map(|h| AgentSpec::new(&sb, *h).start())
        .collect();
    let ddl = catalog::key("TiDB_ddl_waiting_jobs");
    let expect_modes = |any_fires: bool, failover_fires: bool| {
        let one = |fires: bool| {
            let healthy = expect::healthy(&sb, Host::One);
            if fires { healthy.firing(&ddl) } else { healthy }
        };
        let mut out: Vec<(&HostAgent, Expected)> = vec![
            (&any, one(any_fires)),
            // Never both servers agree in this test.
            (&all, one(false)),
            (&failover, one(failover_fires)),
        ];
        out.extend(others.iter().map(|o| (o, expect::healthy(&sb, o.host))));
        out
    };
    wait_until(&expect_modes(false, false), "every agent healthy").await;

    let tidb = sb.fake(sb.addr(Host::One, 10080));
    tidb.set_for_view(Server::A, "tidb_ddl_waiting_jobs", 10.0);
    wait_until(&expect_modes(true, true), "only A sees the DDL jobs").await;

    // B sees the jobs before A stops seeing them. The other way round, A's next scrape
    // could come before B's, both servers would say 0 for a moment, and `any` could drop
    // to 0 after matching. Each agent's latest snapshot is from after B's scrape, so from
    // there on `any` stays 1 and `all` and `failover` only fall.
    tidb.set_for_view(Server::B, "tidb_ddl_waiting_jobs", 10.0);
    let selector = format!(
        "tidb_ddl_waiting_jobs{{instance=\"{}\"}}",
        sb.addr(Host::One, 10080)
    );
    sb.wait_for(Server::B, &selector, "B sees the DDL jobs", |samples| {
        samples.iter().any(|s| s.value == 10.0)
    })
    .await;
    let mut agents = vec![&any, &all, &failover];
    agents.extend(&others);
    futures::future::join_all(agents.iter().map(|a| a.next_snapshots(1))).await;
    tidb.set_for_view(Server::A, "tidb_ddl_waiting_jobs", 0.0);
    wait_until(&expect_modes(true, false), "only B sees the DDL jobs").await;

    tidb.clear_views();
    wait_until(&expect_modes(false, false), "the servers agree again").await;
}
